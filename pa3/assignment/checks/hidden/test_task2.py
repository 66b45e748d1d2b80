"""Task 2 (weighted cross-entropy), hidden checks."""
import math

import torch
import torch.nn.functional as F

from pa3.losses import class_weights, cross_entropy


def test_inverse_and_enet_rules():
    n = [10.0, 30.0, 60.0]
    inverse = torch.tensor([100 / 30, 100 / 90, 100 / 180])
    torch.testing.assert_close(class_weights(n, method="inverse"), inverse / inverse.mean())
    enet = torch.tensor([1 / math.log(1.02 + p) for p in (0.1, 0.3, 0.6)])
    torch.testing.assert_close(class_weights(n, method="enet"), enet)


def test_median_of_an_even_number_of_present_classes():
    # frequencies 0.1, 0.2, 0.3, 0.4: median (0.2 + 0.3) / 2 = 0.25
    torch.testing.assert_close(class_weights([1, 2, 3, 4]), torch.tensor([2.5, 1.25, 0.25 / 0.3, 0.625]))


def test_ignored_pixels_leave_the_weighted_mean():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 3, 5)
    target = torch.randint(0, 4, (2, 3, 5))
    target[0, 0, :3] = 255
    weight = torch.tensor([0.5, 2.0, 1.0, 4.0])
    torch.testing.assert_close(cross_entropy(logits, target, weight=weight),
                               F.cross_entropy(logits, target, weight=weight, ignore_index=255))


def test_all_ignored_batch_gives_zero_not_nan():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = cross_entropy(logits, torch.full((1, 2, 2), 255), weight=torch.ones(3))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()
