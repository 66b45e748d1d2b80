"""``python -m pa3 assignment grade SUBMISSIONS --out grades.csv``: points and feedback per submission.

Each submission (a folder or a .zip of the student edition) is copied into a temporary folder and graded
there. Every step that runs its code runs ``runner.py`` in a bubblewrap sandbox of its own (``sandbox``,
``steps``) with a time limit, and hands back values, never verdicts; the grader decides here:

1. the grading files are restored from this release (``RESTORED``), ``runs/`` and ``data/`` are dropped
   (everything is retrained), the embedded data linked; the notebooks as submitted are read;
2. ``import pa3`` in the sandbox must give the submission's own package;
3. per task, its graded checks (``checks/hidden/task<N>.py``) compute values with the submission's pa3 in the
   sandbox; ``verdicts`` compares them with the same checks' values on this release's pa3 (the model checks
   layer by layer, ``probe``). When Task 5 or 7 fails, Task 8 is checked again with the reference U-Net and
   ASPP in their place;
4. the notebooks are executed in the sandbox under the grading profile and handed back; their outputs are
   compared here with the submitted ones by nbval's rules and this release's sanitize file (``outputs``);
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
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pa3 import project_dir
from pa3.assignment import sandbox
from pa3.assignment.check import LEFT_OUT
from pa3.assignment.outputs import notebook_verdicts, sanitize_patterns
from pa3.assignment.release import cell_tasks
from pa3.assignment.steps import Isolation, run_step, write_helpers
from pa3.assignment.verdicts import CHECKS, judge_task, reference_values
from pa3.assignment.tasks import NOTEBOOK_POINTS, PROVIDED_RUNS, REQUIRES, TASKS, TOTAL_POINTS, task_of_run

PROFILE = "grading"
# Copied over the submission's own: the calibrated bands and their code (its band cells run them), nbval's rules.
RESTORED = ("pa3/expected/grading.json", "pa3/grading.py", "tests/nbval_sanitize.cfg")


@dataclass
class Failure:
    part: str  # what it costs: "task3", a notebook ("01_baseline"), "" for nothing (it follows from another)
    where: str  # e.g. "Task 3: ignored_pixels_change_nothing", "notebooks/03_augmentation.ipynb code cell 7"
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


def grade(paths, out_csv, feedback_dir=None, time_limit=600, task_time_limit=60, jobs=1, source=None,
          sandboxed=True, limits=None):
    """Grade every submission in ``paths``; write ``out_csv`` and one feedback file each. Returns [Result].
    ``sandboxed=False`` (``--no-sandbox``) runs the submissions' code without bubblewrap: only for code you trust;
    every row of grades.csv then says so."""
    source = Path(source or project_dir())
    from pa3.grading import expected_path, load_expected

    if load_expected(PROFILE) is None:
        raise FileNotFoundError(f"{expected_path(PROFILE)} is missing: grading needs the grading profile's calibrated "
                                f"bands (python -m benchmarks.calibrate --profile grading, see its docstring)")
    if sandboxed and sandbox.available() is None:
        raise sandbox.SandboxError(sandbox.INSTALL)
    submissions = submissions_in(paths)
    out_csv = Path(out_csv)
    feedback_dir = Path(feedback_dir) if feedback_dir else out_csv.parent / "feedback"
    feedback_dir.mkdir(parents=True, exist_ok=True)
    from pa3.layout import default_data_root

    data = default_data_root()  # this release's embedded set, generated once, linked into every submission
    isolation = Isolation(sandboxed, limits or sandbox.Limits(), readable=(Path(data).resolve(),))
    print(f"grading {len(submissions)} submission(s), {jobs} at a time, at most {time_limit} s each, "
          + ("each in a bubblewrap sandbox" if sandboxed else "WITHOUT a sandbox (--no-sandbox)"))

    def one(path, references):
        started = time.monotonic()
        try:
            result = grade_one(path, source, data, references, time_limit, task_time_limit, isolation)
        except Exception as error:  # a fault of the grader on this submission must not stop the others
            result = Result(_name(Path(path)), status="grader error", seconds=time.monotonic() - started)
            result.failures.append(Failure("", "grader", f"{type(error).__name__}: {error} (grade it again "
                                                         f"alone; report this to the instructor)"))
        if not sandboxed:
            result.notes.append("graded without a sandbox (--no-sandbox)")
        (feedback_dir / f"{result.name}.md").write_text(feedback(result))
        print(f"{result.name}: {result.total}/{TOTAL_POINTS} ({result.status}, {result.seconds:.0f} s)", flush=True)
        return result

    references = reference_values(TASKS, CHECKS)  # what this release's pa3 computes for every graded check
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        results = list(pool.map(lambda path: one(path, references), submissions))
    write_grades(results, out_csv, sandboxed)
    print(f"wrote {out_csv} and {len(results)} feedback file(s) in {feedback_dir}")
    return results


def columns():
    return ["submission", "status", *(f"task{n}" for n in TASKS), *NOTEBOOK_POINTS, "total", "seconds", "sandbox"]


def write_grades(results, path, sandboxed=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns())
        for r in results:
            writer.writerow([r.name, r.status, *(r.points.get(f"task{n}", 0) for n in TASKS),
                             *(r.points.get(nb, 0) for nb in NOTEBOOK_POINTS), r.total, f"{r.seconds:.0f}",
                             "bubblewrap" if sandboxed else "unsandboxed"])


def grade_one(path, source, data, references, time_limit, task_time_limit, isolation):
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
        stored = stored_notebooks(work)  # read before any of its code runs
        grader = Grader(work, tmp, isolation, started, time_limit)
        imported = grader.step("import", [], min(120, grader.left()))
        if imported is not None:
            result.status = "time limit" if imported.startswith("stopped at its time limit") else "does not import"
            result.failures.append(Failure("", "import pa3", imported))
        else:
            checks = task_checks(grader, references, task_time_limit, result)
            checks.update(checks_on_reference_parts(checks, grader, source, references, task_time_limit, result))
            cells = grade_notebooks(grader, stored, source, result)
            score(result, checks, cells, cell_info(stored), bands(work))
        result.seconds = time.monotonic() - started
    return result


def graded_checks(work, tmp, source=None, task_time_limit=120, isolation=None):
    """({task: [(check, message)] failed}, notes) of the graded checks of the pa3 in ``work`` alone, as grading runs
    them (in a sandbox unless ``isolation`` says otherwise), without the notebooks: for tests and for trying a
    check."""
    source = Path(source or project_dir())
    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    grader = Grader(Path(work), tmp, isolation or Isolation(), time.monotonic(), 3600)
    result, references = Result(Path(work).name), reference_values(TASKS, CHECKS)
    checks = task_checks(grader, references, task_time_limit, result)
    checks.update(checks_on_reference_parts(checks, grader, source, references, task_time_limit, result))
    return checks, result.notes


class Grader:
    """The steps of grading one submission: each ``runner.py`` in its own sandbox (``steps.run_step``), which sees
    the graded checks' inputs only in the checks step."""

    def __init__(self, work, tmp, isolation, started, time_limit):
        self.work, self.tmp, self.isolation = work, tmp, isolation
        self.helpers = {"checks": write_helpers(tmp / "helpers-checks", CHECKS), "other": write_helpers(tmp / "helpers")}
        self.started, self.time_limit = started, time_limit

    def left(self):
        return self.time_limit - (time.monotonic() - self.started)

    def run(self, arguments, timeout, work=None, env=None):
        """(rows, Finished, other output) of one step."""
        helpers = self.helpers["checks" if arguments[0] == "checks" else "other"]
        return run_step(arguments, work or self.work, helpers, max(1.0, timeout), self.isolation, env)

    def step(self, mode, arguments, timeout):
        """None when the ``import`` step handed back the submission's pa3, else why not (one paragraph)."""
        rows, finished, other = self.run([mode, *arguments], timeout)
        where = next((row["imported"] for row in rows if isinstance(row, dict) and "imported" in row), None)
        if isinstance(where, str) and Path(where).resolve().is_relative_to(self.work.resolve()):
            return None
        tail = "\n".join(other.strip().splitlines()[-4:])
        why = finished.why() if finished.returncode != 0 else f"pa3 was imported from {where}, not the submission"
        return f"{why}: {tail}" if tail else why


