"""``python -m pa3 assignment grade SUBMISSIONS --out grades.csv``: points and feedback per submission.

Each submission (a folder or a .zip of the student edition) is copied into a temporary folder and graded
there, every step in a fresh process with a time limit (``pa3.assignment.processes``):

1. the grading files are restored from this release (``RESTORED``: expected values, the checker, pytest and
   nbval settings), ``runs/`` and ``data/`` are dropped (everything is retrained), the embedded data linked;
2. ``import pa3`` must give the submission's own package;
3. per task, its public and hidden checks (``pa3.assignment.check``); the hidden model checks compare every
   layer with the reference model (``pa3.assignment.probe``, reference records written here). When Task 5
   or 7 fails, Task 8 is checked again with the reference U-Net and ASPP in their place;
4. ``pytest --nbval`` over its notebooks under the grading profile: the stored outputs must be what the
   code produces (``--nbval-sanitize-with`` this release's tests/nbval_sanitize.cfg);
5. the trained numbers of every run against the grading profile's calibrated bands (``pa3.grading``),
   every metric recomputed here from the run's confusion matrices (so no run depends on the student's IoU).

A failure is charged once, to the part whose code causes it (``score``): a task's checks, its marked cells
and its runs answer for the task; a cell that fails after an earlier failing cell of its notebook follows
from that one; notebook 05, which shows every run, answers only when no run is missing. A submission that
does not unpack, does not import, crashes or hangs is scored from what finished, and its feedback says why.
"""
import ast
import csv
import json
import math
import shutil
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pa3 import project_dir
from pa3.assignment.check import LEFT_OUT, pytest_command, pytest_env, run_checks, write_helpers
from pa3.assignment.processes import read_verdicts, run_limited
from pa3.assignment.release import cell_tasks
from pa3.assignment.tasks import NOTEBOOK_POINTS, PROVIDED_RUNS, REQUIRES, TASKS, TOTAL_POINTS, task_of_run

PROFILE = "grading"
RESTORED = ("pa3/expected/grading.json", "pa3/grading.py", "pytest.ini", "conftest.py", "tests/nbval_sanitize.cfg")
IMPORT_CHECK = ("import sys; from pathlib import Path; import pa3; "
                "where = Path(pa3.__file__).resolve(); "
                "assert where.is_relative_to(Path(sys.argv[1]).resolve()), f'pa3 imported from {where}'; "
                "import pa3.metrics, pa3.losses, pa3.transforms, pa3.models, pa3.experiments")


@dataclass
class Failure:
    part: str  # what it costs: "task3", a notebook ("01_baseline"), "" for nothing (it follows from another)
    where: str  # e.g. "hidden test_task3.py::test_ignored_pixels_change_nothing", "notebooks/03_augmentation.ipynb code cell 7"
    message: str


@dataclass
class Result:
    name: str
    status: str = "graded"  # graded | time limit | does not import | malformed | grader error
    points: dict = field(default_factory=dict)  # "task1".. / notebook name -> points scored
    failures: list = field(default_factory=list)  # [Failure]
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

    def one(path, references):
        started = time.monotonic()
        try:
            result = grade_one(path, source, data, references, time_limit, task_time_limit)
        except Exception as error:  # a fault of the grader on this submission must not stop the others
            result = Result(_name(Path(path)), status="grader error", seconds=time.monotonic() - started)
            result.failures.append(Failure("", "grader", f"{type(error).__name__}: {error} (grade it again "
                                                         f"alone; report this to the instructor)"))
        (feedback_dir / f"{result.name}.md").write_text(feedback(result))
        print(f"{result.name}: {result.total}/{TOTAL_POINTS} ({result.status}, {result.seconds:.0f} s)", flush=True)
        return result

    from pa3.assignment.probe import write_references

    with tempfile.TemporaryDirectory(prefix="pa3-reference-") as references, ThreadPoolExecutor(max(1, jobs)) as pool:
        write_references(references)  # the reference models' layer outputs, by this release's pa3
        results = list(pool.map(lambda path: one(path, references), submissions))
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


