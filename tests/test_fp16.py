"""The T4's training path (fp16 autocast + GradScaler) run on the CPU: the same code a Colab GPU runs, with
the device as the only switch. A short fit lowers the loss; a step whose gradients overflow is skipped and
the loss scale drops; the scaler's state is saved in last.pt and a killed fp16 run resumes bit-identical;
evaluation and prediction run under fp16."""
import json
import math
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import tiny_fit
from pa3.checkpoint import load_checkpoint
from pa3.engine import Training, train_one_epoch
from pa3.inference import evaluate, predict
from test_engine import start_until_step_6, state_equal

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny():
    return {**vars(tiny_fit), "path": Path(tiny_fit.__file__)}


def test_fp16_fit_lowers_the_loss_and_saves_the_scaler(tmp_path):
    model = tiny_fit.run(tmp_path / "run", amp="fp16", epochs=4)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history[-1]["train_loss"] < 0.8 * history[0]["train_loss"]
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["config"]["amp"] == "fp16"
    assert last["scaler"]["scale"] > 0 and last["scaler"]["_growth_tracker"] >= 0  # a real GradScaler state
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp16 only inside autocast


def test_overflowing_step_is_skipped_and_the_scale_drops():
    """A step whose gradient holds inf is not applied (Adam's step count and the weights stay); the scale
    halves; the next finite step trains again."""
    torch.manual_seed(0)
    model = tiny_fit.TinyNet()
    calls = []

    def poison(grad):  # the 2nd backward pass overflows, as an fp16 gradient does on a T4
        calls.append(1)
        return torch.full_like(grad, math.inf) if len(calls) == 2 else grad

    model.classifier.weight.register_hook(poison)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    loader = DataLoader(tiny_fit.tiny_data(n=12), batch_size=4)  # 3 steps
    scales, weights, steps = [], [], []

    def after_step(*args):  # record what each step left
        scales.append(scaler.get_scale())
        weights.append(model.classifier.weight.detach().clone())
        steps.append(int(optimizer.state[model.classifier.weight]["step"]) if optimizer.state else 0)

    original_update = scaler.update
    scaler.update = lambda *a, **k: (original_update(*a, **k), after_step())
    train_one_epoch(Training(model, nn.CrossEntropyLoss(ignore_index=255), optimizer, CPU, scaler=scaler,
                             amp_dtype=torch.float16), loader, 1)
    assert scales == [2.0**10, 2.0**9, 2.0**9]  # the overflow halves the scale (growth needs 2000 good steps)
    assert steps == [1, 1, 2]  # Adam skipped the poisoned step
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])
    assert all(torch.isfinite(w).all() for w in weights)


def test_killed_fp16_run_resumes_bit_identical(tiny, tmp_path, monkeypatch):
    """SIGKILL mid-epoch 2 of an fp16 run: the resume (scaler state from last.pt) ends where an uninterrupted
    fp16 run ends, weights and loss scale alike."""
    reference = tiny_fit.run(tmp_path / "reference", amp="fp16")
    monkeypatch.setenv("TINY_AMP", "fp16")
    run_dir = tmp_path / "killed"
    process, command, env = start_until_step_6(tiny, run_dir, tmp_path / "marker")
    process.kill()
    process.communicate()
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 1
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    resumed = load_checkpoint(run_dir / "last.pt")
    expected = load_checkpoint(tmp_path / "reference" / "last.pt")
    assert resumed["epoch"] == 3 and resumed["config"]["amp"] == "fp16"
    assert state_equal(reference.state_dict(), resumed["model"])
    assert resumed["scaler"] == expected["scaler"]


def test_evaluate_and_predict_under_fp16():
    torch.manual_seed(0)
    masks = torch.randint(0, 3, (4, 16, 16))
    images = torch.nn.functional.one_hot(masks, 3).permute(0, 3, 1, 2).float()  # class = the hot channel
    model = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3)[:, :, None, None])
        model.bias.zero_()
    dtypes = []
    model.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    assert torch.equal(predict(model, images, amp="fp16"), masks)
    metrics = evaluate(model, DataLoader(TensorDataset(images, masks), batch_size=2), 3, amp="fp16")
    assert metrics["miou"] == 1.0 and dtypes == [torch.float16] * 3
