"""Profiles and the report's experiments: train once into a run folder, reuse it afterwards."""
import dataclasses
import json
import os

import numpy as np
import pytest

from pa3 import experiments, labels
from pa3.notebook_setup import get_profile
from pa3.profiles import PROFILES
from helpers import make_fake_cityscapes, small_profile


@pytest.fixture()
def tiny_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("PA3_CACHE", str(tmp_path / "cache"))
    root = make_fake_cityscapes(tmp_path / "cs", {"train": 4, "val": 10}, size=(64, 128))
    return small_profile("default", root, tmp_path / "runs", height=32, width=64, epochs=1, max_steps_per_epoch=2,
                         batch_size=2)


def test_profile_selection(monkeypatch):
    monkeypatch.setenv("PA3_PROFILE", "full")
    monkeypatch.setenv("PA3_DATA", "/somewhere")
    prof = get_profile()
    config = prof.config
    assert (prof.name, config.data_root, config.height, config.width) == ("full", "/somewhere", 512, 1024)
    default = get_profile("default")
    assert default.config_for("fcn").max_steps_per_epoch == 20 and default.config_for("fcn").model == "fcn"
    assert default.config_for("resnet50_deconv").max_steps_per_epoch == 40
    assert (default.config.amp, default.config.threads) == ("cpu_bf16", 1)
    monkeypatch.setenv("PA3_RUNS", "/drive/runs")
    monkeypatch.setenv("PA3_THREADS", "3")
    monkeypatch.setenv("PA3_AMP", "OFF")
    assert (get_profile().runs_dir, get_profile().config.threads, get_profile().config.amp) == ("/drive/runs", 3, "off")
    monkeypatch.setenv("PA3_THREADS", "two")
    with pytest.raises(ValueError, match="PA3_THREADS='two'"):
        get_profile()
    monkeypatch.setenv("PA3_THREADS", "1")
    monkeypatch.setenv("PA3_AMP", "fast")
    with pytest.raises(ValueError, match="PA3_AMP='fast'"):
        get_profile()
    with pytest.raises(ValueError, match="choose one of"):
        get_profile("fast")


def test_every_experiment_names_a_registered_model_and_loss():
    from pa3.losses import LOSSES
    from pa3.models import MODELS

    for name, exp in experiments.EXPERIMENTS.items():
        assert exp.model in MODELS and exp.loss in LOSSES, name
    with pytest.raises(ValueError, match="baseline"):
        experiments.check_experiment("basline")


def test_weighted_experiment_stores_its_class_weights(tiny_profile):
    config = experiments.make_config("weighted", tiny_profile)
    assert config.loss == "weighted_ce" and len(config.class_weights) == 19
    assert experiments.make_config("baseline", tiny_profile).class_weights is None


def test_run_once_then_reuse(tiny_profile, capsys):
    folder = experiments.run_experiment("baseline", tiny_profile)
    assert experiments.is_complete("baseline", tiny_profile)
    stamp = (folder / "best.pt").stat().st_mtime_ns
    experiments.run_experiment("baseline", tiny_profile)  # reused, not retrained
    assert (folder / "best.pt").stat().st_mtime_ns == stamp
    assert "using the finished run" in capsys.readouterr().out
    history, metrics = experiments.load_run("baseline", tiny_profile)
    assert len(history) == 1 and len(metrics["iou"]) == 19
    assert list(metrics["iou"]) == labels.class_names("trainId")
    assert all(isinstance(v, float) for v in metrics["iou"].values())  # NaN for absent classes, not None
    changed = dataclasses.replace(tiny_profile, models={"fcn": dict(epochs=2)})
    assert not experiments.is_complete("baseline", changed)  # another config is not "finished"
    # what changes a result lives in config.json, so is_complete sees it: precision, threads, the val limit
    saved = json.loads((folder / "config.json").read_text())
    assert (saved["amp"], saved["threads"], saved["val_limit"]) == ("cpu_bf16", 1, None)
    for change in (dict(amp="off"), dict(threads=2), dict(val_limit=5)):
        other = dataclasses.replace(tiny_profile, config=dataclasses.replace(tiny_profile.config, **change))
        assert not experiments.is_complete("baseline", other), change


def test_report_images_are_test_positions_1_2_4_9(tiny_profile):
    images, masks, ids = experiments.report_images(tiny_profile)
    assert ids == [1, 2, 4, 9] and images.shape == (4, 3, 32, 64) and masks.shape == (4, 32, 64)
    assert experiments.figure_split(tiny_profile) == "val"  # not a pa3 synthetic root: real test labels absent
    assert np.isfinite(images.numpy()).all()


