"""The interactive viewer: ground truth and every model's prediction over an image, with a slider and a blend."""
import io

from pa3 import labels
from pa3.viz.common import _image, _np, _present
from pa3.viz.masks import overlay


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
