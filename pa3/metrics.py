"""Segmentation metrics, all derived from one confusion matrix streamed over a whole split.

Rows of the matrix are ground truth, columns predictions. Pixels whose target is ``ignore_index`` (255)
are not counted. From the matrix:

- ``pixel_acc`` = trace / total;
- ``mean_acc`` = mean over classes with ground-truth pixels of (correct / ground-truth pixels);
- ``iou[c]`` = TP / (TP + FP + FN) = M[c, c] / (row_c + col_c - M[c, c]); NaN when the class is absent
  from both ground truth and prediction (0 / 0);
- ``miou`` = mean of the non-NaN IoUs, i.e. over the classes present in ground truth *or* prediction.
  This is the averaging rule of the official cityscapesscripts evaluation (``getScoreAverage`` skips
  NaN scores); a class predicted but never labelled counts with IoU 0.
- ``category_iou``: classes merged into their Cityscapes category (``pa3.labels.category_index``):
  rows and columns of a category's classes are summed; ground-truth rows of classes outside every
  category (-1, 'void' in the labelId space) are dropped, and predictions *of* such classes on evaluated
  pixels count as misses (FN) — exactly cityscapesscripts' ``getIouScoreForCategory``.

Per-class IoU is the plain C-class rule. In the trainId space it equals the official per-class score
(the official script drops ground truth of ignored classes, which the trainId encoding maps to 255). In
the 34-class labelId space it also scores void classes and counts predictions on void ground truth as
false positives; for the official numbers use the trainId space or :func:`evaluate_label_pngs`.

:func:`evaluate_label_pngs` evaluates official-format prediction PNGs (labelIds) against
``*_gtFine_labelIds.png`` with the same numbers as ``cityscapesscripts``' ``evaluateImgLists``, faster.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

from pa3 import labels
from pa3.files import BadFileError, unreadable

_NUM_LABEL_IDS = 34  # labelIds 0..33
_LANES = 8  # interleaved histograms in _pair_counts (8 * 34 * 34 = 9248 bins: indices still fit int16)

try:  # libpng + zlib-ng: label PNGs decode ~1.4x faster than with PIL (inflate dominates evaluation)
    import imagecodecs
except ImportError:  # pa3 still works: PIL decodes everything
    imagecodecs = None


class ConfusionMatrix:
    """Streaming (C, C) confusion matrix; rows = ground truth, columns = prediction (int64 ``.mat``)."""

    def __init__(self, num_classes, device="cpu", ignore_index=labels.IGNORE_INDEX):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = torch.zeros((num_classes, num_classes), dtype=torch.int64, device=device)

    def update(self, target, pred):
        """Add a batch: ``target`` and ``pred`` integer tensors of the same shape (any, e.g. (N, H, W)).

        Pixels whose target is ``ignore_index`` or outside [0, C) are skipped. The counting is one
        ``torch.bincount`` on the data's device (``.mat`` moves there on first use). A prediction outside
        [0, C) on a counted pixel raises ValueError.
        """
        target, pred = torch.as_tensor(target), torch.as_tensor(pred)
        if target.shape != pred.shape:
            raise ValueError(f"target shape {tuple(target.shape)} != prediction shape {tuple(pred.shape)}")
        if self.mat.device != target.device:
            self.mat = self.mat.to(target.device)
        n = self.num_classes
        target = target.reshape(-1).long()
        pred = pred.reshape(-1).to(device=target.device, dtype=torch.long)
        keep = (target != self.ignore_index) & (target >= 0) & (target < n)
        out_of_range = keep & ((pred < 0) | (pred >= n))
        if out_of_range.any():
            raise ValueError(f"predictions must be class indices in [0, {n}); got values "
                             f"{pred[out_of_range].unique()[:10].tolist()} (argmax over the class dimension?)")
        # ignored pixels go to an extra bin n*n, cut off below: no boolean indexing, one bincount
        index = torch.where(keep, n * target + pred, n * n)
        counts = torch.bincount(index, minlength=n * n + 1)
        self.mat += counts[: n * n].view(n, n)

    def reset(self):
        """Zero the counts."""
        self.mat.zero_()

    def reduce_from_all_processes(self):
        """Sum ``.mat`` over processes when torch.distributed is available and initialised."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.all_reduce(self.mat)

    def compute(self, class_names=None, category_index=None):
        """Metrics dict of :func:`metrics_from_confusion` for the counts so far."""
        return metrics_from_confusion(self.mat, class_names, category_index)

    def __repr__(self):
        m = self.compute()
        return f"ConfusionMatrix(num_classes={self.num_classes}, pixel_acc={m['pixel_acc']:.4f}, miou={m['miou']:.4f})"


def _default_space(num_classes):
    for space in labels.LABEL_SPACES:
        if labels.num_classes(space) == num_classes:
            return space
    return None


