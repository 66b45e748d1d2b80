"""Bad input is refused clearly: the error's type, the file or value it names, and what to do.

The whole list, in one place. Items marked "here" are tested in this file; the others already have a
test that checks the message elsewhere (named below, not imported).

==============================================  ===========================================================
bad input                                       test
==============================================  ===========================================================
missing dataset root                            here: test_dataset_errors_name_the_file_and_the_fix[missing_root];
                                                test_data.py::test_empty_split_and_missing_root,
                                                test_data.py::test_check_dataset_missing_root_and_no_splits,
                                                test_data.py::test_default_data_root_uses_pa3_data ($PA3_DATA)
empty split                                     here: [empty_split]; test_data.py::test_empty_split_and_missing_root
images without labels, labels without images    here: [image_without_label], [label_without_image];
                                                test_data.py::test_find_pairs_refuses_unpaired_files
RGB colour label PNGs                           here: [colour_label];
                                                test_data.py::test_checker_and_dataset_catch_one_bad_input
trainId PNGs where labelIds are expected        here: [trainid_label]; (same test_data.py test)
ids outside the table                           here: [outside_table]; (same test_data.py test)
image/label size mismatch                       here: [size_mismatch]; (same test_data.py test)
truncated or corrupt PNG, item and checker      here: [truncated_*], [corrupt_*] and test_checker_names_corrupt_pngs;
                                                (same test_data.py test, truncated files)
unknown model name                              test_models.py::test_typo_lists_valid_names; CLI: here,
                                                test_cli_refuses_unknown_names_with_the_choices
checkpoint of another model or class count      here: test_load_model_refuses_another_model_or_class_count
pretrained weights requested offline            test_models.py::test_pretrained_true_offline_says_where_to_put_the_file
run folder from a different config              test_engine.py::test_resume_with_different_config_is_refused,
                                                test_cli.py::test_train_then_evaluate_end_to_end (exit 1, --force)
disk full                                       test_engine.py::
                                                test_failed_checkpoint_write_leaves_no_tmp_and_keeps_previous;
                                                here: test_disk_full_on_the_first_checkpoint_leaves_nothing_partial
unwritable run folder                           here: test_run_folder_under_a_file_is_refused,
                                                test_read_only_run_folder_is_refused
checkpoint carrying a pickled callable          test_engine.py::test_pickled_callable_checkpoint_is_refused
CSV list row pointing at a missing file         here: test_csv_row_pointing_at_a_missing_file;
                                                test_data.py::test_read_csv_list_names_missing_rows
unknown label space                             here: test_unknown_label_space_lists_the_valid_ones
unknown loss name                               test_losses.py::test_build_loss_errors; CLI: here (choices)
weighted_ce without weights                     test_losses.py::test_build_loss_errors
input size not divisible by 32                  test_models.py::test_size_error_names_nearest_valid_size; CLI: here,
                                                test_cli_size_not_divisible_by_32_names_the_nearest_valid_size
nothing written outside run and data folders    here: test_nothing_is_written_outside_the_run_and_cache_folders
generate into a folder pa3 did not write        test_synthetic.py::test_generate_refuses_a_folder_it_did_not_write
CSV list whose rows pair different frames       test_data.py::test_read_csv_list_refuses_a_shifted_list
uint16 instance ids given as labelIds           test_data.py::test_encode_refuses_values_that_would_wrap_around
pretrained file carrying a pickled callable     test_models.py::test_pretrained_file_loads_backbone
damaged file (empty, truncated, random bytes,   test_files.py: every reader x every damage (docs/files.md);
text, folder, unreadable, wrong JSON)           derived data (cache, class frequencies, synthetic stamp) rebuilt
==============================================  ===========================================================
"""
import errno
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers import make_fake_cityscapes
from pa3 import checkpoint, engine, labels
from pa3.cli import build_parser, main
from pa3.dataset_check import check_dataset
from pa3.data import CityscapesSegmentation
from pa3.layout import DatasetError, find_pairs, read_csv_list
from pa3.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
FRAME = "aachen_000001_000019"  # the first train frame of make_fake_cityscapes
SIZE = (32, 64)


# -- datasets ------------------------------------------------------------------------------------

def _first_pair(root):
    return find_pairs(root, "train")[0]


def _colour(root):
    label = _first_pair(root)[1]
    label.write_bytes(label.with_name(label.name.replace("_labelIds", "_color")).read_bytes())


def _train_ids(root):
    label = _first_pair(root)[1]
    Image.fromarray(labels.encode(np.asarray(Image.open(label)), "trainId")).save(label)


def _outside(root):
    label = _first_pair(root)[1]
    ids = np.array(Image.open(label))
    ids[5:9, 5:9] = 40
    Image.fromarray(ids).save(label)


def _size(root):
    label = _first_pair(root)[1]
    Image.fromarray(np.array(Image.open(label))[:32, :64]).save(label)


