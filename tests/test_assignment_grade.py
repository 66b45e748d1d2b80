"""Grading as a course meets it (pa3.assignment.grade).

End to end, built the students' way: the student edition released, the solution put back, then every
```bash block of the students' README run in order in a clean shell (its own venv, ``check``, ``run``,
``pack``), nothing taken from this checkout's environment. The packed solution scores full marks; a copy
with one Task 4 bug (labels blended by a bilinear rotation) and an output edited by hand, which also tries to forge
its grade (``benchmarks.sandbox_probes.FORGER``: its rows patched in the runner, pytest patched, a sitecustomize.py
and a conftest.py, fake rows and rewritten run files from its kernels), loses exactly Task 4 and notebook 01; a
crash, a hang and a file that is no submission are scored and explained. Every step runs in the sandbox.

At the level of the task checks: a U-Net missing two ReLUs loses Task 5 (not Task 8), a weighted
cross-entropy averaged over pixels loses Task 2, a stubbed IoU loses Task 1 only. At the level of ``score``
and ``feedback``: the charging rules on made-up verdicts. Several minutes (a venv, one ``assignment run``,
two gradings that retrain the grading profile).
"""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.sandbox_probes import FORGER, add_to_init
from pa3 import project_dir
from pa3.assignment import NOTEBOOK_POINTS, TASKS, TOTAL_POINTS
from pa3.assignment.check import LEFT_OUT
from pa3.assignment.grade import Failure, Result, feedback, grade, graded_checks, rescore, score
from pa3.assignment.release import fill_from_solution, release

REPO = project_dir()
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


def _edit(path, old, new):
    text = path.read_text()
    assert text.count(old) == 1, (path, old)
    path.write_text(text.replace(old, new))


def _full(*lost):
    expected = {f"task{n}": t.points for n, t in TASKS.items()} | dict(NOTEBOOK_POINTS)
    return expected | {key: 0 for key in lost}


def student_shell(folder, script, timeout=1800):
    """Run ``script`` with bash in ``folder`` as a student's terminal would: no PA3_ settings, no PYTHONPATH,
    and neither this checkout's venv nor any other active one on the PATH."""
    ours = os.path.dirname(os.path.abspath(sys.executable))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PA3_") and k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and os.path.abspath(p) != ours)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=folder, env=env, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return done.returncode, done.stdout


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """The solution prepared exactly as the students' README says, handed in as the .zip ``pack`` writes."""
    root = tmp_path_factory.mktemp("course")
    folder = root / "solution"
    release(folder)
    fill_from_solution(folder)
    blocks = BASH_BLOCK.findall((folder / "README.md").read_text())
    assert len(blocks) >= 3, "the students' README lost its ```bash blocks"
    code, output = student_shell(folder, "\n".join(blocks))
    for name in (".venv", "runs", "data"):  # 5.5 GB and 6 GB; not handed in
        shutil.rmtree(folder / name, ignore_errors=True)
    assert code == 0, output[-6000:]
    return root, folder, output


def test_the_students_readme_commands_work_as_written(student):
    root, folder, output = student
    assert "every task passes its public checks" in output
    assert "executed 6 notebooks in place under the grading profile" in output
    assert "no run reused" in output  # a fresh folder: everything trained by this sources' pa3
    assert (root / "solution.zip").is_file()
    import zipfile

    names = zipfile.ZipFile(root / "solution.zip").namelist()
    assert "solution/pa3/metrics.py" in names and "solution/notebooks/05_comparison.ipynb" in names
    assert not [n for n in names if LEFT_OUT & set(Path(n).parts)]  # no .venv/, data/, runs/, figures/


