"""What the grading sandbox costs: one submission graded with and without bubblewrap, side by side.

    python -m benchmarks.sandbox_cost SUBMISSION [--rounds 1]

SUBMISSION: a folder or .zip of the student edition (e.g. the solution.zip tests/test_assignment_grade.py builds).
Each round grades it unsandboxed and sandboxed, alternating which goes first, one at a time on one core, and the
script prints every time, the points (they must agree) and the ratio sandboxed / unsandboxed of the summed times.
The goal (issue 24): the sandbox adds at most 10 % to a submission's grading time. A few minutes a round.
"""
import argparse
import tempfile
import time
from pathlib import Path


def main(argv=None):
    from pa3.assignment.grade import grade

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submission", type=Path)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    seconds = {True: [], False: []}
    points = {True: set(), False: set()}
    with tempfile.TemporaryDirectory(prefix="pa3-sandbox-cost-") as tmp:
        for round_ in range(args.rounds):
            for sandboxed in ((False, True) if round_ % 2 == 0 else (True, False)):
                started = time.perf_counter()
                result, = grade([args.submission], Path(tmp) / f"{round_}-{sandboxed}" / "grades.csv",
                                sandboxed=sandboxed)
                seconds[sandboxed].append(time.perf_counter() - started)
                points[sandboxed].add(result.total)
                print(f"round {round_ + 1}: {'sandboxed' if sandboxed else 'unsandboxed'}: "
                      f"{seconds[sandboxed][-1]:.1f} s, {result.total} points", flush=True)
    ratio = sum(seconds[True]) / sum(seconds[False])
    print(f"\n| | seconds | points |\n|---|--:|--:|\n| unsandboxed | {sum(seconds[False]):.1f} | {points[False]} |\n"
          f"| sandboxed (bubblewrap) | {sum(seconds[True]):.1f} | {points[True]} |\n"
          f"\nsandboxed / unsandboxed: {ratio:.3f} (goal: at most 1.10: {'met' if ratio <= 1.10 else 'NOT met'})")
    if points[True] != points[False]:
        print("the points differ between the two: the sandbox changes a grade")


if __name__ == "__main__":
    main()
