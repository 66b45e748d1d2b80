"""Training and evaluation: a TrainConfig dataclass and plain functions (train_one_epoch, evaluate, fit).

In the style of torchvision's ``references/segmentation``: no callbacks, no trainer class. ``fit`` trains
with Adam (the report's optimiser), validates every epoch, and keeps a run folder::

    run_dir/config.json    the TrainConfig
    run_dir/history.csv    one row per epoch (also history.json)
    run_dir/metrics.json   validation metrics of the best epoch (by mIoU)
    run_dir/last.pt        everything needed to resume (model, optimiser, scheduler, RNG states, history)
    run_dir/last.prev.pt   the last.pt before it: a damaged last.pt never loses the run
    run_dir/best.pt        model weights of the best epoch (for evaluation and figures)

Runs survive interruptions: ``fit`` saves ``last.pt`` at the end of every epoch and, on a time budget,
SIGTERM or Ctrl-C, in the middle of one. Calling ``fit`` again with the same run folder continues where
it stopped, and on a CPU the result is bit-for-bit the one of an uninterrupted run. How: every epoch
starts from RNG states that depend only on (seed, epoch), so the shuffle order and the random
augmentations of an epoch are fixed in advance; a mid-epoch resume replays the data order up to the saved
step, then restores the RNG states saved at that step.
"""
import contextlib
import csv
import dataclasses
import json
import math
import os
import random
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from pa3 import labels, memory
from pa3.device import AMP_MODES, autocast, resolve_amp, resolve_device, use_channels_last
from pa3.files import BadFileError, load_torch, remove

# Fields that may change when a run is resumed; any other difference would change the result.
RESUMABLE_FIELDS = ("epochs", "max_minutes", "num_workers", "early_stopping")
LR_SCHEDULES = ("none", "poly")
POLY_POWER = 0.9


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
    amp: str = "auto"  # "auto" | "off" | "bf16" | "fp16": see pa3.device.resolve_amp (bf16 on CPUs that have it)
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
    checkpointing: bool = False  # activation checkpointing of the model's blocks (pa3.models.set_checkpointing)

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

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Build a config from a dict (e.g. config.json); unknown keys are an error, missing keys default."""
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - valid)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}; valid fields are {sorted(valid)}")
        return cls(**values)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


# ----------------------------------------------------------------------------------------------------
# Seeds, devices, distributed


def seed_everything(seed):
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _epoch_seed(seed, epoch):
    return seed * 100_003 + epoch  # distinct for every (seed, epoch) pair in practice


def is_dist():
    return dist.is_available() and dist.is_initialized()


def is_main_process():
    """True on rank 0 (or without torch.distributed): the process that prints and writes files."""
    return not is_dist() or dist.get_rank() == 0


def setup_distributed(device="auto"):
    """Initialise torch.distributed when launched by torchrun (WORLD_SIZE > 1).

    Args:
        device: "auto" (one GPU per process when CUDA is available), "cpu" (gloo), or "cuda".
    Returns:
        (rank, world_size, local_rank, device); (0, 1, 0, resolve_device(device)) for a single process.
    """
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size <= 1:
        return 0, 1, 0, resolve_device(device)
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available() and str(device) != "cpu":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not is_dist():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), local_rank, device


def barrier():
    if is_dist():
        dist.barrier()


def unwrap(model):
    """The plain nn.Module inside a DistributedDataParallel and/or torch.compile wrapper."""
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def _is_prepared(model):
    return unwrap(model) is not model


def prepare_model(model, config, device):
    """Move a model to ``device`` and apply the config's speed settings.

    SyncBatchNorm (config.sync_bn, under torch.distributed on GPUs), activation checkpointing
    (config.checkpointing), channels_last memory format, DistributedDataParallel (when torch.distributed
    is initialised) and torch.compile (config.compile).
    Also sets cuDNN flags: deterministic if config.deterministic, else benchmark mode.
    """
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = config.deterministic
        torch.backends.cudnn.benchmark = not config.deterministic
    if config.sync_bn and (not is_dist() or device.type != "cuda") and is_main_process():
        print(f"note: --sync-bn has no effect here (it needs torchrun and CUDA; device {device.type}, "
              f"{'distributed' if is_dist() else 'one process'}): BatchNorm stays per process")
    if is_dist() and config.sync_bn and device.type == "cuda":  # SyncBatchNorm needs GPUs
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    if config.checkpointing:
        from pa3.models import set_checkpointing
        set_checkpointing(model)
    if use_channels_last(config.channels_last):
        model = model.to(memory_format=torch.channels_last)
    if is_dist():
        device_ids = [device.index] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if config.compile:
        model = torch.compile(model)
    return model


# ----------------------------------------------------------------------------------------------------
# RNG state (saved in checkpoints as tensors, lists and numbers so that weights_only loading accepts it)


def _loader_generators(loader):
    generators = [loader.generator, getattr(loader.sampler, "generator", None)]
    unique = []
    for g in generators:
        if g is not None and all(g is not u for u in unique):
            unique.append(g)
    return unique


def _rank():
    return dist.get_rank() if is_dist() else 0


def _seed_epoch(seed, epoch, loader):
    """Make the epoch's shuffle order, augmentations and dropout a function of (seed, epoch, rank) only.

    Under torchrun every rank draws its own augmentations and dropout (an offset per rank; rank 0 and a
    single process get the same seeds); the DistributedSampler's shuffle depends on (its seed, epoch) alone,
    so the ranks still split one permutation of the data between them.
    """
    epoch_seed = _epoch_seed(seed, epoch) + 1_000_003 * _rank()
    seed_everything(epoch_seed)
    for generator in _loader_generators(loader):
        generator.manual_seed(epoch_seed)
    if hasattr(loader.sampler, "set_epoch"):  # DistributedSampler
        loader.sampler.set_epoch(epoch)


def _get_rng_state(loader):
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_initialized() else None,  # this process's GPU
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "python": {"version": version, "state": list(py_state), "gauss_next": gauss_next},
        "loader": [g.get_state() for g in _loader_generators(loader)],
    }


def _gather_rng_states(loader):
    """Every rank's ``_get_rng_state``, in rank order (a list of one without torchrun); all ranks must call."""
    state = _get_rng_state(loader)
    if not is_dist():
        return [state]
    states = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states


