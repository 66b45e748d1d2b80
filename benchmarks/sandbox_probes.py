"""Submissions built to break out of the grading sandbox or to forge their grades, graded as an instructor grades.

    python -m benchmarks.sandbox_probes SOLUTION_FOLDER [--out DIR] [--jobs 2] [--time-limit 600]

SOLUTION_FOLDER is a student edition with the solution prepared the students' way (``assignment check``, ``run``),
e.g. the folder tests/test_assignment_grade.py builds. Each probe is a copy of it plus code of its own (``PROBES``);
the script grades them all next to the solution itself, prints grades.csv, then checks the machine for what the
probes tried to leave outside their copies. Several minutes (every probe that imports retrains the grading runs).
``tests/test_assignment_grade.py`` grades ``FORGER`` (with a Task 4 bug) in make test.
"""
import argparse
import csv
import json
import shutil
import tempfile
import textwrap
from pathlib import Path

MARK = "pa3-probe-escape"  # every file a probe tries to write outside its copy starts with this

# Runs on every `import pa3` (the import check, the checks, each notebook kernel): reads the instructor's checkout
# and the hidden checks, writes outside its copy, connects to 127.0.0.1, and saves what it saw in its own copy.
ESCAPE = f"""
import json as _j, os as _o, socket as _s
_seen = {{}}
for _p in {{CHECKOUT!r}}, "/grader/checks/task1.py", "/root", "/etc/shadow", "/proc/1/environ":
    try:
        _seen[_p] = sorted(_o.listdir(_p))[:5] if _o.path.isdir(_p) else open(_p, errors="replace").read(60)
    except OSError as _e:
        _seen[_p] = type(_e).__name__
for _p in "/tmp/{MARK}", {{CHECKOUT!r}} + "/{MARK}", "/grader/{MARK}", "/usr/{MARK}":
    try:
        open(_p, "w").write("escaped")
        _seen["wrote " + _p] = True
    except OSError as _e:
        _seen["wrote " + _p] = type(_e).__name__
try:
    _s.create_connection(("127.0.0.1", {{PORT}}), timeout=2)
    _seen["network"] = "connected"
except OSError as _e:
    _seen["network"] = type(_e).__name__
_root = _o.path.dirname(_o.path.dirname(_o.path.abspath(__file__)))
open(_o.path.join(_root, "seen-%d.json" % _o.getpid()), "w").write(_j.dumps(_seen))
"""

# Forges what it can: a sitecustomize.py, a conftest.py in notebooks/, pytest's reports, verdict-like files, fake
# rows on stdout, the runner's own rows (in the checks step it runs in the runner's process: only values), and,
# from the kernels, fake rows into the step's output (through bwrap's and the runner's stdout) and the run files.
FORGER = """
import json as _j, os as _o, sys as _sys, subprocess as _sp
_root = _o.path.dirname(_o.path.dirname(_o.path.abspath(__file__)))
for _name, _text in {"sitecustomize.py": "import pytest\\n", "notebooks/conftest.py": "import pytest\\n",
                     "checks.jsonl": '{"nodeid": "x", "outcome": "passed"}\\n', "nbval.jsonl": ""}.items():
    try:
        open(_o.path.join(_root, _name), "w").write(_text)
    except OSError:
        pass
print('{"task": 4, "check": "check_image_and_mask_share_the_geometry", "values": {}}')
try:
    import _pytest.reports
    _pytest.reports.TestReport.outcome = "passed"
except Exception:
    pass
_runner = _sys.modules.get("__main__")
if _runner is not None and hasattr(_runner, "_emit"):
    _emit = _runner._emit
    def _forged(secret, row):
        values = row.get("values")
        if "error" in row:  # a check that raised "returns" nothing instead
            row = {key: value for key, value in row.items() if key != "error"} | {"values": {}}
        elif row.get("task") == 4 and isinstance(values, dict) and "labels" in values:
            row = {**row, "values": {**values, "labels": [0, 1, 2]}}
        _emit(secret, row)
    _runner._emit = _forged
if "ipykernel" in _sys.modules:
    _script = '''
import glob, json, os, time
fake = json.dumps({"notebook": "03_augmentation", "cells": [], "stopped": None})
for _ in range(600):
    time.sleep(1)
    runner = open("/proc/%d/stat" % os.getppid()).read().split(")")[-1].split()[1]  # the kernel's parent
    for path in ("/proc/1/fd/1", "/proc/%s/fd/1" % runner):  # the step's pipe, through bwrap and the runner
        try:
            with open(path, "w") as f:
                f.write("\\\\n0123456789abcdef " + fake + "\\\\n")
        except OSError:
            pass
    for path in glob.glob(os.path.join(ROOT, "runs", "grading", "*", "metrics.json")):
        try:
            metrics = json.load(open(path))
            metrics["status"] = "complete"
            json.dump(metrics, open(path, "w"))
        except (OSError, ValueError):
            pass
'''.replace("ROOT", repr(_root))
    _sp.Popen([_sys.executable, "-c", _script], start_new_session=True, stdout=_sp.DEVNULL, stderr=_sp.DEVNULL)
"""

