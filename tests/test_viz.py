import io
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.figure  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from pa3 import labels, viz  # noqa: E402

ROAD, BUILDING, CAR = 0, 2, 13  # trainIds
# Official Cityscapes colours, written out by hand (255 = ignored -> black).
RGB = {ROAD: (128, 64, 128), BUILDING: (70, 70, 70), CAR: (0, 0, 142), 255: (0, 0, 0)}
TAB10 = ["#1f77b4", "#ff7f0e"]  # the first two colours of matplotlib's tab10


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _saved(fig, path, n_axes):
    assert isinstance(fig, Figure)
    assert len(fig.axes) == n_axes
    assert path.exists() and path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _rgb(mask):
    """Hand-made colour lookup of a small mask, independent of pa3.labels."""
    return np.array([[RGB[int(v)] for v in row] for row in mask], dtype=np.uint8)


def _shown(ax):
    """The array displayed by an axes holding exactly one image."""
    images = ax.get_images()
    assert len(images) == 1
    return np.asarray(images[0].get_array())


def _legend_entries(legend):
    """[(label, (r, g, b) in 0..255)] of a legend of colour patches."""
    return [(t.get_text(), tuple(round(255 * c) for c in h.get_facecolor()[:3]))
            for t, h in zip(legend.get_texts(), legend.legend_handles)]


def _uniform(colours, h, w):
    """(N, H, W, 3) uint8 images, image i filled with colours[i]."""
    return np.array([np.broadcast_to(np.array(c, dtype=np.uint8), (h, w, 3)) for c in colours])


def test_colorize_exact_colours_and_torch_input():
    mask = np.array([[ROAD, CAR], [255, ROAD]])
    expected = np.array([[[128, 64, 128], [0, 0, 142]], [[0, 0, 0], [128, 64, 128]]], dtype=np.uint8)
    np.testing.assert_array_equal(viz.colorize(mask), expected)
    np.testing.assert_array_equal(viz.colorize(torch.from_numpy(mask)), expected)
    # labelId space: 26 = car, 7 = road
    np.testing.assert_array_equal(viz.colorize(np.array([[7, 26]]), "labelId"), expected[:1])


def test_overlay_blends_and_keeps_ignored_pixels():
    image = np.array([[[0, 0, 0], [100, 100, 100]], [[10, 20, 30], [255, 255, 255]]], dtype=np.uint8)
    mask = np.array([[ROAD, CAR], [255, ROAD]])
    out = viz.overlay(image, mask, alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[0, 0], [64, 32, 64])        # 0.5 * (0,0,0) + 0.5 * (128,64,128)
    np.testing.assert_array_equal(out[0, 1], [50, 50, 121])       # 0.5 * 100 + 0.5 * (0,0,142)
    np.testing.assert_array_equal(out[1, 0], [10, 20, 30])        # ignored -> the image
    np.testing.assert_array_equal(out[1, 1], [192, 160, 192])     # round(127.5 + 64) = 192 (half to even)
    np.testing.assert_array_equal(viz.overlay(image, mask, alpha=0.0), image)
    np.testing.assert_array_equal(viz.overlay(image, mask, alpha=1.0)[0], viz.colorize(mask)[0])
    chw = torch.from_numpy(image).permute(2, 0, 1)
    np.testing.assert_array_equal(viz.overlay(chw, torch.from_numpy(mask)), out)


def test_legend_handles_and_class_legend(tmp_path):
    handles = viz.legend_handles("trainId", ["car", ROAD])
    assert [h.get_label() for h in handles] == ["car", "road"]
    np.testing.assert_allclose(handles[0].get_facecolor()[:3], np.array([0, 0, 142]) / 255)
    assert len(viz.legend_handles("labelId")) == 34
    assert viz.legend_handles("labelId", ["car"])[0].get_label() == "car"

    fig = viz.class_legend("trainId", ["car", ROAD, "traffic sign"])
    fig.savefig(tmp_path / "legend.png")
    _saved(fig, tmp_path / "legend.png", 1)
    ax = fig.axes[0]
    assert not ax.axison  # only the legend is visible
    assert _legend_entries(ax.get_legend()) == [("car", (0, 0, 142)), ("road", (128, 64, 128)),
                                                ("traffic sign", (220, 220, 0))]
    assert ax.get_legend()._ncols == 3  # default: one column per entry, at most 4

    everything = viz.class_legend("trainId").axes[0].get_legend()
    texts = [t.get_text() for t in everything.get_texts()]
    assert len(texts) == 19 and texts[:3] == ["road", "sidewalk", "building"] and texts[-1] == "bicycle"
    assert everything._ncols == 4
    assert len(viz.class_legend("labelId").axes[0].get_legend().get_texts()) == 34
    assert viz.class_legend("trainId", [ROAD, CAR], ncol=1).axes[0].get_legend()._ncols == 1