def _set_rng_state(state, loader):
    # RNG states must be CPU byte tensors, whatever map_location the checkpoint was loaded with
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    for generator, saved in zip(_loader_generators(loader), state["loader"]):
        generator.set_state(saved.cpu())


# ----------------------------------------------------------------------------------------------------
# Checkpoints and run-folder files


def _write_atomically(path, write):
    """Call ``write(tmp_path)`` then rename onto ``path``; on failure remove tmp and keep the old file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if not isinstance(error, Exception):  # KeyboardInterrupt etc.: clean up, then let it through
            raise
        raise OSError(f"could not write {path.name} in run folder {path.parent}: {error}. "
                      f"The previous {path.name} (if any) is left intact; free disk space or choose "
                      f"another run folder.") from error


def _previous(path):
    """Where ``save_checkpoint(..., keep_previous=True)`` keeps the file it replaces: last.pt -> last.prev.pt."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(state, path, keep_previous=False):
    """torch.save ``state`` atomically (tmp file + os.replace).

    keep_previous: the file ``path`` held becomes ``<stem>.prev.pt`` (the one before that is deleted first,
    so at most two copies are on disk while the new one is written): a damaged ``path`` never loses the run.
    """
    path = Path(path)
    if not keep_previous or not path.exists():
        _write_atomically(path, lambda tmp: torch.save(state, tmp))
        return
    previous = _previous(path)
    previous.unlink(missing_ok=True)

    def write(tmp):
        torch.save(state, tmp)
        os.replace(path, previous)  # a stop right after this leaves last.prev.pt and no last.pt: fit refuses

    _write_atomically(path, write)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN (class absent) -> null, so the files are strict JSON
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path, data):
    text = json.dumps(_json_safe(data), indent=2)
    _write_atomically(path, lambda tmp: Path(tmp).write_text(text + "\n"))


