"""Tests of pa3.train, the one wiring path from a TrainConfig to a trained run folder: the CLI and the
report's experiments both go through it, so the same settings give the same run either way."""
import dataclasses
import json

import pytest

from helpers import make_fake_cityscapes
from pa3 import experiments
from pa3.cli import main
from pa3.config import TrainConfig
from pa3.profiles import PROFILES, Budget
from pa3.train import class_weights_for, datasets, train


@pytest.fixture()
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("PA3_CACHE", str(tmp_path / "cache"))
    return make_fake_cityscapes(tmp_path / "cs", {"train": 4, "val": 3}, size=(64, 128))


def test_cli_and_experiment_train_the_same_run(root, tmp_path):
    """`pa3 train` with an experiment's settings writes the same config.json and the same metrics."""
    profile = dataclasses.replace(PROFILES["default"], data_root=str(root), height=32, width=64,
                                  budgets={"default": Budget(1, 2, 2)}, runs_dir=str(tmp_path / "runs"))
    folder = experiments.run_experiment("weighted", profile)
    cli_run = tmp_path / "cli"
    assert main(["train", "--data", str(root), "--height", "32", "--width", "64", "--batch-size", "2",
                 "--epochs", "1", "--max-steps-per-epoch", "2", "--loss", "weighted_ce", "--lr-schedule", "poly",
                 "--run-dir", str(cli_run)]) == 0
    config = json.loads((folder / "config.json").read_text())
    assert json.loads((cli_run / "config.json").read_text()) == config
    assert config["class_weights"] == [round(w, 6) for w in config["class_weights"]]  # rounded on both paths
    assert json.loads((cli_run / "metrics.json").read_text()) == json.loads((folder / "metrics.json").read_text())


def test_datasets_and_class_weights_follow_the_config(root):
    config = TrainConfig(model="fcn", height=32, width=64, data_root=str(root), loss="weighted_ce")
    train_set, val_set = datasets(config, val_limit=2)
    assert (len(train_set), len(val_set)) == (4, 2) and train_set.size == val_set.size == (32, 64)
    weights = class_weights_for(config)
    assert len(weights) == 19 and weights == [round(w, 6) for w in weights] and min(weights) == 0.0  # absent classes


def test_train_refuses_weighting_without_a_weighted_loss_and_a_size_the_model_cannot_take(root, tmp_path):
    with pytest.raises(ValueError, match=r"class weighting \(--weighting median\) needs loss 'weighted_ce'"):
        train(TrainConfig(model="fcn", height=32, width=64, data_root=str(root)), tmp_path / "run", weighting="median")
    with pytest.raises(ValueError, match="divisible by 32"):
        train(TrainConfig(model="fcn", height=30, width=64, data_root=str(root)), tmp_path / "run")
    assert not (tmp_path / "run").exists()
