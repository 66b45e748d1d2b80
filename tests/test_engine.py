"""Tests of pa3.engine: training lowers the loss, the run folder, exact resume, failure handling.

Everything runs on a tiny 2-layer conv net and 16 random 16x16 images whose masks are a function of the
image (so the task is learnable), on the CPU with one thread.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import tiny_fit
from pa3 import checkpoint, engine
from pa3.checkpoint import load_checkpoint
from pa3.config import TrainConfig
from pa3.engine import fit
from pa3.inference import evaluate, predict, predict_sliding

REPO = Path(__file__).resolve().parents[1]
NUM_CLASSES = 3



@pytest.fixture(scope="module")
def tiny():
    """tests/tiny_fit.py's names (TinyNet, tiny_loaders, tiny_config, run, ...) and its path."""
    return {**vars(tiny_fit), "path": Path(tiny_fit.__file__)}


def state_equal(a, b):
    assert a.keys() == b.keys()
    return all(torch.equal(a[k], b[k]) for k in a)


def ce():
    return nn.CrossEntropyLoss(ignore_index=255)


def test_overfit_one_batch_lowers_loss(tiny):
    torch.manual_seed(0)
    model = tiny["TinyNet"]()
    model.features[3].p = 0.0  # no dropout: plain memorisation
    batch = next(iter(tiny["tiny_loaders"](batch_size=8)[0]))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    first = ce()(model(batch[0]), batch[1]).item()
    result = engine.train_one_epoch(engine.Training(model, ce(), optimizer, torch.device("cpu")), [batch] * 30, epoch=1)
    last = ce()(model(batch[0]), batch[1]).item()
    assert result["steps"] == 30 and not result["interrupted"]
    assert last < 0.3 * first


def test_fit_writes_run_folder(tiny, tmp_path):
    model = tiny["TinyNet"]()
    train, val = tiny["tiny_loaders"]()
    history = fit(model, train, val, tiny["tiny_config"](epochs=2, lr_schedule="poly"), tmp_path / "run",
                  criterion=ce(), num_classes=NUM_CLASSES)
    run = tmp_path / "run"
    for name in ("config.json", "history.csv", "history.json", "metrics.json", "last.pt", "best.pt"):
        assert (run / name).is_file(), name
    assert not list(run.glob("*.tmp*"))
    assert [row["epoch"] for row in history] == [1, 2]
    keys = {"epoch", "train_loss", "val_loss", "pixel_acc", "mean_acc", "miou", "lr", "seconds",
            "iou_class_0", "iou_class_1", "iou_class_2"}
    assert keys <= set(history[0])
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert history[1]["lr"] < 1e-2  # poly schedule
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["best_epoch"] in (1, 2)
    assert metrics["miou"] == max(row["miou"] for row in history)
    assert json.loads((run / "history.json").read_text())[1]["epoch"] == 2
    assert TrainConfig.from_dict(json.loads((run / "config.json").read_text())).epochs == 2
    checkpoint = load_checkpoint(run / "last.pt")
    assert checkpoint["epoch"] == 2 and checkpoint["num_classes"] == NUM_CLASSES
    assert checkpoint["model_name"] == "tiny" and checkpoint["global_step"] == 8


def test_a_killed_write_leaves_no_temporary_behind(tiny, tmp_path):
    """A process killed inside files.write_atomically leaves <name>.tmp<pid>; the next fit removes it."""
    (tmp_path / "last.pt.tmp4242").write_bytes(b"half a checkpoint")
    train, val = tiny["tiny_loaders"]()
    fit(tiny["TinyNet"](), train, val, tiny["tiny_config"](epochs=1), tmp_path, criterion=ce(), num_classes=3)
    assert not list(tmp_path.glob("*.tmp*")) and (tmp_path / "last.pt").is_file()


def test_resume_continues_history(tiny, tmp_path):
    train, val = tiny["tiny_loaders"]()
    fit(tiny["TinyNet"](), train, val, tiny["tiny_config"](epochs=2), tmp_path, criterion=ce(), num_classes=3)
    history = fit(tiny["TinyNet"](), train, val, tiny["tiny_config"](epochs=4), tmp_path, criterion=ce(),
                  num_classes=3)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert len(json.loads((tmp_path / "history.json").read_text())) == 4