def test_show_samples(tmp_path):
    images = np.arange(2 * 2 * 4 * 3, dtype=np.uint8).reshape(2, 2, 4, 3)  # W = 4: unambiguous vs (3, H, W)
    masks = np.array([[[ROAD, CAR, 255, ROAD], [ROAD, ROAD, CAR, CAR]],
                      [[BUILDING, BUILDING, BUILDING, ROAD], [CAR, 255, ROAD, BUILDING]]])
    fig = viz.show_samples(images, masks, titles=["a", "b"], save=tmp_path / "sub" / "samples.png")
    _saved(fig, tmp_path / "sub" / "samples.png", 2 * 2)
    # row i: image i | its colourised mask
    for i in range(2):
        np.testing.assert_array_equal(_shown(fig.axes[2 * i]), images[i])
        np.testing.assert_array_equal(_shown(fig.axes[2 * i + 1]), _rgb(masks[i]))
        assert fig.axes[2 * i + 1].get_images()[0].get_interpolation() == "nearest"
    assert [ax.get_title() for ax in fig.axes] == ["a", "mask", "b", "mask"]
    assert not any(ax.axison for ax in fig.axes)
    assert len(fig.legends) == 1
    assert _legend_entries(fig.legends[0]) == [("road", (128, 64, 128)), ("building", (70, 70, 70)),
                                               ("car", (0, 0, 142)), ("ignored", (0, 0, 0))]

    # (N, 3, H, W) tensors show the same; without titles only the top row is titled; no 255 -> no 'ignored'
    clean = np.where(masks == 255, CAR, masks)
    fig = viz.show_samples(torch.from_numpy(images).permute(0, 3, 1, 2), torch.from_numpy(clean))
    assert len(fig.axes) == 4
    np.testing.assert_array_equal(_shown(fig.axes[2]), images[1])
    np.testing.assert_array_equal(_shown(fig.axes[3]), _rgb(clean[1]))
    assert [ax.get_title() for ax in fig.axes] == ["image", "mask", "", ""]
    assert [e[0] for e in _legend_entries(fig.legends[0])] == ["road", "building", "car"]


def test_prediction_grid(tmp_path):
    images = _uniform([(10, 20, 30), (200, 100, 50)], 2, 2)
    gt = np.array([[[ROAD, CAR], [255, ROAD]], [[CAR, CAR], [CAR, CAR]]])
    baseline = np.array([[[ROAD, ROAD], [ROAD, ROAD]], [[CAR, ROAD], [255, CAR]]])
    ours = np.array([[[ROAD, CAR], [CAR, ROAD]], [[CAR, CAR], [ROAD, CAR]]])
    preds = {"Baseline": baseline, "Ours (ResNet-101 + ASPP)": torch.from_numpy(ours)}
    fig = viz.prediction_grid(images, gt, preds, image_ids=[4, "frankfurt_1"], save=tmp_path / "grid.png")
    _saved(fig, tmp_path / "grid.png", (2 + 2) * 2)
    # rows: image, ground truth, then each model in dict order; columns: images
    expected = [[images[0], images[1]], [_rgb(gt[0]), _rgb(gt[1])],
                [_rgb(baseline[0]), _rgb(baseline[1])], [_rgb(ours[0]), _rgb(ours[1])]]
    for r in range(4):
        for c in range(2):
            ax = fig.axes[2 * r + c]
            np.testing.assert_array_equal(_shown(ax), expected[r][c], err_msg=f"row {r}, column {c}")
            assert list(ax.get_xticks()) == [] and list(ax.get_yticks()) == []
            assert not any(s.get_visible() for s in ax.spines.values())
    assert [ax.get_title() for ax in fig.axes[:2]] == ["ID 4", "frankfurt_1"]
    assert all(ax.get_title() == "" for ax in fig.axes[2:])
    assert [fig.axes[2 * r].get_ylabel() for r in range(4)] == [
        "Image", "Ground truth", "Baseline", "Ours\n(ResNet-101 +\nASPP)"]  # wrapped at 14 characters
    assert all(fig.axes[2 * r + 1].get_ylabel() == "" for r in range(4))
    assert len(fig.legends) == 1
    assert _legend_entries(fig.legends[0]) == [("road", (128, 64, 128)), ("car", (0, 0, 142)),
                                               ("ignored", (0, 0, 0))]

    # default ids "ID 1".."ID N" (numpy ints also become "ID <n>"); a class only in a prediction is listed
    pred = np.array([[[BUILDING, ROAD], [ROAD, ROAD]], [[CAR, CAR], [CAR, CAR]]])
    no_ignore = np.where(gt == 255, ROAD, gt)
    fig = viz.prediction_grid(images, no_ignore, {"A": pred})
    assert len(fig.axes) == 3 * 2
    assert [ax.get_title() for ax in fig.axes[:2]] == ["ID 1", "ID 2"]
    np.testing.assert_array_equal(_shown(fig.axes[4]), _rgb(pred[0]))
    assert [e[0] for e in _legend_entries(fig.legends[0])] == ["road", "building", "car"]
    fig = viz.prediction_grid(images, gt, {"A": pred}, image_ids=np.array([7, 9]))
    assert [ax.get_title() for ax in fig.axes[:2]] == ["ID 7", "ID 9"]