def test_run_saved_before_new_config_fields_is_still_complete(tiny_profile):
    """A run folder whose config.json predates accumulation_steps/checkpointing is reused, not retrained."""
    folder = experiments.run_experiment("baseline", tiny_profile)
    saved = json.loads((folder / "config.json").read_text())
    for key in ("accumulation_steps", "activation_checkpointing"):
        del saved[key]
    (folder / "config.json").write_text(json.dumps(saved))
    assert experiments.is_complete("baseline", tiny_profile)


def test_gpu_profiles_split_batches_in_the_config():
    colab = PROFILES["colab_report"]
    config = experiments.make_config("unet_aspp", colab)
    assert (config.batch_size, config.accumulation_steps, config.activation_checkpointing) == (8, 4, True)
    assert experiments.make_config("unet", colab).accumulation_steps == 2
    assert experiments.make_config("baseline", colab).accumulation_steps == 1
    assert experiments.make_config("unet_aspp", PROFILES["full"]).accumulation_steps == 2
    assert (colab.gpu, PROFILES["full"].gpu, PROFILES["default"].gpu) == ("T4", "A100", None)


@pytest.mark.parametrize("name", ["colab", "camvid_gpu"])
def test_one_colab_session_per_notebook(name):
    """Under the Colab profiles every notebook trains within one session: <= 3 T4-hours by estimate_hours."""
    from pa3.costs import estimate_hours

    def notebook_hours(profile):  # an experiment shared by notebooks counts in each, as each runs alone
        return {notebook: sum(estimate_hours(profile, experiments.EXPERIMENTS[n].model, "T4") for n in names)
                for notebook, names in experiments.NOTEBOOKS.items()}

    hours = notebook_hours(PROFILES[name])
    assert set(hours) == set(experiments.NOTEBOOKS)
    assert all(0 < h <= 3.0 for h in hours.values()), hours
    assert notebook_hours(PROFILES["colab_report"])["04_deeper_models"] > 100  # the report's schedule


def test_camvid_profiles_score_camvid_classes_and_leave_heavy_models_to_a_gpu(monkeypatch):
    cpu, gpu = PROFILES["camvid"], PROFILES["camvid_gpu"]
    assert cpu.config.label_space == gpu.config.label_space == "camvid" and cpu.dataset == gpu.dataset == "camvid"
    assert experiments.make_config("unet", cpu).height % 32 == 0 and gpu.config.height % 32 == gpu.config.width % 32 == 0
    assert cpu.figures_dir.endswith("camvid") and experiments.run_dir("baseline", cpu).parent.name == "camvid"
    assert experiments.make_config("weighted", cpu).early_stopping == 8
    assert experiments.make_config("unet", cpu).early_stopping is None
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    trained = [name for name, e in experiments.EXPERIMENTS.items() if cpu.trains(e.model)]
    assert trained == ["baseline", "unet", "dice", "weighted", "augmented"]  # notebooks 01-03 and U-Net
    assert all(gpu.trains(e.model) for e in experiments.EXPERIMENTS.values())
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert all(cpu.trains(e.model) for e in experiments.EXPERIMENTS.values())


def test_estimate_hours_from_flops_and_assumed_throughput():
    from pa3.models import count_flops
    from pa3.costs import GPUS, estimate_hours

    colab = PROFILES["colab_report"]
    forward = count_flops("fcn", 19, (512, 1024))
    per_epoch = (2975 // 8) * 8 * 3 * forward + 500 * forward  # training steps (fwd + bwd) + validation
    assert estimate_hours(colab, "fcn", "T4") == pytest.approx(60 * per_epoch / (GPUS["T4"].tflops * 1e12) / 3600)
    assert estimate_hours(colab, "fcn", "A100") < estimate_hours(colab, "fcn", "T4")
    # checkpointing recomputes the forward: 4 passes instead of 3
    plain = dataclasses.replace(colab, models={"unet_aspp": dict(accumulation_steps=4)})
    ratio = estimate_hours(colab, "unet_aspp", "T4") / estimate_hours(plain, "unet_aspp", "T4")
    assert ratio == pytest.approx((2968 * 4 + 500) / (2968 * 3 + 500))


def test_default_profile_keeps_gpu_numerics_it_was_not_calibrated_for_off(monkeypatch):
    import torch

    from pa3.notebook_setup import setup_notebook

    from pa3.device import resolve_amp

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("PA3_AMP", raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    threads = torch.get_num_threads()
    try:
        profile = setup_notebook("default")
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        config = experiments.make_config("baseline", profile)
        assert config.amp == "cpu_bf16" and resolve_amp(config.amp, torch.device("cuda")) is None  # fp32 on a GPU
        assert "PA3_AMP" not in os.environ  # nothing travels through the environment
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
