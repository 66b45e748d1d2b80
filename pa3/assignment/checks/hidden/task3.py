"""Task 3 (Dice loss), the graded checks: each ``check_*`` returns what the pa3 under test computes; the grader
compares it with what the reference pa3 computes from the same inputs (``pa3.assignment.verdicts``)."""
import torch

from pa3.losses import dice_loss


def check_uniform_prediction_and_its_gradient():
    """dice_loss of all-zero logits (p = 0.5 everywhere), smooth=1, and its gradient"""
    logits = torch.zeros(1, 2, 1, 2, requires_grad=True)
    loss = dice_loss(logits, torch.tensor([[[0, 1]]]), smooth=1.0)
    loss.backward()
    return {"loss": loss.item(), "gradient": logits.grad}


def check_perfect_prediction():
    """dice_loss of a sure, right prediction (smooth=1e-6)"""
    target = torch.tensor([[[0, 1, 2, 2]]])
    logits = 50 * torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float()
    return {"loss": dice_loss(logits, target, smooth=1e-6).item()}


def check_ignored_pixels_change_nothing():
    """dice_loss with a row of ignored pixels (255), and without that row"""
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    ignored = target.clone()
    ignored[:, 0] = 255
    return {"with_ignored_row": dice_loss(logits, ignored).item(),
            "row_cropped": dice_loss(logits[:, :, 1:], target[:, 1:]).item()}


def check_batch_dice_with_a_wrong_prediction():
    """dice_loss over a batch of two one-pixel images, the second one predicted wrong"""
    logits = torch.tensor([[[[10.0]], [[-10.0]]], [[[-10.0]], [[10.0]]]])
    return {"loss": dice_loss(logits, torch.tensor([[[0]], [[0]]])).item()}


def check_no_valid_pixel_gives_zero_and_finite_gradients():
    """dice_loss when every pixel is ignored (255), and its gradient"""
    logits = torch.randn(1, 4, 3, 3, generator=torch.Generator().manual_seed(0)).requires_grad_()
    loss = dice_loss(logits, torch.full((1, 3, 3), 255))
    loss.backward()
    return {"loss": loss.item(), "gradient": logits.grad}


def check_random_logits():
    """dice_loss of five random batches"""
    torch.manual_seed(2)
    return {"losses": [dice_loss(3 * torch.randn(2, 5, 6, 6), torch.randint(0, 5, (2, 6, 6))).item()
                       for _ in range(5)]}
