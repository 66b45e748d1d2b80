"""Training memory, counted on the CPU: whether a model fits a GPU before the GPU is asked.

One training step of a model holds, at its peak (early in the backward pass)::

    weights + gradients + Adam state (2 x weights)     fp32, whatever the autocast precision
    + saved activations                                what autograd keeps for the backward pass
    + workspace                                        gradients in flight, backend scratch

The saved activations are counted, not guessed: a training forward (and the loss) runs on the **meta
device** (shapes only: no arithmetic, no memory, instant even for ResNet-101 at 512x1024) under
``torch.autograd.graph.saved_tensors_hooks``, which sees every tensor autograd saves for backward; each
storage counts once (a ReLU's output and the next convolution's input are one tensor), parameters and
buffers are left out (counted as weights). Under fp16/bf16 autocast the activations are 2-byte: the model
is cast to that dtype for the count, and autocast's low-precision copies of the conv/linear weights (which
autograd keeps for backward too) are added. On a real CPU the same hooks count exactly the same bytes,
fp32 and under bf16 autocast alike (``tests/test_memory.py``).

The workspace is a stated margin, ``WORKSPACE_TENSORS`` times the largest saved tensor: during backward
the gradient arriving at the largest layer, the one leaving it, and backend scratch (im2col buffers,
oneDNN/cuDNN workspaces). The factor 3 was set from measured peaks (``benchmarks/bench_memory.py``: the
peak RSS rise of real CPU training steps; numbers and ratios in benchmarks/README.md), where fcn, U-Net
and U-Net+ASPP needed 1-3.5 largest tensors beyond the rest. Gradients are counted in full although they
fill up during backward while activations are freed: a small over-count that the margin absorbs.

Activation checkpointing (``pa3.models.set_activation_checkpointing``) keeps only the inputs of the checkpointed
blocks and recomputes their insides during backward, one block at a time; the estimate then counts what
is saved outside those blocks, their inputs, and the largest block's insides (the recomputation peak).

On a GPU, what the estimate does not hold (the CUDA context, ~0.3-0.5 GiB; the caching allocator's
fragmentation) is left to ``HEADROOM``: a profile's settings must fit in that share of its GPU's memory.
"""
from dataclasses import dataclass

import torch
from torch import nn

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
WORKSPACE_TENSORS = 3  # workspace = this many times the largest saved tensor (see the module docstring)
HEADROOM = 0.85  # the share of a GPU's memory an estimate may fill; the rest: CUDA context, fragmentation
GIB = 2**30


@dataclass(frozen=True)
class SavedTensors:
    """What autograd saves in one training forward, in bytes, split by activation-checkpointing block."""

    outside: int  # saved outside any checkpointed block, or the input of one (kept until backward)
    inside: tuple  # per checkpointed block: saved inside it (dropped after forward, recomputed in backward)
    largest: int  # the largest single saved storage

    @property
    def total(self):
        """Bytes held at the end of the forward without checkpointing."""
        return self.outside + sum(self.inside)

    @property
    def checkpointed(self):
        """Bytes held at the peak with checkpointing: everything kept + the largest block recomputed."""
        return self.outside + max(self.inside, default=0)


def _storage_key(t):
    return t.untyped_storage()._cdata  # one key per storage: views and in-place results share it