@pytest.fixture(scope="module")
def graded(student, tmp_path_factory):
    root, folder, _ = student
    hand_in = tmp_path_factory.mktemp("handed_in")
    shutil.copyfile(root / "solution.zip", hand_in / "solution.zip")

    wrong = hand_in / "wrong_augmentation"  # the mask rotated bilinearly: label values blended (Task 4) ...
    shutil.copytree(folder, wrong, ignore=lambda _, names: [n for n in names if n in LEFT_OUT])
    _edit(wrong / "pa3" / "transforms.py",
          "            image, mask = _warp(image, mask, crop, size, offset, angle, flip)\n",
          "            image, mask = _warp(image, mask, crop, size, offset, 0.0, flip)\n"
          "            image = F.rotate(image, angle, interpolation=v2.InterpolationMode.BILINEAR)\n"
          "            mask = F.rotate(mask[None].float(), angle, interpolation=v2.InterpolationMode.BILINEAR,\n"
          "                            fill=[255.0])[0].round().to(torch.uint8)\n")
    notebook = wrong / "notebooks" / "01_baseline.ipynb"  # ... and an output edited by hand (notebook 01)
    cells = json.loads(notebook.read_text())["cells"]
    printed = next("".join(o["text"]) for c in cells if c["cell_type"] == "code" for o in c["outputs"]
                   if o.get("name") == "stdout" and "trainable parameters" in "".join(o["text"]))
    count = printed.split()[0]
    _edit(notebook, f"{count} trainable parameters", f"{count[:-1]}{(int(count[-1]) + 1) % 10} trainable parameters")
    add_to_init(wrong, FORGER)  # ... and it forges what it can

    crash = hand_in / "crash"  # dies with SIGSEGV as pa3.models is imported
    shutil.copytree(wrong, crash)
    _edit(crash / "pa3" / "models" / "unet.py", "import torch\n", "import ctypes\nimport torch\n\nctypes.string_at(0)\n")
    (hand_in / "not_a_submission.zip").write_bytes(b"this is not a zip archive\n")

    hang = tmp_path_factory.mktemp("hanging") / "hang"  # Dice loops forever: graded alone, with short limits
    shutil.copytree(wrong, hang)
    _edit(hang / "pa3" / "losses.py", "    num_classes = logits.shape[1]\n",
          "    while True:\n        pass\n    num_classes = logits.shape[1]\n")

    out = tmp_path_factory.mktemp("grades")
    results = {r.name: r for r in grade([hand_in], out / "grades.csv", time_limit=600, jobs=2)}
    hanging = grade([hang], out / "hang.csv", time_limit=40, task_time_limit=10)[0]
    rows = {row["submission"]: row for row in csv.DictReader(open(out / "grades.csv"))}
    print((out / "grades.csv").read_text())
    return results, rows, hanging, out


def test_the_solution_prepared_as_the_readme_says_scores_full_marks(graded):
    results, rows, _, out = graded
    solution = results["solution"]
    assert solution.points == _full(), feedback(solution)
    assert rows["solution"]["total"] == str(TOTAL_POINTS) and rows["solution"]["status"] == "graded"
    text = (out / "feedback" / "solution.md").read_text()
    assert "- nothing" in text and f"**{TOTAL_POINTS} / {TOTAL_POINTS} points** (graded in " in text


def test_one_bug_costs_one_task_and_an_edited_output_its_notebook(graded):
    results, _, _, out = graded
    wrong = results["wrong_augmentation"]
    assert wrong.points == _full("task4", "01_baseline"), feedback(wrong)
    task4 = [f for f in wrong.failures if f.part == "task4"]
    assert any("image_and_mask_share_the_geometry" in f.where and "labels were blended" in f.message
               for f in task4)
    assert any(f.where.startswith("notebooks/03_augmentation.ipynb") and "it raised IndexError" in f.message
               for f in task4)  # its training crashed: blended labels are out of range
    assert any(f.where == "run augmented: bands" for f in task4)  # its run could not be trained
    edited, = [f for f in wrong.failures if f.part == "01_baseline"]
    assert "trainable parameters" in edited.message and "stored" in edited.message and "computed" in edited.message
    text = (out / "feedback" / "wrong_augmentation.md").read_text()
    assert "\x1b[" not in text and "-vv" not in text and "graded, graded" not in text
    assert "### Task 4: Data augmentation" in text and "### notebook 01_baseline" in text
    assert "(Task 4): failed: it raised IndexError: Target" in text  # each cell's error in one line
    assert rows_of(out)["wrong_augmentation"]["sandbox"] == "bubblewrap"


