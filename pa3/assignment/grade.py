"""``python -m pa3 assignment grade SUBMISSIONS --out grades.csv``: points and feedback per submission.

Each submission (a folder or a .zip of the student edition) is copied into a temporary folder and graded
there, every step in a fresh process with a time limit (``pa3.assignment.processes``):

1. the grading files are restored from this release (``RESTORED``: expected values, the checker, pytest and
   nbval settings), ``runs/`` and ``data/`` are dropped (everything is retrained), the embedded data linked;
2. ``import pa3`` must give the submission's own package;
3. per task, its public and hidden checks (``pa3.assignment.check``);
4. ``pytest --nbval`` over its notebooks under the grading profile: the stored outputs must be what the
   code produces (``--nbval-sanitize-with`` this release's tests/nbval_sanitize.cfg);
5. the trained numbers of every run against the grading profile's calibrated bands (``pa3.grading``).

A task scores its points when its checks pass, the notebook cells marked with it pass and its runs are in
their bands; a notebook scores when its other cells pass (``pa3.assignment.tasks``). A submission that does
not unpack, does not import, crashes or hangs is scored from what finished, and its feedback says why.
"""
import csv
import json
import shutil
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pa3 import project_dir
from pa3.assignment.check import pytest_command, pytest_env, run_checks, write_helpers
from pa3.assignment.processes import read_verdicts, run_limited
from pa3.assignment.release import cell_tasks
from pa3.assignment.tasks import NOTEBOOK_POINTS, PROVIDED_RUNS, TASKS, TOTAL_POINTS, task_of_run

PROFILE = "grading"
RESTORED = ("pa3/expected/grading.json", "pa3/grading.py", "pytest.ini", "conftest.py", "tests/nbval_sanitize.cfg")
NOT_COPIED = {".venv", "venv", "runs", "data", "figures", "__pycache__", ".git", ".ipynb_checkpoints"}
IMPORT_CHECK = ("import sys; from pathlib import Path; import pa3; "
                "where = Path(pa3.__file__).resolve(); "
                "assert where.is_relative_to(Path(sys.argv[1]).resolve()), f'pa3 imported from {where}'; "
                "import pa3.metrics, pa3.losses, pa3.transforms, pa3.models, pa3.experiments")


@dataclass
class Result:
    name: str
    status: str = "graded"  # graded | time limit | does not import | malformed | grader error
    points: dict = field(default_factory=dict)  # "task1".. / notebook name -> points scored
    failures: list = field(default_factory=list)  # (where, message)
    notes: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self):
        return sum(self.points.values())


def submissions_in(paths):
    """The submissions named by ``paths``: each a submission (a folder holding pa3/, or a file) or a folder of
    them. Names starting with '.' are left out and said."""
    found = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: give submission folders, .zip files or a folder of them")
        if path.is_dir() and not (path / "pa3").exists() and not (path / "notebooks").exists():
            for child in sorted(path.iterdir()):
                if child.name.startswith("."):
                    print(f"left out {child} (a hidden file)")
                else:
                    found.append(child)
        else:
            found.append(path)
    names = [_name(p) for p in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"two submissions are both called {duplicates[0]!r}: rename one of them")
    return found


def _name(path):
    return path.name[:-4] if path.name.lower().endswith(".zip") else path.name


