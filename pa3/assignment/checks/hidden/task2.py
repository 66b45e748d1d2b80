"""Task 2 (weighted cross-entropy), the graded checks: each ``check_*`` returns what the pa3 under test computes;
the grader compares it with what the reference pa3 computes from the same inputs (``pa3.assignment.verdicts``)."""
import torch

from pa3.losses import class_weights, cross_entropy


def check_class_weight_rules():
    """class_weights by the median, inverse and ENet rules (a class without pixels gets 0)"""
    return {"median": class_weights([10, 30, 60, 0], method="median"),
            "median_of_four": class_weights([1, 2, 3, 4]),
            "inverse": class_weights([10.0, 30.0, 60.0], method="inverse"),
            "enet": class_weights([10.0, 30.0, 60.0], method="enet")}


def check_weighted_cross_entropy_and_its_gradient():
    """cross_entropy(logits, target, weight) on (N=1, C=2, H=1, W=2), and its gradient"""
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]], requires_grad=True)
    loss = cross_entropy(logits, torch.tensor([[[0, 1]]]), weight=torch.tensor([1.0, 3.0]))
    loss.backward()
    return {"loss": loss.item(), "gradient": logits.grad}


def check_ignored_pixels_leave_the_weighted_mean():
    """cross_entropy with 3 of 30 pixels ignored (255) and class weights [0.5, 2, 1, 4]"""
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 3, 5)
    target = torch.randint(0, 4, (2, 3, 5))
    target[0, 0, :3] = 255
    return {"loss": cross_entropy(logits, target, weight=torch.tensor([0.5, 2.0, 1.0, 4.0])).item()}


def check_all_ignored_batch_gives_zero_not_nan():
    """cross_entropy of a batch whose every pixel is ignored (255), and its gradient"""
    logits = torch.randn(1, 3, 2, 2, generator=torch.Generator().manual_seed(0)).requires_grad_()
    loss = cross_entropy(logits, torch.full((1, 2, 2), 255), weight=torch.ones(3))
    loss.backward()
    return {"loss": loss.item(), "gradient": logits.grad}
