"""Masks as pictures: official colours, overlays, class legends, samples, and the report's Table 7 prediction grid."""
from matplotlib.patches import Patch
import matplotlib.pyplot as plt
import numpy as np

from pa3 import labels
from pa3.labels import IGNORE_INDEX
from pa3.viz.common import _image, _np, _present, _save, _wrap


def colorize(index_map, label_space="trainId"):
    """Class-index map -> RGB image in the official Cityscapes colours; ignored pixels (255) are black.

    Args:
        index_map: int array or tensor (..., H, W) of class indices of ``label_space``.
        label_space: a space of pa3.labels.LABEL_SPACES.
    Returns:
        np.ndarray uint8 (..., H, W, 3).
    """
    return labels.to_rgb(_np(index_map), label_space)


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