def grade(paths, out_csv, feedback_dir=None, time_limit=600, task_time_limit=60, jobs=1, source=None):
    """Grade every submission in ``paths``; write ``out_csv`` and one feedback file each. Returns [Result]."""
    source = Path(source or project_dir())
    from pa3.grading import expected_path, load_expected

    if load_expected(PROFILE) is None:
        raise FileNotFoundError(f"{expected_path(PROFILE)} is missing: grading needs the grading profile's calibrated "
                                f"bands (python -m benchmarks.calibrate --profile grading, see its docstring)")
    submissions = submissions_in(paths)
    out_csv = Path(out_csv)
    feedback_dir = Path(feedback_dir) if feedback_dir else out_csv.parent / "feedback"
    feedback_dir.mkdir(parents=True, exist_ok=True)
    from pa3.layout import default_data_root

    data = default_data_root()  # this release's embedded set, generated once, linked into every submission
    print(f"grading {len(submissions)} submission(s), {jobs} at a time, at most {time_limit} s each")

    def one(path):
        try:
            result = grade_one(path, source, data, time_limit, task_time_limit)
        except Exception as error:  # a fault of the grader on this submission must not stop the others
            result = Result(_name(Path(path)), status="grader error")
            result.failures.append(("grader", f"{type(error).__name__}: {error} (grade it again alone; report "
                                              f"this to the instructor)"))
        (feedback_dir / f"{result.name}.md").write_text(feedback(result))
        print(f"{result.name}: {result.total}/{TOTAL_POINTS} ({result.status}, {result.seconds:.0f} s)", flush=True)
        return result

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        results = list(pool.map(one, submissions))
    write_csv(results, out_csv)
    print(f"wrote {out_csv} and {len(results)} feedback file(s) in {feedback_dir}")
    return results


def columns():
    return ["submission", "status", *(f"task{n}" for n in TASKS), *NOTEBOOK_POINTS, "total", "seconds"]


def write_csv(results, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns())
        for r in results:
            writer.writerow([r.name, r.status, *(r.points.get(f"task{n}", 0) for n in TASKS),
                             *(r.points.get(nb, 0) for nb in NOTEBOOK_POINTS), r.total, f"{r.seconds:.0f}"])


def grade_one(path, source, data, time_limit, task_time_limit):
    started = time.monotonic()
    result = Result(_name(Path(path)))
    with tempfile.TemporaryDirectory(prefix=f"pa3-grade-{result.name}-") as tmp:
        tmp = Path(tmp)
        try:
            work = unpack(Path(path), tmp / "submission")
        except SubmissionError as error:
            result.status = "malformed"
            result.failures.append(("submission", str(error)))
            result.seconds = time.monotonic() - started
            return result
        prepare(work, source, data, result)
        helpers = write_helpers(tmp / "helpers")
        left = lambda: time_limit - (time.monotonic() - started)  # noqa: E731
        imported = run_limited([sys.executable, "-c", IMPORT_CHECK, str(work)],
                               min(120, left()), cwd=work, env=pytest_env(work, helpers, tmp / "import.jsonl"))
        if imported.returncode != 0:
            result.status = "time limit" if imported.timed_out else "does not import"
            tail = "\n".join(imported.output.strip().splitlines()[-4:])
            result.failures.append(("import pa3", f"{imported.why()}: {tail}" if tail else imported.why()))
        else:
            tasks_passed = task_checks(work, helpers, source, task_time_limit, left, result)
            cells = nbval_notebooks(work, helpers, tmp, source, max(1.0, left()), result)
            score(result, tasks_passed, cells, cell_info(work), bands(work))
        result.seconds = time.monotonic() - started
    return result


def task_checks(work, helpers, source, task_time_limit, left, result):
    """Public + hidden checks of every task: all in one process, then, if that one had to be stopped, each
    unfinished task alone with ``task_time_limit`` (so one hanging task costs only its own points).
    Returns {task: passed}."""
    checks_dir = source / "pa3" / "assignment" / "checks"
    kinds = ("public", "hidden")
    results, finished = run_checks(list(TASKS), work, helpers, min(task_time_limit, max(1.0, left())), kinds, checks_dir)
    for number in TASKS:
        if number not in results:
            alone, finished = run_checks([number], work, helpers, min(task_time_limit, max(1.0, left())), kinds,
                                         checks_dir, report_name=f"task{number}")
            results[number] = alone.get(number, (False, [(f"task {number} checks", finished.why())]))
            if finished.timed_out:
                result.status = "time limit"
    for number in TASKS:
        result.failures += [(f"Task {number}: {name}", message) for name, message in results[number][1]]
    return {number: results[number][0] for number in TASKS}


