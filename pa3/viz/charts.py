"""Per-class IoU bars and the confusion heatmap."""
import matplotlib.pyplot as plt
import numpy as np

from pa3.viz.common import _np, _save


def iou_bars(results, orientation="vertical", save=None):
    """Grouped bars of per-class IoU, one colour per model; NaN IoUs (class absent) are left out.

    Args:
        results: {model name: {class name: IoU}} (fractions 0..1, NaN or None allowed), every model with
            the same classes, e.g. ``pa3.experiments.class_ious`` or evaluate()'s "iou" of each model.
        orientation: "vertical" (classes along x) or "horizontal" (classes along y).
        save: optional PNG path.
    Returns:
        matplotlib Figure with 1 axes; IoU shown in percent.
    """
    if orientation not in ("vertical", "horizontal"):
        raise ValueError(f"orientation must be 'vertical' or 'horizontal', got {orientation!r}")
    class_names = list(next(iter(results.values()), {}))
    c, m = len(class_names), len(results)
    width = 0.8 / max(m, 1)
    pos = np.arange(c)
    vertical = orientation == "vertical"
    size = (max(6.0, 0.25 * c * max(m, 2) + 1.5), 4.5) if vertical else (7, max(3.0, 0.22 * c * max(m, 2) + 1))
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    colors = plt.get_cmap("tab10")
    for j, (name, iou) in enumerate(results.items()):
        if list(iou) != class_names:
            raise ValueError(f"model {name!r} has IoUs of classes {list(iou)}, the first model of {class_names}")
        values = 100 * np.array([np.nan if v is None else v for v in iou.values()], dtype=np.float64)
        ok = np.isfinite(values)
        offset = pos[ok] - 0.4 + width * (j + 0.5)
        draw = ax.bar if vertical else ax.barh
        draw(offset, values[ok], width, label=name, color=colors(j % 10))
    if vertical:
        ax.set_xticks(pos, class_names, rotation=45 if c > 6 else 0, ha="right" if c > 6 else "center")
        ax.set(ylabel="IoU (%)", ylim=(0, 100), xlim=(-0.6, c - 0.4))
        ax.grid(axis="y", alpha=0.3)
    else:
        ax.set_yticks(pos, class_names)
        ax.set(xlabel="IoU (%)", xlim=(0, 100), ylim=(c - 0.4, -0.6))
        ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    if m:
        ax.legend(fontsize="small", ncol=min(m, 4), loc="upper right")
    ax.set_title("IoU per class")
    return _save(fig, save)


def confusion_heatmap(mat, class_names, normalize="true", save=None):
    """Heatmap of a confusion matrix (rows = ground truth, columns = prediction).

    Args:
        mat: (C, C) counts.
        class_names: C names for the ticks.
        normalize: "true" (rows sum to 1, recall), "pred" (columns), "all", or None (raw counts).
        save: optional PNG path.
    Returns:
        matplotlib Figure with 2 axes (heatmap, colour bar); values are written in the cells when C <= 20.
        Rows (or columns) without any pixel are blank.
    """
    mat = np.asarray(_np(mat), dtype=np.float64)
    c = mat.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        if normalize == "true":
            shown = mat / mat.sum(axis=1, keepdims=True)
        elif normalize == "pred":
            shown = mat / mat.sum(axis=0, keepdims=True)
        elif normalize == "all":
            shown = mat / mat.sum()
        elif normalize is None:
            shown = mat
        else:
            raise ValueError(f"normalize must be 'true', 'pred', 'all' or None, got {normalize!r}")
    side = min(max(4.5, 0.45 * c + 2.5), 14)
    fig, ax = plt.subplots(figsize=(side + 1, side), layout="constrained")
    vmax = 1.0 if normalize else np.nanmax(shown) if np.isfinite(shown).any() else 1.0
    im = ax.imshow(np.ma.masked_invalid(shown), cmap="Blues", vmin=0, vmax=vmax, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, shrink=0.9)
    ax.set_xticks(np.arange(c), class_names, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_yticks(np.arange(c), class_names)
    ax.set(xlabel="predicted", ylabel="ground truth")
    ax.set_title("confusion matrix" + (f" (normalised over {normalize})" if normalize else ""))
    if c <= 20:
        fontsize = 8 if c <= 10 else 6.5
        for i in range(c):
            for j in range(c):
                v = shown[i, j]
                if np.isfinite(v):
                    text = f"{v:.2f}" if normalize else f"{v:.0f}"
                    if normalize and round(v, 2) == 0:
                        text = "0"
                    ax.text(j, i, text, ha="center", va="center", fontsize=fontsize,
                            color="white" if v > 0.6 * vmax else "black")
    return _save(fig, save)
