"""Training curves: the report's per-model plot (losses, accuracy and mIoU, class IoUs), and mIoU against training
minutes."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pa3 import labels
from pa3.labels import REPORT_CLASSES
from pa3.viz.common import _class_color, _save


def _history_frame(history):
    df = history.copy() if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
    if "epoch" not in df:
        df["epoch"] = np.arange(1, len(df) + 1)
    return df.sort_values("epoch")


def training_curves(history, title="", label_space="trainId", classes=REPORT_CLASSES, save=None):
    """The report's per-model training plot: (a) losses, (b) val pixel accuracy and mIoU, (c) class IoUs.

    Args:
        history: list of row dicts or a DataFrame with columns epoch, train_loss, val_loss, pixel_acc,
            miou and iou_<class name> (fractions 0..1); missing columns are skipped.
        title: figure title (e.g. the model name).
        label_space: label space of the classes (for their palette colours).
        classes: class names whose IoU is drawn in panel (c).
        save: optional PNG path.
    Returns:
        matplotlib Figure with 3 axes side by side; accuracies and IoUs are shown in percent.
    """
    df = _history_frame(history)
    epochs = df["epoch"].to_numpy()
    marker = "o" if len(df) <= 30 else None
    style = dict(marker=marker, markersize=3, linewidth=1.6)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")

    ax = axes[0]
    for key, label, color in [("train_loss", "train", "tab:blue"), ("val_loss", "validation", "tab:orange")]:
        if key in df:
            ax.plot(epochs, df[key], label=label, color=color, **style)
    ax.set(title="(a) loss", xlabel="epoch", ylabel="loss")

    ax = axes[1]
    for key, label, color in [("pixel_acc", "pixel accuracy", "tab:green"), ("miou", "mIoU", "tab:purple")]:
        if key in df:
            ax.plot(epochs, 100 * df[key].astype(float), label=label, color=color, **style)
    ax.set(title="(b) validation accuracy and mIoU", xlabel="epoch", ylabel="%", ylim=(0, 100))

    ax = axes[2]
    names = labels.class_names(label_space)
    for name in classes:
        key = f"iou_{name}"
        if key in df:
            color = _class_color(label_space, names.index(name)) if name in names else None
            ax.plot(epochs, 100 * df[key].astype(float), label=name, color=color, **style)
    ax.set(title="(c) validation IoU per class", xlabel="epoch", ylabel="IoU (%)", ylim=(0, 100))

    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="best")
        if len(epochs):
            ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    return _save(fig, save)


def miou_against_minutes(histories, references=None, title="", save=None):
    """Validation mIoU against training minutes, one line per run (how much a CPU buys).

    Args:
        histories: {run name: history (rows or DataFrame) with "miou" and "seconds" (per epoch, as ``fit``
            writes them)}.
        references: optional {label: mIoU fraction} drawn as horizontal lines (e.g. published scores).
        title: figure title; save: optional PNG path.
    Returns:
        matplotlib Figure; mIoU in percent, minutes cumulative over epochs.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    for name, history in histories.items():
        df = _history_frame(history)
        minutes = df["seconds"].astype(float).cumsum() / 60
        ax.plot(minutes, 100 * df["miou"].astype(float), marker="o", markersize=2.5, linewidth=1.6, label=name)
    for i, (label, value) in enumerate((references or {}).items()):
        ax.axhline(100 * value, color="0.5", linestyle=("--", ":", "-.")[i % 3], linewidth=1)
        ax.annotate(f"{label} {100 * value:.1f}", (1.0, 100 * value), xycoords=("axes fraction", "data"),
                    ha="right", va="bottom", fontsize=8, color="0.35")
    ax.set(xlabel="training minutes (epochs' wall time)", ylabel="validation mIoU (%)", title=title, ylim=(0, None))
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, save)
    return fig