def _write_history(run_dir, history):
    write_json(run_dir / "history.json", history)
    fields = list(history[0]) if history else ["epoch"]

    def write_csv(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(history)

    _write_atomically(run_dir / "history.csv", write_csv)


def _first_words(error, n=300):
    return " ".join(str(error).split())[:n]


CHECKPOINT_FIX = ("Pass a complete best.pt or last.pt written by pa3 (training writes them into its run folder): "
                  "wait for an unfinished copy or sync, restore a damaged file from a copy, or train again")
CHECKPOINT_KEYS = ("model", "model_name", "num_classes", "config")  # in every best.pt and last.pt


def load_checkpoint(path, model=None, map_location="cpu"):
    """Load a pa3 checkpoint safely (``torch.load(weights_only=True)``, via ``pa3.files.load_torch``).

    Args:
        path: a ``last.pt`` or ``best.pt`` written by ``fit``.
        model: optional nn.Module to load the weights into.
    Returns:
        the checkpoint dict ("model", "config", "model_name", "num_classes", "history", "epoch", ...).
    Raises:
        FileNotFoundError: nothing at ``path``.
        pa3.files.BadFileError: a folder, an empty, unreadable, truncated or damaged file, not a pa3
            checkpoint, pickled code, or weights that do not fit ``model``; the message says what to do.
    """
    path = Path(path)
    fix = CHECKPOINT_FIX
    if (path / "best.pt").is_file():  # a run folder given instead of its checkpoint
        fix = f"Pass the checkpoint in it: {path / 'best.pt'}"
    checkpoint = load_torch(path, "checkpoint", fix, map_location=map_location)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise BadFileError(path, "is not a pa3 checkpoint: it holds no 'model' weights", CHECKPOINT_FIX, "checkpoint")
    missing = [k for k in CHECKPOINT_KEYS if k not in checkpoint]
    if missing:
        raise BadFileError(path, f"is not a pa3 checkpoint: it has no {', '.join(map(repr, missing))} entry",
                           CHECKPOINT_FIX, "checkpoint")
    if model is not None:
        try:
            unwrap(model).load_state_dict(checkpoint["model"])
        except RuntimeError as error:
            raise BadFileError(
                path, f"holds a {checkpoint['model_name']!r} model with {checkpoint['num_classes']} classes, whose "
                f"weights do not fit the {type(unwrap(model)).__name__} given ({_first_words(error)})",
                f"Rebuild the model it holds with pa3.engine.load_model({str(path)!r})", "checkpoint") from error
    return checkpoint


def load_model(checkpoint_path, num_classes=None, model_name=None, map_location="cpu"):
    """Rebuild the model saved in a checkpoint (by name, via pa3.models.build_model) with its weights.

    Args:
        num_classes, model_name: optional expectations; a mismatch with the checkpoint is an error.
    Returns:
        the model in eval mode, on ``map_location``.
    """
    from pa3.models import build_model

    checkpoint = load_checkpoint(checkpoint_path, map_location=map_location)
    saved_name, saved_classes = checkpoint["model_name"], checkpoint["num_classes"]
    if model_name is not None and model_name != saved_name:
        raise BadFileError(checkpoint_path, f"holds a {saved_name!r} model, not {model_name!r}",
                           f"Use the checkpoint of a {model_name!r} run, or load this one with "
                           f"model_name={saved_name!r} (or none)", "checkpoint")
    if num_classes is not None and num_classes != saved_classes:
        raise BadFileError(checkpoint_path, f"holds a model with {saved_classes} classes, not {num_classes} "
                           f"(check --label-space: trainId has 19 classes, labelId 34)",
                           "Use a checkpoint trained in the label space you evaluate in", "checkpoint")
    model = build_model(saved_name, saved_classes, pretrained=False)
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise BadFileError(checkpoint_path, f"holds weights that do not fit pa3.models.build_model({saved_name!r}, "
                           f"{saved_classes}) ({_first_words(error)})",
                           "It was written by another version of pa3's models: retrain it", "checkpoint") from error
    return model.to(map_location).eval()


def upgrade_config_dict(saved):
    """A saved config dict (config.json, a checkpoint's "config") with the default of every TrainConfig field
    added since it was written: runs from before a new field compare equal to a config that leaves it at its
    default (such fields default to the behaviour that produced those runs)."""
    return {**TrainConfig().to_dict(), **saved}


def _check_resumable(saved, config, path):
    now = config.to_dict()
    saved = upgrade_config_dict(saved)
    differing = [f"{k}: saved {saved.get(k)!r}, now {now[k]!r}" for k in now
                 if k not in RESUMABLE_FIELDS and saved.get(k) != now[k]]
    if differing:
        raise ValueError(
            f"cannot resume {path}: the run was started with a different config ({'; '.join(differing)}). "
            f"Use a new run_dir, or resume=False (--force on the command line) to start over.")


RESUME_KEYS = ("optimizer", "scheduler", "scaler", "epoch", "step_in_epoch", "global_step", "loss_sum",
               "seconds_so_far", "history", "best_metrics")  # what last.pt holds beyond a best.pt


def _load_training_state(path, map_location="cpu"):
    checkpoint = load_checkpoint(path, map_location=map_location)
    missing = [k for k in RESUME_KEYS if k not in checkpoint]
    if missing:
        raise BadFileError(path, f"holds no training state to resume from (no {', '.join(map(repr, missing))}; a "
                                 f"best.pt holds weights only)", CHECKPOINT_FIX, "checkpoint")
    return checkpoint


def _ways_forward(run_dir):
    """Which other checkpoints of ``run_dir`` are intact, and what the user can do (for a damaged last.pt)."""
    last, previous, best = run_dir / "last.pt", _previous(run_dir / "last.pt"), run_dir / "best.pt"
    intact, damaged, ways = [], [], []
    for path in (previous, best):
        try:
            checkpoint = _load_training_state(path) if path == previous else load_checkpoint(path)
        except FileNotFoundError:
            continue
        except BadFileError as error:
            damaged.append(f"{path.name} {error.problem}")
            continue
        if path == previous:
            intact.append(f"{path.name} (the training state at epoch {checkpoint['epoch'] + 1} step "
                          f"{checkpoint['step_in_epoch']}, one save before last.pt)")
            ways.append(f"continue from that state: mv {path} {last}, then run the same command again")
        else:
            intact.append(f"{path.name} (the weights of epoch {checkpoint['epoch']}; it cannot continue training)")
            ways.append(f"evaluate those weights: python -m pa3 evaluate --checkpoint {path}")
    ways.append("start over: the same command with --force (fit(..., resume=False)), which deletes this run's "
                "checkpoints")
    return (f"Nothing was deleted. Intact: {', '.join(intact) or 'no other checkpoint of this run'}"
            + (f"; damaged too: {', '.join(damaged)}" if damaged else "") + ". Ways forward: " + "; or ".join(ways))


def _resume_checkpoint(run_dir, map_location):
    """``run_dir/last.pt`` checked for resuming; a damaged one is refused with the intact files and the ways forward."""
    last = run_dir / "last.pt"
    try:
        return _load_training_state(last, map_location)
    except (BadFileError, FileNotFoundError) as error:
        problem = getattr(error, "problem", "does not exist (pa3 was stopped while replacing it)")
        raise BadFileError(last, problem, _ways_forward(run_dir), "cannot resume: checkpoint") from error


# ----------------------------------------------------------------------------------------------------
# Training


def _class_names(label_space, num_classes):
    if num_classes == labels.num_classes(label_space):
        return labels.class_names(label_space)
    return [f"class_{i}" for i in range(num_classes)]


def _category_index(label_space, num_classes):
    if label_space is not None and num_classes == labels.num_classes(label_space):
        return labels.category_index(label_space)
    return None


def _make_scheduler(optimizer, config, steps_per_epoch):
    if config.lr_schedule != "poly":
        return None
    total = max(1, config.epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1.0 - step / total) ** POLY_POWER)


