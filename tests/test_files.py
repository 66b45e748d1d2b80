"""Every file pa3 reads, crossed with every kind of damage (docs/files.md lists the readers).

A file pa3 did not derive is refused: the exception's type is the reader's documented one and its message
names the file (and, for BadFileError, what is wrong and what to do). Derived data (the resized cache, class
frequencies, the synthetic set's stamp) is rebuilt instead, with one line saying so, and the rebuilt data
equals the original. The command line turns a refusal into one ``error:`` line and exit status 1.
"""
import dataclasses
import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models import ResNet50_Weights

from helpers import make_fake_cityscapes
from pa3 import checkpoint, engine, experiments, grading, models, official_eval, synthetic
from pa3.models import weights
from pa3.cli import main
from pa3.data import CityscapesSegmentation, class_frequencies
from pa3.layout import DatasetError, find_pairs, read_csv_list
from pa3.config import TrainConfig
from pa3.files import BadFileError
from pa3.profiles import PROFILES

REPO = Path(__file__).resolve().parents[1]

# -- kinds of damage: each turns the good file at `path` into a damaged one ---------------------


def _folder(path):
    path.unlink()
    path.mkdir()


def _unreadable(path):
    path.chmod(0o000)
    if os.access(path, os.R_OK):
        path.chmod(0o600)
        pytest.skip("running as root: chmod does not stop reads")


DAMAGE = {
    "empty": lambda path: path.write_bytes(b""),
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
    "random_bytes": lambda path: path.write_bytes(np.random.default_rng(0).bytes(600)),
    "text": lambda path: path.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/bin/sh\n"),
    "folder": _folder,
    "unreadable": _unreadable,
    "wrong_json": lambda path: path.write_text('{"unexpected": [1, 2, 3]}\n'),
}

# -- readers of files pa3 did not derive: setup(tmp_path) -> (file to damage, read it) ----------


