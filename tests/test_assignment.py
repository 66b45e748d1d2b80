"""Tests for pa3.assignment: solution regions, the student edition, the task checks (the edition fails
exactly them, the solution passes them all, the public ones as students run them and the graded ones in the
sandbox, judged outside), and the provided parts running in the edition. Grading whole submissions is
tests/test_assignment_grade.py, the sandbox's walls tests/test_sandbox.py."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from pa3 import project_dir
from pa3.assignment import TASKS, TOTAL_POINTS
from pa3.assignment.check import CHECKS_DIR, run_checks, write_pytest_helpers
from pa3.assignment.grade import graded_checks
from pa3.assignment.regions import BEGIN, END, STUB, RegionError, fill_stubs, find_regions, solution_regions, stub_regions
from pa3.assignment.release import HIDDEN, fill_from_solution, release

REPO = project_dir()


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("assignment") / "student"
    release(out)
    return out


def test_regions_stub_and_fill_back():
    text = ("def f(x):\n"
            "    \"\"\"Doc.\"\"\"\n"
            "    # BEGIN SOLUTION task 3\n"
            "    y = x + 1\n"
            "    return y\n"
            "    # END SOLUTION\n")
    assert find_regions(text) == [(3, 2, 5)]
    stubbed = stub_regions(text)
    assert stubbed.splitlines()[2].startswith("    raise NotImplementedError('Task 3 (Dice loss): ")
    assert len(stubbed.splitlines()) == 3
    assert fill_stubs(stubbed, solution_regions(text)) == "def f(x):\n    \"\"\"Doc.\"\"\"\n    y = x + 1\n    return y\n"


@pytest.mark.parametrize("text, problem", [
    ("# BEGIN SOLUTION task 1\nx = 1\n", "never closed"),
    ("x = 1\n# END SOLUTION\n", "without a BEGIN"),
    ("# BEGIN SOLUTION task 1\n# BEGIN SOLUTION task 2\n# END SOLUTION\n", "inside the region"),
    ("# BEGIN SOLUTION task 99\n# END SOLUTION\n", "task 99 is not"),
    ("# BEGIN SOLUTION\n# END SOLUTION\n", "malformed marker"),
])
def test_broken_markers_are_named_with_their_line(text, problem):
    with pytest.raises(RegionError, match=problem) as error:
        find_regions(text, "pa3/x.py")
    assert str(error.value).startswith("pa3/x.py:")


def test_every_task_has_regions_checks_and_points():
    regions = {}
    for path in (REPO / "pa3").rglob("*.py"):
        for task, _, _ in find_regions(path.read_text(), str(path)):
            regions.setdefault(task, set()).add(str(path.relative_to(REPO)))
    assert set(regions) == set(TASKS)
    for number, task in TASKS.items():
        assert regions[number] == set(task.files), number
        assert (CHECKS_DIR / "public" / f"test_task{number}.py").is_file()
        assert (CHECKS_DIR / "hidden" / f"task{number}.py").is_file()
    assert TOTAL_POINTS == 100


def test_release_writes_the_student_edition(edition):
    files = {str(p.relative_to(edition)) for p in edition.rglob("*") if p.is_file()}
    assert {"README.md", ".gitignore", "pyproject.toml", "requirements.txt", "tests/nbval_sanitize.cfg"} <= files
    assert not any(f.startswith(str(HIDDEN)) for f in files)  # hidden checks stay with the instructor
    assert {f"pa3/assignment/checks/public/test_task{n}.py" for n in TASKS} <= files
    sources = {f: (edition / f).read_text() for f in files if f.endswith(".py")}
    assert not any(find_regions(text) for text in sources.values())  # no solution left in
    stubs = sum(bool(STUB.match(line)) for text in sources.values() for line in text.splitlines())
    assert stubs == sum(len(find_regions(p.read_text())) for p in (REPO / "pa3").rglob("*.py"))
    readme = (edition / "README.md").read_text()
    assert "python -m pa3 assignment check" in readme and f"**{TOTAL_POINTS}**" in readme
    for path in (edition / "notebooks").glob("*.ipynb"):
        notebook = json.loads(path.read_text())
        code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
        assert all(c["outputs"] == [] and c["execution_count"] is None for c in code), path.name
        marked = [c for c in code if c["metadata"].get("pa3")]
        assert all("".join(c["source"]).startswith("# TASK CELL: Task ") for c in marked), path.name
    assert sum("TASK CELL" in (edition / "notebooks" / n).read_text() for n in os.listdir(edition / "notebooks")) == 4


def test_release_refuses_a_folder_with_files(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        release(tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_student_edition_fails_exactly_the_task_checks(edition, tmp_path):
    results, finished = run_checks(list(TASKS), edition, write_pytest_helpers(tmp_path), timeout=300)
    assert set(results) == set(TASKS), finished.output[-2000:]
    for number, (passed, failures) in results.items():
        assert not passed
        # each failure names the task it waits for (Task 8 builds on the U-Net of Task 5)
        named = {int(message.split("(Task ")[1].split(":")[0]) for _, message in failures}
        assert named == ({5} if number == 8 else {number}), (number, failures)


def test_solution_passes_every_public_and_graded_check(tmp_path):
    results, finished = run_checks(list(TASKS), REPO, write_pytest_helpers(tmp_path / "helpers"), timeout=300)
    assert {n: r[0] for n, r in results.items()} == {n: True for n in TASKS}, results
    solution = tmp_path / "solution"
    shutil.copytree(REPO / "pa3", solution / "pa3", ignore=shutil.ignore_patterns("__pycache__"))
    failures, notes = graded_checks(solution, tmp_path / "graded")  # in the sandbox, judged here
    assert failures == {n: [] for n in TASKS} and not notes


def test_student_edition_fails_every_graded_check_as_not_implemented(edition, tmp_path):
    failures, _ = graded_checks(edition, tmp_path)
    for number, failed in failures.items():
        assert failed and all("not implemented yet (Task " in message for _, message in failed), (number, failed)


def test_a_stub_fails_its_public_check_by_name(edition, tmp_path):
    partial = tmp_path / "edition"
    shutil.copytree(edition, partial)
    losses = partial / "pa3" / "losses.py"
    text = losses.read_text()
    answers = solution_regions((REPO / "pa3" / "losses.py").read_text())
    answers[3] = [line for line in text.splitlines(keepends=True) if "Task 3 (" in line]  # Dice left undone
    losses.write_text(fill_stubs(text, answers))
    results, _ = run_checks([2, 3], partial, write_pytest_helpers(tmp_path / "helpers"), timeout=300)
    assert results[2][0] and not results[3][0]
    assert all("not implemented yet (Task 3: Dice loss)" in message for _, message in results[3][1])


def test_provided_parts_run_in_the_student_edition(edition, tmp_path):
    """Notebook 01's training runs in the student edition as released: the baseline trains; IoU is NaN (Task 1)."""
    script = ("import dataclasses, json; from pa3.notebook_setup import setup_notebook; "
              "from pa3.experiments import run_experiment, run_dir; "
              "p = setup_notebook('grading'); "
              f"p = dataclasses.replace(p, runs_dir={str(tmp_path / 'runs')!r}); "
              "run_experiment('baseline', p); print(json.dumps(json.load(open(run_dir('baseline', p) / 'metrics.json'))))")
    from pa3.assignment.grade import rescore
    from pa3.grading import band_failures, load_expected

    from pa3.layout import default_data_root

    data = default_data_root()  # the embedded set of this checkout, linked into the edition
    (edition / "data").mkdir(exist_ok=True)
    if not (edition / "data" / "synthetic").exists():
        (edition / "data" / "synthetic").symlink_to(data, target_is_directory=True)
    env = {**os.environ, "PYTHONPATH": str(edition), "PA3_HOME": str(edition), "TQDM_DISABLE": "1"}
    done = subprocess.run([sys.executable, "-c", script], cwd=edition / "notebooks", env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Task 1 (IoU metrics)" in done.stdout  # said once: IoU waits for Task 1
    metrics = json.loads(done.stdout.strip().splitlines()[-1])
    assert metrics["status"] == "complete" and metrics["epochs_done"] == 3
    assert 0 < metrics["pixel_acc"] < 1 and metrics["miou"] is None  # NaN, written as null
    # the grader recomputes every metric from the confusion matrices: without Task 1 the provided run is still
    # inside its bands, so a missing Task 1 costs Task 1 only
    confusions = json.loads((tmp_path / "runs" / "grading" / "baseline" / "confusions.json").read_text())
    assert len(confusions) == 3
    values = rescore(confusions)
    assert band_failures("baseline", values, load_expected("grading")["runs"]["baseline"]) == []


def test_fill_from_solution_gives_back_the_repository_code(edition, tmp_path):
    copy = tmp_path / "filled"
    shutil.copytree(edition, copy)
    changed = fill_from_solution(copy)
    assert {str(p) for p in changed} == {f for t in TASKS.values() for f in t.files}
    for relative in changed:
        original = [line for line in (REPO / relative).read_text().splitlines()
                    if not (BEGIN.match(line) or END.match(line))]
        assert (copy / relative).read_text().splitlines() == original