def to_device(images, masks, device, channels_last=False):
    """A loader's batch -> what the model and the loss take, on ``device``.

    uint8 batches (presets with ``normalize=False``: 5x fewer bytes to copy) are normalised there
    (``pa3.transforms.normalize``) and their masks widened to int64; float32 batches are only moved.
    Returns (image float32 (N, 3, H, W), mask int64 (N, H, W)).
    """
    from pa3.transforms import normalize

    non_blocking = device.type == "cuda"
    images = images.to(device, non_blocking=non_blocking)
    if images.dtype == torch.uint8:
        images = normalize(images)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, masks.to(device, non_blocking=non_blocking).long()


def _any_process(flag):
    """True if ``flag`` is true in any process (so that every process stops at the same step)."""
    if not is_dist():
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    value = torch.tensor(float(flag), device=device)
    dist.all_reduce(value)
    return value.item() > 0


def _sync_step(loss, stop):
    """(mean loss over processes as a float, whether any process asked to stop)."""
    if not is_dist():
        return loss.item(), stop
    values = torch.stack([loss.float(), torch.tensor(float(stop), device=loss.device)])
    dist.all_reduce(values)
    return values[0].item() / dist.get_world_size(), values[1].item() > 0


def _micro_batches(images, masks, accumulation_steps):
    """The batch as ``accumulation_steps`` micro-batches of (nearly) equal size; the batch itself when 1."""
    if accumulation_steps == 1:
        return [(images, masks)]
    size = math.ceil(len(images) / accumulation_steps)
    return list(zip(images.split(size), masks.split(size)))