def _tiny_fit(run_dir, epochs=2, criterion=None, resume=True):
    data = TensorDataset(torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)),
                         torch.randint(0, 3, (4, 8, 8), generator=torch.Generator().manual_seed(1)))
    loader = DataLoader(data, batch_size=2)
    config = TrainConfig(model="tiny", epochs=epochs, batch_size=2, device="cpu", amp="off")
    torch.manual_seed(0)
    return engine.fit(nn.Conv2d(3, 3, 1), loader, loader, config, run_dir, criterion=criterion or nn.CrossEntropyLoss(),
                      num_classes=3, resume=resume)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A run folder of two epochs: config.json, history.*, metrics.json, best.pt, last.pt, last.prev.pt."""
    run = tmp_path_factory.mktemp("template") / "run"
    _tiny_fit(run)
    return run


def _run_copy(tmp_path, finished_run):
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


@functools.cache
def _fcn_weights():
    torch.manual_seed(0)
    return models.build_model("fcn", 19).state_dict()


def _pa3_checkpoint(tmp_path):
    path = tmp_path / "best.pt"
    torch.save({"model": _fcn_weights(), "model_name": "fcn", "num_classes": 19, "config": {}}, path)
    return path


def _checkpoint(tmp_path, run):
    path = _pa3_checkpoint(tmp_path)
    return path, lambda: checkpoint.load_checkpoint(path)


def _load_model(tmp_path, run):
    path = _pa3_checkpoint(tmp_path)
    return path, lambda: checkpoint.load_model(path)


def _resume(tmp_path, run):
    run = _run_copy(tmp_path, run)
    return run / "last.pt", lambda: _tiny_fit(run)


def _weights(tmp_path, run):
    path = tmp_path / "backbone.pth"
    torch.save(nn.Conv2d(3, 4, 1).state_dict(), path)
    return path, lambda: weights._pretrained_state(str(path), ResNet50_Weights.IMAGENET1K_V1)


def _cached_weights(tmp_path, run):
    path = tmp_path / "hub" / "checkpoints" / Path(weights._checkpoint_path(ResNet50_Weights.IMAGENET1K_V1)).name
    path.parent.mkdir(parents=True)
    torch.save(nn.Conv2d(3, 4, 1).state_dict(), path)

    def read():
        get_dir = torch.hub.get_dir
        torch.hub.get_dir = lambda: str(tmp_path / "hub")
        try:
            return weights._pretrained_state(True, ResNet50_Weights.IMAGENET1K_V1)
        finally:
            torch.hub.get_dir = get_dir
    return path, read


def _profile(tmp_path, run, name="baseline"):
    profile = dataclasses.replace(PROFILES["default"], runs_dir=str(tmp_path / "runs"))
    folder = experiments.run_dir(name, profile)
    folder.parent.mkdir(parents=True)
    shutil.copytree(run, folder)
    return profile, folder


def _config_json(tmp_path, run):
    profile, folder = _profile(tmp_path, run)
    return folder / "config.json", lambda: experiments.is_complete("baseline", profile)


def _metrics_json(tmp_path, run):
    profile, folder = _profile(tmp_path, run)
    return folder / "metrics.json", lambda: experiments.load_run("baseline", profile)


def _history_json(tmp_path, run):
    profile, folder = _profile(tmp_path, run)
    return folder / "history.json", lambda: experiments.load_run("baseline", profile)


def _expected_values(tmp_path, run):
    path = tmp_path / "default.json"
    path.write_text(json.dumps({"runs": {"baseline": {"miou": [0.3, 0.03]}}, "claims": []}))

    def read():
        expected_dir = grading.EXPECTED_DIR
        grading.EXPECTED_DIR = tmp_path
        try:
            return grading.load_expected("default")
        finally:
            grading.EXPECTED_DIR = expected_dir
    return path, read


def _fake_root(tmp_path):
    return make_fake_cityscapes(tmp_path / "cs", {"train": 1}, size=(32, 64), extras=False)


def _csv_list(tmp_path, run):
    root = _fake_root(tmp_path)
    image, label = (p.relative_to(root) for p in find_pairs(root, "train")[0])
    path = root / "train.csv"
    path.write_text(f"image,label\n{image},{label}\n")
    return path, lambda: read_csv_list(path)


def _dataset_file(which):
    def setup(tmp_path, run):
        root = _fake_root(tmp_path)
        path = find_pairs(root, "train")[0][which]
        return path, lambda: CityscapesSegmentation(root, "train", size=(32, 64), cache=False)[0]
    return setup


def _label_png(tmp_path, run):
    root = _fake_root(tmp_path)
    gt = find_pairs(root, "train")[0][1]
    pred = tmp_path / "pred_labelIds.png"
    shutil.copy(gt, pred)
    return gt, lambda: official_eval.evaluate_label_pngs([pred], [gt], num_workers=1)


def _checksum_manifest(tmp_path, run):
    path = tmp_path / "synthetic.sha256"
    path.write_text("".join(f"{'0' * 63}{i}  leftImg8bit/train/a/a_00000{i}_000019_leftImg8bit.png\n"
                            for i in range(3)))
    return path, lambda: synthetic.read_manifest(path)


# reader -> (setup, the exception it raises for a damaged file)
READERS = {
    "checkpoint (load_checkpoint, evaluate)": (_checkpoint, BadFileError),
    "checkpoint (load_model)": (_load_model, BadFileError),
    "last.pt (fit resumes a run)": (_resume, BadFileError),
    "pretrained weights file": (_weights, BadFileError),
    "pretrained weights in torch.hub's cache": (_cached_weights, BadFileError),
    "run config.json (is_complete)": (_config_json, BadFileError),
    "run metrics.json (load_run)": (_metrics_json, BadFileError),
    "run history.json (load_run)": (_history_json, BadFileError),
    "expected values (grading)": (_expected_values, BadFileError),
    "CSV list": (_csv_list, DatasetError),
    "image PNG": (_dataset_file(0), DatasetError),
    "label PNG": (_dataset_file(1), DatasetError),
    "label PNG (official evaluation)": (_label_png, BadFileError),
    "checksum manifest (data/synthetic.sha256)": (_checksum_manifest, BadFileError),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("reader", list(READERS))
def test_every_reader_refuses_every_damage_naming_the_file(reader, damage, tmp_path, finished_run):
    setup, error_type = READERS[reader]
    path, read = setup(tmp_path, finished_run)
    read()  # the good file is read
    DAMAGE[damage](path)
    with pytest.raises(error_type) as error:
        read()
    assert str(path) in str(error.value), str(error.value)
    if isinstance(error.value, BadFileError):
        assert error.value.path == path and error.value.problem and error.value.fix


# -- resuming from a damaged last.pt ----------------------------------------------------------


def test_damaged_last_pt_names_the_intact_checkpoints_and_deletes_nothing(tmp_path, finished_run):
    run = _run_copy(tmp_path, finished_run)
    DAMAGE["truncated"](run / "last.pt")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(BadFileError) as error:
        _tiny_fit(run)
    message = str(error.value)
    assert f"cannot resume: checkpoint {run / 'last.pt'} is truncated" in message
    assert "Nothing was deleted. Intact: last.prev.pt (the training state at epoch 2 step 0" in message
    assert "best.pt (the weights of epoch" in message
    assert f"mv {run / 'last.prev.pt'} {run / 'last.pt'}, then run the same command again" in message
    assert f"python -m pa3 evaluate --checkpoint {run / 'best.pt'}" in message and "--force" in message
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_the_previous_state_finishes_the_run_exactly(tmp_path, finished_run):
    """Following the first way forward (mv last.prev.pt last.pt) redoes the last epoch: same history."""
    run = _run_copy(tmp_path, finished_run)
    DAMAGE["random_bytes"](run / "last.pt")
    os.replace(run / "last.prev.pt", run / "last.pt")
    history = _tiny_fit(run)
    expected = json.loads((finished_run / "history.json").read_text())
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in history] == \
        [{k: v for k, v in row.items() if k != "seconds"} for row in expected]
    assert checkpoint.load_checkpoint(run / "last.prev.pt")["epoch"] == 1  # kept again


def test_last_pt_missing_beside_last_prev_pt_is_refused(tmp_path, finished_run):
    """A stop between save_checkpoint's two renames leaves last.prev.pt alone: never a silent restart."""
    run = _run_copy(tmp_path, finished_run)
    (run / "last.pt").unlink()
    with pytest.raises(BadFileError, match=r"last.pt does not exist .*Intact: last.prev.pt"):
        _tiny_fit(run)