def test_time_budget_then_resume_equals_uninterrupted(tiny, tmp_path):
    reference = tiny["run"](tmp_path / "reference")
    # max_minutes ~ 0: stops after the first step of epoch 1 (mid-epoch), saving last.pt
    tiny["run"](tmp_path / "split", max_minutes=1e-9)
    checkpoint = load_checkpoint(tmp_path / "split" / "last.pt")
    assert (checkpoint["epoch"], checkpoint["step_in_epoch"]) == (0, 1)
    assert json.loads((tmp_path / "split" / "metrics.json").read_text())["status"] == "interrupted"
    resumed = tiny["run"](tmp_path / "split")
    assert state_equal(reference.state_dict(), resumed.state_dict())
    ref_history = json.loads((tmp_path / "reference" / "history.json").read_text())
    new_history = json.loads((tmp_path / "split" / "history.json").read_text())
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(ref_history) == drop(new_history)


def test_sigint_mid_epoch_then_resume_equals_uninterrupted(tiny, tmp_path):
    reference = tiny["run"](tmp_path / "reference")

    class InterruptingLoss(nn.Module):  # sends SIGINT to this process at the 6th step (epoch 2, step 2)
        def __init__(self):
            super().__init__()
            self.ce, self.calls = ce(), 0

        def forward(self, logits, target):
            self.calls += torch.is_grad_enabled()  # count training steps only
            if self.calls == 6:
                os.kill(os.getpid(), signal.SIGINT)
            return self.ce(logits, target)

    torch.manual_seed(123)
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN under nohup / a background job
    fit(tiny["TinyNet"](), *tiny["tiny_loaders"](), tiny["tiny_config"](), tmp_path / "split",
        criterion=InterruptingLoss(), num_classes=3)
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    checkpoint = load_checkpoint(tmp_path / "split" / "last.pt")
    assert (checkpoint["epoch"], checkpoint["step_in_epoch"]) == (1, 2)
    resumed = tiny["run"](tmp_path / "split")
    assert state_equal(reference.state_dict(), resumed.state_dict())