# Three epochs of a made-up history (fractions); iou_road is logged but not a report class.
HISTORY = [
    {"epoch": 1, "train_loss": 2.0, "val_loss": 2.5, "pixel_acc": 0.5, "miou": 0.125, "mean_acc": 0.3,
     "iou_building": 0.25, "iou_traffic sign": 0.0, "iou_person": 0.125, "iou_car": 0.375,
     "iou_bicycle": 0.0625, "iou_road": 0.75},
    {"epoch": 2, "train_loss": 1.5, "val_loss": 1.75, "pixel_acc": 0.625, "miou": 0.25, "mean_acc": 0.4,
     "iou_building": 0.5, "iou_traffic sign": 0.125, "iou_person": 0.25, "iou_car": 0.5,
     "iou_bicycle": 0.125, "iou_road": 0.8},
    {"epoch": 3, "train_loss": 1.0, "val_loss": 1.25, "pixel_acc": 0.75, "miou": 0.375, "mean_acc": 0.5,
     "iou_building": 0.625, "iou_traffic sign": 0.25, "iou_person": 0.375, "iou_car": 0.75,
     "iou_bicycle": 0.25, "iou_road": 0.9},
]


def _lines(ax):
    """{label: (x, y, rgba colour)} of the plotted lines of an axes."""
    return {line.get_label(): (list(line.get_xdata()), list(np.asarray(line.get_ydata(), dtype=float)),
                               to_rgba(line.get_color())) for line in ax.get_lines()}


def _check_curves(fig):
    assert len(fig.axes) == 3
    loss, acc, iou = fig.axes
    assert [ax.get_title() for ax in fig.axes] == [
        "(a) loss", "(b) validation accuracy and mIoU", "(c) validation IoU per class"]
    x = [1, 2, 3]
    # (a) losses as given
    assert _lines(loss) == {"train": (x, [2.0, 1.5, 1.0], to_rgba("tab:blue")),
                            "validation": (x, [2.5, 1.75, 1.25], to_rgba("tab:orange"))}
    # (b) pixel accuracy and mIoU in percent, axis 0..100
    assert _lines(acc) == {"pixel accuracy": (x, [50.0, 62.5, 75.0], to_rgba("tab:green")),
                           "mIoU": (x, [12.5, 25.0, 37.5], to_rgba("tab:purple"))}
    assert acc.get_ylim() == (0, 100) and acc.get_ylabel() == "%"
    # (c) the five report classes in percent (not road), in palette colours; light ones darkened to V = 0.75
    lines = _lines(iou)
    assert list(lines) == ["building", "traffic sign", "person", "car", "bicycle"]
    assert [t.get_text() for t in iou.get_legend().get_texts()] == list(lines)
    expected_y = {"building": [25, 50, 62.5], "traffic sign": [0, 12.5, 25], "person": [12.5, 25, 37.5],
                  "car": [37.5, 50, 75], "bicycle": [6.25, 12.5, 25]}
    expected_rgb = {"building": np.array([70, 70, 70]) / 255,           # V = 0.27, kept
                    "traffic sign": np.array([0.75, 0.75, 0.0]),       # (220, 220, 0) has V = 0.86
                    "person": 0.75 * np.array([220, 20, 60]) / 220,     # (220, 20, 60) has V = 0.86
                    "car": np.array([0, 0, 142]) / 255,
                    "bicycle": np.array([119, 11, 32]) / 255}
    for name, (xs, ys, colour) in lines.items():
        assert xs == x
        np.testing.assert_allclose(ys, expected_y[name], err_msg=name)
        np.testing.assert_allclose(colour[:3], expected_rgb[name], atol=1e-9, err_msg=name)
    assert iou.get_ylim() == (0, 100)
    assert all(line.get_marker() == "o" for ax in fig.axes for line in ax.get_lines())  # <= 30 epochs


