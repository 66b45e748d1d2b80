"""Official-format evaluation: predictions as labelId PNGs, and scoring PNGs the way cityscapesscripts does.

The Cityscapes benchmark and its scripts (``cityscapesscripts``' evalPixelLevelSemanticLabeling) take one
``*_labelIds.png`` per image at the ground truth's resolution. ``write_label_pngs`` writes them (``pa3
evaluate --out``); ``evaluate_label_pngs`` scores such a folder against ``*_gtFine_labelIds.png`` with the
official numbers (tests/test_official_eval.py checks them against the official script). It reads many
large PNGs, so it decodes with libpng where it can, in threads, into reused buffers: benchmarks/README.md
has the measurements.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pa3 import distributed, labels
from pa3.files import BadFileError, unreadable
from pa3.metrics import category_ious, divide, nanmean

_NUM_LABEL_IDS = 34  # labelIds 0..33
_LANES = 8  # interleaved histograms in _pair_counts (8 * 34 * 34 = 9248 bins: indices still fit int16)

try:  # libpng + zlib-ng: inflating the PNGs is most of the evaluation's time
    import imagecodecs
except ImportError:  # pa3 still works: PIL decodes everything
    imagecodecs = None


def label_png_writer(loader, out_dir):
    """A callback for ``pa3.inference.evaluate(on_batch=...)``: each batch's predictions written as labelId PNGs
    (``write_label_pngs``) into ``out_dir``. Needs a loader that reads its CityscapesSegmentation in order."""
    if distributed.is_dist() or not isinstance(loader.sampler, torch.utils.data.SequentialSampler):
        raise ValueError("writing labelId PNGs needs a loader that reads the dataset in order in one process "
                         "(make_loader(dataset, batch_size, train=False))")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return lambda logits, first_index: write_label_pngs(logits, loader.dataset, first_index, out_dir)


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


_buffers = threading.local()  # per thread: the arrays evaluate_label_pngs decodes and counts in, reused


def _buffer(name, shape, dtype=torch.uint8):
    """This thread's tensor ``name`` of ``shape`` and ``dtype``, reused from image to image: a fresh array
    of a full-resolution image for every image costs page faults, which would take longer than counting."""
    buffer = getattr(_buffers, name, None)
    if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
        buffer = torch.empty(shape, dtype=dtype)
        setattr(_buffers, name, buffer)
    return buffer


def _read_label_png(path, buffer="label"):
    """uint8 tensor (H, W) of an 8-bit grayscale PNG via imagecodecs (libpng with zlib-ng; releases the
    GIL), decoded into this thread's array ``buffer`` (valid until the thread's next decode into it), or
    None when the file is anything else (palette, 16-bit, colour, unreadable) or imagecodecs is missing:
    PIL then decides, and names the problem."""
    if imagecodecs is None:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
        # IHDR chunk: width, height (big-endian) at bytes 16 and 20, bit depth at 24, colour type (0 = gray) at 25
        if data[:8] != b"\x89PNG\r\n\x1a\n" or data[24] != 8 or data[25] != 0:
            return None
        shape = (int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big"))
        image = _buffer(buffer, shape)
        imagecodecs.png_decode(data, out=image.numpy())  # (H, W) uint8, in place
    except Exception:  # noqa: BLE001 - PIL gives the error message
        return None
    return image


def _read_label_pil(path):
    try:
        with Image.open(path) as image:
            return np.array(image)
    except (OSError, ValueError) as error:  # PIL's errors for folders, unreadable, truncated and non-PNG files
        raise BadFileError(path, unreadable(path) or f"is not a readable PNG ({error})",
                           "Write the predictions again, or restore the ground truth (re-unzip gtFine)",
                           "label PNG") from error


def _pair_counts(paths):
    """(34, 34) int64 counts (rows = ground truth) of one (pred_path, gt_path) pair of labelId PNGs, checked."""
    pred_path, gt_path = paths
    pred, gt = _read_label_png(pred_path, "pred"), _read_label_png(gt_path, "gt")
    if pred is None or gt is None:
        pred, gt = _read_label_pil(pred_path), _read_label_pil(gt_path)
        if pred.ndim != 2 or gt.ndim != 2:
            raise ValueError(f"label PNGs must be single-channel: {pred_path} has shape {pred.shape}, "
                             f"{gt_path} has shape {gt.shape}")
        if gt.dtype != np.uint8 or pred.dtype != np.uint8:
            raise ValueError(f"label PNGs must be 8-bit: {pred_path} is {pred.dtype}, {gt_path} is {gt.dtype}")
        pred, gt = torch.from_numpy(pred), torch.from_numpy(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"size mismatch: {pred_path} is {tuple(pred.shape)}, {gt_path} is {tuple(gt.shape)} (H, W)")
    if int(gt.max()) >= _NUM_LABEL_IDS:
        raise ValueError(f"{gt_path} holds ids above 33: a *_gtFine_labelIds.png holds labelIds 0..33 "
                         "(is it a trainId or colour file?)")
    if int(pred.max()) >= _NUM_LABEL_IDS:
        raise ValueError(f"{pred_path} holds ids above 33: predictions must be labelIds 0..33 "
                         "(convert trainIds with pa3.labels.to_label_ids(pred, 'trainId'))")
    # One bincount of gt * 34 + pred (< 34 * 34: int16, never widened to int64), computed in this
    # thread's int16 buffers (adding int16 to int16 avoids a type promotion per pixel). Label images hold
    # long runs of one (gt, pred) pair, and each histogram increment waits for the previous one to the same
    # bin; counting into _LANES histograms by pixel column (lane = column mod _LANES) breaks those chains.
    bins = _NUM_LABEL_IDS * _NUM_LABEL_IDS
    lanes = torch.arange(gt.shape[1], dtype=torch.int16).remainder_(_LANES).mul_(bins)  # (W,)
    index = _buffer("index", gt.shape, torch.int16).copy_(gt).mul_(_NUM_LABEL_IDS)
    index.add_(_buffer("pred16", pred.shape, torch.int16).copy_(pred)).add_(lanes)
    counts = torch.bincount(index.view(-1), minlength=_LANES * bins).view(_LANES, bins).sum(0)
    return counts.view(_NUM_LABEL_IDS, _NUM_LABEL_IDS).numpy()


def evaluate_label_pngs(pred_paths, gt_paths, num_workers=None):
    """Evaluate labelId prediction PNGs against gtFine labelId PNGs like cityscapesscripts does.

    Gives the per-class and per-category IoU of ``evaluateImgLists`` (evalPixelLevelSemanticLabeling)
    for the 19 evaluated classes: the (34, 34) labelId confusion matrix M is summed over all images
    (one torch bincount of ``gt * 34 + pred`` per image), then for each evaluated class c
    ``TP = M[c, c]``, ``FN = sum(M[c, :]) - TP`` (the class's pixels predicted as anything else, void
    ids included) and ``FP = sum of M[r, c] over evaluated r != c`` (ground truth of ignoreInEval ids
    — void, parking, guard rail, ... — never makes a false positive). ``IoU = TP / (TP + FP + FN)``,
    NaN when 0 / 0; "miou" averages the non-NaN IoUs (the official "averageScoreClasses").

    Args:
        pred_paths, gt_paths: equal-length sequences of paths, paired by position; uint8 PNGs of
            labelIds 0..33 (ValueError otherwise, naming the file). 8-bit grayscale PNGs are
            decoded with imagecodecs (libpng + zlib-ng), anything else with PIL.
        num_workers: threads that decode and count the pairs (the decoders and torch's bincount release
            the GIL, so threads scale like processes without their start-up and copies); 0 or 1 = this
            thread. Default min(8, CPU count).
    Returns:
        {"iou": {class name: IoU} (19, trainId order), "miou", "category_iou": {category: IoU},
        "category_miou", "pixel_acc" (correct / evaluated ground-truth pixels), "mat": int64 (34, 34)
        labelId confusion matrix (rows = ground truth)}.
    """
    pred_paths, gt_paths = list(pred_paths), list(gt_paths)
    if len(pred_paths) != len(gt_paths):
        raise ValueError(f"{len(pred_paths)} predictions for {len(gt_paths)} ground-truth images")
    if not gt_paths:
        raise ValueError("no images to evaluate")
    mat = np.zeros((_NUM_LABEL_IDS, _NUM_LABEL_IDS), dtype=np.int64)
    num_workers = min(num_workers if num_workers is not None else min(8, os.cpu_count() or 1), len(gt_paths))
    pairs = list(zip(pred_paths, gt_paths))
    if num_workers > 1:
        with ThreadPoolExecutor(num_workers) as pool:
            for counts in pool.map(_pair_counts, pairs):
                mat += counts
    else:
        for counts in map(_pair_counts, pairs):
            mat += counts

    lut = labels.encode_lut("trainId")[:_NUM_LABEL_IDS]
    evaluated = np.array([list(lut).index(t) for t in range(labels.num_classes("trainId"))])  # trainId -> labelId
    tp = mat[evaluated, evaluated]
    fn = mat[evaluated, :].sum(1) - tp
    fp = mat[np.ix_(evaluated, evaluated)].sum(0) - tp
    iou = divide(tp, tp + fp + fn)
    category_iou = category_ious(mat, labels.category_index("labelId"), len(labels.CATEGORIES))
    return {
        "iou": dict(zip(labels.class_names("trainId"), map(float, iou))),
        "miou": nanmean(iou),
        "category_iou": dict(zip(labels.CATEGORIES, map(float, category_iou))),
        "category_miou": nanmean(category_iou),
        "pixel_acc": float(divide(tp.sum(), mat[evaluated, :].sum())),
        "mat": mat,
    }
