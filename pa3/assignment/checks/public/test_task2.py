"""Task 2 (weighted cross-entropy), public checks."""
import math

import torch
import torch.nn.functional as F

from pa3.losses import class_weights, cross_entropy


def test_median_frequency_weights_by_hand():
    # frequencies 0.1, 0.3, 0.6: median 0.3 -> weights 3, 1, 0.5; a class without pixels gets 0
    w = class_weights([10, 30, 60, 0], method="median")
    torch.testing.assert_close(w, torch.tensor([3.0, 1.0, 0.5, 0.0]))


def test_weighted_cross_entropy_by_hand():
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]], requires_grad=True)  # (N=1, C=2, H=1, W=2)
    target = torch.tensor([[[0, 1]]])
    weight = torch.tensor([1.0, 3.0])
    l0 = -math.log(math.exp(2) / (math.exp(2) + 1))  # pixel 0, class 0
    l1 = -math.log(math.e / (1 + math.e))  # pixel 1, class 1
    loss = cross_entropy(logits, target, weight=weight)
    assert math.isclose(loss.item(), (1 * l0 + 3 * l1) / (1 + 3), rel_tol=1e-5)
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    torch.testing.assert_close(loss, F.cross_entropy(logits, target, weight=weight))