def test_starting_over_deletes_the_damaged_run(tmp_path, finished_run):
    run = _run_copy(tmp_path, finished_run)
    _folder(run / "last.pt")
    history = _tiny_fit(run, epochs=1, resume=False)
    assert len(history) == 1 and (run / "last.pt").is_file() and not (run / "last.prev.pt").exists()


def test_a_deleted_run_file_is_rewritten_without_retraining(tmp_path, finished_run):
    """What RUN_FILE_FIX promises: delete the damaged file and train again; a finished run is not retrained."""
    run = _run_copy(tmp_path, finished_run)
    for name in ("metrics.json", "history.json", "config.json"):
        (run / name).unlink()

    class NoTraining(nn.CrossEntropyLoss):
        def forward(self, *args):
            raise AssertionError("retrained a finished run")

    _tiny_fit(run, criterion=NoTraining())
    for name in ("metrics.json", "history.json", "config.json"):
        assert (run / name).read_text() == (finished_run / name).read_text()


# -- derived data: rebuilt with one line, equal to the original ----------------------------------

SIZE = (32, 64)


def _cache_file(name):
    def setup(tmp_path):
        root = _fake_root(tmp_path)
        dataset = CityscapesSegmentation(root, "train", size=SIZE, cache=True, cache_dir=tmp_path / "cache")

        def read():
            again = CityscapesSegmentation(root, "train", size=SIZE, cache=True, cache_dir=tmp_path / "cache")
            return [t.numpy().copy() for i in range(len(again)) for t in again.load_raw(i)]  # images and masks
        return dataset.cache_path / name, read
    return setup