def task_checks(grader, references, task_time_limit, result, tasks=None, work=None):
    """The graded checks of ``tasks`` (default all) in one sandbox, then, if that one had to be stopped, each
    unfinished task alone with ``task_time_limit`` (so one hanging task costs only its own points); judged here
    against ``references`` (``verdicts.judge_task``). Returns {task: [(check, message)] of its failed checks}."""
    tasks = list(tasks or TASKS)
    finished_rows, why = _check_rows(grader, tasks, task_time_limit, work)
    for number in tasks:
        if number not in finished_rows:
            alone, why_alone = _check_rows(grader, [number], task_time_limit, work)
            if number in alone:
                finished_rows[number] = alone[number]
            else:
                finished_rows[number] = None
                why[number] = why_alone[number]
                if why[number].startswith("stopped at its time limit"):
                    result.status = "time limit"
    failures = {}
    for number in tasks:
        rows = finished_rows[number]
        if rows is None:
            failures[number] = [(f"task {number} checks", why.get(number) or "they did not finish")]
        else:
            failures[number] = judge_task(number, rows, references[number])
    return failures


def _check_rows(grader, tasks, task_time_limit, work):
    """({task: {check: row}} of the tasks whose checks all ran, {task: why not} of the others)."""
    rows, finished, other = grader.run(["checks", *tasks], min(task_time_limit, grader.left()), work=work)
    by_task, ended = {}, set()
    for row in rows:
        if isinstance(row, dict) and row.get("task") in tasks:
            if row.get("end"):
                ended.add(row["task"])
            elif isinstance(row.get("check"), str):
                by_task.setdefault(row["task"], {})[row["check"]] = row
    tail = "\n".join(other.strip().splitlines()[-5:])
    why = f"{finished.why()}: {tail}" if tail and not finished.timed_out else finished.why()
    return {t: by_task.get(t, {}) for t in ended}, {t: why for t in tasks if t not in ended}


