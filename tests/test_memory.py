"""Tests of pa3.memory: the saved-activation count (meta device == real CPU, fp32 and bf16 autocast), every
model under every GPU profile within its memory target, and the refusal before training on a GPU that is
too small (its memory query monkeypatched, so it runs on the CPU)."""
import dataclasses

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pa3 import memory
from pa3.config import TrainConfig
from pa3.engine import fit
from pa3.losses import build_loss
from pa3.memory import HEADROOM, InsufficientMemoryError, count_saved_tensors, estimate_memory
from pa3.models import MODELS, build_model, checkpoint_blocks
from pa3.costs import GPUS
from pa3.profiles import PROFILES

GPU_PROFILES = [name for name, profile in PROFILES.items() if profile.gpu]


def real_cpu_count(name, size, autocast_dtype=None):
    """Bytes autograd saves in one training forward + CE of a real model on the CPU (batch 2)."""
    torch.manual_seed(0)
    model = build_model(name, 19).train()
    images, masks = torch.randn(2, 3, *size), torch.randint(0, 19, (2, *size))
    with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        return count_saved_tensors(model, images, masks, build_loss("ce", 19))


@pytest.mark.parametrize("name", ["fcn", "unet"])
def test_meta_count_equals_real_cpu_count(name):
    """The estimate's count (meta device, no arithmetic) is byte for byte what a real CPU forward saves."""
    estimate = estimate_memory(name, 2, (64, 128), "fp32")
    assert estimate.activations == real_cpu_count(name, (64, 128)).total > 0


@pytest.mark.parametrize("name", ["fcn", "unet"])
def test_low_precision_count_matches_cpu_autocast(name):
    """Under autocast activations are 2-byte and autocast's weight copies are kept: the estimate's cast
    model + weight copies matches what real bf16 autocast saves within 0.1 %."""
    estimate = estimate_memory(name, 2, (64, 128), "bf16")
    real = real_cpu_count(name, (64, 128), torch.bfloat16).total
    assert estimate.activations == pytest.approx(real, rel=1e-3)
    full = {p: estimate_memory(name, 2, (512, 1024), p).activations for p in ("bf16", "fp32")}
    assert 0.5 < full["bf16"] / full["fp32"] < 0.6  # 2-byte activations, fp32 loss, weight copies


def test_estimate_parts_and_message():
    estimate = estimate_memory("fcn", 4, (64, 128))
    params = sum(p.numel() for p in build_model("fcn", 19).parameters()) * 4
    assert estimate.gradients == params and estimate.optimizer == 2 * params  # fp32 gradients, Adam's 2 moments
    assert estimate.total == sum(getattr(estimate, k) for k in ("weights", "gradients", "optimizer", "activations",
                                                                "workspace"))
    assert str(estimate).startswith("fcn 64x128, 4 images per forward, fp32: ")
    with pytest.raises(ValueError, match="precision='fp8'; choose one of fp32, fp16, bf16"):
        estimate_memory("fcn", 1, (64, 128), "fp8")


def test_checkpointing_counts_kept_inputs_and_one_recomputed_block():
    model = build_model("unet_aspp", 19, dropout=0.0).to("meta").train()
    images, masks = torch.empty(2, 3, 64, 128, device="meta"), torch.zeros(2, 64, 128, dtype=torch.long, device="meta")
    saved = count_saved_tensors(model, images, masks, build_loss("ce", 19).to("meta"), checkpoint_blocks(model))
    plain = count_saved_tensors(model, images, masks, build_loss("ce", 19).to("meta"))
    assert saved.total == plain.total and plain.inside == ()
    assert len(saved.inside) == len(checkpoint_blocks(model)) and saved.outside < plain.outside
    assert saved.checkpointed == saved.outside + max(saved.inside) < plain.total
    full = estimate_memory("unet_aspp", 2, (512, 1024), "fp16")
    checkpointed = estimate_memory("unet_aspp", 2, (512, 1024), "fp16", activation_checkpointing=True)
    assert checkpointed.activations < 0.7 * full.activations and checkpointed.weights == full.weights


