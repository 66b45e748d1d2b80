"""pa3.losses: hand-computed CE / weighted CE / Dice values, class weights, ignore index, gradients."""
import math

import pytest
import torch
import torch.nn.functional as F

from pa3.losses import LOSSES, build_loss, class_weights, cross_entropy, dice_loss


def two_pixel_case():
    """2 classes, a 1x2 image: pixel 1 logits (0, 0) with target 0, pixel 2 logits (2, 0) with target 1."""
    logits = torch.tensor([[0.0, 2.0], [0.0, 0.0]]).reshape(1, 2, 1, 2)  # (N=1, C=2, H=1, W=2)
    target = torch.tensor([[[0, 1]]])  # (1, 1, 2)
    # -log softmax: pixel 1: log(e^0 + e^0) - 0 = ln 2; pixel 2: log(e^2 + e^0) - 0 = ln(1 + e^2)
    per_pixel = [math.log(2), math.log(1 + math.e ** 2)]
    return logits, target, per_pixel


def with_ignored_pixel(logits, target):
    """Append a third pixel with large arbitrary logits and target 255."""
    extra = torch.tensor([5.0, -3.0]).reshape(1, 2, 1, 1)
    return torch.cat([logits, extra], dim=3), torch.cat([target, torch.tensor([[[255]]])], dim=2)


def test_ce_hand_value():
    logits, target, (l1, l2) = two_pixel_case()
    expected = (l1 + l2) / 2
    assert build_loss("ce", 2)(logits, target).item() == pytest.approx(expected, rel=1e-6)
    assert F.cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_weighted_ce_hand_value():
    logits, target, (l1, l2) = two_pixel_case()
    w = [1.0, 3.0]
    expected = (w[0] * l1 + w[1] * l2) / (w[0] + w[1])  # torch's rule: sum w_y * l / sum w_y
    assert build_loss("weighted_ce", 2, weights=w)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_ce_matches_torch_on_random_data():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 4, 6, generator=g)
    target = torch.randint(0, 5, (2, 4, 6), generator=g)
    target[0, 0] = 255
    weight = torch.rand(5, generator=g) + 0.1
    assert torch.allclose(cross_entropy(logits, target), F.cross_entropy(logits, target, ignore_index=255))
    assert torch.allclose(cross_entropy(logits, target, weight),
                          F.cross_entropy(logits, target, weight=weight, ignore_index=255))


@pytest.mark.parametrize("name", LOSSES)
def test_ignored_pixels_change_nothing(name):
    logits, target, _ = two_pixel_case()
    loss = build_loss(name, 2, weights=[1.0, 3.0] if name == "weighted_ce" else None)
    more_logits, more_target = with_ignored_pixel(logits, target)
    assert loss(more_logits, more_target).item() == pytest.approx(loss(logits, target).item(), rel=1e-6)


def test_all_ignored_gives_zero_not_nan():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    target = torch.full((1, 2, 2), 255)
    for name in ("ce", "dice", "ce_dice"):
        loss = build_loss(name, 3)(logits, target)
        loss.backward()
        assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_class_weights_hand_values():
    counts = [10, 30, 60, 0]  # f = 0.1, 0.3, 0.6; class 3 absent -> weight 0
    # median of present f = 0.3 -> 0.3/0.1, 0.3/0.3, 0.3/0.6
    assert class_weights(counts, "median").tolist() == pytest.approx([3.0, 1.0, 0.5, 0.0])
    # total/(C n) = 100/40, 100/120, 100/240 = 2.5, 0.8333, 0.41667; their mean 3.75/3 = 1.25 -> divide
    assert class_weights(counts, "inverse").tolist() == pytest.approx([2.0, 2 / 3, 1 / 3, 0.0])
    enet = [1 / math.log(1.02 + 0.1), 1 / math.log(1.02 + 0.3), 1 / math.log(1.02 + 0.6), 0.0]
    assert class_weights(counts, "enet").tolist() == pytest.approx(enet, rel=1e-6)
    assert class_weights(counts).tolist() == class_weights(counts, "median").tolist()  # median is default
    # even number of present classes: f = 1/8, 1/8, 2/8, 4/8, median = (1/8 + 2/8) / 2 = 3/16
    assert class_weights([1, 1, 2, 4]).tolist() == pytest.approx([1.5, 1.5, 0.75, 0.375])
    w = class_weights(torch.tensor(counts))
    assert w.dtype == torch.float32 and w.shape == (4,)


