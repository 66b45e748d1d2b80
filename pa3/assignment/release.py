"""``python -m pa3 assignment release OUT``: the student edition of the assignment.

OUT gets a copy of the package and its notebooks in which every solution region is a stub
(``pa3.assignment.regions``), the notebooks without outputs and with their task cells marked, the public
checks (``pa3/assignment/checks/public``; the hidden ones stay here) and a README for students. The
provided parts run as they are: notebook 01 trains the baseline (its IoU is NaN until Task 1 is done).
"""
import json
import shutil
from pathlib import Path

from pa3 import project_dir
from pa3.assignment.regions import stub_regions
from pa3.assignment.tasks import NOTEBOOK_POINTS, TASKS, TOTAL_POINTS

# What the student edition holds besides pa3/ and notebooks/ (paths relative to the project folder).
TOP_FILES = ("pyproject.toml", "requirements.txt", "Makefile", "conftest.py", "pytest.ini", "tests/nbval_sanitize.cfg",
             "benchmarks/calibration_grading.md")  # (how the grading profile's bands were measured)
HIDDEN = Path("pa3") / "assignment" / "checks" / "hidden"
GITIGNORE = ".venv/\n__pycache__/\n*.egg-info/\ndata/\nruns/\nfigures/\n.ipynb_checkpoints/\n"


def _package_files(source):
    """The files of pa3/ that the student edition copies: sources, expected values, public checks."""
    for path in sorted((source / "pa3").rglob("*")):
        relative = path.relative_to(source)
        if path.is_dir() or "__pycache__" in relative.parts or relative.is_relative_to(HIDDEN):
            continue
        if path.suffix in (".py", ".json"):
            yield relative


def task_cell_header(task_numbers):
    names = ", ".join(f"Task {n} ({TASKS[n].title})" for n in task_numbers)
    files = ", ".join(sorted({f for n in task_numbers for f in TASKS[n].files}))
    return f"# TASK CELL: {names}: runs your code in {files}\n"


def cell_tasks(cell):
    """The task numbers a notebook cell is marked with (``{"pa3": {"task": N or [N, ...]}}``), else []."""
    task = cell.get("metadata", {}).get("pa3", {}).get("task")
    return [] if task is None else [task] if isinstance(task, int) else list(task)


def student_notebook(notebook):
    """A copy of ``notebook`` (a dict) with outputs and execution counts cleared and task cells marked."""
    notebook = json.loads(json.dumps(notebook))
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        cell["outputs"], cell["execution_count"] = [], None
        cell["metadata"].pop("execution", None)
        tasks = cell_tasks(cell)
        if tasks:
            cell["source"] = task_cell_header(tasks) + "".join(cell["source"])
    return notebook


def release(out, source=None):
    """Write the student edition into ``out`` (a new or empty folder). Returns the list of files written."""
    source = Path(source or project_dir())
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: give a new folder for the student edition "
                              f"(or delete {out} first)")
    if not (source / "pa3" / "assignment").is_dir() or not (source / "notebooks").is_dir():
        raise FileNotFoundError(f"{source} is not a pa3 source checkout (pa3/assignment/ and notebooks/ are "
                                f"missing): run the release from the repository, or set PA3_HOME to it")
    written = []

    def write(relative, text):
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(relative)

    for relative in _package_files(source):
        if relative.suffix == ".py":
            write(relative, stub_regions((source / relative).read_text(), str(relative)))
        else:
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / relative, out / relative)
            written.append(relative)
    for name in TOP_FILES:
        if (source / name).is_file():
            write(Path(name), (source / name).read_text())
    for path in sorted((source / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        notebook = student_notebook(json.loads(path.read_text()))
        write(Path("notebooks") / path.name, json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    write(Path(".gitignore"), GITIGNORE)
    write(Path("README.md"), students_readme())
    return written


def students_readme():
    rows = "\n".join(f"| {t.number} | {t.title} | {', '.join(f'`{f}`' for f in t.files)} | {t.points} |"
                     for t in TASKS.values())
    notebooks = " + ".join(f"{n[:2]}: {p}" for n, p in NOTEBOOK_POINTS.items())
    return f"""# pa3 assignment: CNNs for semantic segmentation of street scenes (student edition)

You get the baseline FCN, the data pipeline, the training loop and the figures. You write the parts marked
`raise NotImplementedError("Task N ...")` in `pa3/`: each line replaces one region of the solution.

Every command below runs in this folder, in a terminal (Linux, macOS, WSL or Colab's terminal).

## Install (once)

```bash
python3 -m venv .venv
source .venv/bin/activate
pip install -r requirements.txt
pip install --no-deps -e .
```

In every new terminal, run `source .venv/bin/activate` again first (on Windows: `.venv\\Scripts\\activate`):
the commands below use the environment's `python`. Notebook 01 trains the baseline out of the box; its IoU
numbers are NaN until Task 1 is done.

## Tasks and points

| task | what | where | points |
|---|---|---|--:|
{rows}
| - | notebooks run through with their stored outputs ({notebooks}) | `notebooks/` | {sum(NOTEBOOK_POINTS.values())} |
| | **total** | | **{TOTAL_POINTS}** |

A task's points need all of its checks: what the public checks below test and hidden checks of the same kind
(the grader runs your code on fixed inputs and compares what it computes with the reference solution's), the
notebook cells marked `# TASK CELL: Task N`, and the trained numbers of its experiment inside the
calibrated bands of the grading profile (`pa3/expected/grading.json`; how they were measured:
`benchmarks/calibration_grading.md`). The hidden checks also load the reference model's weights into your
model by position and compare every layer's output with the reference's: define the layers of each model
in `__init__` in the order of the report's table, with the table's shapes.

Your code is graded in a sandbox: no network, no files outside your folder, and a time limit (600 s for
everything); the notebooks are executed again there and their outputs compared with the ones you submit.

A failure costs only the task whose code causes it: Task 8 is checked with the reference's U-Net and ASPP
when yours fail, and a notebook cell that fails because of a task's code costs that task, not the notebook.

## Check your work

```bash
python -m pa3 assignment check
python -m pa3 assignment check --task 3
```

The first checks every task (passed, failed and why, or not implemented yet), the second one task. The
checks are `pa3/assignment/checks/public/test_task<N>.py` (shapes, gradients, values computed by hand).

## Before you submit

```bash
python -m pa3 assignment run
python -m pa3 assignment pack
```

`run` executes every notebook in place under the grading profile (about 3 minutes on 2 CPU cores) and lists
any cell that fails; it retrains a run whenever the code in `pa3/` changed since the run was trained. The
grader re-executes your notebooks with `PA3_PROFILE=grading` and compares what they print with what you
stored (`pytest --nbval`): never edit an output by hand. `pack` writes `../<this folder's name>.zip` without
`.venv/`, `data/`, `runs/` and `figures/`: hand in that file.
"""


def fill_from_solution(edition, source=None):
    """Put the solution back into a student edition at ``edition`` (every stub replaced by its region of the
    repository, markers left out): the submission a student who solved everything would hand in. Used to
    check a release end to end (its grading must give full marks). Returns the files changed."""
    from pa3.assignment.regions import fill_stubs, solution_regions

    source, edition = Path(source or project_dir()), Path(edition)
    changed = []
    for relative in _package_files(source):
        if relative.suffix != ".py" or not (edition / relative).is_file():
            continue
        answers = solution_regions((source / relative).read_text(), str(relative))
        if answers:
            text = (edition / relative).read_text()
            (edition / relative).write_text(fill_stubs(text, answers, str(edition / relative)))
            changed.append(relative)
    return changed