def start_until_step_6(tiny, run_dir, marker):
    """Run the tiny script in a subprocess until it reaches training step 6 (epoch 2, step 2).

    Returns (process (stdout and stderr piped), command, env); the same command without the marker
    arguments resumes the run.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
    command = [sys.executable, str(tiny["path"]), str(run_dir)]
    process = subprocess.Popen(command + [str(marker), "6"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the subprocess never reached step 6"
        time.sleep(0.05)
    return process, command, env


def test_sigkill_then_resume_equals_uninterrupted(tiny, tmp_path):
    """A run killed with SIGKILL mid-epoch 2 resumes from the end of epoch 1 and ends bit-identical."""
    reference = tiny["run"](tmp_path / "reference")
    run_dir = tmp_path / "killed"
    process, command, env = start_until_step_6(tiny, run_dir, tmp_path / "marker")
    process.kill()  # SIGKILL: no chance to save anything
    process.communicate()
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 1  # only the end-of-epoch-1 checkpoint
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    resumed = load_checkpoint(run_dir / "last.pt")
    assert resumed["epoch"] == 3
    assert state_equal(reference.state_dict(), resumed["model"])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny, tmp_path):
    class NanLoss(nn.Module):  # finite for epoch 1 (4 steps), NaN at epoch 2 step 2
        def __init__(self):
            super().__init__()
            self.ce, self.calls = ce(), 0

        def forward(self, logits, target):
            self.calls += torch.is_grad_enabled()  # count training steps only
            loss = self.ce(logits, target)
            return loss * float("nan") if self.calls == 6 else loss

    train, val = tiny["tiny_loaders"]()
    with pytest.raises(RuntimeError, match=r"loss is nan at epoch 2 step 2 \(lr 0.01\).*last.pt.*--lr"):
        fit(tiny["TinyNet"](), train, val, tiny["tiny_config"](), tmp_path, criterion=NanLoss(), num_classes=3)
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint["epoch"] == 1 and checkpoint["step_in_epoch"] == 0
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values() if t.is_floating_point())


def test_resume_with_different_config_is_refused(tiny, tmp_path):
    train, val = tiny["tiny_loaders"]()
    fit(tiny["TinyNet"](), train, val, tiny["tiny_config"](epochs=1), tmp_path, criterion=ce(), num_classes=3)
    with pytest.raises(ValueError, match=r"lr: saved 0.01, now 0.001.*resume=False.*--force"):
        fit(tiny["TinyNet"](), train, val, tiny["tiny_config"](epochs=2, lr=1e-3), tmp_path, criterion=ce(),
            num_classes=3)
    # epochs may change; resume=False starts over
    history = fit(tiny["TinyNet"](), train, val, tiny["tiny_config"](epochs=1, lr=1e-3), tmp_path,
                  criterion=ce(), num_classes=3, resume=False)
    assert len(history) == 1


def test_failed_checkpoint_write_leaves_no_tmp_and_keeps_previous(tiny, tmp_path, monkeypatch):
    train, val = tiny["tiny_loaders"]()
    fit(tiny["TinyNet"](), train, val, tiny["tiny_config"](epochs=1), tmp_path, criterion=ce(), num_classes=3)
    before = {name: (tmp_path / name).read_bytes() for name in ("last.pt", "best.pt")}

    def disk_full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    # the first write of epoch 2 fails: best.pt when its mIoU improved (it depends on the initial weights), else last.pt
    with pytest.raises(OSError, match=f"(best|last).pt in folder {tmp_path}.*No space left"):
        fit(tiny["TinyNet"](), train, val, tiny["tiny_config"](epochs=2), tmp_path, criterion=ce(),
            num_classes=3)
    assert not list(tmp_path.glob("*.tmp*"))
    assert {name: (tmp_path / name).read_bytes() for name in before} == before


def test_early_stopping(tiny, tmp_path):
    train, val = tiny["tiny_loaders"]()
    config = tiny["tiny_config"](epochs=10, lr=0.0, early_stopping=2)  # lr 0, no BN: mIoU never improves
    history = fit(nn.Conv2d(3, 3, 1), train, val, config, tmp_path, criterion=ce(), num_classes=3)
    assert len(history) == 3
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "early_stopped"


class Perfect(nn.Module):
    """Logits that put all mass on the true class (the mask travels in the image's first channel)."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return nn.functional.one_hot(x[:, 0].long(), NUM_CLASSES).permute(0, 3, 1, 2).float() + self.dummy


def test_predict_and_evaluate_perfect_model():
    masks = torch.randint(0, NUM_CLASSES, (6, 32, 32))
    images = masks[:, None].float().expand(-1, 3, -1, -1).clone()
    targets = masks.clone()
    targets[:, 0, :] = 255
    model = Perfect()
    assert predict(model, images).shape == (6, 32, 32)
    assert predict(model, images).dtype == torch.int64
    assert torch.equal(predict(model, images), masks)
    loader = DataLoader(TensorDataset(images, targets), batch_size=4)
    metrics = evaluate(model, loader, NUM_CLASSES, criterion=ce())
    assert metrics["miou"] == 1.0 and metrics["pixel_acc"] == 1.0
    assert metrics["loss"] > 0
    windowed = evaluate(model, loader, NUM_CLASSES, sliding_window=(16, 16))
    assert windowed["miou"] == 1.0


def test_predict_sliding_matches_full_for_pointwise_model():
    model = nn.Conv2d(3, 4, 1)
    images = torch.randn(2, 3, 40, 56)
    with torch.no_grad():
        full, tiled = model(images), predict_sliding(model, images, (16, 32))
    assert tiled.shape == full.shape
    assert torch.allclose(tiled, full, atol=1e-6)


def test_resume_after_every_step_with_augmentation_equals_uninterrupted(tiny, tmp_path, monkeypatch):
    """The real loader (seeded generator) and TrainPreset's random augmentations resume exactly too."""
    from helpers import make_fake_cityscapes

    from pa3.data import CityscapesSegmentation, make_loader
    from pa3.transforms import TrainPreset

    monkeypatch.setenv("PA3_CACHE", str(tmp_path / "cache"))
    root = make_fake_cityscapes(tmp_path / "data", splits={"train": 6, "val": 2}, size=(32, 64))
    train_set = CityscapesSegmentation(root, "train", size=(32, 64), transforms=TrainPreset())
    val_set = CityscapesSegmentation(root, "val", size=(32, 64))

    def run(run_dir, **kwargs):
        torch.manual_seed(0)
        model = tiny["TinyNet"](num_classes=19)
        train, val = make_loader(train_set, 2, train=True), make_loader(val_set, 2, train=False)
        config = tiny["tiny_config"](epochs=2, augment=True, **kwargs)
        fit(model, train, val, config, run_dir, criterion=ce(), num_classes=19)
        return model, load_checkpoint(Path(run_dir) / "last.pt")

    reference, _ = run(tmp_path / "reference")
    calls = 0
    while True:  # stop after one step, resume, stop after the next step, ... (3 steps per epoch)
        model, checkpoint = run(tmp_path / "stepwise", max_minutes=1e-9)
        calls += 1
        if checkpoint["epoch"] == 2:
            break
    assert calls == 6
    assert state_equal(reference.state_dict(), model.state_dict())


def test_sigterm_mid_epoch_stops_cleanly_then_resume_equals_uninterrupted(tiny, tmp_path):
    """SIGTERM (what a cluster or Colab sends before it kills) saves the step it is at; resuming ends
    bit-identical to a run that was never stopped."""
    reference = tiny["run"](tmp_path / "reference")
    run_dir = tmp_path / "terminated"
    process, command, env = start_until_step_6(tiny, run_dir, tmp_path / "marker")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()
    assert "stopped (SIGTERM)" in out.decode() and "Run the same command again" in out.decode()
    checkpoint = load_checkpoint(run_dir / "last.pt")
    assert checkpoint["epoch"] == 1 and checkpoint["step_in_epoch"] >= 2  # mid-epoch 2, not the epoch start
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "interrupted"
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    assert state_equal(reference.state_dict(), load_checkpoint(run_dir / "last.pt")["model"])


def test_best_is_written_before_last(tiny, tmp_path, monkeypatch):
    """A kill between the two end-of-epoch writes must never leave a last.pt whose best epoch has no best.pt."""
    order = []
    save = checkpoint.save_checkpoint
    monkeypatch.setattr(checkpoint, "save_checkpoint",
                        lambda state, path, **kw: (order.append(Path(path).name), save(state, path, **kw)))
    train, val = tiny["tiny_loaders"]()
    fit(tiny["TinyNet"](), train, val, tiny["tiny_config"](epochs=1), tmp_path, criterion=ce(), num_classes=3)
    assert order == ["best.pt", "last.pt"]


def test_force_restart_clears_the_old_run(tiny, tmp_path):
    train, val = tiny["tiny_loaders"]()
    fit(tiny["TinyNet"](), train, val, tiny["tiny_config"](epochs=2), tmp_path, criterion=ce(), num_classes=3)
    # starting over: a run stopped before its first checkpoint leaves nothing of the old run behind
    fit(tiny["TinyNet"](), train, val, tiny["tiny_config"](epochs=1, max_minutes=1e-9), tmp_path,
        criterion=ce(), num_classes=3, resume=False)
    assert not (tmp_path / "best.pt").exists() and json.loads((tmp_path / "history.json").read_text()) == []
    assert load_checkpoint(tmp_path / "last.pt")["step_in_epoch"] == 1


def test_overfit_registered_model_on_embedded_scenes(tmp_path):
    """The report's baseline FCN memorises one batch of the synthetic street scenes in 30 Adam steps."""
    from pa3.data import CityscapesSegmentation
    from pa3.losses import build_loss
    from pa3.models import build_model
    from pa3.synthetic import SyntheticConfig, generate

    root = generate(tmp_path / "syn", SyntheticConfig(n_train=4, n_val=1, n_test=1, height=64, width=128),
                    workers=1, progress=False)
    dataset = CityscapesSegmentation(root, "train", size=(64, 128), cache=False)
    images, masks = map(torch.stack, zip(*(dataset[i] for i in range(4))))
    torch.manual_seed(0)
    model = build_model("fcn", dataset.num_classes)
    criterion = build_loss("ce", dataset.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():  # training mode (batch statistics) before and after, on equal terms
        first = criterion(model(images), masks).item()
    result = engine.train_one_epoch(engine.Training(model, criterion, optimizer, torch.device("cpu")), [(images, masks)] * 30,
                                    epoch=1)
    with torch.no_grad():
        last = criterion(model.train()(images), masks).item()
    assert result["steps"] == 30 and last < 0.3 * first, (first, last)


def test_evaluate_writes_official_pngs_in_the_same_pass(tmp_path):
    """evaluate with label_png_writer writes one labelId PNG per image, at the label's resolution, holding the
    argmax that the metrics counted (upsampled); a shuffled loader is refused (names would not match)."""
    import numpy as np
    from PIL import Image

    from helpers import make_fake_cityscapes
    from pa3 import labels
    from pa3.data import CityscapesSegmentation, make_loader
    from pa3.models import build_model
    from pa3.official_eval import label_png_writer

    root = make_fake_cityscapes(tmp_path / "cs", {"val": 3})
    torch.manual_seed(0)
    model = build_model("fcn", 19).eval()
    full = CityscapesSegmentation(root, "val", size=None, cache=False)  # 64x128, the labels' own size
    loader = make_loader(full, 2, train=False)
    metrics = evaluate(model, loader, on_batch=label_png_writer(loader, tmp_path / "preds"))
    written = sorted((tmp_path / "preds").glob("*_pred_labelIds.png"))
    assert [p.name for p in written] == [f"{n}_pred_labelIds.png" for n in full.names]
    images = torch.stack([full[i][0] for i in range(3)])
    expected = labels.to_label_ids(predict(model, images).numpy(), "trainId")
    assert np.array_equal(np.stack([np.asarray(Image.open(p)) for p in written]), expected)
    assert 0 <= metrics["miou"] <= 1

    small = CityscapesSegmentation(root, "val", size=(32, 64), cache=False)
    loader = make_loader(small, 2, train=False)
    evaluate(model, loader, on_batch=label_png_writer(loader, tmp_path / "small"))
    assert np.asarray(Image.open(tmp_path / "small" / written[0].name)).shape == (64, 128)
    with pytest.raises(ValueError, match="reads the dataset in order"):
        label_png_writer(make_loader(small, 2, train=True), tmp_path / "shuffled")


def test_default_step_is_the_plain_training_step(tiny):
    """With the defaults (no accumulation) a step is exactly forward, loss, backward, Adam step: bit for bit
    what train_one_epoch did before gradient accumulation existed (dropout and BatchNorm included)."""
    torch.manual_seed(0)
    model, plain = tiny["TinyNet"](), tiny["TinyNet"]()
    plain.load_state_dict(model.state_dict())
    batches = list(tiny["tiny_loaders"]()[0])
    optimizer, plain_optimizer = torch.optim.Adam(model.parameters()), torch.optim.Adam(plain.parameters())
    torch.manual_seed(1)
    engine.train_one_epoch(engine.Training(model, ce(), optimizer, torch.device("cpu")), batches, epoch=1)
    torch.manual_seed(1)
    plain.train()
    for images, masks in batches:
        loss = ce()(plain(images).float(), masks)
        plain_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        plain_optimizer.step()
    assert state_equal(model.state_dict(), plain.state_dict())


@pytest.mark.parametrize("optimizer_class", [torch.optim.SGD, torch.optim.Adam])
def test_gradient_accumulation_equals_one_big_batch(optimizer_class):
    """k micro-batches of 8/k images give the update of one batch of 8, up to float rounding. The model has
    no BatchNorm (which would normalise each micro-batch by its own statistics) and no pixel is ignored
    (each micro-batch's cross-entropy is then a mean over as many pixels as the batch's share)."""
    torch.manual_seed(0)
    images, masks = torch.randn(8, 3, 16, 16), torch.randint(0, NUM_CLASSES, (8, 16, 16))
    reference = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, NUM_CLASSES, 1))
    results = {}
    for k in (1, 2, 4, 8):
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, NUM_CLASSES, 1))
        model.load_state_dict(reference.state_dict())
        optimizer = optimizer_class(model.parameters(), lr=0.05)
        result = engine.train_one_epoch(engine.Training(model, ce(), optimizer, torch.device("cpu"), accumulation_steps=k),
                                        [(images, masks)] * 3, epoch=1)
        results[k] = (model.state_dict(), result)
    big, big_result = results[1]
    for k in (2, 4, 8):
        state, result = results[k]
        assert result["steps"] == 3  # a step is one batch, however many micro-batches
        assert result["loss_sum"] == pytest.approx(big_result["loss_sum"], rel=1e-6)
        for name in big:
            torch.testing.assert_close(state[name], big[name], rtol=1e-5, atol=1e-6)
    assert not torch.equal(big["0.weight"], reference.state_dict()["0.weight"])


def test_accumulation_resume_equals_uninterrupted(tiny, tmp_path):
    """With micro-batches a step is still one batch: scheduler, step counters and mid-epoch resume agree."""
    reference = tiny["run"](tmp_path / "reference", accumulation_steps=2, lr_schedule="poly")
    tiny["run"](tmp_path / "split", max_minutes=1e-9, accumulation_steps=2, lr_schedule="poly")
    assert load_checkpoint(tmp_path / "split" / "last.pt")["step_in_epoch"] == 1
    resumed = tiny["run"](tmp_path / "split", accumulation_steps=2, lr_schedule="poly")
    assert state_equal(reference.state_dict(), resumed.state_dict())
    assert load_checkpoint(tmp_path / "reference" / "last.pt")["global_step"] == 12  # 3 epochs x 4 batches


def test_checkpointing_needs_a_pa3_model(tiny, tmp_path):
    train, val = tiny["tiny_loaders"]()
    with pytest.raises(ValueError, match="TinyNet names no blocks to checkpoint.*activation_checkpointing=False"):
        fit(tiny["TinyNet"](), train, val, tiny["tiny_config"](activation_checkpointing=True), tmp_path, criterion=ce(),
            num_classes=3)
