"""Tests of pa3.train, the one wiring path from a TrainConfig to a trained run folder: the CLI and the
report's experiments both go through it, so the same settings give the same run either way."""
import dataclasses
import json

import pytest

from helpers import make_fake_cityscapes, small_profile
from pa3 import experiments
from pa3.cli import main
from pa3.config import TrainConfig
from pa3.train import class_weights_for, datasets, train


@pytest.fixture()
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("PA3_CACHE", str(tmp_path / "cache"))
    return make_fake_cityscapes(tmp_path / "cs", {"train": 4, "val": 3}, size=(64, 128))


def test_cli_and_experiment_train_the_same_run(root, tmp_path):
    """`pa3 train` with an experiment's settings writes the same config.json and the same metrics."""
    profile = small_profile("default", root, tmp_path / "runs", height=32, width=64, epochs=1, max_steps_per_epoch=2,
                            batch_size=2)
    folder = experiments.run_experiment("weighted", profile)
    cli_run = tmp_path / "cli"
    assert main(["train", "--data", str(root), "--height", "32", "--width", "64", "--batch-size", "2",
                 "--epochs", "1", "--max-steps-per-epoch", "2", "--loss", "weighted_ce", "--lr-schedule", "poly",
                 "--amp", "cpu_bf16", "--threads", "1",
                 "--run-dir", str(cli_run)]) == 0
    config = json.loads((folder / "config.json").read_text())
    assert json.loads((cli_run / "config.json").read_text()) == config
    assert config["class_weights"] == [round(w, 6) for w in config["class_weights"]]  # rounded on both paths
    assert json.loads((cli_run / "metrics.json").read_text()) == json.loads((folder / "metrics.json").read_text())


def test_datasets_and_class_weights_follow_the_config(root):
    config = TrainConfig(model="fcn", height=32, width=64, data_root=str(root), loss="weighted_ce")
    train_set, val_set = datasets(dataclasses.replace(config, val_limit=2))
    assert (len(train_set), len(val_set)) == (4, 2) and train_set.size == val_set.size == (32, 64)
    weights = class_weights_for(config)
    assert len(weights) == 19 and weights == [round(w, 6) for w in weights] and min(weights) == 0.0  # absent classes


def test_train_refuses_weighting_without_a_weighted_loss_and_a_size_the_model_cannot_take(root, tmp_path):
    with pytest.raises(ValueError, match=r"class weighting \(--weighting median\) needs loss 'weighted_ce'"):
        train(TrainConfig(model="fcn", height=32, width=64, data_root=str(root)), tmp_path / "run", weighting="median")
    with pytest.raises(ValueError, match="divisible by 32"):
        train(TrainConfig(model="fcn", height=30, width=64, data_root=str(root)), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_pretrained_weights_are_named_in_one_line_and_offline_falls_back_to_scratch(tmp_path, monkeypatch, capsys):
    """GPU profiles ask for torchvision's weights: a local state dict is used (and named); offline, the run
    says so in one line and starts from scratch, with the same initial weights as a run that asked for none."""
    import urllib.error

    import torch
    import torchvision

    from pa3 import rng
    from pa3.models import build_model
    from pa3.train import build_with_weights

    torch.manual_seed(1)
    resnet = torchvision.models.resnet50(weights=None)
    path = tmp_path / "resnet50.pth"
    torch.save(resnet.state_dict(), path)
    model = build_with_weights(TrainConfig(model="resnet50_deconv", pretrained=str(path)), 11)
    assert torch.equal(model.backbone.conv1.weight, resnet.conv1.weight)
    assert capsys.readouterr().out == f"resnet50_deconv: starts from the local weights file {path}\n"

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))  # nothing cached
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    model = build_with_weights(TrainConfig(model="resnet50_deconv", pretrained=True, seed=3), 11)
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and line.startswith("resnet50_deconv: offline, so it starts from scratch instead "
                                                     "of torchvision's pretrained weights ResNet50_Weights.IMAGENET1K_V1")
    assert str(tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth") in line
    rng.seed_everything(3)
    scratch = build_model("resnet50_deconv", 11)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), scratch.state_dict().values()))
