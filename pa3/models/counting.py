"""Counting what a model costs: parameters, forward FLOPs (on the meta device) and a layer table."""
import torch

from pa3.models.registry import build_model


def count_parameters(model):
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(name, num_classes=19, size=(512, 1024), batch=1):
    """Forward FLOPs of model ``name`` on a (batch, 3, *size) input.

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` on the meta device: shapes only, no arithmetic
    and no memory, so even ResNet-101 at full resolution is counted instantly (and exactly).
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build_model(name, num_classes).eval()
        x = torch.empty(batch, 3, *size)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def summary(model, input_size=(256, 512), depth=2):
    """Layer table of ``model``: the output shape and parameter count of each module ``depth`` levels down.

    Args:
        model: a pa3 model.
        input_size: (H, W) of the dummy input (batch 1; must be divisible by 32).
        depth: how far down the module tree to report (1 = the model's direct children).
    Returns:
        list of dicts {"layer", "type", "output", "params"} in execution order.
    """
    rows, hooks = [], []
    for name, module in model.named_modules():
        level = name.count(".") + 1 if name else 0
        if level == depth or (0 < level < depth and not any(module.children())):
            def hook(mod, args, out, name=name):
                rows.append({"layer": name, "type": type(mod).__name__,
                             "output": tuple(out.shape) if torch.is_tensor(out) else type(out).__name__,
                             "params": sum(p.numel() for p in mod.parameters())})
            hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model.eval()(torch.zeros(1, 3, *input_size, device=device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return rows
