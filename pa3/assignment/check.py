"""The public task checks: ``python -m pa3 assignment check`` (students), and ``run`` and ``pack``.

The public checks are plain pytest files, ``checks/public/test_task<N>.py`` (grading uses the graded checks of
``checks/hidden``, judged outside a sandbox: ``pa3.assignment.grade``). They run in a fresh process whose
``PYTHONPATH`` starts with the folder whose ``pa3`` is under test, with an empty pytest configuration (no conftest,
no nbval options) and pytest's importlib mode, so the check files import that ``pa3`` and nothing else; the report
plugin gets its file and that folder as options (``--grade-report``, ``--code-root``).
"""
import dataclasses
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from pa3 import project_dir
from pa3.assignment.processes import PLUGIN_FILE, PLUGIN_NAME, child_env, read_verdicts, run_limited, whole_env
from pa3.assignment.report_plugin import ANSI  # the report plugin's colour-code pattern
from pa3.assignment.steps import QUIET
from pa3.assignment.tasks import TASKS

CHECKS_DIR = Path(__file__).parent / "checks"
# What a submission leaves out (pack) and the grader never copies: environments, data, trained runs, figures.
LEFT_OUT = {".venv", "venv", "runs", "data", "figures", "__pycache__", ".git", ".ipynb_checkpoints"}
NOT_IMPLEMENTED = re.compile(r"NotImplementedError: (Task (\d+)) \(")


def check_files(task, checks_dir=CHECKS_DIR):
    """The public pytest check file of ``task``, in a list (empty where it has none)."""
    path = Path(checks_dir) / "public" / f"test_task{task}.py"
    return [path] if path.is_file() else []


def pytest_env(code_root, helper_dir):
    """The environment the checked code runs in: its ``pa3`` first on the path, the helpers (the report plugin)
    after."""
    return child_env(PYTHONPATH=os.pathsep.join([str(code_root), str(helper_dir)]), PA3_HOME=str(code_root), **QUIET)


def write_pytest_helpers(helper_dir):
    """Into ``helper_dir``: the report plugin and an empty pytest configuration."""
    helper_dir = Path(helper_dir)
    helper_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PLUGIN_FILE, helper_dir / f"{PLUGIN_NAME}.py")
    (helper_dir / "pytest.ini").write_text("[pytest]\n")
    return helper_dir


def pytest_command(helper_dir, paths, *options):
    """pytest on ``paths`` with the empty configuration in ``helper_dir`` and the report plugin (its options in
    ``options``)."""
    return [sys.executable, "-m", "pytest", "-vv", "-p", "no:cacheprovider", "--noconftest",
            "--import-mode=importlib", "-c", str(Path(helper_dir) / "pytest.ini"), "--rootdir", str(helper_dir),
            "-p", PLUGIN_NAME, *options, *map(str, paths)]


def run_checks(tasks, code_root, helper_dir, timeout, checks_dir=CHECKS_DIR, report_name="checks"):
    """Run the public checks of ``tasks`` against the ``pa3`` in ``code_root``, in one fresh process.

    Returns ({task: (passed, [(check, message)])} for the tasks whose checks all finished, finished process).
    A task missing from the dict did not finish within ``timeout`` (the process was stopped).
    """
    report = Path(helper_dir) / f"{report_name}.jsonl"
    report.unlink(missing_ok=True)
    files = {task: [_copy_in(path, helper_dir) for path in check_files(task, checks_dir)] for task in tasks}
    command = pytest_command(helper_dir, [f for fs in files.values() for f in fs],
                             "--grade-report", str(report), "--code-root", str(code_root))
    finished = run_limited(command, timeout, cwd=code_root, env=pytest_env(code_root, helper_dir))
    verdicts = read_verdicts(report)
    results = {}
    for task, paths in files.items():
        names = {str(p.relative_to(helper_dir)) for p in paths}
        mine = {nodeid: row for nodeid, row in verdicts.items() if nodeid.partition("::")[0] in names}
        if finished.timed_out and (not mine or any(r["outcome"] == "collected" for r in mine.values())):
            continue  # stopped before all of its checks ran
        failures = [(_check_name(nodeid), explain(row["message"])) for nodeid, row in mine.items()
                    if row["outcome"] not in ("passed", "collected")]
        if not mine and not failures:  # nothing reported: the process died before collecting (a crash)
            tail = "\n".join(finished.output.strip().splitlines()[-5:])
            failures = [(f"task {task} checks", f"{finished.why()}: {tail}" if tail else finished.why())]
        elif any(r["outcome"] == "collected" for r in mine.values()):
            failures.append((f"task {task} checks", f"not all checks ran: the process ended ({finished.why()})"))
        results[task] = (not failures, failures)
    return results, finished


def _copy_in(path, helper_dir):
    """A copy of check file ``path`` under ``helper_dir``/checks/public/: pytest's rootdir holds every check,
    so each has a distinct test id, and the submission cannot touch the copies."""
    target = Path(helper_dir) / "checks" / path.parent.name / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(path.read_bytes())
    return target


def _check_name(nodeid):
    path, _, test = nodeid.partition("::")
    return f"public {Path(path).name}" + (f"::{test}" if test else " (does not import)")


def explain(message):
    found = NOT_IMPLEMENTED.search(message)
    return f"not implemented yet ({found.group(1)}: {TASKS[int(found.group(2))].title})" if found else message


