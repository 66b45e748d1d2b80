"""Figures of the report: colour masks, overlays, the prediction grid (Table 7), training curves, per-class IoU
bars, confusion heatmaps, an interactive viewer; the results tables (Tables 5 and 6) as Markdown, CSV and PNG.

Every plotting function returns its ``matplotlib.figure.Figure`` and never calls ``plt.show()`` (the
notebooks do); ``save=path`` also writes a PNG (dpi 120, tight bounding box, parent folder created).
Images are RGB uint8 ``(H, W, 3)`` (a ``(3, H, W)`` tensor is transposed); masks hold class indices of a
label space with ``IGNORE_INDEX`` (255) for ignored pixels. Numpy arrays and torch tensors are both accepted.

One file per kind of figure: ``masks`` (colours, overlays, legends, samples, the Table 7 grid), ``curves``
(training curves, mIoU against minutes), ``charts`` (IoU bars, confusion heatmap), ``tables`` (Tables 5 and 6),
``viewer`` (the interactive viewer); ``common`` holds what they share. Everything is importable from ``pa3.viz``.
"""
from pa3.viz.common import DPI
from pa3.viz.masks import colorize, overlay, legend_handles, class_legend, show_samples, prediction_grid
from pa3.viz.curves import training_curves, miou_against_minutes
from pa3.viz.charts import iou_bars, confusion_heatmap
from pa3.viz.viewer import segmentation_viewer
from pa3.viz.tables import SHORT_NAMES, markdown_table, results_table, save_table, table_figure

__all__ = [
    "DPI", "SHORT_NAMES", "class_legend", "colorize", "confusion_heatmap", "iou_bars", "legend_handles",
    "markdown_table", "miou_against_minutes", "overlay", "prediction_grid", "results_table", "save_table",
    "segmentation_viewer", "show_samples", "table_figure", "training_curves",
]
