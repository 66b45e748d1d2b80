"""Task 1 (IoU metrics), public checks: IoU = TP / (TP + FP + FN) per class, computed by hand."""
import math

import numpy as np

from pa3.metrics import iou_per_class, metrics_from_confusion


def test_iou_of_a_two_class_matrix():
    mat = np.array([[3, 1],   # ground truth 0: 3 right, 1 predicted as 1
                    [2, 4]])  # ground truth 1: 2 predicted as 0, 4 right
    # class 0: TP 3, FN 1, FP 2 -> 3 / 6; class 1: TP 4, FN 2, FP 1 -> 4 / 7
    np.testing.assert_allclose(iou_per_class(mat), [3 / 6, 4 / 7])


def test_absent_class_is_nan_and_left_out_of_the_mean():
    mat = np.array([[2, 0, 0],
                    [0, 0, 0],   # class 1: never labelled, never predicted
                    [1, 0, 3]])
    iou = iou_per_class(mat)
    assert math.isnan(iou[1])
    np.testing.assert_allclose(iou[[0, 2]], [2 / 3, 3 / 4])
    metrics = metrics_from_confusion(mat, class_names=["a", "b", "c"])
    assert math.isclose(metrics["miou"], (2 / 3 + 3 / 4) / 2)