def train_one_epoch(model, criterion, optimizer, loader, device, epoch, *, scheduler=None, scaler=None,
                    amp_dtype=None, channels_last=False, num_steps=None, start_step=0, loss_sum=0.0,
                    rng_state=None, should_stop=lambda: False, desc=None, accumulation_steps=1):
    """Train for one epoch (or until ``should_stop()``); the loss is checked for NaN/inf every step.

    A resumed epoch passes ``start_step`` (batches already done), ``loss_sum`` (their summed loss) and
    ``rng_state`` (saved at that step): the loader is replayed up to ``start_step`` so the data order
    and augmentations match an uninterrupted run, then the RNG states are restored.

    Gradient accumulation: with ``accumulation_steps`` k > 1 every batch of N images goes through the model
    as k micro-batches of N/k (less activation memory), each loss weighted by its share of the images and
    its gradients summed, then one optimiser step: a step is still one batch. That is the update of the
    whole batch for a loss that is a mean over images of equal weight (cross-entropy with the same number
    of valid pixels in every image); with ignored pixels each micro-batch's cross-entropy averages over
    its own valid pixels, and batch Dice becomes micro-batch Dice. BatchNorm normalises each micro-batch
    with its own statistics (and updates its running statistics k times), so with BatchNorm in training
    mode the update differs from the big batch's: fewer images per statistic.

    Returns:
        dict(loss_sum, steps (done in this epoch, in total), interrupted (bool)).
    """
    model.train()
    num_steps = len(loader) if num_steps is None else num_steps
    batches = iter(loader)
    for _ in range(start_step):
        next(batches)
    if rng_state is not None:
        _set_rng_state(rng_state, loader)
    step, interrupted = start_step, False
    bar_kwargs = {} if is_main_process() else {"disable": True}  # TQDM_DISABLE=1 silences rank 0
    with tqdm(total=num_steps, initial=start_step, desc=desc or f"epoch {epoch}", **bar_kwargs) as bar:
        while step < num_steps:
            images, masks = to_device(*next(batches), device, channels_last)
            optimizer.zero_grad(set_to_none=True)
            loss = None
            for part_images, part_masks in _micro_batches(images, masks, accumulation_steps):
                with autocast(device, amp_dtype):
                    logits = model(part_images)  # (n, C, H, W), bf16 under CPU autocast
                part_loss = criterion(logits.float(), part_masks)  # the loss (softmax, Dice sums) in fp32
                if accumulation_steps > 1:  # the batch's mean: each micro-batch weighs its share of the images
                    part_loss = part_loss * (len(part_images) / len(images))
                (scaler.scale(part_loss) if scaler is not None and scaler.is_enabled() else part_loss).backward()
                loss = part_loss.detach() if loss is None else loss + part_loss.detach()
            loss_value, stop = _sync_step(loss, should_stop())
            step += 1
            if not math.isfinite(loss_value):
                lr = optimizer.param_groups[0]["lr"]
                raise NonFiniteLossError(f"loss is {loss_value} at epoch {epoch} step {step} (lr {lr:.3g})")
            if scaler is not None and scaler.is_enabled():
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
            loss_sum += loss_value
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}")
            if stop and step < num_steps:
                interrupted = True
                break
    return {"loss_sum": loss_sum, "steps": step, "interrupted": interrupted}


def _epochs_since_best(history):
    best = max(range(len(history)), key=lambda i: _miou_key(history[i]))
    return len(history) - 1 - best


def _miou_key(row):
    return row["miou"] if math.isfinite(row["miou"]) else -1.0


