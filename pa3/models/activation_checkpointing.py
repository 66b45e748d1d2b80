"""Activation checkpointing of a model's blocks: less memory for about one more forward pass of them."""
import contextlib
import functools

import torch
import torch.utils.checkpoint
from torch import nn

from pa3.models.layers import SegmentationModel
from pa3.models.registry import MODELS


def checkpoint_blocks(model):
    """The blocks of a pa3 model that ``set_activation_checkpointing`` checkpoints: U-Net blocks (and U-Net+ASPP's
    two full-size ASPPs), ResNet bottlenecks, ASPP heads, FCN layers."""
    blocks = model.checkpoint_blocks() if isinstance(model, SegmentationModel) else []
    if not blocks:
        raise ValueError(f"{type(model).__name__} names no blocks to checkpoint: activation checkpointing is "
                         f"available for pa3's registered models ({', '.join(MODELS)}); use activation_checkpointing=False")
    return blocks


def set_activation_checkpointing(model, enabled=True):
    """Run the model's ``checkpoint_blocks`` under activation checkpointing (or back to normal).

    A checkpointed block keeps only its input for backward and recomputes its activations there
    (``torch.utils.checkpoint``, ``use_reentrant=False``; dropout replays the same masks): less memory for
    about one more forward pass of those blocks. Gradients are unchanged. BatchNorm running statistics are
    restored after the recomputation, so they are updated once per step, as without checkpointing.
    Only training with gradients is affected; evaluation and ``no_grad`` run the blocks as usual. The
    state dict is unchanged (the blocks' ``forward`` is wrapped in place, no module is added).

    Returns:
        model.
    """
    for block in checkpoint_blocks(model):
        if enabled:
            block.forward = functools.partial(_checkpointed_forward, block, type(block).forward)
        else:
            block.__dict__.pop("forward", None)
    return model


def _checkpointed_forward(block, forward, *args):
    if not (block.training and torch.is_grad_enabled()):
        return forward(block, *args)
    return torch.utils.checkpoint.checkpoint(
        forward, block, *args, use_reentrant=False,
        context_fn=lambda: (contextlib.nullcontext(), _batchnorm_stats_restored(block)))


@contextlib.contextmanager
def _batchnorm_stats_restored(module):
    """Recomputation runs the block's BatchNorms in training mode again: put their running stats back."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [[b.clone() for b in (m.running_mean, m.running_var, m.num_batches_tracked)] for m in norms]
    try:
        yield
    finally:
        for m, (mean, var, count) in zip(norms, saved):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)
