"""Training and evaluation: plain functions in the style of torchvision's ``references/segmentation``.

``train_one_epoch`` and ``evaluate`` are the loop a student reads; ``fit`` runs them for a TrainConfig
with Adam (the report's optimiser), validates every epoch and keeps a run folder::

    run_dir/config.json    the TrainConfig
    run_dir/history.csv    one row per epoch (also history.json)
    run_dir/metrics.json   validation metrics of the best epoch (by mIoU)
    run_dir/best.pt, last.pt, last.prev.pt   checkpoints (pa3.checkpoint)

Runs survive interruptions: ``fit`` saves ``last.pt`` at the end of every epoch and, on a time budget,
SIGTERM or Ctrl-C, in the middle of one. Calling ``fit`` again with the same run folder continues where
it stopped, and on a CPU the result is bit-for-bit the one of an uninterrupted run (``pa3.rng`` says how).
Under torchrun the same code trains one shard per process (``pa3.distributed``).
"""
import contextlib
import math
import signal
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from pa3 import checkpoint, distributed, labels, memory, rng
from pa3.checkpoint import Progress
from pa3.device import autocast, resolve_amp, resolve_device, use_channels_last
from pa3.files import remove, remove_temporaries, write_csv, write_json
from pa3.official_eval import write_label_pngs
from pa3.losses import build_loss
from pa3.models import set_checkpointing
from pa3.metrics import ConfusionMatrix, metrics_from_confusion
from pa3.transforms import normalize

POLY_POWER = 0.9
RUN_FILES = ("last.pt", "last.prev.pt", "best.pt", "history.json", "history.csv", "metrics.json")


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
    if config.checkpointing:
        set_checkpointing(model)
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