def _truncate(which):
    def breaker(root):
        path = _first_pair(root)[which]
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return breaker


def _corrupt(which):
    def breaker(root):
        path = _first_pair(root)[which]
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2)  # PNG signature, then garbage
    return breaker


# case -> (break the fake root, split to open, substrings the DatasetError must hold: file/value, fix)
DATASET_CASES = {
    "missing_root": (lambda root: None, "train", ["nowhere", "does not exist", "export PA3_DATA="]),
    "empty_split": (lambda root: None, "extra", ["split 'extra'", "is empty", "leftImg8bit/extra/<city>"]),
    "image_without_label": (lambda root: _first_pair(root)[1].unlink(), "train",
                            [f"{FRAME}_leftImg8bit.png", "without a *_gtFine_labelIds.png", "python -m pa3 check"]),
    "label_without_image": (lambda root: _first_pair(root)[0].unlink(), "train",
                            [f"{FRAME}_gtFine_labelIds.png", "without a *_leftImg8bit.png", "re-unzip the archives"]),
    "colour_label": (_colour, "train", [f"{FRAME}_gtFine_labelIds.png", "mode RGBA",
                                        "Use the *_gtFine_labelIds.png files"]),
    "trainid_label": (_train_ids, "train", [f"{FRAME}_gtFine_labelIds.png", "looks like a trainId PNG",
                                            "label_file='labelTrainIds'"]),
    "outside_table": (_outside, "train", [f"{FRAME}_gtFine_labelIds.png", "[40]", "restore or re-export"]),
    "size_mismatch": (_size, "train", [f"{FRAME}_leftImg8bit.png is 128x64", f"{FRAME}_gtFine_labelIds.png is 64x32",
                                       "restore the original files"]),
    "truncated_image": (_truncate(0), "train", [f"{FRAME}_leftImg8bit.png", "truncated", "Re-download or re-unzip"]),
    "truncated_label": (_truncate(1), "train", [f"{FRAME}_gtFine_labelIds.png", "truncated",
                                                "Re-download or re-unzip"]),
    "corrupt_image": (_corrupt(0), "train", [f"{FRAME}_leftImg8bit.png", "cannot read image",
                                             "Re-download or re-unzip"]),
    "corrupt_label": (_corrupt(1), "train", [f"{FRAME}_gtFine_labelIds.png", "cannot read label",
                                             "Re-download or re-unzip"]),
}


@pytest.mark.parametrize("case", list(DATASET_CASES))
def test_dataset_errors_name_the_file_and_the_fix(case, tmp_path):
    root = make_fake_cityscapes(tmp_path / "cs", {"train": 2}, extras=case == "colour_label")
    breaker, split, expected = DATASET_CASES[case]
    breaker(root)
    if case == "missing_root":
        root = tmp_path / "nowhere"
    with pytest.raises(DatasetError) as error:  # at construction (layout) or when an item is decoded
        dataset = CityscapesSegmentation(root, split, size=SIZE, cache=False)
        [dataset[i] for i in range(len(dataset))]
    for text in expected:
        assert text in str(error.value), (text, str(error.value))


@pytest.mark.parametrize("which", [0, 1])
def test_checker_names_corrupt_pngs(which, tmp_path):
    root = make_fake_cityscapes(tmp_path / "cs", {"train": 2}, extras=False)
    path = _first_pair(root)[which]
    _corrupt(which)(root)
    report = check_dataset(root)
    assert not report.ok and list(report.splits["train"].problems) == ["unreadable"]
    text = str(report)
    assert str(path) in text and "fix: re-download or re-unzip the archive" in text and "FAILED" in text


def test_csv_row_pointing_at_a_missing_file(tmp_path):
    root = make_fake_cityscapes(tmp_path / "cs", {"train": 1}, extras=False)
    image, label = (p.relative_to(root) for p in _first_pair(root))
    (root / "list.csv").write_text(f"image,label\n{image},{label}\n{image},gtFine/train/gone.png\n")
    with pytest.raises(DatasetError) as error:
        read_csv_list(root / "list.csv")
    message = str(error.value)
    assert "row 3: " in message and "gone.png" in message and "pass root=" in message


def test_unknown_label_space_lists_the_valid_ones(tmp_path):
    for make in (lambda: TrainConfig(label_space="trainIds"), lambda: labels.num_classes("trainIds"),
                 lambda: CityscapesSegmentation(tmp_path, label_space="trainIds", cache=False)):
        with pytest.raises(ValueError, match=r"unknown label space 'trainIds'; choose one of \('trainId', 'labelId', 'camvid'\)"):
            make()


# -- models and checkpoints ----------------------------------------------------------------------

