"""Hygiene of the committed notebooks and the README (nbval itself re-executes them: see the Makefile)."""
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXPECTED = ["00_data", "01_baseline", "02_losses", "03_augmentation", "04_deeper_models", "05_comparison"]
NBVAL_MARKERS = {"# NBVAL_IGNORE_OUTPUT", "# NBVAL_CHECK_OUTPUT", "# NBVAL_SKIP", "# NBVAL_RAISES_EXCEPTION"}


def code_cells(path):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def output_text(cell):
    parts = []
    for out in cell.get("outputs", []):
        parts.append("".join(out.get("text", "")))
        for mime, value in out.get("data", {}).items():
            if mime.startswith("text/"):
                parts.append("".join(value))
    return "\n".join(parts)


def test_the_six_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_executed_top_to_bottom_without_errors(path):
    cells = code_cells(path)
    assert [c["execution_count"] for c in cells] == list(range(1, len(cells) + 1)), "re-execute with `make report`"
    errors = [o for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, f"{path.name} holds an error output: {errors[0].get('ename')}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_hold_no_local_paths_addresses_or_progress_bars(path):
    for cell in code_cells(path):
        source = "".join(cell["source"])
        text = output_text(cell)
        # no absolute path of the machine that ran it, in any cell (pa3 prints project paths relative)
        match = re.search(r"(?<![\w.])/(?:[\w.\-]+/)+[\w.\-]+", text)
        assert match is None, f"{path.name}: absolute path {match and match.group()} in an output"
        if "# NBVAL_IGNORE_OUTPUT" in source:
            continue
        assert not re.search(r"at 0x[0-9a-f]{6,}", text), f"{path.name}: memory address in an output"
        assert "it/s]" not in text and "%|" not in text, f"{path.name}: a progress bar in an output"
        assert not any(o.get("name") == "stderr" for o in cell.get("outputs", [])), f"{path.name}: stderr output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_structure_setup_first_summary_and_exercises_last(path):
    cells = json.loads(path.read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells]
    assert any("setup_notebook(PROFILE, DATA_ROOT)" in s for s in sources[:5]), "setup cell near the top"
    assert "## Summary" in sources[-1] and "## Exercises" in sources[-1]
    for source in sources:
        for line in source.splitlines():
            if line.startswith("# NBVAL"):
                assert line.strip() in NBVAL_MARKERS, f"{path.name}: malformed nbval marker {line!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_plotting_cells_end_with_plt_show(path):
    for cell in code_cells(path):
        lines = [l for l in "".join(cell["source"]).strip().splitlines() if l.strip()]
        draws = any(re.search(r"viz\.(show_samples|prediction_grid|training_curves|iou_bars|confusion_heatmap|"
                              r"table_figure|class_legend)\(|\.plot\.", l) for l in lines)
        if draws:
            assert "plt.show()" in lines[-1], f"{path.name}: end plotting cells with plt.show()"


def test_every_figure_the_readme_shows_exists():
    readme = (REPO / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    links = re.findall(r"\]\((figures/[^)]+)\)", readme)
    assert images, "the README shows figures"
    missing = [p for p in images + links if not (REPO / p).exists()]
    assert not missing, f"README refers to missing files: {missing}"


def test_a_notebook_executed_under_the_test_settings_writes_nothing_tracked(tmp_path):
    """conftest.py points PA3_FIGURES at a temporary folder: executing a notebook that saves figures (00 saves
    samples, class frequencies) leaves `git status` as it was, and the figures land in that folder."""
    import os
    import subprocess
    import sys

    def status():
        return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO, text=True,
                              capture_output=True, check=True).stdout

    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    before = status()
    figures = Path(os.environ["PA3_FIGURES"])
    assert not figures.resolve().is_relative_to(REPO.resolve())
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                    "--output-dir", str(tmp_path), str(REPO / "notebooks" / "00_data.ipynb")],
                   cwd=REPO / "notebooks", check=True, capture_output=True, timeout=600)
    assert status() == before
    assert (figures / "samples.png").is_file()


def test_nbval_settings_live_in_the_project_configuration():
    """A plain `pytest --nbval notebooks/` gets what `make test` gets: the cell timeout, the sanitize file and
    the current env from pytest.ini; the environment from conftest.py."""
    import configparser
    import os

    addopts = configparser.ConfigParser()
    addopts.read(REPO / "pytest.ini")
    options = addopts["pytest"]["addopts"].split()
    assert "--nbval-cell-timeout=7200" in options and "--nbval-current-env" in options
    assert options[options.index("--nbval-sanitize-with") + 1] == "tests/nbval_sanitize.cfg"
    assert os.environ["TQDM_DISABLE"] == "1" and os.environ["PA3_FIGURES"]
    make = (REPO / "Makefile").read_text()
    assert "--nbval-cell-timeout" not in make  # one place for each setting


def test_notebook_04_trains_one_model_per_cell():
    """A cell interrupted at nbval's time limit loses one model, not the notebook."""
    sources = ["".join(c["source"]) for c in code_cells(REPO / "notebooks" / "04_deeper_models.ipynb")]
    training = [s for s in sources if "run_experiment(" in s]
    assert [re.search(r'run_experiment\("(\w+)"', s)[1] for s in training] == [
        "unet", "resnet50", "deeplab", "ours", "unet_aspp"]