def grade_one(path, source, data, references, time_limit, task_time_limit):
    started = time.monotonic()
    result = Result(_name(Path(path)))
    with tempfile.TemporaryDirectory(prefix=f"pa3-grade-{result.name}-") as tmp:
        tmp = Path(tmp)
        try:
            work = unpack(Path(path), tmp / "submission")
        except SubmissionError as error:
            result.status = "malformed"
            result.failures.append(Failure("", "submission", str(error)))
            result.seconds = time.monotonic() - started
            return result
        prepare(work, source, data, result)
        helpers = write_helpers(tmp / "helpers", references)
        left = lambda: time_limit - (time.monotonic() - started)  # noqa: E731
        imported = run_limited([sys.executable, "-c", IMPORT_CHECK, str(work)],
                               min(120, left()), cwd=work, env=pytest_env(work, helpers, tmp / "import.jsonl"))
        if imported.returncode != 0:
            result.status = "time limit" if imported.timed_out else "does not import"
            tail = "\n".join(imported.output.strip().splitlines()[-4:])
            result.failures.append(Failure("", "import pa3", f"{imported.why()}: {tail}" if tail else imported.why()))
        else:
            checks = task_checks(work, helpers, source, task_time_limit, left, result)
            checks.update(checks_on_reference_parts(checks, work, tmp, helpers, source, task_time_limit, left, result))
            cells = nbval_notebooks(work, helpers, tmp, source, max(1.0, left()), result)
            score(result, checks, cells, cell_info(work), bands(work))
        result.seconds = time.monotonic() - started
    return result


def task_checks(work, helpers, source, task_time_limit, left, result, tasks=None):
    """Public + hidden checks of ``tasks`` (default all): all in one process, then, if that one had to be
    stopped, each unfinished task alone with ``task_time_limit`` (so one hanging task costs only its own
    points). Returns {task: [(check, message)] of its failed checks} ([] = passed)."""
    checks_dir = source / "pa3" / "assignment" / "checks"
    kinds = ("public", "hidden")
    tasks = list(tasks or TASKS)
    results, finished = run_checks(tasks, work, helpers, min(task_time_limit, max(1.0, left())), kinds, checks_dir)
    for number in tasks:
        if number not in results:
            alone, finished = run_checks([number], work, helpers, min(task_time_limit, max(1.0, left())), kinds,
                                         checks_dir, report_name=f"task{number}")
            results[number] = alone.get(number, (False, [(f"task {number} checks", finished.why())]))
            if finished.timed_out:
                result.status = "time limit"
    return {number: results[number][1] for number in tasks}


def checks_on_reference_parts(checks, work, tmp, helpers, source, task_time_limit, left, result):
    """Task 8 is charged only for its own region: when a task it builds on (5, 7) fails its checks, its
    checks run again on a copy of the submission whose other tasks are the reference's. Returns {8: failures}
    in that case, else {}."""
    failed = [n for n in REQUIRES[8] if checks.get(n)]
    if not failed or not checks.get(8):
        return {}
    hybrid = tmp / "reference_parts"
    problem = with_reference_parts(work, source, hybrid)
    names = " and ".join(f"Task {n}" for n in failed)
    if problem:
        return {8: [("task 8 checks", problem)]}
    result.notes.append(f"{names} failed its checks, so Task 8 was checked with the reference's U-Net and ASPP "
                        f"in place of yours (your UNetASPP class itself unchanged).")
    return task_checks(hybrid, helpers, source, task_time_limit, left, result, tasks=[8])


