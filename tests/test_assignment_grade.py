"""Grading submissions end to end (pa3.assignment.grade): the student edition with the solution put back and
its notebooks run under the grading profile scores full marks; a wrong Dice loss loses exactly Task 3; an
output edited by hand loses its notebook; a crash, a hang and a file that is no submission are scored and
explained, and never stop the run. Several minutes: every graded submission retrains the grading profile."""
import csv
import json
import shutil
import zipfile

import pytest

from pa3.assignment import NOTEBOOK_POINTS, TASKS, TOTAL_POINTS
from pa3.assignment.check import run_notebooks
from pa3.assignment.grade import grade
from pa3.assignment.release import fill_from_solution, release
from pa3.layout import default_data_root



def _edit(path, old, new):
    text = path.read_text()
    assert text.count(old) == 1, (path, old)
    path.write_text(text.replace(old, new))


def _run_notebooks(folder, names=None):
    """What a student runs before submitting (python -m pa3 assignment run); submitted without data and runs."""
    (folder / "data").mkdir()
    (folder / "data" / "synthetic").symlink_to(default_data_root(), target_is_directory=True)
    assert run_notebooks(folder, names=names) == 0
    for name in ("data", "runs", "figures"):
        shutil.rmtree(folder / name, ignore_errors=True)


@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    root = tmp_path_factory.mktemp("submissions")
    solution = root / "solution"
    release(solution)
    fill_from_solution(solution)
    _run_notebooks(solution)

    wrong_dice = root / "wrong_dice"
    shutil.copytree(solution, wrong_dice)  # ignored pixels left in the softmax sums: only the hidden checks see it
    _edit(wrong_dice / "pa3" / "losses.py", "    prob = prob * valid\n", "")
    _run_notebooks(wrong_dice, ["02_losses"])  # the student ran it again: its Dice example prints its own value
    with zipfile.ZipFile(root / "wrong_dice.zip", "w") as archive:  # handed in as a .zip
        for path in sorted(wrong_dice.rglob("*")):
            archive.write(path, path.relative_to(root))
    shutil.rmtree(wrong_dice)

    edited = root / "edited_output"
    shutil.copytree(solution, edited)
    notebook = edited / "notebooks" / "01_baseline.ipynb"
    cells = json.loads(notebook.read_text())["cells"]
    printed = next("".join(o["text"]) for c in cells if c["cell_type"] == "code" for o in c["outputs"]
                   if o.get("name") == "stdout" and "trainable parameters" in "".join(o["text"]))
    count = printed.split()[0]
    _edit(notebook, f"{count} trainable parameters", f"{count[:-1]}{(int(count[-1]) + 1) % 10} trainable parameters")

    crash = root / "crash"
    shutil.copytree(solution, crash)  # dies with SIGSEGV as pa3.models is imported
    _edit(crash / "pa3" / "models" / "unet.py", "import torch\n", "import ctypes\nimport torch\n\nctypes.string_at(0)\n")

    (root / "not_a_submission.zip").write_bytes(b"this is not a zip archive\n")

    hang = tmp_path_factory.mktemp("hanging") / "hang"
    shutil.copytree(solution, hang)  # Dice loops forever: graded alone, with a short limit
    _edit(hang / "pa3" / "losses.py", "    num_classes = logits.shape[1]\n    prob = logits.float()",
          "    while True:\n        pass\n    num_classes = logits.shape[1]\n    prob = logits.float()")
    return root, hang


@pytest.fixture(scope="module")
def graded(submissions, tmp_path_factory):
    root, hang = submissions
    out = tmp_path_factory.mktemp("grades")
    results = {r.name: r for r in grade([root], out / "grades.csv", time_limit=600, jobs=2)}
    hanging = grade([hang], out / "hang.csv", time_limit=90, task_time_limit=20)[0]
    rows = {row["submission"]: row for row in csv.DictReader(open(out / "grades.csv"))}
    return results, rows, hanging, out


def _full(result, *lost):
    expected = {f"task{n}": t.points for n, t in TASKS.items()}
    expected.update(NOTEBOOK_POINTS)
    for key in lost:
        expected[key] = 0
    return expected


def test_solution_scores_full_marks(graded):
    results, rows, _, out = graded
    solution = results["solution"]
    assert solution.points == _full(solution), solution.failures
    assert rows["solution"]["total"] == str(TOTAL_POINTS) and rows["solution"]["status"] == "graded"
    assert "- nothing" in (out / "feedback" / "solution.md").read_text()


def test_wrong_dice_loses_exactly_task_3(graded):
    results, _, _, out = graded
    wrong = results["wrong_dice"]
    assert wrong.points == _full(wrong, "task3"), wrong.failures
    failed = [where for where, _ in wrong.failures]
    assert any("hidden test_task3.py::test_ignored_pixels_change_nothing" in w for w in failed)
    assert not any("public" in w for w in failed)  # the public checks cannot see it
    assert "Task 3" in (out / "feedback" / "wrong_dice.md").read_text()


def test_edited_output_fails_nbval_in_its_notebook(graded):
    results, _, _, _ = graded
    edited = results["edited_output"]
    assert edited.points == _full(edited, "01_baseline"), edited.failures
    (where, message), = [f for f in edited.failures if f[0].startswith("notebooks/01_baseline")]
    assert "trainable parameters" in message


def test_crash_is_scored_and_explained(graded):
    results, rows, _, _ = graded
    crash = results["crash"]
    assert crash.status == "does not import" and crash.total == 0
    assert "SIGSEGV" in crash.failures[0][1]
    assert rows["crash"]["total"] == "0"


def test_file_that_is_no_submission_is_scored_malformed(graded):
    results, rows, _, _ = graded
    assert results["not_a_submission"].status == "malformed"
    assert "neither a folder nor a .zip" in results["not_a_submission"].failures[0][1]
    assert rows["not_a_submission"]["total"] == "0"


def test_hanging_submission_is_stopped_at_its_limit(graded):
    _, _, hanging, out = graded
    assert hanging.status == "time limit"
    assert hanging.points["task3"] == 0
    assert ("Task 3: task 3 checks", "stopped at its time limit after 20 s") in hanging.failures
    assert hanging.seconds < 90 + 60  # stopped at its limit (plus process start-up and clean-up), not left running
    assert "time limit" in (out / "feedback" / "hang.md").read_text()