def test_training_curves_list_and_dataframe(tmp_path):
    fig = viz.training_curves(HISTORY, "Baseline FCN", save=tmp_path / "curves.png")
    _saved(fig, tmp_path / "curves.png", 3)
    _check_curves(fig)
    assert fig.get_suptitle() == "Baseline FCN"
    # a DataFrame in shuffled row order is plotted in epoch order
    fig = viz.training_curves(pd.DataFrame(HISTORY).iloc[[2, 0, 1]], "x", save=tmp_path / "curves2.png")
    _saved(fig, tmp_path / "curves2.png", 3)
    _check_curves(fig)


def test_training_curves_missing_columns_and_epochs():
    # no epoch column -> 1..N; absent metrics are skipped; custom classes
    history = [{"train_loss": 1.0, "iou_car": 0.5, "iou_road": 0.25},
               {"train_loss": 0.5, "iou_car": 0.75, "iou_road": 0.5}]
    fig = viz.training_curves(history, classes=("car", "sky"))
    loss, acc, iou = fig.axes
    assert _lines(loss) == {"train": ([1, 2], [1.0, 0.5], to_rgba("tab:blue"))}
    assert acc.get_lines() == [] and acc.get_legend() is None
    assert list(_lines(iou)) == ["car"]
    np.testing.assert_allclose(_lines(iou)["car"][1], [50, 75])
    assert fig.get_suptitle() == ""
    # more than 30 epochs: lines without markers
    fig = viz.training_curves([{"train_loss": 1.0 / e} for e in range(1, 32)])
    (line,) = fig.axes[0].get_lines()
    assert list(line.get_xdata()) == list(range(1, 32)) and line.get_marker() in (None, "None", "")


def _bars(container, vertical=True):
    """[(bar centre along the class axis, bar length)] of one model's bars."""
    if vertical:
        return [(round(p.get_x() + p.get_width() / 2, 6), round(p.get_height(), 9)) for p in container]
    return [(round(p.get_y() + p.get_height() / 2, 6), round(p.get_width(), 9)) for p in container]


def test_iou_bars_heights_in_percent_and_nan_left_out(tmp_path):
    names = ["road", "car", "bike"]
    results = {"A": {"road": 0.9, "car": np.nan, "bike": 0.1}, "B": {"road": 0.8, "car": 0.5, "bike": 0.2}}
    fig = viz.iou_bars(results, save=tmp_path / "bars.png")
    _saved(fig, tmp_path / "bars.png", 1)
    ax = fig.axes[0]
    assert len(ax.patches) == 5  # the NaN bar is left out
    a, b = ax.containers
    assert (a.get_label(), b.get_label()) == ("A", "B")
    # two models share 0.8 of each class slot: bar width 0.4, centres at class -0.2 and +0.2
    assert _bars(a) == [(-0.2, 90), (1.8, 10)]
    assert _bars(b) == [(0.2, 80), (1.2, 50), (2.2, 20)]
    assert all(p.get_width() == pytest.approx(0.4) for p in ax.patches)
    assert all(to_rgba(p.get_facecolor()) == to_rgba(TAB10[0]) for p in a)
    assert all(to_rgba(p.get_facecolor()) == to_rgba(TAB10[1]) for p in b)
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert list(ax.get_xticks()) == [0, 1, 2]
    assert ax.get_ylim() == (0, 100) and ax.get_ylabel() == "IoU (%)" and ax.get_title() == "IoU per class"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["A", "B"]

    results["A"]["car"] = None  # as in a run folder's metrics.json
    fig = viz.iou_bars(results, orientation="horizontal", save=tmp_path / "barh.png")
    _saved(fig, tmp_path / "barh.png", 1)
    ax = fig.axes[0]
    a, b = ax.containers
    assert _bars(a, vertical=False) == [(-0.2, 90), (1.8, 10)]
    assert _bars(b, vertical=False) == [(0.2, 80), (1.2, 50), (2.2, 20)]
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert ax.get_xlim() == (0, 100) and ax.get_ylim() == (2.6, -0.6)  # first class on top

    with pytest.raises(ValueError, match="has IoUs of classes"):
        viz.iou_bars({**results, "C": {"road": 0.5, "car": 0.5}})
    with pytest.raises(ValueError, match="orientation"):
        viz.iou_bars(results, orientation="diagonal")


