"""TrainConfig: everything that defines a training run, saved in every run folder and checkpoint.

Two runs with equal configs (apart from ``RESUMABLE_FIELDS``) give the same result; ``fit`` resumes a run
only under such a config (``check_resumable``), and ``pa3.experiments.is_complete`` reuses a finished run only
when its config.json equals the config asked for. A profile (``pa3.profiles``) is a base TrainConfig plus
per-model changes; the command line (``python -m pa3 train``) builds one from its flags.
"""
import dataclasses

from pa3 import labels
from pa3.device import AMP_MODES

# Fields that may change when a run is resumed; any other difference would change the result.
RESUMABLE_FIELDS = ("epochs", "max_minutes", "num_workers", "early_stopping")
LR_SCHEDULES = ("none", "poly")


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run; saved in every run folder and checkpoint."""

    model: str = "fcn"
    label_space: str = "trainId"
    height: int = 128
    width: int = 256
    batch_size: int = 8
    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.0
    loss: str = "ce"  # "ce" | "weighted_ce" | "dice" | "ce_dice"
    class_weights: list | None = None  # one weight per class, for "weighted_ce"
    dice_weight: float = 1.0
    augment: bool = False
    lr_schedule: str = "none"  # "none" | "poly" (power 0.9, updated every step)
    early_stopping: int | None = None  # patience in epochs without a better val mIoU
    max_minutes: float | None = None  # time budget; the run stops cleanly and can be resumed
    amp: str = "auto"  # "auto" | "cpu_bf16" | "off" | "bf16" | "fp16": see pa3.device.resolve_amp
    channels_last: str | bool = "auto"  # "auto" = on (CPU and CUDA)
    seed: int = 0
    num_workers: int = 0
    pretrained: bool | str = False  # False, True/"imagenet", or a path to a pa3 checkpoint
    device: str = "auto"  # "auto" = cuda if available else cpu
    deterministic: bool = True
    data_root: str | None = None
    max_steps_per_epoch: int | None = None  # cut epochs short (quick CPU profiles)
    sync_bn: bool = False  # SyncBatchNorm under torch.distributed
    compile: bool = False  # torch.compile the model
    accumulation_steps: int = 1  # split each batch into this many micro-batches, one optimiser step per batch
    activation_checkpointing: bool = False  # recompute the model's blocks in backward (less memory)
    val_limit: int | None = None  # validate on the first n val frames (None = all)
    threads: int | None = None  # torch's CPU threads while training (None = as set); CPU results depend on it

    def __post_init__(self):
        labels.check_space(self.label_space)
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp={self.amp!r}; choose one of {AMP_MODES}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule={self.lr_schedule!r}; choose one of {LR_SCHEDULES}")
        if self.class_weights is not None:
            self.class_weights = [float(w) for w in self.class_weights]
        if self.accumulation_steps < 1 or self.batch_size % self.accumulation_steps:
            divisors = [k for k in range(1, self.batch_size + 1) if self.batch_size % k == 0]
            raise ValueError(f"accumulation_steps={self.accumulation_steps} does not split "
                             f"batch_size={self.batch_size} into equal micro-batches; choose one of {divisors}")

    def steps_per_epoch(self, batches):
        """Optimiser steps in one epoch, given the ``batches`` one pass over the training data yields (the
        training loader drops the last partial batch): all of them, or ``max_steps_per_epoch`` if fewer."""
        return batches if self.max_steps_per_epoch is None else min(batches, self.max_steps_per_epoch)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Build a config from a dict (e.g. config.json); unknown keys are an error, renamed ones are taken under
        their new names, missing keys default."""
        values = {RENAMED_FIELDS.get(key, key): value for key, value in values.items()}
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - valid)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}; valid fields are {sorted(valid)}")
        return cls(**values)


RENAMED_FIELDS = {"checkpointing": "activation_checkpointing"}  # old name -> name now


def upgrade_config_dict(saved):
    """A saved config dict (config.json, a checkpoint's "config") with renamed fields under their new names and
    the default of every TrainConfig field added since it was written: runs from before a new field compare
    equal to a config that leaves it at its default (such fields default to the behaviour that produced them)."""
    renamed = {RENAMED_FIELDS.get(key, key): value for key, value in saved.items()}
    return {**TrainConfig().to_dict(), **renamed}


def check_resumable(saved, config, path):
    """Raise ValueError unless a run saved with config dict ``saved`` may continue under ``config``."""
    now = config.to_dict()
    saved = upgrade_config_dict(saved)
    differing = [f"{k}: saved {saved.get(k)!r}, now {now[k]!r}" for k in now
                 if k not in RESUMABLE_FIELDS and saved.get(k) != now[k]]
    if differing:
        raise ValueError(
            f"cannot resume {path}: the run was started with a different config ({'; '.join(differing)}). "
            f"Use a new run_dir, or resume=False (--force on the command line) to start over.")