def checks_on_reference_parts(checks, grader, source, references, task_time_limit, result):
    """Task 8 is charged only for its own region: when a task it builds on (5, 7) fails its checks, its
    checks run again on a copy of the submission whose other tasks are the reference's. Returns {8: failures}
    in that case, else {}."""
    failed = [n for n in REQUIRES[8] if checks.get(n)]
    if not failed or not checks.get(8):
        return {}
    hybrid = grader.tmp / "reference_parts"
    problem = with_reference_parts(grader.work, source, hybrid)
    names = " and ".join(f"Task {n}" for n in failed)
    if problem:
        return {8: [("task 8 checks", problem)]}
    result.notes.append(f"{names} failed its checks, so Task 8 was checked with the reference's U-Net and ASPP "
                        f"in place of yours (your UNetASPP class itself unchanged).")
    return task_checks(grader, references, task_time_limit, result, tasks=[8], work=hybrid)


def with_reference_parts(work, source, into):
    """Copy the submission's pa3 into ``into`` with the reference's pa3/models/unet.py and pa3/models/aspp.py,
    keeping the submission's own ``UNetASPP`` class (Task 8's region). Returns None, or why it cannot."""
    shutil.copytree(work / "pa3", into / "pa3", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("unet.py", "aspp.py"):
        (into / "pa3" / "models" / name).unlink(missing_ok=True)
    shutil.copyfile(source / "pa3" / "models" / "unet.py", into / "pa3" / "models" / "unet.py")
    reference = (source / "pa3" / "models" / "aspp.py").read_text()
    try:
        theirs = _class_source(read_inside(work, "pa3/models/aspp.py").decode(), "UNetASPP")
    except (OSError, ValueError, SyntaxError, LookupError) as error:
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
        shutil.copytree(path, into, symlinks=True, ignore=lambda folder, names: [n for n in names if n in LEFT_OUT])
        links = [p for p in into.rglob("*") if p.is_symlink()]
        if links:
            raise SubmissionError(f"{path.name} holds symbolic links ({', '.join(str(p.relative_to(into)) for p in links[:3])}): "
                                  f"hand in real files (python -m pa3 assignment pack)")
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


def stored_notebooks(work):
    """{notebook: its JSON as submitted} of the graded notebooks that are there and readable, else the reason."""
    stored = {}
    for nb in NOTEBOOK_POINTS:
        path = work / "notebooks" / f"{nb}.ipynb"
        if not path.is_file():
            stored[nb] = "missing from the submission"
            continue
        try:
            notebook = json.loads(read_inside(work, f"notebooks/{nb}.ipynb"))
            if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
                raise ValueError("no list of cells")
            stored[nb] = notebook
        except (OSError, ValueError, UnicodeDecodeError) as error:
            stored[nb] = f"could not be read: {type(error).__name__}: {error}"
    return stored


def grade_notebooks(grader, stored, source, result):
    """Execute the submission's notebooks in order in a sandbox under the grading profile, then compare every
    cell's outputs with the stored ones here (``outputs.notebook_verdicts``, nbval's rules and this release's
    sanitize file). Returns {notebook: {code cell index: (outcome, message)}} of the notebooks that could be
    read; one that could not is a failure of its own."""
    present = [nb for nb, notebook in stored.items() if isinstance(notebook, dict)]
    for nb, notebook in stored.items():
        if not isinstance(notebook, dict):
            result.failures.append(Failure(nb, f"notebooks/{nb}.ipynb", notebook))
    if not present:
        return {}
    deadline = time.time() + max(1.0, grader.left() - 15)  # the runner stops itself first, and says where
    env = {"PA3_PROFILE": PROFILE, "PA3_FIGURES": "/tmp/figures" if grader.isolation.sandboxed
           else str(grader.tmp / "figures")}
    rows, finished, other = grader.run(["notebooks", f"{deadline:.0f}", *present], max(1.0, grader.left()), env=env)
    executed = {row["notebook"]: row for row in rows if isinstance(row, dict) and row.get("notebook") in present}
    if finished.timed_out or any(row.get("stopped") for row in executed.values()):
        stops = [f"notebooks/{nb}.ipynb: {row['stopped']}" for nb, row in executed.items() if row.get("stopped")]
        if finished.timed_out or any("Timeout" in stop for stop in stops):
            result.status = "time limit"
        result.failures.append(Failure("", "notebooks", "executing the notebooks stopped early ("
                                       + ("; ".join(stops) or finished.why()) + "); cells not reached by then score nothing"))
    patterns = sanitize_patterns((source / "tests" / "nbval_sanitize.cfg").read_text())
    return {nb: notebook_verdicts(stored[nb], executed.get(nb, {}).get("cells"), patterns) for nb in present}


def read_inside(work, relative, limit=64 * 2**20):
    """The bytes of ``work``/``relative``, refused (ValueError) when it leads outside ``work`` through a symbolic
    link (the submission's code may have made one) or is larger than ``limit``."""
    path = (work / relative).resolve()
    if not path.is_relative_to(work.resolve()):
        raise ValueError(f"{relative} leads outside the submission")
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{relative} is larger than {limit // 2**20} MiB")
    return data


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
        try:
            metrics = json.loads(read_inside(work, f"runs/{PROFILE}/{name}/metrics.json"))
            confusions = json.loads(read_inside(work, f"runs/{PROFILE}/{name}/confusions.json"))
        except (OSError, ValueError):
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


def cell_info(stored):
    """{notebook: {code cell index (as nbval counts): (task numbers, is a band cell, source)}} of the notebooks as
    submitted (``stored_notebooks``)."""
    info = {}
    for nb, notebook in stored.items():
        if not isinstance(notebook, dict):
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
            failed.add(nb)  # missing or unreadable: said by grade_notebooks
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
        lines += [f"- also {f.where}: {_first_line(f.message)}" for f in mine[1:]]
        lines += [""] if len(mine) > 1 else []
    free = [f for f in result.failures if not f.part]
    if free:
        lines += ["### Failures that cost no further points", ""]
        if len(free) == 1:
            lines += [f"**{free[0].where}**:", "", _block(free[0].message), ""]
        else:
            lines += [f"- {f.where}: {_first_line(f.message)}" for f in free] + [""]
    if not result.failures:
        lines += ["- nothing", ""]
    if result.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in result.notes]
    return "\n".join(lines).rstrip() + "\n"


def _first_line(message, width=200):
    """The first line of ``message``, shortened to ``width`` characters."""
    first = (message.strip().splitlines() or [""])[0]
    return first if len(first) <= width else first[:width - 3] + "..."


def _block(message):
    return "```\n" + message.rstrip() + "\n```"
