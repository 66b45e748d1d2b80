"""Training: plain functions in the style of torchvision's ``references/segmentation``.

``train_one_epoch`` and ``evaluate`` (pa3.inference) are the loop a student reads; ``fit`` builds a ``Training``
(model, loss, Adam, schedule, precision) from a TrainConfig, runs them every epoch and keeps a run folder::

    run_dir/config.json    the TrainConfig
    run_dir/history.csv    one row per epoch (also history.json)
    run_dir/metrics.json   validation metrics of the best epoch (by mIoU)
    run_dir/confusions.json   the validation confusion matrix of every epoch (a grader rescores them)
    run_dir/sources.json   the digest of the pa3 sources that trained it (pa3.files.sources_digest)
    run_dir/best.pt, last.pt, last.prev.pt   checkpoints (pa3.checkpoint)

Runs survive interruptions: ``fit`` saves ``last.pt`` at the end of every epoch and, on a time budget,
SIGTERM or Ctrl-C, in the middle of one. Calling ``fit`` again with the same run folder continues where
it stopped, and on a CPU the result is bit-for-bit the one of an uninterrupted run (``pa3.rng`` says how).
Under torchrun the same code trains one shard per process (``pa3.distributed``).
"""
import contextlib
import dataclasses
import math
import signal
import threading
import time
from pathlib import Path

import torch
from tqdm import tqdm

from pa3 import checkpoint, distributed, labels, memory, rng
from pa3.checkpoint import Progress
from pa3.device import autocast, resolve_amp, resolve_device, use_channels_last
from pa3.files import read_json, remove, remove_temporaries, sources_digest, write_csv, write_json
from pa3.inference import evaluate, metrics_summary, to_device
from pa3.losses import build_loss
from pa3.models import set_activation_checkpointing

POLY_POWER = 0.9
RUN_FILES = ("last.pt", "last.prev.pt", "best.pt", "history.json", "history.csv", "metrics.json", "confusions.json",
             "sources.json")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


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
    if config.sync_bn and (not distributed.is_dist() or device.type != "cuda") and distributed.is_main_process():
        print(f"note: --sync-bn has no effect here (it needs torchrun and CUDA; device {device.type}, "
              f"{'distributed' if distributed.is_dist() else 'one process'}): BatchNorm stays per process")
    if distributed.is_dist() and config.sync_bn and device.type == "cuda":  # SyncBatchNorm needs GPUs
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    if config.activation_checkpointing:
        set_activation_checkpointing(model)
    if use_channels_last(config.channels_last):
        model = model.to(memory_format=torch.channels_last)
    if distributed.is_dist():
        device_ids = [device.index] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if config.compile:
        model = torch.compile(model)
    return model


# ----------------------------------------------------------------------------------------------------
# Training


def _make_scheduler(optimizer, config, steps_per_epoch):
    if config.lr_schedule != "poly":
        return None
    total = max(1, config.epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1.0 - step / total) ** POLY_POWER)


def _micro_batches(images, masks, accumulation_steps):
    """The batch as ``accumulation_steps`` micro-batches of (nearly) equal size; the batch itself when 1."""
    if accumulation_steps == 1:
        return [(images, masks)]
    size = math.ceil(len(images) / accumulation_steps)
    return list(zip(images.split(size), masks.split(size)))


@dataclasses.dataclass
class Training:
    """What ``train_one_epoch`` trains with: the model on its device, loss, optimiser and the step's settings.
    ``fit`` builds one from a TrainConfig (``prepare_training``); a test or a benchmark can build its own."""
    model: torch.nn.Module
    criterion: torch.nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    scheduler: object = None  # stepped after every optimiser step
    scaler: torch.amp.GradScaler | None = None  # fp16's loss scaling
    amp_dtype: torch.dtype | None = None  # autocast dtype (None = fp32)
    channels_last: bool = False
    accumulation_steps: int = 1  # micro-batches per batch (one optimiser step per batch)
    steps_per_epoch: int | None = None  # None: one pass over the loader
    num_classes: int | None = None
    main: bool = True  # this process writes the run folder (rank 0)


