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
false positives; for the official numbers use the trainId space or ``pa3.official_eval``, which scores
official-format prediction PNGs.
"""
import numpy as np
import torch

from pa3 import distributed, labels


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
        """Sum ``.mat`` over processes under torchrun (a no-op in one process)."""
        distributed.barrier()
        distributed.all_reduce_sum(self.mat)

    def compute(self, class_names=None, category_index=None):
        """Metrics dict of :func:`metrics_from_confusion` for the counts so far."""
        return metrics_from_confusion(self.mat, class_names, category_index)

    def __repr__(self):
        m = self.compute()
        return f"ConfusionMatrix(num_classes={self.num_classes}, pixel_acc={m['pixel_acc']:.4f}, miou={m['miou']:.4f})"


def divide(a, b):
    """Elementwise a / b as float64, NaN where b == 0 (no warning)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.full(np.broadcast(a, b).shape, np.nan)
    np.divide(a, b, out=out, where=b != 0)
    return out


def nanmean(x):
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


_SAID = set()


def _say_once(message):
    if message not in _SAID:
        _SAID.add(message)
        print(message)


def iou_per_class(mat):
    """IoU per class of a square confusion matrix (float64, NaN where TP + FP + FN == 0)."""
    # BEGIN SOLUTION task 1
    tp = np.diag(mat)
    return divide(tp, mat.sum(1) + mat.sum(0) - tp)
    # END SOLUTION


def category_ious(mat, category_index, num_categories):
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
    return divide(tp, tp + fp + fn)


def metrics_from_confusion(mat, class_names=None, category_index=None):
    """Every metric from a (C, C) confusion matrix (rows = ground truth, columns = prediction).

    Args:
        mat: (C, C) counts, torch tensor or numpy array.
        class_names: C names; default ``pa3.labels.class_names_for(C)`` (the label space with C classes,
            else "class_0", ...).
        category_index: (C,) category of each class into ``pa3.labels.CATEGORIES``, -1 for none;
            default: ``pa3.labels.category_index`` of the space with C classes (else no category IoU).
    Returns:
        JSON-friendly dict (python floats, NaN as float("nan")): "pixel_acc", "mean_acc", "miou",
        "iou" ({class name: IoU} in class order), "category_iou" ({category: IoU}), "category_miou".
        The rules are in the module docstring.
    """
    mat = mat.detach().cpu().numpy() if torch.is_tensor(mat) else np.asarray(mat)
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
        raise ValueError(f"confusion matrix must be square (C, C), got shape {mat.shape}")
    mat = mat.astype(np.int64)
    num_classes = mat.shape[0]
    if class_names is None:
        class_names = labels.class_names_for(num_classes)
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for a {num_classes}-class confusion matrix")
    space = labels.space_of(num_classes)
    if category_index is None and space is not None:
        category_index = labels.category_index(space)

    tp, gt = np.diag(mat), mat.sum(1)
    try:
        iou = iou_per_class(mat)
    except NotImplementedError as error:  # the student edition before Task 1 (pa3.assignment): train without IoU
        _say_once(f"{error} Until then IoU and mIoU are NaN.")
        iou = np.full(num_classes, np.nan)
    category_iou = {}
    if category_index is not None:
        names = labels.CATEGORIES
        num_categories = max(len(names), int(np.max(category_index, initial=-1)) + 1)
        names = names + [str(i) for i in range(len(names), num_categories)]
        category_iou = dict(zip(names, map(float, category_ious(mat, category_index, num_categories))))
    return {
        "pixel_acc": float(divide(tp.sum(), mat.sum())),
        "mean_acc": nanmean(divide(tp, gt)),
        "miou": nanmean(iou),
        "iou": dict(zip(class_names, map(float, iou))),
        "category_iou": category_iou,
        "category_miou": nanmean(list(category_iou.values())),
    }