@pytest.mark.parametrize("profile_name", GPU_PROFILES)
def test_every_model_fits_its_profiles_gpu(profile_name):
    """Each model's budget under a GPU profile fits HEADROOM of that GPU's memory, by pa3's estimate."""
    from pa3.costs import training_memory

    profile = PROFILES[profile_name]
    target = HEADROOM * GPUS[profile.gpu].memory_gib
    for name in MODELS:
        estimate = training_memory(profile, name)
        assert estimate.gib <= target, f"{profile_name}: {estimate} exceeds {target:.1f} GiB"


@pytest.mark.parametrize("profile_name, model, bigger", [
    ("colab_report", "unet", dict(batch=8)), ("colab_report", "deeplabv3", dict(batch=8)),
    ("colab_report", "resnet101_aspp", dict(batch=8)),
    ("colab_report", "unet_aspp", dict(batch=2, activation_checkpointing=False)),
    ("full", "unet_aspp", dict(batch=8)), ("colab", "unet_aspp", dict(batch=8)),
    ("camvid_gpu", "unet_aspp", dict(batch=8)),
])
def test_profile_splits_are_needed(profile_name, model, bigger):
    """The profiles split a batch (or checkpoint) only where the next larger setting does not fit."""
    profile = PROFILES[profile_name]
    config = profile.config_for(model)
    setting = dict(batch=config.batch_size // config.accumulation_steps, activation_checkpointing=config.activation_checkpointing)
    setting.update(bigger)
    gpu = GPUS[profile.gpu]
    estimate = estimate_memory(model, setting["batch"], (config.height, config.width), gpu.precision,
                               setting["activation_checkpointing"])
    assert estimate.gib > HEADROOM * gpu.memory_gib


def unet_config(**kwargs):
    values = dict(model="unet", height=512, width=1024, batch_size=8, device="cpu", amp="off")
    values.update(kwargs)
    return TrainConfig(**values)


def test_refusal_names_estimate_device_memory_and_a_fitting_setting(monkeypatch):
    assert memory.check_fits(unet_config(), torch.device("cpu"), 19, "fp32") is None  # a CPU: nothing to check
    monkeypatch.setattr(memory, "device_memory", lambda device: 14.7 * 2**30)  # a T4
    cuda = torch.device("cuda", 0)
    with pytest.raises(InsufficientMemoryError) as error:
        memory.check_fits(unet_config(), cuda, 19, "fp16")
    message = str(error.value)
    estimate = estimate_memory("unet", 8, (512, 1024), "fp16")
    assert message.startswith(f"unet will not fit on cuda:0 (14.7 GiB): pa3's estimate is {estimate} ")
    assert "Fix: set accumulation_steps=2 in the TrainConfig (--accumulation-steps 2 on the command line)" in message
    fitting = unet_config(accumulation_steps=2)
    assert memory.check_fits(fitting, cuda, 19, "fp16").gib < 14.7
    with pytest.raises(InsufficientMemoryError, match=r"accumulation_steps=4 and activation_checkpointing=True"):
        memory.check_fits(dataclasses.replace(fitting, model="unet_aspp"), cuda, 19, "fp16")
    monkeypatch.setattr(memory, "device_memory", lambda device: 2**30)
    with pytest.raises(InsufficientMemoryError, match="nothing fits at 512x1024.*smaller height/width"):
        memory.check_fits(unet_config(), cuda, 19, "fp16")


def test_fit_refuses_before_training(monkeypatch, tmp_path):
    """fit stops before the first step (no run folder written) when the estimate exceeds the GPU's memory."""
    monkeypatch.setattr(memory, "device_memory", lambda device: 4 * 2**30)
    data = TensorDataset(torch.zeros(8, 3, 32, 32), torch.zeros(8, 32, 32, dtype=torch.long))
    loader = DataLoader(data, batch_size=8)
    model = build_model("unet", 19)
    with pytest.raises(InsufficientMemoryError, match=r"unet will not fit on cpu \(4.0 GiB\).*Fix: set accumulation_"):
        fit(model, loader, loader, unet_config(), tmp_path / "run", criterion=nn.CrossEntropyLoss(), num_classes=19)
    assert not (tmp_path / "run").exists()