def _class_frequencies(tmp_path):
    root = _fake_root(tmp_path)
    read = lambda: [class_frequencies(root, "train", size=SIZE, cache_dir=tmp_path / "cache")]  # noqa: E731
    read()
    return next((tmp_path / "cache").glob("*/class_frequencies.json")), read


def _synthetic_stamp(tmp_path):
    config = synthetic.SyntheticConfig(n_train=1, n_val=1, n_test=1, height=32, width=64)
    root = synthetic.generate(tmp_path / "syn", config, workers=1, progress=False)
    return root / synthetic.SYNTHETIC_STAMP, lambda: (synthetic.ensure_synthetic(root, config), synthetic.checksums(root))[1]


# derived file -> (setup(tmp_path) -> (file to damage, read it), what the line says)
DERIVED = {
    "cache images.npy": (_cache_file("images.npy"), "rebuilding it"),
    "cache masks.npy": (_cache_file("masks.npy"), "rebuilding it"),
    "cache manifest.json": (_cache_file("manifest.json"), "rebuilding it"),
    "class_frequencies.json": (_class_frequencies, "counting the pixels again"),
    "synthetic stamp pa3_synthetic.json": (_synthetic_stamp, "regenerating the synthetic set"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("derived", list(DERIVED))
def test_damaged_derived_data_is_rebuilt_with_one_line(derived, damage, tmp_path, capsys):
    setup, says = DERIVED[derived]
    path, read = setup(tmp_path)
    original = read()
    capsys.readouterr()
    DAMAGE[damage](path)
    rebuilt = read()
    lines = [line for line in capsys.readouterr().out.splitlines() if path.name in line]
    assert len(lines) == 1 and says in lines[0] and str(path.parent) in lines[0], lines
    if isinstance(original, dict):  # the synthetic set: {file: sha256 of its content}
        assert rebuilt == original
    else:
        assert all(np.array_equal(a, b) for a, b in zip(rebuilt, original, strict=True))
    assert path.is_file() and os.access(path, os.R_OK)


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_cli_evaluate_refuses_a_damaged_checkpoint_in_one_line(damage, tmp_path, capsys):
    path = _pa3_checkpoint(tmp_path)
    DAMAGE[damage](path)
    assert main(["evaluate", "--checkpoint", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint ") and err.count("\n") == 1 and str(path) in err, err
    assert "Traceback" not in err


def test_cli_train_on_a_run_with_a_truncated_last_pt(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PA3_CACHE", str(tmp_path / "cache"))
    root = make_fake_cityscapes(tmp_path / "data", {"train": 2, "val": 1}, size=(32, 64), extras=False)
    argv = ["train", "--data", str(root), "--run-dir", str(tmp_path / "run"), "--height", "32", "--width", "64",
            "--epochs", "2", "--batch-size", "2"]
    assert main(argv) == 0
    DAMAGE["truncated"](tmp_path / "run" / "last.pt")
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot resume: checkpoint {tmp_path / 'run' / 'last.pt'} is truncated")
    assert err.count("\n") == 1 and "Intact: last.prev.pt" in err and "Traceback" not in err


def test_python_dash_m_refuses_a_text_file_as_checkpoint(tmp_path):
    path = tmp_path / "passwd"
    DAMAGE["text"](tmp_path / "passwd")
    result = subprocess.run([sys.executable, "-m", "pa3", "evaluate", "--checkpoint", str(path)], cwd=REPO,
                            capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr == f"error: checkpoint {path} is not a PyTorch file: it is a text file, not what " \
                            f"torch.save writes. {checkpoint.CHECKPOINT_FIX}\n"


def test_load_model_refuses_a_pretrained_backbone_file_as_checkpoint(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(nn.Conv2d(3, 4, 1).state_dict(), path)
    with pytest.raises(BadFileError, match=r"resnet.pth is not a pa3 checkpoint: it holds no 'model' weights"):
        checkpoint.load_model(path)