def _divide(a, b):
    """Elementwise a / b as float64, NaN where b == 0 (no warning)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.full(np.broadcast(a, b).shape, np.nan)
    np.divide(a, b, out=out, where=b != 0)
    return out


def _nanmean(x):
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def _iou(mat):
    """IoU per class of a square confusion matrix (float64, NaN where TP + FP + FN == 0)."""
    tp = np.diag(mat)
    return _divide(tp, mat.sum(1) + mat.sum(0) - tp)


def _category_iou(mat, category_index, num_categories):
    """Category IoU (K,) with cityscapesscripts' rule (see the module docstring)."""
    category_index = np.asarray(category_index, dtype=np.int64)
    if category_index.shape != (mat.shape[0],):
        raise ValueError(f"category_index must have one entry per class ({mat.shape[0]}), "
                         f"got shape {category_index.shape}")
    k = num_categories
    # (C, K+1) one-hot of each class's category; column K collects classes outside every category
    onehot = np.zeros((mat.shape[0], k + 1), dtype=np.int64)
    onehot[np.arange(mat.shape[0]), np.where(category_index >= 0, category_index, k)] = 1
    merged = onehot.T @ mat @ onehot  # (K+1, K+1)
    merged = merged[:k]  # drop ground truth outside every category
    tp = np.diag(merged[:, :k])
    fn = merged.sum(1) - tp
    fp = merged[:, :k].sum(0) - tp
    return _divide(tp, tp + fp + fn)


def metrics_from_confusion(mat, class_names=None, category_index=None):
    """Every metric from a (C, C) confusion matrix (rows = ground truth, columns = prediction).

    Args:
        mat: (C, C) counts, torch tensor or numpy array.
        class_names: C names; default: pa3.labels' names when C is 19 (trainId) or 34 (labelId),
            else "0", "1", ...
        category_index: (C,) category of each class into ``pa3.labels.CATEGORIES``, -1 for none;
            default: ``pa3.labels.category_index`` of the space with C classes (else no category IoU).
    Returns:
        JSON-friendly dict (python floats, NaN as float("nan")): "pixel_acc", "mean_acc", "miou",
        "iou" (list of C floats), "class_names", "category_iou" ({category: IoU}), "category_miou".
        The rules are in the module docstring.
    """
    mat = mat.detach().cpu().numpy() if torch.is_tensor(mat) else np.asarray(mat)
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
        raise ValueError(f"confusion matrix must be square (C, C), got shape {mat.shape}")
    mat = mat.astype(np.int64)
    num_classes = mat.shape[0]
    space = _default_space(num_classes)
    if class_names is None:
        class_names = labels.class_names(space) if space else [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for a {num_classes}-class confusion matrix")
    if category_index is None and space is not None:
        category_index = labels.category_index(space)

    tp, gt = np.diag(mat), mat.sum(1)
    iou = _iou(mat)
    category_iou = {}
    if category_index is not None:
        names = labels.CATEGORIES
        num_categories = max(len(names), int(np.max(category_index, initial=-1)) + 1)
        names = names + [str(i) for i in range(len(names), num_categories)]
        category_iou = dict(zip(names, map(float, _category_iou(mat, category_index, num_categories))))
    return {
        "pixel_acc": float(_divide(tp.sum(), mat.sum())),
        "mean_acc": _nanmean(_divide(tp, gt)),
        "miou": _nanmean(iou),
        "iou": [float(x) for x in iou],
        "class_names": list(class_names),
        "category_iou": category_iou,
        "category_miou": _nanmean(list(category_iou.values())),
    }


_buffers = threading.local()  # per thread: the arrays evaluate_label_pngs decodes and counts in, reused


def _buffer(name, shape, dtype=torch.uint8):
    """This thread's tensor ``name`` of ``shape`` and ``dtype``, reused from image to image: fresh 2-4 MB
    arrays for every image cost more in page faults than the counting itself."""
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
    # thread's int16 buffers (an int16 += uint8 add with type promotion is ~4x slower than int16 +=
    # int16). Label images hold long runs of one (gt, pred) pair, and each histogram increment waits for
    # the previous one to the same bin; counting into _LANES histograms by pixel column (lane = column
    # mod _LANES) breaks those chains (bincount ~1.5x faster on Cityscapes-like labels).
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
    iou = _divide(tp, tp + fp + fn)
    category_iou = _category_iou(mat, labels.category_index("labelId"), len(labels.CATEGORIES))
    return {
        "iou": dict(zip(labels.class_names("trainId"), map(float, iou))),
        "miou": _nanmean(iou),
        "category_iou": dict(zip(labels.CATEGORIES, map(float, category_iou))),
        "category_miou": _nanmean(category_iou),
        "pixel_acc": float(_divide(tp.sum(), mat[evaluated, :].sum())),
        "mat": mat,
    }