def with_reference_parts(work, source, into):
    """Copy the submission's pa3 into ``into`` with the reference's pa3/models/unet.py and pa3/models/aspp.py,
    keeping the submission's own ``UNetASPP`` class (Task 8's region). Returns None, or why it cannot."""
    shutil.copytree(work / "pa3", into / "pa3", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(source / "pa3" / "models" / "unet.py", into / "pa3" / "models" / "unet.py")
    reference = (source / "pa3" / "models" / "aspp.py").read_text()
    try:
        theirs = _class_source((work / "pa3" / "models" / "aspp.py").read_text(), "UNetASPP")
    except (OSError, SyntaxError, LookupError) as error:
        return f"pa3/models/aspp.py: cannot take your UNetASPP class out of it ({type(error).__name__}: {error})"
    start, end = _class_lines(reference, "UNetASPP")
    lines = reference.splitlines(keepends=True)
    (into / "pa3" / "models" / "aspp.py").write_text("".join(lines[:start]) + theirs + "".join(lines[end:]))
    return None


def _class_lines(text, name):
    """(first, last + 1) line index of class ``name`` in module text ``text``, decorators included."""
    for node in ast.parse(text).body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            return first, node.end_lineno
    raise LookupError(f"no class {name} at the top level")


def _class_source(text, name):
    start, end = _class_lines(text, name)
    return "".join(text.splitlines(keepends=True)[start:end])


class SubmissionError(ValueError):
    """A submission that cannot be unpacked into the student edition's layout."""


def unpack(path, into):
    """Copy or extract the submission into ``into``; return the folder holding its pa3/."""
    if path.is_dir():
        shutil.copytree(path, into, ignore=lambda folder, names: [n for n in names if n in LEFT_OUT])
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
            result.failures.append(Failure(nb, f"notebooks/{nb}.ipynb", "missing from the submission"))
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
        result.failures.append(Failure("", "notebooks", f"nbval {finished.why()}; cells not reached by then score nothing"))
    cells = {}
    for nodeid, row in read_verdicts(report).items():
        path, _, cell = nodeid.partition("::")
        nb = Path(path).stem
        if not cell or (row["when"] == "collect" and row["outcome"] == "failed"):
            result.failures.append(Failure(nb, f"notebooks/{nb}.ipynb", f"could not be read: {row['message']}"))
            continue
        cells.setdefault(nb, {})[int(cell.split()[-1])] = (row["outcome"], row["message"])
    return cells


def bands(work):
    """{run: [failure message]} for every experiment: the calibrated bands of the grading profile, with this
    release's expected values, on metrics recomputed from the run's confusion matrices by this release's
    pa3.metrics (``rescore``); a claim ("a beats b") between two runs inside their bands is charged to both.
    A run that was not trained or did not finish has a message starting with "run"."""
    from pa3.experiments import EXPERIMENTS
    from pa3.grading import band_failures, claim_failures, load_expected

    expected = load_expected(PROFILE)
    values, failures = {}, {name: [] for name in EXPERIMENTS}
    for name in EXPERIMENTS:
        folder = work / "runs" / PROFILE / name
        try:
            metrics = json.loads((folder / "metrics.json").read_text())
            confusions = json.loads((folder / "confusions.json").read_text())
        except (OSError, json.JSONDecodeError):
            failures[name].append(f"run {name!r} was not trained (no runs/{PROFILE}/{name}/metrics.json and "
                                  f"confusions.json)")
            continue
        if metrics.get("status") != "complete" or not confusions:
            failures[name].append(f"run {name!r} did not finish (status {metrics.get('status')!r})")
            continue
        values[name] = rescore(confusions)
        failures[name] += band_failures(name, values[name], expected["runs"][name])
    inside = {name: v for name, v in values.items() if not failures[name]}  # others are charged already
    for better, worse, message in claim_failures(expected["claims"], inside):
        failures[better].append(message)
        failures[worse].append(message)
    return failures


def rescore(confusions):
    """The checked values (``pa3.grading.checked_values``) of a run's best epoch, from its per-epoch validation
    confusion matrices: every metric recomputed by this release's pa3.metrics, the best epoch chosen as the
    engine chooses it (the first with the highest mIoU)."""
    import numpy as np

    from pa3.grading import checked_values
    from pa3.metrics import metrics_from_confusion

    epochs = [metrics_from_confusion(np.asarray(mat)) for mat in confusions]
    key = [m["miou"] if math.isfinite(m["miou"]) else -1.0 for m in epochs]
    return checked_values(epochs[key.index(max(key))])


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


def score(result, checks, cells, info, run_failures):
    """Points per task and notebook; every failure recorded once, charged to the part whose code causes it.

    ``checks``: {task: [(check, message)] failed}; ``cells``: nbval's {notebook: {cell: (outcome, message)}};
    ``info``: ``cell_info``; ``run_failures``: ``bands``. The rules:

    - a task loses its points for a failed check, a failing cell marked with it, or a run of it outside its
      bands or not trained; Task 8 only for its own region: what fails in its cells or run while Task 5 or 7
      fails is theirs;
    - a failing cell not marked with a task costs its notebook, unless an earlier cell of the same notebook
      failed (it follows from that one), or it is in notebook 05 and a run it shows could not be trained
      (that run's part pays);
    - a provided run (``PROVIDED_RUNS``) outside its bands costs the notebook that trains it.
    """
    failed = {f"task{n}" for n in TASKS if checks.get(n)}
    for number in TASKS:
        for check, message in checks.get(number, []):
            result.failures.append(Failure(f"task{number}", f"Task {number}: {check}", message))
    missing = {name for name, messages in run_failures.items() if any(m.startswith("run ") for m in messages)}
    owners_of_missing = sorted({_run_part(name) for name in missing})
    for nb in NOTEBOOK_POINTS:
        if nb not in cells:
            failed.add(nb)  # not collected (missing or unreadable): said by nbval_notebooks
            continue
        earlier = None  # (parts, cell index) of this notebook's first failing cell
        for index, (tasks, is_band, source) in sorted(info.get(nb, {}).items()):
            outcome, message = cells[nb].get(index, ("collected", ""))
            if outcome == "collected":
                outcome, message = "not reached", "nbval stopped before this cell (time limit or crash)"
            if outcome in ("passed", "skipped") or is_band:
                continue  # band cells: their runs are scored one by one below
            first = source.strip().splitlines()[0][:80] if source.strip() else ""
            where = f"notebooks/{nb}.ipynb code cell {index}" + (f" (Task {', '.join(map(str, tasks))})" if tasks else "")
            text = f"{outcome}: {message}\ncell starts: {first}"
            if tasks:
                parts = [_task_or_requirement(f"task{t}", failed) for t in tasks]
            elif earlier is not None:
                cause = f"code cell {earlier[1]} above" + (f" ({', '.join(earlier[0])})" if earlier[0] else "")
                parts, text = [], f"follows from {cause}: {text}"
            elif nb == "05_comparison" and owners_of_missing:
                parts, text = [], f"follows from the runs that could not be trained ({', '.join(sorted(missing))}): {text}"
            else:
                parts = [nb]
            if earlier is None:
                earlier = (parts, index)
            failed.update(parts)
            result.failures += [Failure(part, where, text) for part in parts] or [Failure("", where, text)]
    for name, messages in run_failures.items():
        if not messages:
            continue
        part = _task_or_requirement(_run_part(name), failed)
        failed.add(part)
        result.failures += [Failure(part, f"run {name}: bands", m) for m in messages]
    result.points = {f"task{n}": 0 if f"task{n}" in failed else TASKS[n].points for n in TASKS}
    result.points.update({nb: 0 if nb in failed else NOTEBOOK_POINTS[nb] for nb in NOTEBOOK_POINTS})


def _run_part(name):
    """The part a run answers for: its task ("task3") or the notebook training a provided run."""
    task = task_of_run(name)
    return f"task{task}" if task else PROVIDED_RUNS[name]


def _task_or_requirement(part, failed):
    """``part``, unless it is a task whose required tasks failed: then the first of those (Task 8's cells and
    run use the student's U-Net and ASPP; its own region is judged by its checks on the reference's)."""
    number = int(part[4:]) if part.startswith("task") else None
    broken = [f"task{n}" for n in REQUIRES.get(number, ()) if f"task{n}" in failed]
    return broken[0] if broken else part


def feedback(result):
    """The feedback file: points per part, then per part that lost points its first failure whole (and how
    many more there were), then what failed without costing points, then notes."""
    status = "" if result.status == "graded" else f"{result.status}; "
    lines = [f"# Feedback: {result.name}", "", f"**{result.total} / {TOTAL_POINTS} points** "
             f"({status}graded in {result.seconds:.0f} s)", "", "| part | points |", "|---|--:|"]
    titles = {f"task{n}": f"Task {n}: {t.title}" for n, t in TASKS.items()}
    titles.update({nb: f"notebook {nb}" for nb in NOTEBOOK_POINTS})
    maximum = {f"task{n}": t.points for n, t in TASKS.items()} | NOTEBOOK_POINTS
    lines += [f"| {titles[part]} | {result.points.get(part, 0)} / {maximum[part]} |" for part in maximum]
    lines += ["", "## What failed", ""]
    charged = [part for part in maximum if any(f.part == part for f in result.failures)]
    for part in charged:
        mine = [f for f in result.failures if f.part == part]
        more = f" ({len(mine) - 1} more failure{'s' if len(mine) > 2 else ''} below)" if len(mine) > 1 else ""
        lines += [f"### {titles[part]}{more}", "", f"**{mine[0].where}**:", "", _block(mine[0].message), ""]
        lines += [f"- also {f.where}: {_summary(f.message)}" for f in mine[1:]]
        lines += [""] if len(mine) > 1 else []
    free = [f for f in result.failures if not f.part]
    if free:
        lines += ["### Failures that cost no further points", ""]
        if len(free) == 1:
            lines += [f"**{free[0].where}**:", "", _block(free[0].message), ""]
        else:
            lines += [f"- {f.where}: {_summary(f.message)}" for f in free] + [""]
    if not result.failures:
        lines += ["- nothing", ""]
    if result.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in result.notes]
    return "\n".join(lines).rstrip() + "\n"


def _summary(message, width=200):
    """The first line of ``message``, shortened to ``width`` characters."""
    first = (message.strip().splitlines() or [""])[0]
    return first if len(first) <= width else first[:width - 3] + "..."


def _block(message):
    return "```\n" + message.rstrip() + "\n```"
