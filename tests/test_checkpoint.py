"""Tests of pa3.checkpoint: what best.pt and last.pt hold, atomic saves that keep the previous file, and
refusals of files that are not pa3 checkpoints. (Resuming a run is tested through fit in test_engine.py.)"""
import errno
from pathlib import Path

import pytest
import torch
from torch import nn

from pa3.checkpoint import (RESUME_KEYS, Progress, best_state, load_checkpoint, load_model, previous_path,
                            save_checkpoint, training_state)
from pa3.config import TrainConfig
from pa3.files import BadFileError
from pa3.models import build_model


def _states(model, config, progress):
    optimizer = torch.optim.Adam(model.parameters())
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return best_state(model, config, 19, progress), training_state(model, optimizer, None, scaler, config, 19, progress)


def test_best_and_last_hold_what_resume_and_evaluation_read(tmp_path):
    model, config = build_model("fcn", 19), TrainConfig(model="fcn")
    progress = Progress(epoch=2, step_in_epoch=0, global_step=40, history=[{"epoch": 1}, {"epoch": 2}],
                        best_metrics={"best_epoch": 2, "miou": 0.25})
    best, last = _states(model, config, progress)
    assert best["epoch"] == 2 and best["metrics"]["miou"] == 0.25 and "optimizer" not in best
    assert set(RESUME_KEYS) <= set(last) and last["global_step"] == 40 and last["rng_states"] is None
    save_checkpoint(best, tmp_path / "best.pt")
    rebuilt = load_model(tmp_path / "best.pt", num_classes=19, model_name="fcn")
    assert not rebuilt.training
    assert all(torch.equal(a, b) for a, b in zip(rebuilt.state_dict().values(), model.state_dict().values()))
    with pytest.raises(BadFileError, match="holds a 'fcn' model, not 'unet'"):
        load_model(tmp_path / "best.pt", model_name="unet")
    checkpoint = load_checkpoint(tmp_path / "best.pt")
    assert load_model(tmp_path / "best.pt", checkpoint=checkpoint).name == "fcn"


def test_keep_previous_keeps_exactly_one_older_copy(tmp_path):
    path = tmp_path / "last.pt"
    for step in range(3):
        save_checkpoint({"step": step}, path, keep_previous=True)
    assert previous_path(path) == tmp_path / "last.prev.pt"
    assert torch.load(path)["step"] == 2 and torch.load(previous_path(path))["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.prev.pt", "last.pt"]


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"step": 1}, path)

    def disk_full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match=f"could not write last.pt in folder {tmp_path}.*No space left"):
        save_checkpoint({"step": 2}, path, keep_previous=True)
    monkeypatch.undo()
    assert torch.load(path)["step"] == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_weights_that_do_not_fit_name_the_model(tmp_path):
    save_checkpoint(best_state(build_model("fcn", 19), TrainConfig(model="fcn"), 19, Progress()), tmp_path / "b.pt")
    with pytest.raises(BadFileError, match="'fcn' model with 19 classes"):
        load_checkpoint(tmp_path / "b.pt", model=nn.Conv2d(3, 19, 1))


def test_pickled_callable_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "hook": print}, path)  # a pickled callable: weights_only refuses it
    with pytest.raises(BadFileError, match=r"evil.pt holds pickled Python objects \(code\).*from a source you trust"):
        load_checkpoint(path)
    torch.save({"weights": torch.zeros(1)}, path)
    with pytest.raises(BadFileError, match="not a pa3 checkpoint"):
        load_checkpoint(path)