class SubmissionError(ValueError):
    """A submission that cannot be unpacked into the student edition's layout."""


def unpack(path, into):
    """Copy or extract the submission into ``into``; return the folder holding its pa3/."""
    if path.is_dir():
        shutil.copytree(path, into, ignore=lambda folder, names: [n for n in names if n in NOT_COPIED])
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                target = (into / member.filename).resolve()
                if not target.is_relative_to(into.resolve()):
                    raise SubmissionError(f"{path.name}: the archive member {member.filename!r} points outside "
                                          f"the archive; zip the submission folder itself")
            archive.extractall(into)
    else:
        raise SubmissionError(f"{path.name} is neither a folder nor a .zip archive: submit the student edition's "
                              f"folder or a .zip of it")
    candidates = [into] + [d for d in sorted(into.iterdir()) if d.is_dir()]
    for folder in candidates:
        if (folder / "pa3" / "__init__.py").is_file() and (folder / "notebooks").is_dir():
            return folder
    raise SubmissionError(f"{path.name} does not hold the student edition: no folder with pa3/__init__.py and "
                          f"notebooks/ at its top or one level down")


def prepare(work, source, data, result):
    """Restore the grading files, drop stored runs and data, link the embedded data set."""
    for relative in RESTORED:
        mine, theirs = source / relative, work / relative
        if theirs.is_file() and theirs.read_bytes() != mine.read_bytes():
            result.notes.append(f"{relative} differed from the release: the release's version was used")
        theirs.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mine, theirs)
    for name in ("runs", "data", "figures"):
        shutil.rmtree(work / name, ignore_errors=True)
    (work / "data").mkdir()
    (work / "data" / Path(data).name).symlink_to(Path(data).resolve(), target_is_directory=True)


def nbval_notebooks(work, helpers, tmp, source, timeout, result):
    """nbval over the submission's notebooks under the grading profile.

    Returns {notebook: {code cell index: (outcome, message)}} (a notebook absent from the result was not
    collected at all); a notebook missing from the submission is a failure of its own.
    """
    present = [nb for nb in NOTEBOOK_POINTS if (work / "notebooks" / f"{nb}.ipynb").is_file()]
    for nb in NOTEBOOK_POINTS:
        if nb not in present:
            result.failures.append((f"notebooks/{nb}.ipynb", "missing from the submission"))
    if not present:
        return {}
    report = tmp / "nbval.jsonl"
    options = ["--nbval", "--nbval-current-env", "--nbval-cell-timeout", str(int(timeout)),
               "--nbval-sanitize-with", str(source / "tests" / "nbval_sanitize.cfg")]
    command = pytest_command(helpers, [f"notebooks/{nb}.ipynb" for nb in present], *options)
    command[command.index("--rootdir") + 1] = str(work)
    env = pytest_env(work, helpers, report, {"PA3_PROFILE": PROFILE, "PA3_FIGURES": str(tmp / "figures")})
    finished = run_limited(command, timeout, cwd=work, env=env)
    if finished.timed_out:
        result.status = "time limit"
        result.failures.append(("notebooks", f"nbval {finished.why()}; cells not reached by then score nothing"))
    cells = {}
    for nodeid, row in read_verdicts(report).items():
        path, _, cell = nodeid.partition("::")
        nb = Path(path).stem
        if not cell or (row["when"] == "collect" and row["outcome"] == "failed"):
            result.failures.append((f"notebooks/{nb}.ipynb", f"could not be read: {row['message']}"))
            continue
        cells.setdefault(nb, {})[int(cell.split()[-1])] = (row["outcome"], row["message"])
    return cells


