"""Task 1 (IoU metrics), hidden checks."""
import math

import numpy as np
import torch

from pa3.metrics import ConfusionMatrix, iou_per_class, metrics_from_confusion


def test_predicted_but_never_labelled_class_scores_zero():
    mat = np.array([[4, 2],
                    [0, 0]])  # class 1 predicted twice, never labelled: IoU 0 (counts in the mean)
    np.testing.assert_allclose(iou_per_class(mat), [4 / 6, 0.0])
    assert math.isclose(metrics_from_confusion(mat, class_names=["a", "b"])["miou"], (4 / 6) / 2)


def test_random_matrix_against_loops():
    rng = np.random.default_rng(3)
    mat = rng.integers(0, 50, size=(6, 6))
    expected = [mat[c, c] / (mat[c, :].sum() + mat[:, c].sum() - mat[c, c]) for c in range(6)]
    np.testing.assert_allclose(iou_per_class(mat), expected)


def test_streamed_predictions_with_ignored_pixels():
    target = torch.tensor([[0, 0, 1, 255], [1, 2, 2, 2]])
    pred = torch.tensor([[0, 1, 1, 2], [1, 2, 0, 2]])
    cm = ConfusionMatrix(3)
    cm.update(target, pred)
    # class 0: TP 1, FN 1, FP 1 -> 1/3; class 1: TP 2, FP 1 -> 2/3; class 2: TP 2, FN 1 -> 2/3 (255 ignored)
    np.testing.assert_allclose(iou_per_class(cm.mat.numpy()), [1 / 3, 2 / 3, 2 / 3])
    assert math.isclose(cm.compute(["a", "b", "c"])["miou"], (1 / 3 + 2 / 3 + 2 / 3) / 3)