def train_one_epoch(run, loader, epoch, start_step=0, loss_sum=0.0, rng_state=None, should_stop=lambda: False,
                    desc=None):
    """Train ``run`` (a ``Training``) for one epoch, or until ``should_stop()``; the loss is checked every step.

    A resumed epoch passes ``start_step`` (batches already done), ``loss_sum`` (their summed loss) and
    ``rng_state`` (saved at that step): the loader is replayed up to ``start_step`` so the data order
    and augmentations match an uninterrupted run, then the RNG states are restored.

    Gradient accumulation: with ``run.accumulation_steps`` k > 1 every batch of N images goes through the model
    as k micro-batches of N/k (less activation memory), each loss weighted by its share of the images and its
    gradients summed, then one optimiser step. That equals the whole batch's update for a mean over images of
    equal weight; with ignored pixels each micro-batch averages over its own valid pixels, batch Dice becomes
    micro-batch Dice, and BatchNorm normalises each micro-batch with its own statistics.

    Returns:
        dict(loss_sum, steps (done in this epoch, in total), interrupted (bool)).
    """
    model, optimizer, scaler, device = run.model, run.optimizer, run.scaler, run.device
    model.train()
    num_steps = len(loader) if run.steps_per_epoch is None else run.steps_per_epoch
    batches = iter(loader)
    for _ in range(start_step):
        next(batches)
    if rng_state is not None:
        rng.set_state(rng_state, loader)
    step, interrupted = start_step, False
    bar_kwargs = {} if distributed.is_main_process() else {"disable": True}  # TQDM_DISABLE=1 silences rank 0
    with tqdm(total=num_steps, initial=start_step, desc=desc or f"epoch {epoch}", **bar_kwargs) as bar:
        while step < num_steps:
            images, masks = to_device(*next(batches), device, run.channels_last)
            optimizer.zero_grad(set_to_none=True)
            loss = None
            for part_images, part_masks in _micro_batches(images, masks, run.accumulation_steps):
                with autocast(device, run.amp_dtype):
                    logits = model(part_images)  # (n, C, H, W), bf16 under CPU autocast
                part_loss = run.criterion(logits.float(), part_masks)  # the loss (softmax, Dice sums) in fp32
                if run.accumulation_steps > 1:  # the batch's mean: each micro-batch weighs its share of the images
                    part_loss = part_loss * (len(part_images) / len(images))
                (scaler.scale(part_loss) if scaler is not None and scaler.is_enabled() else part_loss).backward()
                loss = part_loss.detach() if loss is None else loss + part_loss.detach()
            loss_value, stop = distributed.mean_loss_and_stop(loss, should_stop())
            step += 1
            if not math.isfinite(loss_value):
                lr = optimizer.param_groups[0]["lr"]
                raise NonFiniteLossError(f"loss is {loss_value} at epoch {epoch} step {step} (lr {lr:.3g})")
            if scaler is not None and scaler.is_enabled():
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            if run.scheduler is not None:
                run.scheduler.step()
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


class _StopRequest:
    """Why training should stop before its last epoch: the time budget ran out, or a signal came (``reason``)."""

    def __init__(self, max_minutes):
        self.max_minutes, self.reason = max_minutes, None
        self.deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes

    def __call__(self):
        if self.deadline is not None and time.monotonic() >= self.deadline and self.reason is None:
            self.reason = f"time budget of {self.max_minutes} min"
        return self.reason is not None


