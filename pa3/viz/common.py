"""What the figures share: array conversion, saving a PNG (dpi 120, tight, parent folder created), class colours."""
from pathlib import Path
import textwrap

from matplotlib.colors import hsv_to_rgb
from matplotlib.colors import rgb_to_hsv
import numpy as np

from pa3 import labels


DPI = 120


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