def test_load_model_refuses_another_model_or_class_count(tmp_path):
    path = tmp_path / "best.pt"
    conv = nn.Conv2d(3, 19, 1)
    torch.save({"model": conv.state_dict(), "model_name": "fcn", "num_classes": 19, "config": {}}, path)
    with pytest.raises(ValueError) as error:
        checkpoint.load_model(path, model_name="unet")
    assert str(path) in str(error.value) and "holds a 'fcn' model, not 'unet'" in str(error.value)
    assert "model_name='fcn'" in str(error.value)
    with pytest.raises(ValueError, match=r"best.pt holds a model with 19 classes, not 34 \(check --label-space"):
        checkpoint.load_model(path, num_classes=34)
    # loading the weights into a module of another shape names both and says how to rebuild the right one
    with pytest.raises(ValueError) as error:
        checkpoint.load_checkpoint(path, model=nn.Conv2d(3, 34, 1))
    message = str(error.value)
    assert str(path) in message and "'fcn' model with 19 classes" in message and "pa3.checkpoint.load_model(" in message


# -- the run folder ------------------------------------------------------------------------------

def _tiny_fit(run_dir, **kwargs):
    data = TensorDataset(torch.randn(4, 3, 8, 8), torch.randint(0, 3, (4, 8, 8)))
    loader = DataLoader(data, batch_size=2)
    config = TrainConfig(model="tiny", epochs=1, batch_size=2, device="cpu")
    return engine.fit(nn.Conv2d(3, 3, 1), loader, loader, config, run_dir, criterion=nn.CrossEntropyLoss(),
                      num_classes=3, **kwargs)


def test_disk_full_on_the_first_checkpoint_leaves_nothing_partial(tmp_path, monkeypatch):
    def disk_full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")  # a half-written file, as a full disk leaves it
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    run = tmp_path / "run"
    with pytest.raises(OSError) as error:
        _tiny_fit(run)
    message = str(error.value)
    assert f"could not write best.pt in folder {run}" in message and "No space left" in message
    assert "free disk space or choose another folder" in message
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "sources.json"]  # no last.pt, best.pt, *.tmp


def test_run_folder_under_a_file_is_refused(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    run = tmp_path / "afile" / "run"
    with pytest.raises(OSError) as error:
        _tiny_fit(run)
    message = str(error.value)
    assert f"cannot create run folder {run}" in message and "Choose a writable run folder" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_read_only_run_folder_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o500)
    try:
        if os.access(run, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes (test_run_folder_under_a_file_is_refused "
                        "covers an unwritable run folder for root too)")
        with pytest.raises(OSError) as error:
            _tiny_fit(run)
        message = str(error.value)
        assert f"could not write config.json in folder {run}" in message and "Permission denied" in message
        assert "choose another folder" in message
        assert list(run.iterdir()) == []
    finally:
        run.chmod(0o700)


# -- the command line ----------------------------------------------------------------------------

@pytest.mark.parametrize("option, value", [("--model", "unett"), ("--loss", "focal"), ("--label-space", "trainIds")])
def test_cli_refuses_unknown_names_with_the_choices(option, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["train", option, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: invalid choice: '{value}'" in err and "choose from" in err


def _train_argv(root, run, *extra):
    return ["train", "--data", str(root), "--run-dir", str(run), "--height", "64", "--width", "128",
            "--epochs", "1", "--batch-size", "2", *extra]


def test_cli_size_not_divisible_by_32_names_the_nearest_valid_size(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PA3_CACHE", str(tmp_path / "cache"))
    root = make_fake_cityscapes(tmp_path / "data", {"train": 2, "val": 2}, extras=False)
    assert main(_train_argv(root, tmp_path / "run", "--height", "100")) == 1
    err = capsys.readouterr().err
    assert "got 100x128, nearest valid size is 96x128 (resize or crop to it)" in err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()  # refused before any work


def _files(folder):
    folder = Path(folder)
    return {p for p in folder.rglob("*")} if folder.is_dir() else set()


def test_nothing_is_written_outside_the_run_and_cache_folders(tmp_path, monkeypatch):
    """A CLI training run writes into its run folder and $PA3_CACHE only: not the data folder it was
    given, the working directory, $HOME, nor the repository's data/ and runs/ folders."""
    root = make_fake_cityscapes(tmp_path / "data", {"train": 2, "val": 2}, extras=False)
    home, cwd, run, cache = tmp_path / "home", tmp_path / "cwd", tmp_path / "run", tmp_path / "cache"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PA3_CACHE", str(cache))
    for name in ("XDG_CACHE_HOME", "TORCH_HOME", "PA3_DATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(cwd)
    watched = [tmp_path, REPO / "data", REPO / "runs"]
    before = set().union(*(_files(f) for f in watched))

    assert main(_train_argv(root, run)) == 0

    new = set().union(*(_files(f) for f in watched)) - before
    outside = sorted(str(p) for p in new if not (p.is_relative_to(run) or p.is_relative_to(cache)))
    assert outside == []
    assert (run / "best.pt").is_file() and any(cache.iterdir())
