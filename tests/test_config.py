"""Tests of pa3.config: TrainConfig round trips, refuses what cannot run, and decides what may resume."""
import pytest

from pa3.config import TrainConfig, check_resumable, upgrade_config_dict


def test_config_round_trip_and_unknown_keys():
    config = TrainConfig(lr=0.01, class_weights=[1, 2])
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown TrainConfig field.*'lrate'"):
        TrainConfig.from_dict({"lrate": 0.1})
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="cosine")


def test_accumulation_steps_must_split_the_batch():
    with pytest.raises(ValueError, match=r"accumulation_steps=3 does not split batch_size=8.*\[1, 2, 4, 8\]"):
        TrainConfig(batch_size=8, accumulation_steps=3)


def test_runs_saved_before_new_config_fields_still_resume(tmp_path):
    """A run folder written before accumulation_steps/checkpointing existed resumes with their defaults."""
    config = TrainConfig(model="tiny", epochs=3)
    old = {k: v for k, v in config.to_dict().items() if k not in ("accumulation_steps", "activation_checkpointing")}
    check_resumable(old, config, tmp_path / "last.pt")
    with pytest.raises(ValueError, match="accumulation_steps: saved 1, now 2"):
        check_resumable(old, TrainConfig(model="tiny", epochs=3, accumulation_steps=2), tmp_path / "last.pt")


def test_only_resumable_fields_may_change_on_resume(tmp_path):
    saved = TrainConfig(model="fcn", epochs=3).to_dict()
    check_resumable(saved, TrainConfig(model="fcn", epochs=10, max_minutes=5.0), tmp_path / "last.pt")  # longer: fine
    with pytest.raises(ValueError, match=r"cannot resume .*last.pt.*lr: saved 0.001, now 0.01.*--force"):
        check_resumable(saved, TrainConfig(model="fcn", epochs=3, lr=0.01), tmp_path / "last.pt")


def test_a_config_saved_before_a_rename_loads_under_the_new_name():
    saved = {k: v for k, v in TrainConfig(activation_checkpointing=True).to_dict().items()
             if k != "activation_checkpointing"}
    saved["checkpointing"] = True  # config.json and checkpoints written before the rename
    assert TrainConfig.from_dict(saved).activation_checkpointing
    assert upgrade_config_dict(saved) == TrainConfig(activation_checkpointing=True).to_dict()