def bands(work):
    """{run: [failure message]} for every experiment: the calibrated bands of the grading profile, with this
    release's expected values; a claim ("a beats b") between two runs inside their bands is charged to both."""
    from pa3.experiments import EXPERIMENTS
    from pa3.grading import band_failures, checked_values, claim_failures, load_expected

    expected = load_expected(PROFILE)
    values, failures = {}, {name: [] for name in EXPERIMENTS}
    for name in EXPERIMENTS:
        path = work / "runs" / PROFILE / name / "metrics.json"
        try:
            metrics = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            failures[name].append(f"run {name!r} was not trained (no runs/{PROFILE}/{name}/metrics.json)")
            continue
        if metrics.get("status") != "complete" or "miou" not in metrics:
            failures[name].append(f"run {name!r} did not finish (status {metrics.get('status')!r})")
            continue
        values[name] = checked_values(metrics)
        failures[name] += band_failures(name, values[name], expected["runs"][name])
    inside = {name: v for name, v in values.items() if not failures[name]}  # others are charged already
    for better, worse, message in claim_failures(expected["claims"], inside):
        failures[better].append(message)
        failures[worse].append(message)
    return failures


def cell_info(work):
    """{notebook: {code cell index (as nbval counts): (task numbers, is a band cell, source)}}."""
    info = {}
    for nb in NOTEBOOK_POINTS:
        try:
            notebook = json.loads((work / "notebooks" / f"{nb}.ipynb").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        code = [c for c in notebook.get("cells", []) if isinstance(c, dict) and c.get("cell_type") == "code"]
        for index, cell in enumerate(code):
            source = "".join(cell.get("source", ""))
            info.setdefault(nb, {})[index] = (cell_tasks(cell), "check_runs(" in source, source)
    return info


def score(result, tasks_passed, cells, info, run_failures):
    """Points per task and notebook from the checks, the nbval verdicts (``cells``, read with ``info``) and
    the bands (``run_failures``)."""
    ok = dict(tasks_passed)
    notebook_ok = {nb: nb in cells for nb in NOTEBOOK_POINTS}
    for nb in NOTEBOOK_POINTS:
        if nb not in cells:
            continue
        for index, (tasks, is_band, source) in info.get(nb, {}).items():
            outcome, message = cells[nb].get(index, ("collected", ""))
            if outcome == "collected":
                outcome, message = "not reached", "nbval stopped before this cell (time limit or crash)"
            if outcome in ("passed", "skipped") or is_band:
                continue  # band cells: their runs are scored one by one below
            where = f"notebooks/{nb}.ipynb code cell {index}"
            first = source.strip().splitlines()[0][:80] if source.strip() else ""
            result.failures.append((where + (f" (Task {', '.join(map(str, tasks))})" if tasks else ""),
                                    f"{outcome}: {message}\n  cell starts: {first}"))
            if tasks:
                for task in tasks:
                    ok[task] = False
            else:
                notebook_ok[nb] = False
    for name, messages in run_failures.items():
        if not messages:
            continue
        task = task_of_run(name)
        result.failures += [(f"Task {task}: bands" if task else f"notebooks/{PROVIDED_RUNS[name]}.ipynb: bands", m)
                            for m in messages]
        if task:
            ok[task] = False
        else:
            notebook_ok[PROVIDED_RUNS[name]] = False
    result.points = {f"task{n}": TASKS[n].points if ok.get(n) else 0 for n in TASKS}
    result.points.update({nb: NOTEBOOK_POINTS[nb] if notebook_ok[nb] else 0 for nb in NOTEBOOK_POINTS})


def feedback(result):
    lines = [f"# Feedback: {result.name}", "", f"**{result.total} / {TOTAL_POINTS} points** ({result.status}, "
             f"graded in {result.seconds:.0f} s)", "", "| part | points |", "|---|--:|"]
    lines += [f"| Task {n}: {t.title} | {result.points.get(f'task{n}', 0)} / {t.points} |" for n, t in TASKS.items()]
    lines += [f"| notebook {nb} | {result.points.get(nb, 0)} / {p} |" for nb, p in NOTEBOOK_POINTS.items()]
    lines += ["", "## What failed", ""]
    lines += [f"- **{where}**: " + message.replace("\n", "\n  ") for where, message in result.failures] or ["- nothing"]
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"
