"""The report's results tables (Tables 5 and 6): per-class IoU, mIoU and pixel accuracy in percent, written as
Markdown and CSV (``save_table``) and drawn as a PNG-ready figure (``table_figure``). Importable from ``pa3.viz``."""
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pa3.labels import REPORT_CLASSES
from pa3.viz.common import _save

# Short column names of the report's Table 5; other classes keep their own name.
SHORT_NAMES = {"building": "build.", "traffic sign": "sign", "person": "person", "car": "car",
               "bicycle": "bike"}


def results_table(metrics_by_model, *, classes=REPORT_CLASSES):
    """Tables 5 and 6 in one DataFrame: per-class IoU, mIoU and pixel accuracy in percent (1 decimal).

    Args:
        metrics_by_model: {model name: metrics dict with "iou" ({class name: IoU}), "miou" and "pixel_acc"
            (fractions; None or NaN where missing)}, e.g. from ``pa3.inference.evaluate`` or a run folder's
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
