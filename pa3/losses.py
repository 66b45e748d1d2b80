"""Segmentation losses: cross-entropy, class-weighted cross-entropy, soft Dice, and CE + Dice.

The maths lives in pure functions (:func:`class_weights`, :func:`cross_entropy`, :func:`dice_loss`); the
``nn.Module`` classes are thin wrappers that hold the settings, and :func:`build_loss` picks one by name.
Pixels whose target is ``ignore_index`` (255) contribute nothing to any loss.

Class weights for the report's "weighted CE" variant come from the training set's pixel counts
(``pa3.data.class_frequencies``). Three classic rules are offered; **median-frequency balancing is the
default** because it is the one used by the segmentation literature the report follows (Eigen & Fergus
2015; SegNet): it leaves a class of median frequency at weight 1 and scales the others by how much rarer
or commoner they are, so weights stay moderate. "inverse" is plain inverse frequency (normalised to mean
1), and "enet" is the bounded rule of ENet (Paszke et al. 2016), ``1 / ln(c + p)``, which caps the weight
of very rare classes at ``1 / ln(c)`` (about 50 for c = 1.02).

A class with no pixel at all gets weight 0 under every rule: it contributes no pixel to the loss anyway,
and any frequency-based formula would otherwise divide by zero (an infinite weight).
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pa3.labels import IGNORE_INDEX

LOSSES = ("ce", "weighted_ce", "dice", "ce_dice")
WEIGHT_METHODS = ("median", "inverse", "enet")


def class_weights(frequencies, method="median", c=1.02):
    """Per-class loss weights from pixel counts.

    Args:
        frequencies: (C,) pixel count (or frequency) of each class, non-negative.
        method: "median" (default) — median-frequency balancing, ``w_c = median(f) / f_c`` where
            ``f_c = n_c / sum(n)`` and the median is taken over the classes present (``n_c > 0``; an
            even number of classes averages the two middle values, as ``np.median`` does). This is the
            global-count form of Eigen & Fergus' rule (they divide by the pixels of the images holding
            the class; with counts only, we divide by all pixels).
            "inverse" — ``w_c = sum(n) / (C * n_c)``, then rescaled to mean 1 over the present classes.
            "enet" — ``w_c = 1 / ln(c + p_c)`` with ``p_c = n_c / sum(n)`` (Paszke et al., ENet).
        c: the ENet constant (only used by "enet").

    Returns:
        torch.float32 (C,); classes with count 0 get weight 0.
    """
    # BEGIN SOLUTION task 2
    n = np.asarray(frequencies.cpu() if torch.is_tensor(frequencies) else frequencies, dtype=np.float64)
    if n.ndim != 1:
        raise ValueError(f"frequencies must be a 1-D vector of per-class counts, got shape {n.shape}")
    if (n < 0).any() or not np.isfinite(n).all():
        raise ValueError("frequencies must be finite and non-negative (pixel counts per class)")
    present = n > 0
    if not present.any():
        raise ValueError("every class has count 0: compute counts with pa3.data.class_frequencies(...)")
    f = n / n.sum()
    w = np.zeros_like(f)
    if method == "median":
        w[present] = np.median(f[present]) / f[present]
    elif method == "inverse":
        w[present] = n.sum() / (len(n) * n[present])
        w[present] /= w[present].mean()
    elif method == "enet":
        if c <= 1:
            raise ValueError(f"enet needs c > 1 (ln(c + p) must be positive), got c={c}")
        w[present] = 1.0 / np.log(c + f[present])
    else:
        raise ValueError(f"unknown class-weight method {method!r}; choose one of {WEIGHT_METHODS}")
    return torch.tensor(w, dtype=torch.float32)
    # END SOLUTION


def cross_entropy(logits, target, weight=None, ignore_index=IGNORE_INDEX):
    """Mean pixel cross-entropy, optionally class-weighted.

    Same value as ``F.cross_entropy(..., reduction="mean")``: ``sum_i w_{y_i} * l_i / sum_i w_{y_i}``
    over the pixels not ignored (``w = 1`` without weights) — except that a batch with no valid pixel
    gives 0 (with a zero gradient) instead of NaN, so one all-ignored crop cannot poison training.

    Args:
        logits: (N, C, H, W) float.
        target: (N, H, W) int64, values in [0, C) or ``ignore_index``.
        weight: optional (C,) float class weights.
    Returns:
        scalar tensor.
    """
    total = F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index, reduction="sum")
    valid = target != ignore_index
    if weight is None:
        denom = valid.sum().to(total.dtype)
    else:
        # BEGIN SOLUTION task 2
        denom = (weight.to(total.dtype)[torch.where(valid, target, 0)] * valid).sum()
        # END SOLUTION
    return total / torch.where(denom > 0, denom, torch.ones_like(denom))


def dice_loss(logits, target, ignore_index=IGNORE_INDEX, smooth=1.0):
    """Soft multiclass Dice loss, ``1 - mean_c dice_c``, over the whole batch.

    ``p = softmax(logits)`` and ``g = one_hot(target)``; ignored pixels are removed from both. For each
    class, summing over every valid pixel of the batch (N, H, W together — "batch Dice"):
    ``dice_c = (2 * sum(p_c * g_c) + smooth) / (sum(p_c) + sum(g_c) + smooth)``.
    The mean runs over the classes *present*: those with at least one valid target pixel or that are
    the argmax prediction of at least one valid pixel. (Every class has some soft mass, so "present in
    the prediction" needs a rule; a class neither labelled nor predicted would score about 1 through
    ``smooth`` and only dilute the loss.) With no valid pixel the loss is 0.

    Args:
        logits: (N, C, H, W) float (computed in float32).
        target: (N, H, W) int64, values in [0, C) or ``ignore_index``.
        smooth: additive smoothing of numerator and denominator.
    Returns:
        scalar tensor in [0, 1].
    """
    # BEGIN SOLUTION task 3
    num_classes = logits.shape[1]
    prob = logits.float().softmax(dim=1)  # (N, C, H, W)
    valid = (target != ignore_index).unsqueeze(1)  # (N, 1, H, W)
    onehot = F.one_hot(torch.where(valid.squeeze(1), target, 0), num_classes)  # (N, H, W, C)
    onehot = onehot.permute(0, 3, 1, 2).to(prob.dtype) * valid  # (N, C, H, W)
    prob = prob * valid
    dims = (0, 2, 3)
    intersection = (prob * onehot).sum(dims)  # (C,)
    cardinality = prob.sum(dims) + onehot.sum(dims)  # (C,)
    dice = (2 * intersection + smooth) / (cardinality + smooth)  # (C,)
    predicted = F.one_hot(logits.argmax(1), num_classes).permute(0, 3, 1, 2) * valid  # (N, C, H, W)
    present = ((onehot.sum(dims) > 0) | (predicted.sum(dims) > 0)).to(dice.dtype)  # (C,)
    n_present = present.sum()
    mean_dice = (dice * present).sum() / torch.where(n_present > 0, n_present, torch.ones_like(n_present))
    return (1 - mean_dice) * (n_present > 0)
    # END SOLUTION


def _check_channels(logits, num_classes):
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ValueError(f"loss built for {num_classes} classes got logits with {logits.shape[1]} channels "
                         f"(shape {tuple(logits.shape)}); build it with num_classes={logits.shape[1]}")


class CrossEntropyLoss(nn.Module):
    """Module form of :func:`cross_entropy`; ``weight`` is a buffer, so it follows ``.to(device)``."""

    def __init__(self, weight=None, ignore_index=IGNORE_INDEX, num_classes=None):
        super().__init__()
        self.ignore_index, self.num_classes = ignore_index, num_classes
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, logits, target):
        _check_channels(logits, self.num_classes)
        return cross_entropy(logits, target, self.weight, self.ignore_index)


class DiceLoss(nn.Module):
    """Module form of :func:`dice_loss`."""

    def __init__(self, ignore_index=IGNORE_INDEX, smooth=1.0, num_classes=None):
        super().__init__()
        self.ignore_index, self.smooth, self.num_classes = ignore_index, smooth, num_classes

    def forward(self, logits, target):
        _check_channels(logits, self.num_classes)
        return dice_loss(logits, target, self.ignore_index, self.smooth)


class CEDiceLoss(nn.Module):
    """``CE + dice_weight * Dice`` (the CE part optionally class-weighted)."""

    def __init__(self, weight=None, dice_weight=1.0, ignore_index=IGNORE_INDEX, num_classes=None):
        super().__init__()
        self.ce = CrossEntropyLoss(weight, ignore_index, num_classes)
        self.dice = DiceLoss(ignore_index, num_classes=num_classes)
        self.dice_weight = dice_weight

    def forward(self, logits, target):
        return self.ce(logits, target) + self.dice_weight * self.dice(logits, target)


def build_loss(name, num_classes, weights=None, dice_weight=1.0, ignore_index=IGNORE_INDEX):
    """Build a loss module by name.

    Args:
        name: one of LOSSES — "ce", "weighted_ce" (needs ``weights``), "dice", "ce_dice"
            (``CE + dice_weight * Dice``; uses ``weights`` for its CE part if given).
        num_classes: C; ``weights`` must have C entries and logits C channels.
        weights: (C,) class weights, e.g. ``class_weights(class_frequencies(root))``.
    Returns:
        nn.Module with ``forward(logits (N, C, H, W), target (N, H, W) int64) -> scalar``.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")
    if weights is not None:
        weights = torch.as_tensor(weights, dtype=torch.float32)
        if weights.shape != (num_classes,):
            raise ValueError(f"weights must have shape ({num_classes},), got {tuple(weights.shape)}")
        if name in ("ce", "dice"):
            raise ValueError(f"loss {name!r} takes no class weights; use 'weighted_ce' (or 'ce_dice') for weights")
    if name == "weighted_ce" and weights is None:
        raise ValueError("loss 'weighted_ce' needs class weights: compute them with "
                         "pa3.losses.class_weights(pa3.data.class_frequencies(root)) and pass weights=...")
    if name in ("ce", "weighted_ce"):
        return CrossEntropyLoss(weights, ignore_index, num_classes)
    if name == "dice":
        return DiceLoss(ignore_index, num_classes=num_classes)
    return CEDiceLoss(weights, dice_weight, ignore_index, num_classes)