@contextlib.contextmanager
def _stop_on_signals(stop):
    """While training, SIGINT/SIGTERM set ``stop.reason`` (a clean stop); a second Ctrl-C aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if stop.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.reason = signal.Signals(signum).name
        print(f"\n{stop.reason} received: stopping after this step and saving the run...", flush=True)

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
    run = prepare_training(model, train_loader, config, criterion, num_classes)
    progress, rng_state = _start_or_resume(run, run_dir, config, resume)
    stop, status = _StopRequest(config.max_minutes), "complete"
    with _stop_on_signals(stop):
        while progress.epoch < config.epochs:
            if _no_better_miou_for(progress, config.early_stopping):
                status = "early_stopped"
                break
            started = time.monotonic()
            rng.seed_for_epoch(config.seed, progress.epoch, train_loader)
            result = _train_epoch(run, train_loader, config, progress, rng_state, stop, run_dir / "last.pt")
            rng_state = None  # a resumed epoch's generators are restored once
            progress.seconds_so_far += time.monotonic() - started
            if result["interrupted"]:  # on every rank at the same step (distributed.mean_loss_and_stop)
                status = "interrupted"
                _save_last(run, config, progress, run_dir, distributed.gather(rng.get_state(train_loader)))
                break
            _validate_and_save(run, val_loader, config, progress, run_dir)
            if progress.epoch < config.epochs and distributed.any_process(stop()):
                status = "interrupted"
                break
    _finish(run_dir, progress, status, stop.reason, run.amp_dtype)
    return progress.history


def prepare_training(model, train_loader, config, criterion=None, num_classes=None):
    """The model on its device, the loss, Adam, the schedule, autocast and the fp16 GradScaler of ``config``;
    on a GPU, refuses (with a setting that fits) what pa3's memory estimate says will not fit."""
    if distributed.unwrap(model) is model:  # not yet moved, wrapped or compiled
        model = prepare_model(model, config, resolve_device(config.device))
    device = next(model.parameters()).device
    if num_classes is None:
        num_classes = getattr(train_loader.dataset, "num_classes", None) or labels.num_classes(config.label_space)
    if criterion is None:
        criterion = build_loss(config.loss, num_classes, weights=config.class_weights, dice_weight=config.dice_weight)
    steps_per_epoch = config.steps_per_epoch(len(train_loader))
    if steps_per_epoch == 0:
        raise ValueError(f"the training loader yields no batch ({len(train_loader.dataset)} images, "
                         f"batch size {train_loader.batch_size}); use a smaller batch size or more data")
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    amp_dtype = resolve_amp(config.amp, device)
    memory.check_fits(config, device, num_classes, memory.precision_of(amp_dtype))
    return Training(model, criterion.to(device), optimizer, device,
                    scheduler=_make_scheduler(optimizer, config, steps_per_epoch),
                    scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16), amp_dtype=amp_dtype,
                    channels_last=use_channels_last(config.channels_last), accumulation_steps=config.accumulation_steps,
                    steps_per_epoch=steps_per_epoch, num_classes=num_classes, main=distributed.is_main_process())


def _start_or_resume(run, run_dir, config, resume):
    """(Progress, RNG state or None): a new run's, or those ``run_dir/last.pt`` holds (loaded into ``run``)."""
    progress, rng_state = Progress(), None
    if resume and checkpoint.can_resume(run_dir):
        progress, rng_state = checkpoint.resume(run_dir, run.model, run.optimizer, run.scheduler, run.scaler,
                                                config, run.device)
        if run.main:
            print(f"resuming {run_dir} at epoch {progress.epoch + 1} step {progress.step_in_epoch}")
    if run.main:
        _start_run_folder(run_dir, config, start_over=not resume)
    return progress, rng_state


def _no_better_miou_for(progress, patience):
    """True (and one line says so) when the val mIoU has not improved for ``patience`` epochs."""
    if patience is None or not progress.history or _epochs_since_best(progress.history) < patience:
        return False
    if distributed.is_main_process():
        print(f"early stopping: no better val mIoU for {patience} epochs")
    return True


def _train_epoch(run, train_loader, config, progress, rng_state, stop, last_path):
    """``train_one_epoch`` from where ``progress`` stands; updates ``progress``; a non-finite loss says what is kept."""
    try:
        result = train_one_epoch(run, train_loader, progress.epoch + 1, progress.step_in_epoch, progress.loss_sum,
                                 rng_state, stop, desc=f"epoch {progress.epoch + 1}/{config.epochs}")
    except NonFiniteLossError as error:
        kept = f"the last good checkpoint is kept at {last_path}" if last_path.exists() else "no checkpoint was written yet"
        raise NonFiniteLossError(f"{error}; {kept}; try a lower --lr or --amp off") from None
    progress.global_step += result["steps"] - progress.step_in_epoch
    progress.step_in_epoch, progress.loss_sum = result["steps"], result["loss_sum"]
    return result


def _save_last(run, config, progress, run_dir, rng_states=None):
    """last.pt (rank 0): everything an exact resume needs; the previous one is kept as last.prev.pt."""
    if run.main:
        state = checkpoint.training_state(run.model, run.optimizer, run.scheduler, run.scaler, config,
                                          run.num_classes, progress, rng_states)
        checkpoint.save_checkpoint(state, run_dir / "last.pt", keep_previous=True)


