"""``python -m pa3 assignment release|check|run|pack|grade``: the command line of pa3.assignment."""


def add_parser(sub):
    p = sub.add_parser("assignment", help="the student edition: release it, check tasks, grade submissions")
    commands = p.add_subparsers(dest="action", required=True)
    r = commands.add_parser("release", help="write the student edition (solution regions stubbed, outputs cleared)")
    r.add_argument("out", help="a new or empty folder")
    c = commands.add_parser("check", help="run the public task checks against this folder's pa3")
    c.add_argument("--task", type=int, action="append", help="only this task (repeatable)")
    commands.add_parser("run", help="execute every notebook in place under the grading profile (before submitting)")
    k = commands.add_parser("pack", help="zip this folder for handing in, without .venv/, data/, runs/ and figures/")
    k.add_argument("--out", help="the .zip to write (default: next to this folder, named after it)")
    g = commands.add_parser("grade", help="grade submissions (folders or .zip files, or a folder of them)")
    g.add_argument("submissions", nargs="+")
    g.add_argument("--out", default="grades.csv", help="the CSV of points (default grades.csv)")
    g.add_argument("--feedback", help="folder of the feedback files (default: feedback/ next to --out)")
    g.add_argument("--time-limit", type=float, default=600, help="seconds per submission, all steps (default 600)")
    g.add_argument("--task-time-limit", type=float, default=60, help="seconds for one task's checks (default 60)")
    g.add_argument("--jobs", type=int, default=1, help="submissions graded at once (each uses one core)")
    g.add_argument("--no-sandbox", action="store_true",
                   help="run the submissions' code without bubblewrap (only code you trust; grades.csv says so)")
    g.add_argument("--memory-limit", type=float, default=8.0, help="GiB of memory per submission (default 8)")


def run(args):
    if args.action == "release":
        from pa3.assignment.release import release

        written = release(args.out)
        print(f"wrote the student edition to {args.out}: {len(written)} files; the students' README is "
              f"{args.out}/README.md")
        return 0
    if args.action == "check":
        from pa3.assignment.check import check

        return check(args.task)
    if args.action == "run":
        from pa3.assignment.check import run_notebooks

        return run_notebooks()
    if args.action == "pack":
        from pa3.assignment.check import pack

        pack(out=args.out)
        return 0
    from pa3.assignment.grade import grade
    from pa3.assignment.sandbox import Limits, SandboxError

    try:
        grade(args.submissions, args.out, args.feedback, args.time_limit, args.task_time_limit, args.jobs,
              sandboxed=not args.no_sandbox, limits=Limits(memory_gb=args.memory_limit))
    except SandboxError as error:
        print(f"error: {error}")
        return 2
    return 0
