"""The course edition of pa3: solution regions, the student edition, task checks and grading with nbval.

- ``tasks``: the eight tasks the report's students wrote, their points, files and runs;
- ``regions``: ``# BEGIN SOLUTION task N`` / ``# END SOLUTION`` in pa3/, stubbed in the student edition;
- ``release``: ``python -m pa3 assignment release OUT`` writes the student edition;
- ``check``: ``python -m pa3 assignment check`` runs the public checks (``checks/public``), ``run`` executes
  the notebooks under the grading profile;
- ``grade``: ``python -m pa3 assignment grade SUBMISSIONS --out grades.csv``: public + hidden checks, nbval and
  the grading profile's calibrated bands, each submission in fresh processes with a time limit.
"""
from pa3.assignment.tasks import NOTEBOOK_POINTS, TASKS, TOTAL_POINTS

__all__ = ["NOTEBOOK_POINTS", "TASKS", "TOTAL_POINTS"]