def _cells(ax):
    """[(column, row, text, colour)] of the values written in a heatmap, in drawing order."""
    return [(*t.get_position(), t.get_text(), t.get_color()) for t in ax.texts]


def test_confusion_heatmap(tmp_path):
    mat = np.array([[3, 1, 0], [0, 0, 0], [2, 0, 2]])
    fig = viz.confusion_heatmap(mat, ["a", "b", "c"], save=tmp_path / "cm.png")
    _saved(fig, tmp_path / "cm.png", 2)  # heatmap + colour bar
    ax = fig.axes[0]
    # rows normalised to 1; the empty row 'b' is masked (blank) and has no texts
    shown = ax.get_images()[0].get_array()
    assert shown.mask.tolist() == [[False] * 3, [True] * 3, [False] * 3]
    np.testing.assert_allclose(shown.data[[0, 2]], [[0.75, 0.25, 0], [0.5, 0, 0.5]])
    assert ax.get_images()[0].get_clim() == (0, 1)
    assert _cells(ax) == [(0, 0, "0.75", "white"), (1, 0, "0.25", "black"), (2, 0, "0", "black"),
                          (0, 2, "0.50", "black"), (1, 2, "0", "black"), (2, 2, "0.50", "black")]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "ground truth")
    assert ax.get_title() == "confusion matrix (normalised over true)"

    # columns normalised (precision); no empty column, so nothing is blank
    ax = viz.confusion_heatmap(mat, ["a", "b", "c"], normalize="pred").axes[0]
    np.testing.assert_allclose(ax.get_images()[0].get_array(), [[0.6, 1, 0], [0, 0, 0], [0.4, 0, 1]])
    assert [c[2] for c in _cells(ax)] == ["0.60", "1.00", "0", "0", "0", "0", "0.40", "0", "1.00"]
    assert [c[3] for c in _cells(ax)] == ["black", "white"] + ["black"] * 6 + ["white"]  # white if > 0.6

    # over all pixels (sum 8)
    ax = viz.confusion_heatmap(mat, ["a", "b", "c"], normalize="all").axes[0]
    np.testing.assert_allclose(ax.get_images()[0].get_array(), np.array(mat) / 8)
    assert ax.get_title() == "confusion matrix (normalised over all)"

    # raw counts as integers, colour scale up to the largest count (3), white above 0.6 * 3
    ax = viz.confusion_heatmap(mat, ["a", "b", "c"], normalize=None).axes[0]
    assert ax.get_images()[0].get_clim() == (0, 3)
    assert [c[2] for c in _cells(ax)] == ["3", "1", "0", "0", "0", "0", "2", "0", "2"]
    assert [c[3] for c in _cells(ax)] == ["white"] + ["black"] * 5 + ["white", "black", "white"]
    assert ax.get_title() == "confusion matrix"

    # values under 0.005 are written "0", 0.999 rounds to "1.00"
    ax = viz.confusion_heatmap(np.array([[999, 1], [0, 7]]), ["a", "b"]).axes[0]
    assert [c[2] for c in _cells(ax)] == ["1.00", "0", "0", "1.00"]

    big = viz.confusion_heatmap(np.eye(25, dtype=int), [str(i) for i in range(25)])
    assert len(big.axes) == 2 and len(big.axes[0].texts) == 0  # too many classes to write values
    np.testing.assert_allclose(big.axes[0].get_images()[0].get_array(), np.eye(25))
    with pytest.raises(ValueError, match="normalize"):
        viz.confusion_heatmap(mat, ["a", "b", "c"], normalize="rows")


