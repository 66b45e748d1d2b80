"""Task 3 (Dice loss), public checks."""
import math

import torch

from pa3.losses import dice_loss


def test_uniform_prediction_by_hand():
    logits = torch.zeros(1, 2, 1, 2, requires_grad=True)  # p = 0.5 everywhere
    target = torch.tensor([[[0, 1]]])
    # per class: intersection 0.5, sum(p) 1, sum(g) 1 -> dice (2 * 0.5 + 1) / (1 + 1 + 1) = 2/3; loss 1/3
    loss = dice_loss(logits, target, smooth=1.0)
    assert math.isclose(loss.item(), 1 / 3, rel_tol=1e-5)
    loss.backward()
    assert logits.grad.abs().sum() > 0


def test_perfect_prediction_is_almost_zero():
    target = torch.tensor([[[0, 1, 2, 2]]])
    logits = 50 * torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float()
    assert dice_loss(logits, target, smooth=1e-6).item() < 1e-4
