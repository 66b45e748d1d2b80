"""What a profile's runs cost on a GPU: training memory (``pa3.memory``'s estimate) and hours (from FLOPs).

A profile that names a GPU (``Profile.gpu``, a key of ``GPUS``) holds settings whose training memory fits
``pa3.memory.HEADROOM`` of that GPU (tests/test_memory.py checks every model); ``resource_table`` lists memory
and hours for docs/colab.md.
"""
from dataclasses import dataclass

from pa3 import labels
from pa3.memory import HEADROOM, estimate_config
from pa3.models import MODELS, count_flops
from pa3.profiles import PROFILES


@dataclass(frozen=True)
class GPU:
    """A GPU a profile is planned for: its memory, and the throughput assumed for time estimates."""
    name: str
    memory_gib: float  # total memory as torch.cuda.get_device_properties reports it
    precision: str  # the autocast dtype pa3.device.resolve_amp("auto") picks on it
    tflops: float  # ASSUMED sustained training throughput, in FlopCounterMode FLOPs (2 per multiply-add)


GPUS = {
    # Colab's free T4 (14.7 GiB, fp16): 6 TFLOP/s, ~9 % of peak, what mixed-precision ResNet-50 training reaches.
    "T4": GPU("Tesla T4", 14.7, "fp16", 6.0),
    # A100 40 GB (bf16): 50 TFLOP/s, ~16 % of peak, below NVIDIA's tuned ResNet-50 training (~66 TFLOP/s).
    "A100": GPU("A100 40GB", 39.5, "bf16", 50.0),
}


def training_memory(profile, model):
    """``pa3.memory``'s MemoryEstimate of training ``model`` under ``profile`` on the profile's GPU."""
    config = profile.config_for(model)
    precision = GPUS[profile.gpu].precision if profile.gpu else "fp32"
    return estimate_config(config, labels.num_classes(config.label_space), precision)


def estimate_hours(profile, model, gpu, frames=None):
    """Hours to train ``model`` under ``profile`` on ``gpu`` (a key of GPUS), validation included.

    Forward FLOPs per image x 3 for a training step (backward costs about two forwards; x 4 with activation
    checkpointing, which runs the blocks forward again), + one forward per validation frame and epoch, over the
    GPU's assumed throughput. Data loading is not counted: read these as lower bounds.
    """
    config = profile.config_for(model)
    frames = frames or profile.frames
    forward = count_flops(model, labels.num_classes(config.label_space), (config.height, config.width))
    steps = config.steps_per_epoch(frames["train"] // config.batch_size)
    val = frames["val"] if config.val_limit is None else min(config.val_limit, frames["val"])
    per_epoch = steps * config.batch_size * forward * (4 if config.activation_checkpointing else 3) + val * forward
    return config.epochs * per_epoch / (GPUS[gpu].tflops * 1e12) / 3600


def resource_table(profiles=("colab", "camvid_gpu", "full", "colab_report"), gpus=tuple(GPUS)):
    """Per profile and model: the batch split, estimated GPU memory (GiB) and estimated hours per GPU.

    Returns:
        list of dicts {profile, gpu, model, batch, checkpointing, memory_gib, target_gib, hours_<gpu>...}.
    """
    rows = []
    for name in profiles:
        profile = PROFILES[name]
        for model in MODELS:
            config = profile.config_for(model)
            row = {"profile": name, "gpu": profile.gpu, "model": model,
                   "batch": f"{config.accumulation_steps} x {config.batch_size // config.accumulation_steps}",
                   "activation_checkpointing": config.activation_checkpointing,
                   "memory_gib": round(training_memory(profile, model).gib, 1),
                   "target_gib": round(HEADROOM * GPUS[profile.gpu].memory_gib, 1)}
            row.update({f"hours_{gpu}": round(estimate_hours(profile, model, gpu), 1) for gpu in gpus})
            rows.append(row)
    return rows
