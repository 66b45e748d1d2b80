"""Task 1 (IoU metrics), the graded checks: each ``check_*`` returns what the pa3 under test computes; the grader
compares it with what the reference pa3 computes from the same inputs (``pa3.assignment.verdicts``)."""
import numpy as np
import torch

from pa3.metrics import ConfusionMatrix, iou_per_class, metrics_from_confusion


def check_iou_of_a_two_class_matrix():
    """iou_per_class of [[3, 1], [2, 4]]"""
    return {"iou": iou_per_class(np.array([[3, 1], [2, 4]]))}


def check_absent_class_is_nan_and_left_out_of_the_mean():
    """a class never labelled nor predicted: IoU NaN, left out of the mIoU"""
    mat = np.array([[2, 0, 0], [0, 0, 0], [1, 0, 3]])
    return {"iou": iou_per_class(mat), "miou": metrics_from_confusion(mat, class_names=["a", "b", "c"])["miou"]}


def check_predicted_but_never_labelled_class_scores_zero():
    """a class predicted but never labelled: IoU 0, counted in the mIoU"""
    mat = np.array([[4, 2], [0, 0]])
    return {"iou": iou_per_class(mat), "miou": metrics_from_confusion(mat, class_names=["a", "b"])["miou"]}


def check_random_matrix():
    """iou_per_class of a random 6x6 confusion matrix"""
    return {"iou": iou_per_class(np.random.default_rng(3).integers(0, 50, size=(6, 6)))}


def check_streamed_predictions_with_ignored_pixels():
    """ConfusionMatrix(3) updated with a target holding an ignored (255) pixel"""
    target = torch.tensor([[0, 0, 1, 255], [1, 2, 2, 2]])
    pred = torch.tensor([[0, 1, 1, 2], [1, 2, 0, 2]])
    cm = ConfusionMatrix(3)
    cm.update(target, pred)
    return {"iou": iou_per_class(cm.mat.numpy()), "miou": cm.compute(["a", "b", "c"])["miou"]}
