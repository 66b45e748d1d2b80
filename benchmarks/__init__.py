"""Speed benchmarks of pa3: every figure is a ratio of two things measured side by side in one run.

Run ``python -m benchmarks.run`` (``make bench``) or ``--smoke`` for a seconds-long check of every path.
"""
