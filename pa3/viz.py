"""Figures and tables of the report: colour masks, overlays, the prediction grid (Table 7), training curves,
per-class IoU bars, confusion heatmaps and the results tables (Tables 5 and 6) as Markdown, CSV and PNG.

Every plotting function returns its ``matplotlib.figure.Figure`` and never calls ``plt.show()`` (the
notebooks do); ``save=path`` also writes a PNG (dpi 120, tight bounding box, parent folder created).
Images are RGB uint8 ``(H, W, 3)`` (a ``(3, H, W)`` tensor is transposed); masks hold class indices of a
label space with ``IGNORE_INDEX`` (255) for ignored pixels. Numpy arrays and torch tensors are both accepted.
"""
import io
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import rgb_to_hsv, hsv_to_rgb
from matplotlib.patches import Patch

from pa3 import labels
from pa3.labels import IGNORE_INDEX, REPORT_CLASSES

DPI = 120
# Short column names of the report's Table 5; other classes keep their own name.
SHORT_NAMES = {"building": "build.", "traffic sign": "sign", "person": "person", "car": "car",
               "bicycle": "bike"}


def _np(x):
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _image(x):
    x = _np(x)
    if x.ndim >= 3 and x.shape[-1] != 3 and x.shape[-3] == 3:  # (..., 3, H, W) -> (..., H, W, 3)
        x = np.moveaxis(x, -3, -1)
    return x.astype(np.uint8)


def _save(fig, save):
    if save is not None:
        path = Path(save)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return fig


def _wrap(text, width=14):
    return "\n".join(textwrap.wrap(str(text), width)) or str(text)


def _class_color(label_space, index, max_value=0.75):
    """Palette colour as floats 0..1, darkened when too light to read as a line on white."""
    rgb = labels.palette(label_space)[index] / 255.0
    hsv = rgb_to_hsv(rgb)
    hsv[2] = min(hsv[2], max_value)
    return hsv_to_rgb(hsv)


def _present(label_space, *maps):
    n = labels.num_classes(label_space)
    found = set()
    for m in maps:
        values = np.unique(_np(m))
        found.update(int(v) for v in values if 0 <= v < n)
    return sorted(found)


def colorize(index_map, label_space="trainId"):
    """Class-index map -> RGB image in the official Cityscapes colours; ignored pixels (255) are black.

    Args:
        index_map: int array or tensor (..., H, W) of class indices of ``label_space``.
        label_space: a space of pa3.labels.LABEL_SPACES.
    Returns:
        np.ndarray uint8 (..., H, W, 3).
    """
    return labels.colorize(_np(index_map), label_space)


def overlay(image, index_map, label_space="trainId", alpha=0.5):
    """Blend the colourised mask over the image; ignored pixels show the image unchanged.

    Args:
        image: uint8 (H, W, 3) RGB (or a (3, H, W) tensor).
        index_map: int (H, W) class indices, 255 = ignore.
        label_space: a space of pa3.labels.LABEL_SPACES.
        alpha: opacity of the mask, 0 (image only) .. 1 (mask only).
    Returns:
        np.ndarray uint8 (H, W, 3): round((1 - alpha) * image + alpha * colour) where labelled.
    """
    image = _image(image).astype(np.float64)
    index_map = _np(index_map)
    color = colorize(index_map, label_space).astype(np.float64)
    valid = (index_map >= 0) & (index_map < labels.num_classes(label_space))
    blended = (1.0 - alpha) * image + alpha * color
    out = np.where(valid[..., None], blended, image)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def legend_handles(label_space="trainId", classes=None):
    """Colour-swatch legend handles for classes of a label space.

    Args:
        label_space: a space of pa3.labels.LABEL_SPACES.
        classes: class indices or names to include; None = every class of the space.
    Returns:
        list of matplotlib.patches.Patch, one per class, labelled with the class name.
    """
    names = labels.class_names(label_space)
    pal = labels.palette(label_space) / 255.0
    if classes is None:
        classes = range(len(names))
    indices = [names.index(c) if isinstance(c, str) else int(c) for c in classes]
    return [Patch(facecolor=pal[i], edgecolor="0.3", linewidth=0.5, label=names[i]) for i in indices]