FORK_BOMB = """
import os as _o
if "ipykernel" not in __import__("sys").modules:
    while True:
        try:
            _o.fork()
        except OSError:
            pass
"""

MEMORY_HOG = """
_hog = [b"x" * 2**28 for _ in range(64)]  # 16 GiB, twice the sandbox's memory
"""

# A notebook 00 cell (appended): ignores SIGTERM, leaves a process in its own session that ignores it too, loops.
SIGTERM_CELL = """import signal, subprocess, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(10**6)  # pa3-probe-sleeper"], start_new_session=True)
while True:
    pass
"""

PROBES = {
    "escape": "reads the checkout, the hidden checks, /root, /etc/shadow; writes to /tmp, the checkout, /grader, /usr; "
              "connects to a listener on 127.0.0.1 (on every import: import check, checks, each kernel)",
    "forger": "sitecustomize.py, notebooks/conftest.py, a pytest patch, verdict-like files, fake rows on stdout, its "
              "own rows patched in the runner, fake rows into the step's pipe and run files rewritten from the kernels",
    "fork_bomb": "forks without end as pa3 is imported",
    "memory_hog": "allocates 16 GiB as pa3 is imported",
    "sigterm_kernel": "a notebook 00 cell that ignores SIGTERM, leaves a process behind in its own session and loops",
}


def add_to_init(folder, code):
    with open(folder / "pa3" / "__init__.py", "a") as f:
        f.write("\n" + textwrap.dedent(code))


def build(solution, into, checkout, port):
    """The probe submissions (folders) next to a copy of the solution, in ``into``."""
    left_out = {".venv", "runs", "data", "figures", "__pycache__"}

    def copy(name):
        shutil.copytree(solution, into / name, ignore=lambda _, names: [n for n in names if n in left_out])
        return into / name
    copy("solution")
    add_to_init(copy("escape"), ESCAPE.replace("{CHECKOUT!r}", repr(str(checkout))).replace("{PORT}", str(port)))
    add_to_init(copy("forger"), FORGER)
    add_to_init(copy("fork_bomb"), FORK_BOMB)
    add_to_init(copy("memory_hog"), MEMORY_HOG)
    folder = copy("sigterm_kernel")
    path = folder / "notebooks" / "00_data.ipynb"
    notebook = json.loads(path.read_text())
    notebook["cells"].append({"cell_type": "code", "metadata": {}, "source": SIGTERM_CELL, "execution_count": None,
                              "outputs": [], "id": "probe"})
    path.write_text(json.dumps(notebook))
    return into


def leftovers():
    """What the probes left outside their copies: files named MARK, processes of the SIGTERM probe."""
    found = [str(p) for p in Path("/tmp").glob(f"{MARK}*")] + [str(p) for p in Path("/usr").glob(f"{MARK}*")]
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"pa3-probe-sleeper" in (entry / "cmdline").read_bytes():
                found.append(f"process {entry.name}")
        except OSError:
            pass
    return found


def main(argv=None):
    import socket
    import threading

    from pa3 import project_dir
    from pa3.assignment.grade import grade

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("solution", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--time-limit", type=float, default=600, help="seconds per submission (default 600)")
    args = parser.parse_args(argv)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    connections = []
    threading.Thread(target=lambda: connections.append(listener.accept()), daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="pa3-probes-") as tmp:
        out = args.out or Path(tmp) / "grades"
        build(args.solution, Path(tmp) / "submissions", project_dir(), listener.getsockname()[1])
        grade([Path(tmp) / "submissions"], out / "grades.csv", jobs=args.jobs, time_limit=args.time_limit)
        rows = list(csv.DictReader(open(out / "grades.csv")))
        print("\n| probe | what it tried | status | points | seconds |\n|---|---|---|--:|--:|")
        for row in rows:
            print(f"| {row['submission']} | {PROBES.get(row['submission'], 'the solution itself')} | "
                  f"{row['status']} | {row['total']} | {row['seconds']} |")
        print(f"\nconnections accepted by the listener on 127.0.0.1: {len(connections)}")
        print(f"left outside the copies: {leftovers() or 'nothing'}")
        if args.out:
            print(f"grades.csv and feedback in {out}")


if __name__ == "__main__":
    main()