@contextlib.contextmanager
def _stop_on_signals(stop):
    """While training, SIGINT/SIGTERM set ``stop["reason"]`` (a clean stop); a second Ctrl-C aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if stop["reason"] is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop["reason"] = signal.Signals(signum).name
        print(f"\n{stop['reason']} received: stopping after this step and saving the run...", flush=True)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def fit(model, train_loader, val_loader, config, run_dir, criterion=None, resume=True, num_classes=None):
    """Train ``model`` with Adam, validate every epoch, and keep the run folder ``run_dir`` up to date.

    Args:
        model: nn.Module returning logits (N, C, H, W). A plain module goes through ``prepare_model``
            (moved to config.device; wrapped in DDP under torchrun); a DDP/compiled one is used as is.
            Trained in place: afterwards it holds the last epoch's weights (best.pt holds the best).
        train_loader, val_loader: DataLoaders of (image (N,3,H,W) float32, mask (N,H,W) int64, 255 = ignore).
        config: TrainConfig.
        run_dir: run folder (created if missing).
        criterion: loss module; default ``pa3.losses.build_loss(config.loss, ...)``.
        resume: continue from ``run_dir/last.pt`` if it exists (its config must match).
        num_classes: default ``train_loader.dataset.num_classes``, else the label space's class count.
    Returns:
        history: list of dicts, one per epoch (epoch, train_loss, val_loss, pixel_acc, mean_acc, miou, lr,
        iou_<class name>..., seconds).
    Raises:
        pa3.memory.InsufficientMemoryError: on a GPU that pa3's estimate says is too small for the
            config, before any training (the message names a setting that fits).
    """
    run_dir = Path(run_dir)
    main = is_main_process()
    if not _is_prepared(model):
        model = prepare_model(model, config, resolve_device(config.device))
    device = next(model.parameters()).device
    if num_classes is None:
        num_classes = getattr(train_loader.dataset, "num_classes", None) or labels.num_classes(config.label_space)
    names = _class_names(config.label_space, num_classes)
    if criterion is None:
        from pa3.losses import build_loss
        criterion = build_loss(config.loss, num_classes, weights=config.class_weights, dice_weight=config.dice_weight)
    criterion = criterion.to(device)

    steps_per_epoch = len(train_loader)
    if config.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    if steps_per_epoch == 0:
        raise ValueError(f"the training loader yields no batch ({len(train_loader.dataset)} images, "
                         f"batch size {train_loader.batch_size}); use a smaller batch size or more data")
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = _make_scheduler(optimizer, config, steps_per_epoch)
    amp_dtype = resolve_amp(config.amp, device)
    # on a GPU: refuse, with a setting that fits, what the estimate says will not fit its memory
    memory.check_fits(config, device, num_classes, memory.precision_of(amp_dtype))
    precision = str(amp_dtype or torch.float32).removeprefix("torch.")  # recorded in metrics.json
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    channels_last = use_channels_last(config.channels_last)

    # Where the run stands; a resumed run takes it from last.pt.
    epoch, step_in_epoch, global_step = 0, 0, 0  # `epoch` = number of completed epochs
    loss_sum, seconds_so_far, rng_state = 0.0, 0.0, None
    history, best_metrics = [], None
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if resume and (last_path.exists() or _previous(last_path).exists()):
        checkpoint = _resume_checkpoint(run_dir, map_location=device)
        _check_resumable(checkpoint["config"], config, last_path)
        unwrap(model).load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint["scaler"]:  # empty when the saved run had no fp16 scaler (CPU, bf16, amp off)
            scaler.load_state_dict(checkpoint["scaler"])
        epoch, step_in_epoch, global_step = checkpoint["epoch"], checkpoint["step_in_epoch"], checkpoint["global_step"]
        loss_sum, seconds_so_far = checkpoint["loss_sum"], checkpoint["seconds_so_far"]
        history, best_metrics = checkpoint["history"], checkpoint["best_metrics"]
        if step_in_epoch > 0:  # resumed mid-epoch: restore this rank's RNG state at that step
            states = checkpoint.get("rng_states") or [checkpoint["rng_state"]]
            rng_state = states[_rank() % len(states)]
        if main:
            print(f"resuming {run_dir} at epoch {epoch + 1} step {step_in_epoch}")
    if main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OSError(f"cannot create run folder {run_dir}: {error}. Choose a writable run folder "
                          f"(run_dir, --run-dir on the command line).") from error
        if not resume:  # starting over: nothing of an earlier run may mix with this one
            for name in ("last.pt", "last.prev.pt", "best.pt", "history.json", "history.csv", "metrics.json"):
                remove(run_dir / name)
        write_json(run_dir / "config.json", config.to_dict())

    def checkpoint_state(rng_states=None):
        return {
            "model": unwrap(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict(),
            "epoch": epoch, "step_in_epoch": step_in_epoch, "global_step": global_step,
            "loss_sum": loss_sum, "seconds_so_far": seconds_so_far,
            "rng_states": rng_states,  # one per rank: augmentation differs between ranks
            "config": config.to_dict(), "history": history, "best_metrics": best_metrics,
            "model_name": config.model, "num_classes": num_classes,
        }

    def write_run_folder(status):
        if not main:
            return
        _write_history(run_dir, history)
        write_json(run_dir / "metrics.json", {"status": status, "epochs_done": len(history), "precision": precision,
                                              **(best_metrics or {})})

    stop = {"reason": None}
    deadline = None if config.max_minutes is None else time.monotonic() + 60 * config.max_minutes

    def should_stop():
        if deadline is not None and time.monotonic() >= deadline and stop["reason"] is None:
            stop["reason"] = f"time budget of {config.max_minutes} min"
        return stop["reason"] is not None

    status = "complete"
    with _stop_on_signals(stop):
        while epoch < config.epochs:
            if config.early_stopping is not None and history and _epochs_since_best(history) >= config.early_stopping:
                status = "early_stopped"
                if main:
                    print(f"early stopping: no better val mIoU for {config.early_stopping} epochs")
                break
            started = time.monotonic()
            _seed_epoch(config.seed, epoch, train_loader)
            try:
                result = train_one_epoch(
                    model, criterion, optimizer, train_loader, device, epoch + 1, scheduler=scheduler,
                    scaler=scaler, amp_dtype=amp_dtype, channels_last=channels_last, num_steps=steps_per_epoch,
                    start_step=step_in_epoch, loss_sum=loss_sum, rng_state=rng_state, should_stop=should_stop,
                    desc=f"epoch {epoch + 1}/{config.epochs}", accumulation_steps=config.accumulation_steps)
            except NonFiniteLossError as error:
                kept = f"the last good checkpoint is kept at {last_path}" if last_path.exists() else "no checkpoint was written yet"
                raise NonFiniteLossError(f"{error}; {kept}; try a lower --lr or --amp off") from None
            global_step += result["steps"] - step_in_epoch
            step_in_epoch, loss_sum, rng_state = result["steps"], result["loss_sum"], None
            seconds_so_far += time.monotonic() - started

            if result["interrupted"]:  # on every rank at the same step (_sync_step)
                status = "interrupted"
                rng_states = _gather_rng_states(train_loader)
                if main:
                    save_checkpoint(checkpoint_state(rng_states), last_path, keep_previous=True)
                break

            eval_started = time.monotonic()
            metrics = evaluate(model, val_loader, num_classes, device=device, criterion=criterion,
                               class_names=names, label_space=config.label_space, amp_dtype=amp_dtype,
                               channels_last=channels_last)
            row = {"epoch": epoch + 1, "train_loss": loss_sum / step_in_epoch, "val_loss": metrics["loss"],
                   "pixel_acc": metrics["pixel_acc"], "mean_acc": metrics["mean_acc"], "miou": metrics["miou"],
                   "lr": optimizer.param_groups[0]["lr"]}
            row.update({f"iou_{name}": float(iou) for name, iou in zip(names, metrics["iou"])})
            row["seconds"] = seconds_so_far + time.monotonic() - eval_started  # training + validation
            history.append(row)
            epoch, step_in_epoch, loss_sum, seconds_so_far = epoch + 1, 0, 0.0, 0.0
            improved = len(history) == 1 or _miou_key(row) > max(_miou_key(r) for r in history[:-1])
            if improved:
                best_metrics = {"best_epoch": epoch, **metrics_summary(metrics, names)}
            if main:
                print(f"epoch {epoch}/{config.epochs}  train_loss {row['train_loss']:.4f}  val_loss {row['val_loss']:.4f}"
                      f"  pixel_acc {row['pixel_acc']:.4f}  miou {row['miou']:.4f}")
                # best.pt first: a kill between the two writes then leaves last.pt one epoch behind (that
                # epoch is redone on resume), never a last.pt whose best epoch has no best.pt
                if improved:
                    save_checkpoint(_best_state(unwrap(model), config, num_classes, epoch, best_metrics, history), best_path)
                save_checkpoint(checkpoint_state(), last_path, keep_previous=True)
                write_run_folder("running")
            barrier()
            if epoch < config.epochs and _any_process(should_stop()):
                status = "interrupted"
                break

    write_run_folder(status)
    barrier()
    if main and status == "interrupted":
        print(f"stopped ({stop['reason']}) at epoch {epoch + 1} step {step_in_epoch}; state saved to {last_path}. "
              f"Run the same command again (fit(..., resume=True)) to continue.")
    return history


def metrics_summary(metrics, names):
    """The JSON-friendly part of evaluate()'s dict, with per-class IoU keyed by class name."""
    return {
        "val_loss": metrics.get("loss"), "pixel_acc": metrics["pixel_acc"], "mean_acc": metrics["mean_acc"],
        "miou": metrics["miou"], "iou": dict(zip(names, metrics["iou"])),
        "category_iou": metrics["category_iou"], "category_miou": metrics["category_miou"],
        "confusion": metrics["confusion"],
    }