def test_results_table_percentages():
    names = labels.class_names("labelId")
    iou = dict.fromkeys(names, np.nan)
    iou.update(zip(labels.REPORT_CLASSES, [0.631, 0.2014, 0.30249, 0.508, 0.1225]))
    metrics = {"Baseline": {"iou": iou, "miou": 0.254, "pixel_acc": 0.8312},
               "Ours": {"iou": dict.fromkeys(names, 0.5), "miou": 0.5, "pixel_acc": 0.92}}
    df = viz.results_table(metrics)
    assert list(df.columns) == ["build.", "sign", "person", "car", "bike", "mIoU", "Pixacc"]
    assert list(df.index) == ["Baseline", "Ours"] and df.index.name == "Method"
    assert df.loc["Baseline"].tolist() == [63.1, 20.1, 30.2, 50.8, 12.2, 25.4, 83.1]
    assert df.loc["Ours"].tolist() == [50.0] * 6 + [92.0]
    df = viz.results_table(metrics, classes=("road",))
    assert list(df.columns) == ["road", "mIoU", "Pixacc"] and np.isnan(df.loc["Baseline", "road"])
    # a run folder's metrics.json writes an absent class's IoU as null
    saved = {"Baseline": {**metrics["Baseline"], "iou": {n: (None if np.isnan(v) else v) for n, v in iou.items()}}}
    assert viz.results_table(saved).loc["Baseline"].tolist() == [63.1, 20.1, 30.2, 50.8, 12.2, 25.4, 83.1]


def test_markdown_writer_exact_and_save_table(tmp_path):
    df = pd.DataFrame({"car": [50.0, np.nan], "mIoU": [25.4, 3.25]}, index=pd.Index(["A", "B|C"], name="Method"))
    expected = ("| Method | car | mIoU |\n"
                "|:--|--:|--:|\n"
                "| A | 50.0 | 25.4 |\n"
                "| B\\|C | n/a | 3.2 |\n")
    assert viz.markdown_table(df) == expected
    md, csv = viz.save_table(df, tmp_path / "tables" / "table5")
    assert md.read_text() == expected
    back = pd.read_csv(csv, index_col=0)
    assert back.index.name == "Method" and back.loc["A", "mIoU"] == 25.4


def _table_texts(fig):
    cells = fig.axes[0].tables[0].get_celld()
    n_rows, n_cols = max(r for r, _ in cells) + 1, max(c for _, c in cells) + 1
    return [[cells[r, c].get_text().get_text() for c in range(n_cols)] for r in range(n_rows)]


def test_table_figure(tmp_path):
    df = pd.DataFrame({"build.": [63.1, np.nan, 5.25], "runs": [3, 12, 1]},
                      index=pd.Index(["Baseline", "U-Net", "Ours"], name="Method"))
    fig = viz.table_figure(df, "Table 5", save=tmp_path / "table.png")
    _saved(fig, tmp_path / "table.png", 1)
    ax = fig.axes[0]
    assert not ax.axison and ax.get_title() == "Table 5"
    assert _table_texts(fig) == [["Method", "build.", "runs"],
                                 ["Baseline", "63.1", "3"],
                                 ["U-Net", "n/a", "12"],     # NaN -> n/a
                                 ["Ours", "5.2", "1"]]       # 5.25 -> 5.2 (round half to even)
    cells = ax.tables[0].get_celld()
    assert all(cells[0, c].get_text().get_fontweight() == "bold" for c in range(3))  # header row
    assert all(cells[r, 0].get_text().get_ha() == "left" for r in range(4))          # index column
    assert all(cells[r, c].get_text().get_ha() == "right" for r in range(1, 4) for c in (1, 2))
    assert to_rgba(cells[2, 1].get_facecolor()) == to_rgba("0.97")  # zebra: even data rows shaded
    assert to_rgba(cells[1, 1].get_facecolor()) == to_rgba("white")

    unnamed = pd.DataFrame({"car": [0.5]}, index=["A"])
    fig = viz.table_figure(unnamed, floatfmt=".3f")
    assert _table_texts(fig) == [["", "car"], ["A", "0.500"]]
    assert fig.axes[0].get_title() == ""