def _mask_handles(label_space, *maps):
    """Legend handles of the classes present in ``maps``, plus a black 'ignored' swatch if 255 occurs."""
    handles = legend_handles(label_space, _present(label_space, *maps))
    if any((_np(m) == IGNORE_INDEX).any() for m in maps):
        handles.append(Patch(facecolor="black", edgecolor="0.3", linewidth=0.5, label="ignored"))
    return handles


def _bottom_legend(fig, handles, ncol=None):
    if handles:
        ncol = ncol or min(len(handles), 6)
        fig.legend(handles=handles, loc="outside lower center", ncol=ncol, frameon=False,
                   fontsize="small", handlelength=1.2, columnspacing=1.2)


def class_legend(label_space="trainId", classes=None, ncol=None):
    """A figure holding only the class legend (colour swatches + names).

    Args:
        label_space: a space of pa3.labels.LABEL_SPACES.
        classes: class indices or names; None = every class.
        ncol: legend columns (default: up to 4).
    Returns:
        matplotlib Figure with one (hidden) axes.
    """
    handles = legend_handles(label_space, classes)
    ncol = ncol or min(4, max(1, len(handles)))
    rows = -(-len(handles) // ncol)
    fig, ax = plt.subplots(figsize=(1.7 * ncol, 0.28 * rows + 0.2))
    ax.axis("off")
    ax.legend(handles=handles, loc="center", ncol=ncol, frameon=False, handlelength=1.2)
    return fig


def show_samples(images, masks, label_space="trainId", titles=None, save=None):
    """Grid of samples, one row each: image | colourised mask, with a legend of the classes present.

    Args:
        images: uint8 (N, H, W, 3) (or (N, 3, H, W)).
        masks: int (N, H, W) class indices, 255 = ignore.
        label_space: a space of pa3.labels.LABEL_SPACES.
        titles: optional N row titles (e.g. file stems).
        save: optional PNG path.
    Returns:
        matplotlib Figure with N x 2 axes.
    """
    images, masks = _image(images), _np(masks)
    n, h, w = masks.shape
    cell = 3.2
    fig, axes = plt.subplots(n, 2, figsize=(2 * cell, n * cell * h / w + 0.8), squeeze=False,
                             layout="constrained")
    for i in range(n):
        axes[i, 0].imshow(images[i])
        axes[i, 1].imshow(colorize(masks[i], label_space), interpolation="nearest")
        for ax in axes[i]:
            ax.axis("off")
        if titles is not None:
            axes[i, 0].set_title(str(titles[i]), fontsize="small")
            axes[i, 1].set_title("mask", fontsize="small")
    if titles is None:
        axes[0, 0].set_title("image", fontsize="small")
        axes[0, 1].set_title("mask", fontsize="small")
    _bottom_legend(fig, _mask_handles(label_space, masks), ncol=4)
    return _save(fig, save)


def prediction_grid(images, ground_truth, predictions, label_space="trainId", image_ids=None, save=None):
    """The report's Table 7: rows = image, ground truth, then each model's prediction; columns = images.

    Args:
        images: uint8 (N, H, W, 3) (or (N, 3, H, W)).
        ground_truth: int (N, H, W) class indices, 255 = ignore.
        predictions: {model display name: int (N, H, W)}, in row order.
        label_space: a space of pa3.labels.LABEL_SPACES.
        image_ids: N column titles; ints become "ID <n>"; default "ID 1".."ID N".
        save: optional PNG path.
    Returns:
        matplotlib Figure with (2 + len(predictions)) x N axes and the legend of present classes below.
    """
    images, ground_truth = _image(images), _np(ground_truth)
    predictions = {name: _np(p) for name, p in predictions.items()}
    n, h, w = ground_truth.shape
    if image_ids is None:
        image_ids = range(1, n + 1)
    col_titles = [f"ID {i}" if isinstance(i, (int, np.integer)) else str(i) for i in image_ids]
    rows = [("Image", None), ("Ground truth", ground_truth)] + list(predictions.items())
    cell = 2.6
    fig, axes = plt.subplots(len(rows), n, squeeze=False, layout="constrained",
                             figsize=(n * cell + 1.2, len(rows) * cell * h / w + 0.9))
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.01, hspace=0.01)
    for r, (name, maps) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            if maps is None:
                ax.imshow(images[c])
            else:
                ax.imshow(colorize(maps[c], label_space), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if r == 0:
                ax.set_title(col_titles[c], fontsize="medium")
        axes[r, 0].set_ylabel(_wrap(name), rotation=0, ha="right", va="center", fontsize="medium",
                              labelpad=6)
    handles = _mask_handles(label_space, ground_truth, *predictions.values())
    _bottom_legend(fig, handles, ncol=min(len(handles), max(4, n + 2)))
    return _save(fig, save)


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


def results_table(metrics_by_model, *, classes=REPORT_CLASSES):
    """Tables 5 and 6 in one DataFrame: per-class IoU, mIoU and pixel accuracy in percent (1 decimal).

    Args:
        metrics_by_model: {model name: metrics dict with "iou" ({class name: IoU}), "miou" and "pixel_acc"
            (fractions; None or NaN where missing)}, e.g. from ``pa3.engine.evaluate`` or a run folder's
            metrics.json; row order = insertion order.
        classes: class names to tabulate (report's five by default).
    Returns:
        pandas.DataFrame, index "Method" = model names, columns = short class names ("build.", "sign",
        "person", "car", "bike") then "mIoU" and "Pixacc"; NaN where a value is missing.
    """
    columns = [SHORT_NAMES.get(c, c) for c in classes] + ["mIoU", "Pixacc"]
    rows = []
    for metrics in metrics_by_model.values():
        iou = metrics.get("iou", {})
        values = [iou.get(c) for c in classes] + [metrics.get("miou"), metrics.get("pixel_acc")]
        rows.append([round(100 * float(v), 1) if v is not None else np.nan for v in values])
    df = pd.DataFrame(rows, columns=columns, index=pd.Index(list(metrics_by_model), name="Method"))
    return df


def _cell(v, floatfmt):
    if isinstance(v, (float, np.floating)):
        return "n/a" if np.isnan(v) else format(v, floatfmt)
    return str(v)


def _markdown_cell(v, floatfmt):
    return _cell(v, floatfmt).replace("|", "\\|")  # a '|' inside a cell would end it


def markdown_table(df, floatfmt=".1f"):
    """Render a DataFrame as a GitHub Markdown table (index as first column), without tabulate.

    Args:
        df: DataFrame; numeric columns are right-aligned, floats formatted with ``floatfmt``, NaN -> "n/a".
        floatfmt: format spec for floats.
    Returns:
        str, one line per row, ending with a newline.
    """
    header = [df.index.name or ""] + [str(c) for c in df.columns]
    align = [":--"] + ["--:" if pd.api.types.is_numeric_dtype(df[c]) else ":--" for c in df.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for idx, row in zip(df.index, df.itertuples(index=False)):
        cells = [_markdown_cell(idx, floatfmt)] + [_markdown_cell(v, floatfmt) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def save_table(df, stem, floatfmt=".1f"):
    """Write a table as ``<stem>.md`` (Markdown) and ``<stem>.csv``; the parent folder is created.

    Args:
        df: DataFrame (e.g. from ``results_table``).
        stem: path without suffix, e.g. "figures/table5".
        floatfmt: float format of the Markdown file.
    Returns:
        (Path to .md, Path to .csv).
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    md, csv = stem.with_name(stem.name + ".md"), stem.with_name(stem.name + ".csv")
    md.write_text(markdown_table(df, floatfmt))
    df.to_csv(csv)
    return md, csv


def table_figure(df, title="", floatfmt=".1f", save=None):
    """Render a DataFrame as a PNG-ready matplotlib table (index as the first column).

    Args:
        df: DataFrame.
        title: title above the table.
        floatfmt: float format; NaN -> "n/a".
        save: optional PNG path.
    Returns:
        matplotlib Figure with 1 (hidden) axes.
    """
    index_name = df.index.name or ""
    cells = [[_cell(i, floatfmt)] + [_cell(v, floatfmt) for v in row]
             for i, row in zip(df.index, df.itertuples(index=False))]
    col_labels = [index_name] + [str(c) for c in df.columns]
    first = max([len(index_name)] + [len(r[0]) for r in cells]) if cells else 6
    widths = np.array([max(first, 6) * 0.11 + 0.3] + [max(len(str(c)), 5) * 0.11 + 0.35 for c in df.columns])
    fig, ax = plt.subplots(figsize=(widths.sum(), 0.3 * (len(cells) + 1)))
    ax.axis("off")
    table = ax.table(cellText=cells or None, colLabels=col_labels, bbox=(0, 0, 1, 1), cellLoc="right",
                     colWidths=list(widths / widths.sum()))
    table.auto_set_font_size(False)
    table.set_fontsize(10)
    for (r, c), cell in table.get_celld().items():
        cell.set_edgecolor("0.75")
        if r == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("0.92")
        elif r % 2 == 0:
            cell.set_facecolor("0.97")  # zebra rows
        if c == 0:
            cell.get_text().set_ha("left")
    if title:
        ax.set_title(title, fontsize=11, pad=6)
    return _save(fig, save)


def _viewer_png(images, ground_truth, predictions, label_space, index, models, alpha):
    from matplotlib.figure import Figure

    panels = [("ground truth", ground_truth[index])] + [(m, predictions[m][index]) for m in models]
    h, w = ground_truth.shape[-2:]
    cell = 3.6
    fig = Figure(figsize=(cell * len(panels), cell * h / w + 0.5), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, mask) in zip(axes, panels):
        ax.imshow(overlay(images[index], mask, label_space, alpha))
        ax.set_title(name, fontsize="small")
        ax.axis("off")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def segmentation_viewer(images, ground_truth, predictions, label_space="trainId", image_ids=None):
    """Interactive viewer: pick an image, the models and the overlay opacity; shows overlays side by side.

    Args:
        images: uint8 (N, H, W, 3) (or (N, 3, H, W)).
        ground_truth: int (N, H, W) class indices, 255 = ignore.
        predictions: {model name: int (N, H, W)}.
        label_space: a space of pa3.labels.LABEL_SPACES.
        image_ids: optional N labels for the dropdown (default "ID 1".."ID N").
    Returns:
        ipywidgets.VBox: (HBox of Dropdown "image", SelectMultiple "models", FloatSlider "opacity"),
        the rendered ipywidgets.Image, and an HTML legend line. Works without a kernel (PNG rendering).
    """
    import ipywidgets as widgets

    images, ground_truth = _image(images), _np(ground_truth)
    predictions = {name: _np(p) for name, p in predictions.items()}
    n = ground_truth.shape[0]
    ids = [f"ID {i + 1}" for i in range(n)] if image_ids is None else [str(i) for i in image_ids]
    image = widgets.Dropdown(options=list(zip(ids, range(n))), value=0, description="image")
    models = widgets.SelectMultiple(options=list(predictions), value=tuple(predictions)[:3],
                                    description="models", rows=min(6, max(2, len(predictions))))
    opacity = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="opacity")
    view = widgets.Image(format="png")
    pal = labels.palette(label_space)
    names = labels.class_names(label_space)
    present = _present(label_space, ground_truth, *predictions.values())
    swatches = " ".join(
        f'<span style="background:rgb{tuple(int(v) for v in pal[i])};padding:0 8px">&nbsp;</span>'
        f"&nbsp;{names[i]}&nbsp;" for i in present)
    legend = widgets.HTML(swatches)

    def update(_=None):
        view.value = _viewer_png(images, ground_truth, predictions, label_space, image.value,
                                 list(models.value), opacity.value)

    for control in (image, models, opacity):
        control.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([image, models, opacity]), view, legend])