def _validate_and_save(run, val_loader, config, progress, run_dir):
    """Validate, end the epoch in ``progress``, print its line, write best.pt (if better), last.pt and the results."""
    eval_started = time.monotonic()
    metrics = evaluate(run.model, val_loader, run.num_classes, criterion=run.criterion,
                       label_space=config.label_space, amp=config.amp, channels_last=config.channels_last)
    row = _history_row(progress, metrics, run.optimizer)
    row["seconds"] = progress.seconds_so_far + time.monotonic() - eval_started  # training + validation
    improved = _end_epoch(progress, row, metrics)
    if run.main:
        print(f"epoch {progress.epoch}/{config.epochs}  train_loss {row['train_loss']:.4f}  "
              f"val_loss {row['val_loss']:.4f}  pixel_acc {row['pixel_acc']:.4f}  miou {row['miou']:.4f}")
        # best.pt first: a kill between the two writes then leaves last.pt one epoch behind (that epoch is
        # redone on resume), never a last.pt whose best epoch has no best.pt
        if improved:
            checkpoint.save_checkpoint(checkpoint.best_state(run.model, config, run.num_classes, progress),
                                       run_dir / "best.pt")
        _save_last(run, config, progress, run_dir)
        _write_confusion(run_dir, progress.epoch, metrics["confusion"])
        _write_results(run_dir, progress, "running", run.amp_dtype)
    distributed.barrier()


def _finish(run_dir, progress, status, reason, amp_dtype):
    """The final metrics.json with ``status``; for an interrupted run, how to continue it."""
    if distributed.is_main_process():
        _write_results(run_dir, progress, status, amp_dtype)
    distributed.barrier()
    if distributed.is_main_process() and status == "interrupted":
        print(f"stopped ({reason}) at epoch {progress.epoch + 1} step {progress.step_in_epoch}; state saved "
              f"to {run_dir / 'last.pt'}. Run the same command again (fit(..., resume=True)) to continue.")


def _start_run_folder(run_dir, config, start_over):
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"cannot create run folder {run_dir}: {error}. Choose a writable run folder "
                      f"(run_dir, --run-dir on the command line).") from error
    if start_over:  # nothing of an earlier run may mix with this one
        for name in RUN_FILES:
            remove(run_dir / name)
    remove_temporaries(run_dir)  # of a process killed while writing
    write_json(run_dir / "config.json", config.to_dict())
    write_json(run_dir / "sources.json", {"pa3_sources": sources_digest()})


def _history_row(progress, metrics, optimizer):
    """The history row of the epoch just trained (``progress`` still counts it as the current one)."""
    row = {"epoch": progress.epoch + 1, "train_loss": progress.loss_sum / progress.step_in_epoch,
           "val_loss": metrics["loss"], "pixel_acc": metrics["pixel_acc"], "mean_acc": metrics["mean_acc"],
           "miou": metrics["miou"], "lr": optimizer.param_groups[0]["lr"]}
    row.update({f"iou_{name}": iou for name, iou in metrics["iou"].items()})
    return row


def _end_epoch(progress, row, metrics):
    """Record a finished epoch in ``progress``; True when its val mIoU is the best so far."""
    progress.history.append(row)
    progress.epoch, progress.step_in_epoch, progress.loss_sum, progress.seconds_so_far = progress.epoch + 1, 0, 0.0, 0.0
    history = progress.history
    improved = len(history) == 1 or _miou_key(row) > max(_miou_key(r) for r in history[:-1])
    if improved:
        progress.best_metrics = {"best_epoch": progress.epoch, **metrics_summary(metrics)}
    return improved


def _write_confusion(run_dir, epoch, confusion):
    """confusions.json: the validation confusion matrix of epochs 1..``epoch`` (an epoch redone after a resume
    replaces its earlier entry). pa3.assignment.grade recomputes every metric from them with its own code."""
    path = run_dir / "confusions.json"
    saved = read_json(path, "confusion matrices", "delete it and train the run again", expect=list) if path.exists() else []
    write_json(path, saved[:epoch - 1] + [confusion])


def _write_results(run_dir, progress, status, amp_dtype):
    """history.json, history.csv and metrics.json (the best epoch's validation metrics) of the run so far."""
    write_json(run_dir / "history.json", progress.history)
    write_csv(run_dir / "history.csv", progress.history)
    precision = str(amp_dtype or torch.float32).removeprefix("torch.")
    write_json(run_dir / "metrics.json", {"status": status, "epochs_done": len(progress.history),
                                          "precision": precision, **(progress.best_metrics or {})})
