"""Checkpoints: what a run folder's best.pt and last.pt hold, writing them safely, reading them back.

    best.pt        the weights of the best epoch (by val mIoU), for evaluation and figures
    last.pt        everything needed to resume: weights, optimiser, scheduler, where the run stands
                   (``Progress``), the RNG states of a mid-epoch stop (``pa3.rng``)
    last.prev.pt   the last.pt before it: a damaged last.pt never loses the run

Every file is written atomically (``pa3.files.write_atomically``) and read with
``torch.load(weights_only=True)`` through ``pa3.files.load_torch``, which refuses what is not a pa3
checkpoint with a message that says what to do.
"""
import dataclasses
import os
from pathlib import Path

import torch

from pa3.config import check_resumable
from pa3.distributed import rank, unwrap
from pa3.files import BadFileError, load_torch, write_atomically
from pa3.models import build_model

CHECKPOINT_FIX = ("Pass a complete best.pt or last.pt written by pa3 (training writes them into its run folder): "
                  "wait for an unfinished copy or sync, restore a damaged file from a copy, or train again")
CHECKPOINT_KEYS = ("model", "model_name", "num_classes", "config")  # in every best.pt and last.pt


@dataclasses.dataclass
class Progress:
    """Where a run stands; saved in last.pt and restored on resume."""

    epoch: int = 0  # completed epochs
    step_in_epoch: int = 0  # batches done in the current epoch
    global_step: int = 0
    loss_sum: float = 0.0  # summed training loss of the current epoch's batches
    seconds_so_far: float = 0.0  # training time of the current epoch
    history: list = dataclasses.field(default_factory=list)  # one row per completed epoch
    best_metrics: dict | None = None  # validation metrics of the best epoch


RESUME_KEYS = tuple(f.name for f in dataclasses.fields(Progress)) + ("optimizer", "scheduler", "scaler")
# (what last.pt holds beyond a best.pt)


def previous_path(path):
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
        write_atomically(path, lambda tmp: torch.save(state, tmp))
        return
    previous = previous_path(path)
    previous.unlink(missing_ok=True)

    def write(tmp):
        torch.save(state, tmp)
        os.replace(path, previous)  # a stop right after this leaves last.prev.pt and no last.pt: fit refuses

    write_atomically(path, write)


def best_state(model, config, num_classes, progress):
    """best.pt: the weights for evaluation (no optimiser state; resuming uses last.pt)."""
    return {"model": unwrap(model).state_dict(), "epoch": progress.epoch, "config": config.to_dict(),
            "metrics": progress.best_metrics, "history": progress.history, "model_name": config.model,
            "num_classes": num_classes}


def training_state(model, optimizer, scheduler, scaler, config, num_classes, progress, rng_states=None):
    """last.pt: best.pt's entries, the optimiser, scheduler and scaler, the progress and (mid-epoch) RNG states."""
    return {
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict(),
        **dataclasses.asdict(progress),
        "rng_states": rng_states,  # one per rank: augmentation differs between ranks
        "config": config.to_dict(), "model_name": config.model, "num_classes": num_classes,
    }


def _first_words(error, n=300):
    return " ".join(str(error).split())[:n]


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
                f"Rebuild the model it holds with pa3.checkpoint.load_model({str(path)!r})", "checkpoint") from error
    return checkpoint


def load_model(checkpoint_path, num_classes=None, model_name=None, map_location="cpu", checkpoint=None):
    """Rebuild the model saved in a checkpoint (by name, via pa3.models.build_model) with its weights.

    Args:
        num_classes, model_name: optional expectations; a mismatch with the checkpoint is an error.
        checkpoint: the checkpoint dict of ``checkpoint_path`` when the caller has loaded it already.
    Returns:
        the model in eval mode, on ``map_location``.
    """
    if checkpoint is None:
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


def _load_training_state(path, map_location="cpu"):
    checkpoint = load_checkpoint(path, map_location=map_location)
    missing = [k for k in RESUME_KEYS if k not in checkpoint]
    if missing:
        raise BadFileError(path, f"holds no training state to resume from (no {', '.join(map(repr, missing))}; a "
                                 f"best.pt holds weights only)", CHECKPOINT_FIX, "checkpoint")
    return checkpoint


def _ways_forward(run_dir):
    """Which other checkpoints of ``run_dir`` are intact, and what the user can do (for a damaged last.pt)."""
    last, previous, best = run_dir / "last.pt", previous_path(run_dir / "last.pt"), run_dir / "best.pt"
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


def can_resume(run_dir):
    last = Path(run_dir) / "last.pt"
    return last.exists() or previous_path(last).exists()


def resume(run_dir, model, optimizer, scheduler, scaler, config, map_location="cpu"):
    """Load ``run_dir/last.pt`` into the model, optimiser, scheduler and scaler of a run with ``config``.

    Returns:
        (Progress, this rank's RNG state at the saved step, or None when the run stopped between epochs).
    Raises:
        pa3.files.BadFileError: a damaged last.pt (the message lists the intact files and the ways forward).
        ValueError: the run was started with a config that differs in a field outside RESUMABLE_FIELDS.
    """
    run_dir = Path(run_dir)
    checkpoint = _resume_checkpoint(run_dir, map_location=map_location)
    check_resumable(checkpoint["config"], config, run_dir / "last.pt")
    unwrap(model).load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
    if checkpoint["scaler"]:  # empty when the saved run had no fp16 scaler (CPU, bf16, amp off)
        scaler.load_state_dict(checkpoint["scaler"])
    progress = Progress(**{f.name: checkpoint[f.name] for f in dataclasses.fields(Progress)})
    rng_state = None
    if progress.step_in_epoch > 0:  # resumed mid-epoch: restore this rank's RNG state at that step
        states = checkpoint.get("rng_states") or [checkpoint["rng_state"]]
        rng_state = states[rank() % len(states)]
    return progress, rng_state
