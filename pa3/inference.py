"""Inference and evaluation: predictions for a batch (whole or tiled), and metrics over a whole split from
one streaming confusion matrix (a callback can write official labelId PNGs in the same pass). ``fit``
(pa3.engine) validates with ``evaluate``; the CLI, the notebooks and the experiments predict with these."""

import torch
import torch.nn.functional as F
from tqdm import tqdm

from pa3 import distributed, labels
from pa3.device import autocast, resolve_amp, use_channels_last
from pa3.metrics import ConfusionMatrix, metrics_from_confusion
from pa3.transforms import normalize


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
def evaluate(model, loader, num_classes=None, criterion=None, label_space=None, sliding_window=None, amp="auto",
             channels_last="auto", input_size=None, on_batch=None):
    """Evaluate on a whole split with one streaming confusion matrix (summed over processes), on the model's device.

    Args:
        loader: DataLoader of (image (N,3,H,W), mask (N,H,W) int64, 255 = ignore).
        num_classes: default ``loader.dataset.num_classes`` (pa3's datasets have it).
        criterion: optional loss module; adds "loss" (mean over images).
        label_space: names the classes and their categories (``pa3.labels.space_of``; default: the space
            with num_classes classes).
        sliding_window: optional (h, w) for ``predict_sliding``.
        amp, channels_last: as in TrainConfig and ``predict`` (``pa3.device.resolve_amp``, ``use_channels_last``).
        input_size: optional (h, w): the model sees the images resized to this size (bilinear) and its logits
            are resized back (bilinear) to the masks' size, so a model trained small is scored at the labels'
            own resolution (how CamVid's published scores are computed, at 360x480).
        on_batch: optional ``f(logits (N, C, H, W) at the masks' size, index of the batch's first item)``, called
            for every batch, e.g. ``pa3.official_eval.label_png_writer``.
    Returns:
        ``pa3.metrics.metrics_from_confusion`` dict (pixel_acc, mean_acc, miou, iou {class name: IoU},
        category_iou, category_miou) + "confusion" (C x C list, rows = ground truth) + "loss" if criterion.
    """
    if num_classes is None:
        num_classes = getattr(loader.dataset, "num_classes", None)
        if num_classes is None:
            raise ValueError(f"{type(loader.dataset).__name__} has no num_classes attribute: pass "
                             "evaluate(model, loader, num_classes=...)")
    device = next(model.parameters()).device
    amp_dtype, channels_last = resolve_amp(amp, device), use_channels_last(channels_last)
    was_training = model.training
    model.eval()
    confusion = ConfusionMatrix(num_classes, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    bar_kwargs = {} if distributed.is_main_process() else {"disable": True}
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
        if on_batch is not None:
            on_batch(logits, seen)
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