def _best_state(model, config, num_classes, epoch, best_metrics, history):
    """best.pt: the weights for evaluation (no optimiser state; resuming uses last.pt)."""
    return {"model": model.state_dict(), "epoch": epoch, "config": config.to_dict(), "metrics": best_metrics,
            "history": history, "model_name": config.model, "num_classes": num_classes}


# ----------------------------------------------------------------------------------------------------
# Inference and evaluation


def _window_starts(size, window, stride):
    starts = list(range(0, size - window, stride)) + [size - window]
    return sorted(set(starts))


def predict_sliding(model, images, window, stride=None):
    """Tiled inference: average the logits of overlapping windows (bounds memory at full resolution).

    Args:
        images: (N, 3, H, W); window: (h, w), each divisible by 32 for pa3's models;
        stride: (sh, sw); default 2/3 of the window (windows overlap by 1/3).
    Returns:
        logits float32 (N, C, H, W).
    """
    _, _, height, width = images.shape
    h, w = min(window[0], height), min(window[1], width)
    sh, sw = stride or (max(1, 2 * h // 3), max(1, 2 * w // 3))
    logits = counts = None
    for top in _window_starts(height, h, sh):
        for left in _window_starts(width, w, sw):
            out = model(images[:, :, top:top + h, left:left + w]).float()  # (N, C, h, w)
            if logits is None:
                logits = out.new_zeros(out.shape[0], out.shape[1], height, width)
                counts = out.new_zeros(1, 1, height, width)
            logits[:, :, top:top + h, left:left + w] += out
            counts[:, :, top:top + h, left:left + w] += 1
    return logits.div_(counts)  # in place: no second full-size (N, C, H, W) buffer at the peak


@torch.no_grad()
def predict(model, images, sliding_window=None, amp="auto", channels_last="auto"):
    """Class-index predictions int64 (N, H, W) for images (N, 3, H, W), on the images' device.

    ``amp`` and ``channels_last`` as in TrainConfig (by default bf16 where the device computes it natively).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = images.to(device)
    if use_channels_last(channels_last):
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, resolve_amp(amp, device)):
        logits = predict_sliding(model, x, sliding_window) if sliding_window else model(x)
    model.train(was_training)
    return logits.argmax(1).to(images.device)


def write_label_pngs(logits, dataset, first_index, out_dir):
    """Write predictions as the official evaluation expects: ``<out_dir>/<stem>_pred_labelIds.png``.

    Args:
        logits: (N, C, h, w) for items ``first_index .. first_index + N - 1`` of ``dataset`` (a
            CityscapesSegmentation); each is resized (bilinear) to its label file's resolution before the
            argmax and written as labelIds (uint8). cityscapesscripts' evalPixelLevelSemanticLabeling finds
            a prediction by ``<city>_<seq>_<frame>*.png`` anywhere under the results folder.
    Returns:
        the paths written.
    """
    from PIL import Image

    written = []
    for k, item in enumerate(logits):  # (C, h, w)
        stem, (_, label_path) = dataset.names[first_index + k], dataset.pairs[first_index + k]
        with Image.open(label_path) as label:
            width, height = label.size
        if item.shape[-2:] != (height, width):  # back to the ground truth's resolution
            item = torch.nn.functional.interpolate(item[None].float(), size=(height, width), mode="bilinear",
                                                   align_corners=False)[0]
        label_ids = labels.to_label_ids(item.argmax(0).cpu().numpy(), dataset.label_space)
        path = Path(out_dir) / f"{stem}_pred_labelIds.png"
        Image.fromarray(label_ids).save(path)
        written.append(path)
    return written


@torch.no_grad()
def evaluate(model, loader, num_classes=None, device=None, criterion=None, class_names=None, label_space=None,
             sliding_window=None, amp_dtype="auto", channels_last=True, write_to=None):
    """Evaluate on a whole split with one streaming confusion matrix (summed over processes).

    Args:
        loader: DataLoader of (image (N,3,H,W), mask (N,H,W) int64, 255 = ignore).
        num_classes: default ``loader.dataset.num_classes`` (pa3's datasets have it).
        device: default the model's device.
        criterion: optional loss module; adds "loss" (mean over images).
        class_names, label_space: names and category table for the metrics (default from num_classes).
        sliding_window: optional (h, w) for ``predict_sliding``.
        amp_dtype: autocast dtype, None for fp32; "auto" = ``pa3.device.resolve_amp("auto", device)``.
        channels_last: feed the model NHWC images (faster with oneDNN and cuDNN; results the same).
        write_to: optional folder: also write every prediction as an official labelId PNG
            (``write_label_pngs``), in the same pass. Needs a loader that reads its CityscapesSegmentation
            in order (no shuffling, one process).
    Returns:
        ``pa3.metrics.metrics_from_confusion`` dict (pixel_acc, mean_acc, miou, iou, class_names,
        category_iou, category_miou) + "confusion" (C x C list, rows = ground truth) + "loss" if criterion.
    """
    from pa3.metrics import ConfusionMatrix, metrics_from_confusion

    if num_classes is None:
        num_classes = getattr(loader.dataset, "num_classes", None)
        if num_classes is None:
            raise ValueError(f"{type(loader.dataset).__name__} has no num_classes attribute: pass "
                             "evaluate(model, loader, num_classes=...)")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if amp_dtype == "auto":
        amp_dtype = resolve_amp("auto", device)
    was_training = model.training
    model.eval()
    confusion = ConfusionMatrix(num_classes, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    bar_kwargs = {} if is_main_process() else {"disable": True}
    if write_to is not None:
        if is_dist() or not isinstance(loader.sampler, torch.utils.data.SequentialSampler):
            raise ValueError("evaluate(write_to=...) needs a loader that reads the dataset in order in one "
                             "process (make_loader(dataset, batch_size, train=False))")
        Path(write_to).mkdir(parents=True, exist_ok=True)
    seen = 0
    for images, masks in tqdm(loader, desc="evaluate", leave=False, **bar_kwargs):
        images, masks = to_device(images, masks, device, channels_last)
        with autocast(device, amp_dtype):
            logits = predict_sliding(model, images, sliding_window) if sliding_window else model(images)
        if criterion is not None:
            loss_sum += criterion(logits.float(), masks).double() * len(images)
            count += len(images)
        confusion.update(masks, logits.argmax(1))
        if write_to is not None:
            write_label_pngs(logits, loader.dataset, seen, write_to)
        seen += len(images)
    model.train(was_training)
    confusion.reduce_from_all_processes()
    if is_dist():
        dist.all_reduce(loss_sum)
        dist.all_reduce(count)
    if label_space is not None and class_names is None:
        class_names = _class_names(label_space, num_classes)
    metrics = metrics_from_confusion(confusion.mat, class_names=class_names,
                                     category_index=_category_index(label_space, num_classes))
    metrics["confusion"] = confusion.mat.cpu().tolist()
    if criterion is not None:
        metrics["loss"] = (loss_sum / count.clamp(min=1)).item()
    return metrics
