"""Task 3 (Dice loss), hidden checks."""
import math

import torch

from pa3.losses import dice_loss


def test_ignored_pixels_change_nothing():
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    ignored = target.clone()
    ignored[:, 0] = 255
    cropped = dice_loss(logits[:, :, 1:], target[:, 1:])
    assert math.isclose(dice_loss(logits, ignored).item(), cropped.item(), rel_tol=1e-5)


def test_batch_dice_by_hand_with_a_wrong_prediction():
    # 2 classes, 2 images of one pixel; both pixels are class 0; image 2 predicts class 1 for sure
    logits = torch.tensor([[[[10.0]], [[-10.0]]], [[[-10.0]], [[10.0]]]])  # (2, 2, 1, 1)
    target = torch.tensor([[[0]], [[0]]])
    p0 = torch.softmax(torch.tensor([10.0, -10.0]), 0)[0].item()
    # class 0: intersection p0 + (1 - p0) * 0 ... p(class 0) is p0 in image 1 and 1 - p0 in image 2
    inter0, card0 = p0 * 1 + (1 - p0) * 1, (p0 + (1 - p0)) + 2
    inter1, card1 = 0.0, ((1 - p0) + p0) + 0
    dice0 = (2 * inter0 + 1) / (card0 + 1)
    dice1 = (2 * inter1 + 1) / (card1 + 1)  # class 1 is predicted (argmax of image 2): it counts
    assert math.isclose(dice_loss(logits, target).item(), 1 - (dice0 + dice1) / 2, rel_tol=1e-5)


def test_no_valid_pixel_gives_zero_and_finite_gradients():
    logits = torch.randn(1, 4, 3, 3, requires_grad=True)
    loss = dice_loss(logits, torch.full((1, 3, 3), 255))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_loss_is_in_unit_interval():
    torch.manual_seed(2)
    for _ in range(5):
        value = dice_loss(3 * torch.randn(2, 5, 6, 6), torch.randint(0, 5, (2, 6, 6))).item()
        assert 0.0 <= value <= 1.0
