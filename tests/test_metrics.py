"""pa3.metrics: hand-computed confusion-matrix metrics and parity with the official Cityscapes script."""
import json
import math

import numpy as np
import pytest
import torch

from pa3 import labels
from pa3.metrics import ConfusionMatrix, metrics_from_confusion


def metrics(target, pred, num_classes, **kwargs):
    cm = ConfusionMatrix(num_classes)
    cm.update(torch.tensor(target), torch.tensor(pred))
    return cm.compute(**kwargs)


def ious(m):
    """The per-class IoUs of a metrics dict in class order (``m["iou"]`` is {class name: IoU})."""
    return list(m["iou"].values())


def nan_equal(a, b, tol=1e-6):
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def test_perfect():
    target = [[0, 1, 2], [3, 3, 0]]  # class 4 of 5 absent from both
    m = metrics(target, target, 5)
    assert m["pixel_acc"] == 1.0 and m["mean_acc"] == 1.0 and m["miou"] == 1.0
    assert ious(m)[:4] == [1.0] * 4 and math.isnan(ious(m)[4])


def test_disjoint():
    m = metrics([0, 0, 0], [1, 1, 1], 2)
    assert m["pixel_acc"] == 0.0 and ious(m) == [0.0, 0.0] and m["miou"] == 0.0


def test_half():
    # GT 0 0 0 0, pred 0 0 1 1: M = [[2, 2], [0, 0]]
    # IoU0 = 2 / (4 + 2 - 2) = 1/2; IoU1 = 0 / (0 + 2 - 0) = 0 (predicted, never labelled: counts as 0)
    m = metrics([0, 0, 0, 0], [0, 0, 1, 1], 2)
    assert ious(m) == [0.5, 0.0] and m["miou"] == 0.25
    assert m["pixel_acc"] == 0.5 and m["mean_acc"] == 0.5  # mean_acc: only class 0 has GT pixels
    # GT 0 0 1 1, pred 0 1 1 0: M = [[1, 1], [1, 1]]; IoU_c = 1 / (2 + 2 - 1) = 1/3
    m = metrics([0, 0, 1, 1], [0, 1, 1, 0], 2)
    assert ious(m) == pytest.approx([1 / 3, 1 / 3]) and m["miou"] == pytest.approx(1 / 3)


def test_ignored_pixels_excluded():
    base = metrics([0, 1, 1], [0, 1, 0], 3)
    # extra pixels: ignored target (any prediction, even out of range) and a target >= C are skipped
    more = metrics([0, 1, 1, 255, 255, 7], [0, 1, 0, 2, 99, 2], 3)
    assert all(nan_equal(a, b) for a, b in zip(ious(more), ious(base)))
    assert more["pixel_acc"] == base["pixel_acc"] == pytest.approx(2 / 3)


def test_absent_classes_not_averaged():
    # classes 0, 1 present; class 2 absent from GT and prediction -> NaN, left out of mIoU
    m = metrics([0, 0, 1, 1], [0, 0, 1, 0], 3)
    # IoU0 = 2 / (2 + 3 - 2) = 2/3; IoU1 = 1 / (2 + 1 - 1) = 1/2
    assert ious(m)[:2] == pytest.approx([2 / 3, 1 / 2]) and math.isnan(ious(m)[2])
    assert m["miou"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    # a 3-class model has no label space: its classes are named by index; the dict is JSON-friendly
    assert list(json.loads(json.dumps(m))["iou"]) == ["class_0", "class_1", "class_2"]


def test_category_iou_hand_case():
    # classes 0, 1 -> category 0 ('flat'); class 2 -> category 1 ('construction'); class 3 -> none (-1)
    mat = np.array([[3, 1, 0, 1],
                    [2, 4, 1, 0],
                    [0, 1, 5, 0],
                    [1, 0, 2, 9]])
    m = metrics_from_confusion(mat, category_index=[0, 0, 1, -1])
    # flat: rows 0+1 = [3+1+2+4 | 0+1 | 1+0] = [10 | 1 | 1] -> TP 10, FN 1 + 1 = 2 (void column is a miss);
    #       FP = column (0+1) over the other categories' rows = row 2: 0 + 1 = 1 (void row 3 dropped)
    # construction: row 2 = [0+1 | 5 | 0] -> TP 5, FN 1; FP = column 2 over flat rows = 0 + 1 = 1
    assert m["category_iou"]["flat"] == pytest.approx(10 / 13)
    assert m["category_iou"]["construction"] == pytest.approx(5 / 7)
    assert math.isnan(m["category_iou"]["sky"])
    assert m["category_miou"] == pytest.approx((10 / 13 + 5 / 7) / 2)


def test_defaults_from_label_space():
    m = metrics([0, 18], [0, 18], 19)
    assert list(m["iou"]) == labels.class_names("trainId")
    assert list(m["category_iou"]) == labels.CATEGORIES
    assert m["category_iou"]["flat"] == 1.0  # road
    assert m["category_iou"]["vehicle"] == 1.0  # bicycle


def test_bincount_matches_double_loop():
    rng = np.random.default_rng(0)
    num_classes = 6
    cm = ConfusionMatrix(num_classes)
    slow = np.zeros((num_classes, num_classes), dtype=np.int64)
    for _ in range(3):
        target = rng.integers(0, num_classes, size=(2, 9, 11))
        target[rng.random(target.shape) < 0.2] = 255
        pred = rng.integers(0, num_classes, size=target.shape)
        cm.update(torch.from_numpy(target), torch.from_numpy(pred).to(torch.uint8))
        for t, p in zip(target.ravel(), pred.ravel()):
            if t != 255:
                slow[t, p] += 1
    assert cm.mat.dtype == torch.int64 and cm.mat.shape == (num_classes, num_classes)
    np.testing.assert_array_equal(cm.mat.numpy(), slow)
    cm.reset()
    assert cm.mat.sum() == 0


def test_out_of_range_prediction_raises():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="shape"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0]))


def test_reduce_without_distributed_is_noop():
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([0, 1]), torch.tensor([0, 0]))
    cm.reduce_from_all_processes()
    assert cm.mat.tolist() == [[1, 0], [1, 0]]


# ---------------------------------------------------------------- official-format PNG evaluation