def to_device(images, masks, device, channels_last=False):
    """A loader's batch -> what the model and the loss take, on ``device``.

    uint8 batches (presets with ``normalize=False``: a fifth of the bytes to copy) are normalised there
    (``pa3.transforms.normalize``) and their masks widened to int64; float32 batches are only moved.
    Returns (image float32 (N, 3, H, W), mask int64 (N, H, W)).
    """
    non_blocking = device.type == "cuda"
    images = images.to(device, non_blocking=non_blocking)
    if images.dtype == torch.uint8:
        images = normalize(images)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, masks.to(device, non_blocking=non_blocking).long()


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
        rng.set_state(rng_state, loader)
    step, interrupted = start_step, False
    bar_kwargs = {} if distributed.is_main_process() else {"disable": True}  # TQDM_DISABLE=1 silences rank 0
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
    main = distributed.is_main_process()
    if distributed.unwrap(model) is model:  # not yet moved, wrapped or compiled
        model = prepare_model(model, config, resolve_device(config.device))
    device = next(model.parameters()).device
    if num_classes is None:
        num_classes = getattr(train_loader.dataset, "num_classes", None) or labels.num_classes(config.label_space)
    if criterion is None:
        criterion = build_loss(config.loss, num_classes, weights=config.class_weights, dice_weight=config.dice_weight)
    criterion = criterion.to(device)
    steps_per_epoch = _steps_per_epoch(train_loader, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = _make_scheduler(optimizer, config, steps_per_epoch)
    amp_dtype = resolve_amp(config.amp, device)
    # on a GPU: refuse, with a setting that fits, what the estimate says will not fit its memory
    memory.check_fits(config, device, num_classes, memory.precision_of(amp_dtype))
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    channels_last = use_channels_last(config.channels_last)

    progress, rng_state = Progress(), None  # where the run stands; a resumed run takes it from last.pt
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if resume and checkpoint.can_resume(run_dir):
        progress, rng_state = checkpoint.resume(run_dir, model, optimizer, scheduler, scaler, config, device)
        if main:
            print(f"resuming {run_dir} at epoch {progress.epoch + 1} step {progress.step_in_epoch}")
    if main:
        _start_run_folder(run_dir, config, start_over=not resume)

    def save_last(rng_states=None):
        state = checkpoint.training_state(model, optimizer, scheduler, scaler, config, num_classes, progress,
                                          rng_states)
        checkpoint.save_checkpoint(state, last_path, keep_previous=True)

    stop, status = _StopRequest(config.max_minutes), "complete"
    with _stop_on_signals(stop):
        while progress.epoch < config.epochs:
            if config.early_stopping is not None and progress.history \
                    and _epochs_since_best(progress.history) >= config.early_stopping:
                status = "early_stopped"
                if main:
                    print(f"early stopping: no better val mIoU for {config.early_stopping} epochs")
                break
            started = time.monotonic()
            rng.seed_for_epoch(config.seed, progress.epoch, train_loader)
            try:
                result = train_one_epoch(
                    model, criterion, optimizer, train_loader, device, progress.epoch + 1, scheduler=scheduler,
                    scaler=scaler, amp_dtype=amp_dtype, channels_last=channels_last, num_steps=steps_per_epoch,
                    start_step=progress.step_in_epoch, loss_sum=progress.loss_sum, rng_state=rng_state,
                    should_stop=stop, desc=f"epoch {progress.epoch + 1}/{config.epochs}",
                    accumulation_steps=config.accumulation_steps)
            except NonFiniteLossError as error:
                kept = (f"the last good checkpoint is kept at {last_path}" if last_path.exists()
                        else "no checkpoint was written yet")
                raise NonFiniteLossError(f"{error}; {kept}; try a lower --lr or --amp off") from None
            progress.global_step += result["steps"] - progress.step_in_epoch
            progress.step_in_epoch, progress.loss_sum, rng_state = result["steps"], result["loss_sum"], None
            progress.seconds_so_far += time.monotonic() - started
            if result["interrupted"]:  # on every rank at the same step (distributed.mean_loss_and_stop)
                status = "interrupted"
                rng_states = distributed.gather(rng.get_state(train_loader))
                if main:
                    save_last(rng_states)
                break

            eval_started = time.monotonic()
            metrics = evaluate(model, val_loader, num_classes, device=device, criterion=criterion,
                               label_space=config.label_space, amp_dtype=amp_dtype, channels_last=channels_last)
            row = _history_row(progress, metrics, optimizer)
            row["seconds"] = progress.seconds_so_far + time.monotonic() - eval_started  # training + validation
            improved = _end_epoch(progress, row, metrics)
            if main:
                print(f"epoch {progress.epoch}/{config.epochs}  train_loss {row['train_loss']:.4f}  "
                      f"val_loss {row['val_loss']:.4f}  pixel_acc {row['pixel_acc']:.4f}  miou {row['miou']:.4f}")
                # best.pt first: a kill between the two writes then leaves last.pt one epoch behind (that
                # epoch is redone on resume), never a last.pt whose best epoch has no best.pt
                if improved:
                    checkpoint.save_checkpoint(checkpoint.best_state(model, config, num_classes, progress), best_path)
                save_last()
                _write_results(run_dir, progress, "running", amp_dtype)
            distributed.barrier()
            if progress.epoch < config.epochs and distributed.any_process(stop()):
                status = "interrupted"
                break

    if main:
        _write_results(run_dir, progress, status, amp_dtype)
    distributed.barrier()
    if main and status == "interrupted":
        print(f"stopped ({stop.reason}) at epoch {progress.epoch + 1} step {progress.step_in_epoch}; state saved "
              f"to {last_path}. Run the same command again (fit(..., resume=True)) to continue.")
    return progress.history


def _steps_per_epoch(loader, config):
    steps = len(loader)
    if config.max_steps_per_epoch is not None:
        steps = min(steps, config.max_steps_per_epoch)
    if steps == 0:
        raise ValueError(f"the training loader yields no batch ({len(loader.dataset)} images, "
                         f"batch size {loader.batch_size}); use a smaller batch size or more data")
    return steps


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


def _write_results(run_dir, progress, status, amp_dtype):
    """history.json, history.csv and metrics.json (the best epoch's validation metrics) of the run so far."""
    write_json(run_dir / "history.json", progress.history)
    write_csv(run_dir / "history.csv", progress.history)
    precision = str(amp_dtype or torch.float32).removeprefix("torch.")
    write_json(run_dir / "metrics.json", {"status": status, "epochs_done": len(progress.history),
                                          "precision": precision, **(progress.best_metrics or {})})


def metrics_summary(metrics):
    """The JSON-friendly part of evaluate()'s dict (what metrics.json and ``pa3 evaluate`` write)."""
    return {
        "val_loss": metrics.get("loss"), "pixel_acc": metrics["pixel_acc"], "mean_acc": metrics["mean_acc"],
        "miou": metrics["miou"], "iou": metrics["iou"],
        "category_iou": metrics["category_iou"], "category_miou": metrics["category_miou"],
        "confusion": metrics["confusion"],
    }


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


@torch.no_grad()
def evaluate(model, loader, num_classes=None, device=None, criterion=None, label_space=None,
             sliding_window=None, amp_dtype="auto", channels_last=True, write_to=None, input_size=None):
    """Evaluate on a whole split with one streaming confusion matrix (summed over processes).

    Args:
        loader: DataLoader of (image (N,3,H,W), mask (N,H,W) int64, 255 = ignore).
        num_classes: default ``loader.dataset.num_classes`` (pa3's datasets have it).
        device: default the model's device.
        criterion: optional loss module; adds "loss" (mean over images).
        label_space: names the classes and their categories (``pa3.labels.space_of``; default: the space
            with num_classes classes).
        sliding_window: optional (h, w) for ``predict_sliding``.
        amp_dtype: autocast dtype, None for fp32; "auto" = ``pa3.device.resolve_amp("auto", device)``.
        channels_last: feed the model NHWC images (faster with oneDNN and cuDNN; results the same).
        write_to: optional folder: also write every prediction as an official labelId PNG
            (``pa3.official_eval.write_label_pngs``), in the same pass. Needs a loader that reads its
            CityscapesSegmentation in order (no shuffling, one process).
        input_size: optional (h, w): the model sees the images resized to this size (bilinear) and its logits
            are resized back (bilinear) to the masks' size, so a model trained small is scored at the labels'
            own resolution (how CamVid's published scores are computed, at 360x480).
    Returns:
        ``pa3.metrics.metrics_from_confusion`` dict (pixel_acc, mean_acc, miou, iou {class name: IoU},
        category_iou, category_miou) + "confusion" (C x C list, rows = ground truth) + "loss" if criterion.
    """
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
    bar_kwargs = {} if distributed.is_main_process() else {"disable": True}
    if write_to is not None:
        if distributed.is_dist() or not isinstance(loader.sampler, torch.utils.data.SequentialSampler):
            raise ValueError("evaluate(write_to=...) needs a loader that reads the dataset in order in one "
                             "process (make_loader(dataset, batch_size, train=False))")
        Path(write_to).mkdir(parents=True, exist_ok=True)
    seen = 0
    for images, masks in tqdm(loader, desc="evaluate", leave=False, **bar_kwargs):
        images, masks = to_device(images, masks, device, channels_last)
        with autocast(device, amp_dtype):
            x = images if input_size is None else F.interpolate(images, size=tuple(input_size), mode="bilinear",
                                                                 align_corners=False)  # (N, 3, h, w)
            logits = predict_sliding(model, x, sliding_window) if sliding_window else model(x)  # (N, C, h, w)
        if logits.shape[-2:] != masks.shape[-2:]:
            logits = F.interpolate(logits.float(), size=masks.shape[-2:], mode="bilinear", align_corners=False)
        if criterion is not None:
            loss_sum += criterion(logits.float(), masks).double() * len(images)
            count += len(images)
        confusion.update(masks, logits.argmax(1))
        if write_to is not None:
            write_label_pngs(logits, loader.dataset, seen, write_to)
        seen += len(images)
    model.train(was_training)
    confusion.reduce_from_all_processes()
    distributed.all_reduce_sum(loss_sum, count)
    space = labels.space_of(num_classes, label_space)
    metrics = metrics_from_confusion(confusion.mat, class_names=labels.class_names_for(num_classes, label_space),
                                     category_index=None if space is None else labels.category_index(space))
    metrics["confusion"] = confusion.mat.cpu().tolist()
    if criterion is not None:
        metrics["loss"] = (loss_sum / count.clamp(min=1)).item()
    return metrics