def check(tasks=None, root=None, timeout=600):
    """Run the public checks of ``tasks`` (default all) against this folder's ``pa3``; print a table.
    Returns 0 when every task passes, else 1."""
    root = Path(root or project_dir())
    numbers = tasks or list(TASKS)
    unknown = [n for n in numbers if n not in TASKS]
    if unknown:
        raise ValueError(f"unknown task {unknown[0]}; the tasks are {list(TASKS)}")
    print(f"public checks of {root}/pa3 ({len(numbers)} task{'s' if len(numbers) != 1 else ''})")
    all_passed = True
    with tempfile.TemporaryDirectory(prefix="pa3-check-") as helper_dir:
        write_pytest_helpers(helper_dir)
        results, finished = run_checks(numbers, root, helper_dir, timeout)
        for number in numbers:
            passed, failures = results.get(number, (False, [(f"task {number} checks", finished.why())]))
            all_passed &= passed
            print(f"Task {number} ({TASKS[number].title}, {TASKS[number].points} points): "
                  f"{'passed' if passed else 'FAILED'}")
            for name, message in failures:
                print(f"    {name}: " + message.replace("\n", "\n        "))
    print("every task passes its public checks" if all_passed else
          "some tasks fail: fix them, then run python -m pa3 assignment check again")
    return 0 if all_passed else 1


def run_notebooks(root=None, timeout=600, names=None):
    """Execute every notebook of ``root`` in place, with ``root``'s pa3, under the grading profile (what the
    grader compares against); ``names``: only those notebooks. Every notebook runs to its end even when a cell
    fails (the error is stored as that cell's output, as the grader will see it). Prints which finished runs
    are reused and each failing cell with its error. Returns the exit status (1 when a cell failed)."""
    root = Path(root or project_dir())
    notebooks = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if names is not None:  # only these (e.g. ["02_losses"]) after a change that only they show
        notebooks = [path for path in notebooks if path.stem in names]
    if not notebooks:
        raise FileNotFoundError(f"no notebooks in {root / 'notebooks'}: run this in the student edition's folder")
    print(_reused_runs(root))
    env = whole_env(root, PA3_PROFILE="grading", PA3_HOME=str(root), **QUIET)  # this folder's pa3
    failed, seconds = [], 0.0
    for path in notebooks:
        command = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                   "--allow-errors", f"--ExecutePreprocessor.timeout={timeout}",
                   "--ExecutePreprocessor.record_timing=False", str(path)]
        finished = run_limited(command, timeout, cwd=root, env=env)
        seconds += finished.seconds
        errors = cell_errors(path)
        if finished.returncode != 0:
            tail = "\n".join(strip_ansi(finished.output).strip().splitlines()[-15:])
            errors.append(f"notebooks/{path.name}: executing it failed ({finished.why()}):\n{tail}")
        print(f"notebooks/{path.name}: " + ("ran through" if not errors else f"{len(errors)} failing cell(s)")
              + f" ({finished.seconds:.0f} s)", flush=True)
        failed += errors
    for error in failed:
        print("  " + error.replace("\n", "\n    "))
    if failed:
        print("fix the code these errors point to, then run python -m pa3 assignment run again")
        return 1
    print(f"executed {len(notebooks)} notebooks in place under the grading profile ({seconds:.0f} s)")
    return 0


def strip_ansi(text):
    return ANSI.sub("", text)


def cell_errors(path):
    """One message per code cell of notebook ``path`` whose stored outputs hold an error: the cell's number
    (counting code cells from 0, as the grader does), its first line and the error."""
    notebook = json.loads(Path(path).read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    messages = []
    for index, cell in enumerate(code):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                source = "".join(cell["source"]).strip().splitlines() or [""]
                first = next((line for line in source if not line.startswith("# TASK CELL")), source[0])
                messages.append(f"notebooks/{Path(path).name} code cell {index} ({first[:70]}): "
                                f"{output['ename']}: {strip_ansi(output['evalue'])[:300]}")
    return messages


def _reused_runs(root):
    """One line: which runs of ``root``/runs/grading are finished and trained by the current sources (reused)
    and which will be trained (none yet, or trained by other pa3 sources)."""
    from pa3.experiments import EXPERIMENTS, is_complete, run_dir
    from pa3.notebook_setup import get_profile

    profile = dataclasses.replace(get_profile("grading"), runs_dir=str(Path(root) / "runs"))
    reused = [name for name in EXPERIMENTS if is_complete(name, profile)]
    changed = [name for name in EXPERIMENTS if name not in reused and (run_dir(name, profile) / "config.json").exists()]
    parts = [f"reused (finished, same pa3 sources): {', '.join(reused)}" if reused else "no run reused",
             f"trained again (the pa3 sources changed since): {', '.join(changed)}" if changed else ""]
    return "runs/grading: " + "; ".join(filter(None, parts))


def pack(root=None, out=None):
    """``python -m pa3 assignment pack``: zip the student edition at ``root`` for handing in, without
    ``LEFT_OUT`` (.venv/, data/, runs/, figures/, caches), into ``out`` (default: ``<root>/../<name>.zip``).
    Returns the archive's path."""
    root = Path(root or project_dir()).resolve()
    if not (root / "pa3").is_dir() or not (root / "notebooks").is_dir():
        raise FileNotFoundError(f"{root} is not the student edition (no pa3/ and notebooks/): run this in its folder")
    out = Path(out or root.parent / f"{root.name}.zip").resolve()
    if out.is_relative_to(root):
        raise ValueError(f"{out} lies inside the folder it packs: write it next to the folder instead")
    files = [path for path in sorted(root.rglob("*")) if path.is_file()
             and not LEFT_OUT & set(path.relative_to(root).parts) and path.suffix != ".zip"]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, Path(root.name) / path.relative_to(root))
    print(f"wrote {out} ({len(files)} files, {out.stat().st_size // 1024} kB, without "
          f"{', '.join(sorted(n for n in LEFT_OUT if not n.startswith(('.', '_'))))}): hand in this file")
    return out