def rows_of(out):
    return {row["submission"]: row for row in csv.DictReader(open(out / "grades.csv"))}


def test_crash_is_scored_and_explained(graded):
    results, rows, _, _ = graded
    crash = results["crash"]
    assert crash.status == "does not import" and crash.total == 0
    assert "SIGSEGV" in crash.failures[0].message
    assert rows["crash"]["total"] == "0"


def test_file_that_is_no_submission_is_scored_malformed(graded):
    results, rows, _, _ = graded
    assert results["not_a_submission"].status == "malformed"
    assert "neither a folder nor a .zip" in results["not_a_submission"].failures[0].message
    assert rows["not_a_submission"]["total"] == "0"


def test_hanging_submission_is_stopped_at_its_limit(graded):
    _, _, hanging, out = graded
    assert hanging.status == "time limit"
    assert hanging.points["task3"] == 0
    assert Failure("task3", "Task 3: task 3 checks", "stopped at its time limit after 10 s") in hanging.failures
    assert hanging.seconds < 40 + 60  # stopped at its limit (plus start-up and clean-up), not left running
    assert "time limit; graded in" in (out / "feedback" / "hang.md").read_text()


# One bug, one task, at the level of the task checks (no notebooks run: seconds each).

@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """check(edit) -> (the failing tasks, {task: failures}, notes) of the solution with ``edit`` applied."""
    base = tmp_path_factory.mktemp("checked")
    solution = base / "solution"
    release(solution)
    fill_from_solution(solution)

    def check(name, edit):
        work = base / name
        shutil.copytree(solution, work)
        edit(work)
        checks, notes = graded_checks(work, base / f"{name}-tmp", REPO)
        return sorted(n for n, failures in checks.items() if failures), checks, notes

    return check, solution


def test_a_unet_missing_two_relus_loses_task_5_only(checked):
    check, _ = checked

    def without_relus(work):
        unet = work / "pa3" / "models" / "unet.py"
        for block, cin, cout in (("deconv3, self.block8", 256, 128), ("deconv4, self.block9", 128, 64)):
            up = cin
            _edit(unet, f"self.{block} = self._up({up}), self._double({cin}, {cout})",
                  f"self.{block} = self._up({up}), nn.Sequential(*conv_bn_relu({cin}, {cout})[:2], "
                  f"*conv_bn_relu({cout}, {cout}))")

    failed, checks, notes = check("wrong_unet", without_relus)
    assert failed == [5], checks
    assert any("block8" in message for _, message in checks[5])  # the first layer whose output differs
    assert any("Task 5 failed its checks, so Task 8 was checked with the reference's" in n for n in notes)


def test_weighted_cross_entropy_averaged_over_pixels_loses_task_2_only(checked):
    check, _ = checked
    failed, checks, _ = check("pixel_mean", lambda work: _edit(
        work / "pa3" / "losses.py", "        denom = (weight.to(total.dtype)[torch.where(valid, target, 0)] * valid).sum()\n",
        "        denom = valid.sum().to(total.dtype)\n"))
    assert failed == [2], checks


def test_a_stubbed_iou_loses_task_1_only(checked, tmp_path):
    check, _ = checked
    edition = tmp_path / "edition"
    release(edition)
    failed, checks, _ = check("no_iou", lambda work: shutil.copyfile(edition / "pa3" / "metrics.py",
                                                                      work / "pa3" / "metrics.py"))
    assert failed == [1], checks
    assert all("not implemented yet (Task 1" in message for _, message in checks[1])


# The charging rules of score and the feedback file, on made-up verdicts.

