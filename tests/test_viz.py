import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from pa3 import labels, viz  # noqa: E402

ROAD, CAR = 0, 13  # trainIds; colours (128, 64, 128) and (0, 0, 142)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _saved(fig, path, n_axes):
    assert isinstance(fig, Figure)
    assert len(fig.axes) == n_axes
    assert path.exists() and path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _fake(n=2, h=8, w=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    masks = rng.choice([ROAD, CAR, 2, 255], (n, h, w)).astype(np.int64)
    return images, masks


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
    fig = viz.class_legend("trainId")
    fig.savefig(tmp_path / "legend.png")
    _saved(fig, tmp_path / "legend.png", 1)


def test_show_samples(tmp_path):
    images, masks = _fake(3)
    fig = viz.show_samples(images, masks, titles=["a", "b", "c"], save=tmp_path / "sub" / "samples.png")
    _saved(fig, tmp_path / "sub" / "samples.png", 6)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["road", "building", "car", "ignored"]


def test_prediction_grid(tmp_path):
    images, gt = _fake(4)
    preds = {"Baseline": gt, "U-Net": np.roll(gt, 1, axis=-1), "Ours (ResNet-101 + ASPP)": torch.from_numpy(gt)}
    fig = viz.prediction_grid(images, gt, preds, image_ids=[1, 2, 4, 9], save=tmp_path / "grid.png")
    _saved(fig, tmp_path / "grid.png", (2 + 3) * 4)
    assert [ax.get_title() for ax in fig.axes[:4]] == ["ID 1", "ID 2", "ID 4", "ID 9"]
    row_labels = [fig.axes[r * 4].get_ylabel().replace("\n", " ") for r in range(5)]
    assert row_labels == ["Image", "Ground truth", "Baseline", "U-Net", "Ours (ResNet-101 + ASPP)"]


def _history(n=4):
    rows = []
    for e in range(1, n + 1):
        row = {"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.2 / e, "pixel_acc": 0.5 + 0.1 * e,
               "mean_acc": 0.3, "miou": 0.1 * e}
        row.update({f"iou_{c}": 0.05 * e for c in labels.class_names("trainId")})
        rows.append(row)
    return rows


def test_training_curves_list_and_dataframe(tmp_path):
    fig = viz.training_curves(_history(), "Baseline FCN", save=tmp_path / "curves.png")
    _saved(fig, tmp_path / "curves.png", 3)
    assert [t.get_text() for t in fig.axes[2].get_legend().get_texts()] == list(labels.REPORT_CLASSES)
    # traffic sign's yellow (220, 220, 0) is darkened to stay readable
    sign = fig.axes[2].get_lines()[1].get_color()
    assert max(sign) <= 0.75 + 1e-9
    fig = viz.training_curves(pd.DataFrame(_history(2)), "x", save=tmp_path / "curves2.png")
    _saved(fig, tmp_path / "curves2.png", 3)


def test_iou_bars_skips_nan(tmp_path):
    names = ["road", "car", "bike"]
    results = {"A": [0.9, np.nan, 0.1], "B": np.array([0.8, 0.5, 0.2])}
    fig = viz.iou_bars(results, names, save=tmp_path / "bars.png")
    _saved(fig, tmp_path / "bars.png", 1)
    assert len(fig.axes[0].patches) == 5  # one NaN bar left out
    fig = viz.iou_bars(results, names, orientation="horizontal", save=tmp_path / "barh.png")
    _saved(fig, tmp_path / "barh.png", 1)


def test_confusion_heatmap(tmp_path):
    mat = np.array([[3, 1, 0], [0, 0, 0], [2, 0, 2]])
    fig = viz.confusion_heatmap(mat, ["a", "b", "c"], save=tmp_path / "cm.png")
    _saved(fig, tmp_path / "cm.png", 2)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["0.75", "0.25", "0", "0.50", "0", "0.50"]  # empty row 'b' left blank
    big = viz.confusion_heatmap(np.eye(25, dtype=int), [str(i) for i in range(25)])
    assert len(big.axes[0].texts) == 0


def test_results_table_percentages():
    space = "labelId"
    iou = np.full(labels.num_classes(space), np.nan)
    iou[labels.report_class_indices(space)] = [0.631, 0.2014, 0.30249, 0.508, 0.1225]
    metrics = {"Baseline": {"iou": list(iou), "miou": 0.254, "pixel_acc": 0.8312},
               "Ours": {"iou": list(iou * 0 + 0.5), "miou": 0.5, "pixel_acc": 0.92}}
    df = viz.results_table(metrics, space)
    assert list(df.columns) == ["build.", "sign", "person", "car", "bike", "mIoU", "Pixacc"]
    assert list(df.index) == ["Baseline", "Ours"] and df.index.name == "Method"
    assert df.loc["Baseline"].tolist() == [63.1, 20.1, 30.2, 50.8, 12.2, 25.4, 83.1]
    assert df.loc["Ours"].tolist() == [50.0] * 6 + [92.0]
    df = viz.results_table(metrics, space, classes=("road",))
    assert list(df.columns) == ["road", "mIoU", "Pixacc"] and np.isnan(df.loc["Baseline", "road"])
    # a run folder's metrics.json keys the IoU by class name (absent classes: null)
    names = labels.class_names(space)
    saved = {"Baseline": {**metrics["Baseline"], "iou": {n: (None if np.isnan(v) else v) for n, v in zip(names, iou)}}}
    assert viz.results_table(saved, space).loc["Baseline"].tolist() == [63.1, 20.1, 30.2, 50.8, 12.2, 25.4, 83.1]


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


def test_table_figure(tmp_path):
    df = pd.DataFrame({"build.": [63.1], "Pixacc": [83.1]}, index=pd.Index(["Baseline"], name="Method"))
    fig = viz.table_figure(df, "Table 5", save=tmp_path / "table.png")
    _saved(fig, tmp_path / "table.png", 1)


def test_segmentation_viewer_builds_without_kernel():
    widgets = pytest.importorskip("ipywidgets")
    images, gt = _fake(2)
    viewer = viz.segmentation_viewer(images, gt, {"A": gt, "B": np.roll(gt, 1, axis=-1)})
    assert isinstance(viewer, widgets.VBox)
    (image, models, opacity), view = viewer.children[0].children, viewer.children[1]
    assert isinstance(image, widgets.Dropdown) and isinstance(models, widgets.SelectMultiple)
    assert isinstance(opacity, widgets.FloatSlider) and models.value == ("A", "B")
    first = view.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    opacity.value = 0.9
    assert view.value != first
    models.value = ("B",)
    image.value = 1
    assert view.value[:8] == b"\x89PNG\r\n\x1a\n"