def count_saved_tensors(model, images, masks, criterion, blocks=()):
    """Count the bytes autograd saves for backward in one training forward of ``model`` plus the loss.

    Args:
        model: in training mode, on the device of ``images`` (the meta device: shapes only).
        images: (N, 3, H, W); masks: (N, H, W) int64; criterion: loss(logits float32, masks).
        blocks: modules run under activation checkpointing: what is saved inside one is attributed to it,
            and its input counts as kept.
    Returns:
        SavedTensors.
    """
    state = {_storage_key(t) for t in (*model.parameters(), *model.buffers())}
    where, sizes, current = {}, {}, [None]  # storage -> block index (None = outside), storage -> bytes

    def record(t, block):
        key = _storage_key(t)
        if key in state:
            return
        sizes[key] = t.untyped_storage().nbytes()
        if block is None or where.get(key, block) is None:
            where[key] = None  # kept: saved (or used as a block input) outside the blocks
        else:
            where.setdefault(key, block)

    def pack(t):
        record(t, current[0])
        return t

    def enter(index):
        def hook(module, args):
            for a in args:
                if torch.is_tensor(a):
                    record(a, None)  # a checkpointed block keeps its inputs
            current[0] = index
        return hook

    def leave(module, args, output):
        current[0] = None

    hooks = []
    for i, block in enumerate(blocks):
        hooks += [block.register_forward_pre_hook(enter(i)), block.register_forward_hook(leave)]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            logits = model(images)
            criterion(logits.float(), masks)  # pa3.engine computes the loss in fp32
    finally:
        for h in hooks:
            h.remove()
    inside = [0] * len(blocks)
    for key, block in where.items():
        if block is not None:
            inside[block] += sizes[key]
    outside = sum(sizes[k] for k, b in where.items() if b is None)
    return SavedTensors(outside, tuple(inside), max(sizes.values(), default=0))


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak memory of one training step (bytes); ``str()`` gives a one-line breakdown in GiB."""

    model: str
    batch: int  # images per forward (the micro-batch under gradient accumulation)
    size: tuple  # (H, W)
    precision: str  # "fp32" | "fp16" | "bf16" (autocast)
    activation_checkpointing: bool
    weights: int
    gradients: int
    optimizer: int
    activations: int
    workspace: int

    @property
    def total(self):
        return self.weights + self.gradients + self.optimizer + self.activations + self.workspace

    @property
    def gib(self):
        return self.total / GIB

    def __str__(self):
        parts = ", ".join(f"{name} {getattr(self, name) / GIB:.2f}"
                          for name in ("weights", "gradients", "optimizer", "activations", "workspace"))
        ckpt = ", checkpointing" if self.activation_checkpointing else ""
        return (f"{self.model} {self.size[0]}x{self.size[1]}, {self.batch} images per forward, {self.precision}"
                f"{ckpt}: {self.gib:.2f} GiB ({parts} GiB)")


def _low_precision_weight_copies(model, dtype):
    """Bytes of autocast's cached low-precision copies of conv/linear weights (kept for backward)."""
    layers = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
    numel = sum(p.numel() for m in model.modules() if isinstance(m, layers) for p in m.parameters(recurse=False))
    return numel * dtype.itemsize