def _notebook_cells(**failing):
    """(cells, info) for every notebook with three code cells each, all passing except ``failing``:
    {notebook: {cell: (tasks, message)}}."""
    cells, info = {}, {}
    for nb in NOTEBOOK_POINTS:
        info[nb], cells[nb] = {}, {}
        for index in range(3):
            tasks, message = failing.get(f"nb{nb[:2]}", {}).get(index, ([], None))
            info[nb][index] = (tasks, False, f"print({index})")
            cells[nb][index] = ("failed", message) if message else ("passed", "")
    return cells, info


def _no_run_failures():
    from pa3.experiments import EXPERIMENTS

    return {name: [] for name in EXPERIMENTS}


def test_score_charges_a_failing_task_cell_to_its_task_and_what_follows_to_nothing():
    result = Result("s")
    cells, info = _notebook_cells(nb03={1: ([4], "IndexError: Target 131 is out of bounds."),
                                        2: ([], "NameError: name 'history' is not defined")})
    runs = _no_run_failures() | {"augmented": ["run 'augmented' did not finish (status 'failed')"]}
    cells["05_comparison"][2] = ("failed", "KeyError: 'augmented'")
    score(result, {n: [] for n in TASKS} | {4: [("hidden test_task4.py::x", "label values blended")]},
          cells, info, runs)
    assert result.points == _full("task4")
    free = [f for f in result.failures if not f.part]
    assert [f.where for f in free] == ["notebooks/03_augmentation.ipynb code cell 2",
                                       "notebooks/05_comparison.ipynb code cell 2"]
    assert free[0].message.startswith("follows from code cell 1 above (task4)")
    text = feedback(result)
    assert "### Task 4: Data augmentation (2 more failures below)" in text
    assert "### Failures that cost no further points" in text


def test_score_charges_task_8_cells_and_run_to_a_failed_task_5():
    result = Result("s")
    cells, info = _notebook_cells(nb04={2: ([8], "AssertionError: building IoU")})
    runs = _no_run_failures() | {"unet_aspp": ["unet_aspp: building IoU 0.1 is outside [0.3, 0.6]"]}
    score(result, {n: [] for n in TASKS} | {5: [("hidden test_task5.py::x", "block8.3 differs")]}, cells, info, runs)
    assert result.points == _full("task5")


def test_score_charges_a_provided_run_to_the_notebook_that_trains_it():
    result = Result("s")
    cells, info = _notebook_cells()
    runs = _no_run_failures() | {"baseline": ["baseline: mIoU 0.05 is outside [0.2, 0.3]"]}
    score(result, {n: [] for n in TASKS}, cells, info, runs)
    assert result.points == _full("01_baseline")


def test_score_charges_an_unmarked_failing_cell_to_its_notebook_once():
    result = Result("s")
    cells, info = _notebook_cells(nb02={0: ([], "ValueError: x"), 1: ([], "NameError: y")})
    score(result, {n: [] for n in TASKS}, cells, info, _no_run_failures())
    assert result.points == _full("02_losses")
    assert [f.part for f in result.failures] == ["02_losses", ""]


def test_feedback_header_and_an_empty_list():
    result = Result("s", status="time limit", seconds=12.3)
    cells, info = _notebook_cells()
    score(result, {n: [] for n in TASKS}, cells, info, _no_run_failures())
    text = feedback(result)
    assert f"**{TOTAL_POINTS} / {TOTAL_POINTS} points** (time limit; graded in 12 s)" in text
    assert "- nothing" in text


def test_rescore_recomputes_every_metric_from_the_confusions():
    import numpy as np

    perfect = np.diag(np.full(19, 10)).tolist()  # the 19 Cityscapes classes, every pixel right
    confused = np.diag(np.full(19, 10))
    confused[11, 11], confused[11, 2] = 5, 5  # half of the persons taken for buildings
    values = rescore([confused.tolist(), perfect, confused.tolist()])
    assert values["miou"] == pytest.approx(1.0) and values["iou/person"] == pytest.approx(1.0)  # the best epoch
    values = rescore([confused.tolist()])
    assert values["iou/person"] == pytest.approx(5 / 10) and values["iou/building"] == pytest.approx(10 / 15)
    assert values["pixel_acc"] == pytest.approx(185 / 190)