def test_class_weights_errors():
    with pytest.raises(ValueError, match="median"):
        class_weights([1, 2], "typo")
    with pytest.raises(ValueError, match="count 0"):
        class_weights([0, 0])
    with pytest.raises(ValueError, match="non-negative"):
        class_weights([1, -1])


def test_dice_hand_value():
    # 2 pixels, both logits (0, 0) -> p = (0.5, 0.5); targets 0 and 1, so both classes are present.
    logits = torch.zeros(1, 2, 1, 2)
    target = torch.tensor([[[0, 1]]])
    # class c: intersection 0.5, sum p_c = 1, sum g_c = 1 -> smooth 1: (2*0.5 + 1)/(1 + 1 + 1) = 2/3
    assert dice_loss(logits, target).item() == pytest.approx(1 - 2 / 3, rel=1e-6)
    # smooth 0: (2*0.5)/(1 + 1) = 1/2
    assert dice_loss(logits, target, smooth=0.0).item() == pytest.approx(0.5, rel=1e-6)


def test_dice_perfect_and_wrong():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (2, 16, 16), generator=g)
    perfect = 30.0 * F.one_hot(target, 4).permute(0, 3, 1, 2).float()  # margins of 30: p ~ 1 - 3e-13
    assert dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-5)
    # all pixels class 0, all predicted class 1 -> dice_0 = dice_1 = smooth / (2048 + smooth) ~ 0
    target = torch.zeros(2, 32, 32, dtype=torch.long)
    wrong = torch.zeros(2, 4, 32, 32)
    wrong[:, 1] = 30.0
    assert dice_loss(wrong, target).item() == pytest.approx(1.0, abs=1e-3)
    assert dice_loss(wrong, target, smooth=0.0).item() == pytest.approx(1.0, abs=1e-6)


def test_dice_averages_present_classes_only():
    # 5-channel logits, but only classes 0 and 1 in target and argmax: same loss as the 2-class case
    logits = torch.zeros(1, 5, 1, 2)
    logits[:, 2:] = -50.0
    target = torch.tensor([[[0, 1]]])
    assert dice_loss(logits, target).item() == pytest.approx(1 - 2 / 3, rel=1e-5)


@pytest.mark.parametrize("name", LOSSES)
def test_gradient_flows(name):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, 4, generator=g, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 4), generator=g)
    target[:, 0] = 255
    loss = build_loss(name, 3, weights=[1.0, 2.0, 0.5] if name == "weighted_ce" else None, dice_weight=0.5)
    loss(logits, target).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    assert (logits.grad[:, :, 0] == 0).all()  # ignored row: no gradient


def test_ce_dice_is_sum():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(1, 3, 4, 4, generator=g)
    target = torch.randint(0, 3, (1, 4, 4), generator=g)
    total = build_loss("ce_dice", 3, dice_weight=0.25)(logits, target)
    assert total.item() == pytest.approx((cross_entropy(logits, target) + 0.25 * dice_loss(logits, target)).item())


def test_build_loss_errors():
    with pytest.raises(ValueError, match="class_weights"):
        build_loss("weighted_ce", 3)
    with pytest.raises(ValueError, match="ce_dice"):
        build_loss("focal", 3)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        build_loss("weighted_ce", 3, weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="weighted_ce"):
        build_loss("ce", 3, weights=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="num_classes=4"):
        build_loss("ce", 3)(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def test_weights_follow_module_device():
    loss = build_loss("weighted_ce", 2, weights=[1.0, 3.0])
    assert "weight" in dict(loss.named_buffers())