def test_table_figure_draws_names_verbatim():
    df = pd.DataFrame({"car": [50.0]}, index=pd.Index(["A|B"], name="Method"))
    assert _table_texts(viz.table_figure(df))[1] == ["A|B", "50.0"]


def test_segmentation_viewer_shows_overlays(monkeypatch):
    widgets = pytest.importorskip("ipywidgets")
    from PIL import Image

    built = []  # every Figure the viewer renders, to inspect what its PNG shows

    class RecordingFigure(matplotlib.figure.Figure):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(matplotlib.figure, "Figure", RecordingFigure)

    colour = [(200, 100, 50), (10, 20, 30)]
    images = _uniform(colour, 2, 2)
    gt = np.array([[[CAR, ROAD], [255, CAR]], [[ROAD, 255], [CAR, CAR]]])
    full = {c: np.full((2, 2, 2), c) for c in (ROAD, CAR, 255)}
    building = np.full((2, 2, 2), BUILDING)
    preds = {"A": full[ROAD], "B": full[255], "C": full[CAR], "D": building}
    viewer = viz.segmentation_viewer(images, gt, preds)
    assert isinstance(viewer, widgets.VBox)
    (image, models, opacity), view, legend = viewer.children[0].children, viewer.children[1], viewer.children[2]
    assert isinstance(image, widgets.Dropdown) and isinstance(models, widgets.SelectMultiple)
    assert isinstance(opacity, widgets.FloatSlider) and isinstance(legend, widgets.HTML)
    assert image.options == (("ID 1", 0), ("ID 2", 1)) and image.value == 0
    assert models.options == ("A", "B", "C", "D") and models.value == ("A", "B", "C")  # first three
    assert opacity.value == 0.5

    # legend: the classes present in the ground truth and any prediction, with their colours
    swatches = re.findall(r"background:rgb\((\d+), (\d+), (\d+)\);padding:0 8px\">&nbsp;</span>&nbsp;(.+?)&nbsp;",
                          legend.value)
    assert swatches == [("128", "64", "128", "road"), ("70", "70", "70", "building"), ("0", "0", "142", "car")]

    def panels():
        fig = built[-1]
        return [ax.get_title() for ax in fig.axes], [_shown(ax) for ax in fig.axes]

    def png():
        assert view.value[:8] == b"\x89PNG\r\n\x1a\n"
        return np.asarray(Image.open(io.BytesIO(view.value)).convert("RGB"))

    # image 0 = (200, 100, 50) everywhere; alpha 0.5: car -> (100, 50, 96), road -> (164, 82, 89)
    car, road, img = (100, 50, 96), (164, 82, 89), colour[0]
    titles, shown = panels()
    assert titles == ["ground truth", "A", "B", "C"]
    np.testing.assert_array_equal(shown[0], [[car, road], [img, car]])
    np.testing.assert_array_equal(shown[1], [[road, road], [road, road]])
    np.testing.assert_array_equal(shown[2], [[img, img], [img, img]])  # all ignored: the image
    np.testing.assert_array_equal(shown[3], [[car, car], [car, car]])
    width_4 = png().shape[1]

    opacity.value = 1.0  # mask colours only
    titles, shown = panels()
    np.testing.assert_array_equal(shown[0], [[RGB[CAR], RGB[ROAD]], [img, RGB[CAR]]])
    np.testing.assert_array_equal(shown[3], _rgb(full[CAR][0]))
    assert (png() == RGB[CAR]).all(axis=-1).sum() > 1000  # the PNG shows the pure car colour

    opacity.value = 0.0  # image only
    assert all((s == img).all() for s in panels()[1])
    assert not (png() == RGB[CAR]).all(axis=-1).any()

    models.value = ("D",)
    image.value = 1
    opacity.value = 1.0
    titles, shown = panels()
    assert titles == ["ground truth", "D"]
    np.testing.assert_array_equal(shown[0], [[RGB[ROAD], colour[1]], [RGB[CAR], RGB[CAR]]])
    np.testing.assert_array_equal(shown[1], _rgb(building[1]))
    assert png().shape[1] == pytest.approx(width_4 / 2, abs=2)  # two panels instead of four

    viewer = viz.segmentation_viewer(images, gt, {"A": gt}, image_ids=["aachen_1", "bochum_7"])
    assert viewer.children[0].children[0].options == (("aachen_1", 0), ("bochum_7", 1))