def estimate_memory(model, batch, size, precision="fp32", activation_checkpointing=False, num_classes=19):
    """Estimate the peak memory of one training step with Adam (see the module docstring).

    Args:
        model: a registered model name (``pa3.models.MODELS``).
        batch: images per forward pass (the micro-batch under gradient accumulation).
        size: (H, W) of the training images.
        precision: "fp32", or the autocast dtype "fp16"/"bf16" (weights, gradients and Adam stay fp32).
        activation_checkpointing: as ``pa3.models.set_activation_checkpointing`` would run it.
        num_classes: the model's output channels. The loss counted is cross-entropy (Dice saves a few
            more full-size tensors; only the small FCN trains with it).
    Returns:
        MemoryEstimate.
    """
    from pa3.losses import build_loss
    from pa3.models import build_model, checkpoint_blocks

    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; choose one of {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    with torch.device("meta"):
        net = build_model(model, num_classes).train()
        params = sum(p.numel() * p.element_size() for p in net.parameters())
        buffers = sum(b.numel() * b.element_size() for b in net.buffers())
        copies = 0 if dtype == torch.float32 else _low_precision_weight_copies(net, dtype)
        net = net.to(dtype)
        images = torch.empty(batch, 3, *size, dtype=dtype)
        masks = torch.zeros(batch, *size, dtype=torch.long)
        saved = count_saved_tensors(net, images, masks, build_loss("ce", num_classes),
                                    checkpoint_blocks(net) if activation_checkpointing else ())
    activations = (saved.checkpointed if activation_checkpointing else saved.total) + copies
    return MemoryEstimate(model=model, batch=batch, size=tuple(size), precision=precision,
                          activation_checkpointing=activation_checkpointing, weights=params + buffers, gradients=params,
                          optimizer=2 * params, activations=activations,
                          workspace=WORKSPACE_TENSORS * saved.largest)


def precision_of(amp_dtype):
    """"fp32" | "fp16" | "bf16" for an autocast dtype (None = fp32), e.g. ``pa3.device.resolve_amp``'s."""
    return {None: "fp32", torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[amp_dtype]


def estimate_config(config, num_classes, precision):
    """MemoryEstimate of a ``pa3.config.TrainConfig`` (micro-batch = batch_size / accumulation_steps)."""
    return estimate_memory(config.model, config.batch_size // config.accumulation_steps,
                           (config.height, config.width), precision, config.activation_checkpointing, num_classes)


def fitting_settings(config, num_classes, precision, memory):
    """The first of (fewer images per forward, then checkpointing) whose estimate fits ``HEADROOM * memory``.

    Tries every ``accumulation_steps`` that divides ``batch_size`` (micro-batches largest first, never below
    the model's ``min_train_batch``), without and then with activation checkpointing, so the effective
    batch stays ``batch_size``.

    Returns:
        (accumulation_steps, checkpointing, MemoryEstimate), or None when nothing fits.
    """
    from pa3.models import MODELS

    smallest = MODELS[config.model].min_train_batch
    steps = [k for k in range(1, config.batch_size + 1)
             if config.batch_size % k == 0 and config.batch_size // k >= smallest]
    for activation_checkpointing in (False, True):
        for k in steps:
            estimate = estimate_memory(config.model, config.batch_size // k, (config.height, config.width),
                                       precision, activation_checkpointing, num_classes)
            if estimate.total <= HEADROOM * memory:
                return k, activation_checkpointing, estimate
    return None


class InsufficientMemoryError(RuntimeError):
    """The estimate says a training run will not fit the GPU it is about to use."""


def device_memory(device):
    """Total memory of a CUDA device in bytes; None for any other device."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.cuda.get_device_properties(device).total_memory


def check_fits(config, device, num_classes, precision):
    """Raise InsufficientMemoryError, before any training, when ``config`` will not fit ``device``'s memory.

    The message holds the estimate, the device's memory and a setting that fits (from
    ``fitting_settings``). Does nothing on a CPU, or for a model outside pa3's registry.

    Returns:
        the MemoryEstimate, or None when there is nothing to check.
    """
    from pa3.models import MODELS

    memory = device_memory(device)
    if memory is None or config.model not in MODELS:
        return None
    estimate = estimate_config(config, num_classes, precision)
    if estimate.total <= memory:
        return estimate
    found = fitting_settings(config, num_classes, precision, memory)
    if found is None:
        fix = (f"nothing fits at {config.height}x{config.width}, not even {MODELS[config.model].min_train_batch} "
               f"image(s) per forward with checkpointing: train at a smaller height/width, or on a GPU with more "
               f"memory")
    else:
        k, recompute, fitting = found
        fix = (f"set accumulation_steps={k}{' and activation_checkpointing=True' if recompute else ''} in the "
               f"TrainConfig (--accumulation-steps {k}{' --activation-checkpointing' if recompute else ''} on the "
               f"command line): "
               f"{k} micro-batch(es) of {config.batch_size // k} images, the same batch of {config.batch_size} per "
               f"optimiser step, estimated {fitting.gib:.1f} GiB. pa3's GPU profiles hold such settings "
               f"(PA3_PROFILE=colab for a 15 GB T4, full for a 40 GB A100)")
    raise InsufficientMemoryError(
        f"{config.model} will not fit on {device} ({memory / GIB:.1f} GiB): pa3's estimate is {estimate} "
        f"(batch_size {config.batch_size}, accumulation_steps {config.accumulation_steps}). Stopping before "
        f"training rather than waiting for CUDA's out-of-memory error. Fix: {fix}.")
