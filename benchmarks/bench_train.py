"""End-to-end training throughput: ``pa3.engine.train_one_epoch`` fed by the cached, augmented loader vs
the bare model step (forward, loss, backward, Adam step) on one pre-loaded batch.

Same model, batch size and number of steps on both sides; ratio = pipeline / bare (1.0 = loading costs
nothing). Achieved FLOP/s (FlopCounterMode over one forward + backward) are set against this machine's
measured fp32 matmul peak. On CUDA both sides use AMP bf16 + channels_last + cudnn.benchmark, and
``--gpu-reference`` adds DeepLabv3-R101 at 512x1024: pa3's step vs torchvision's reference recipe
(fp32, contiguous, SGD, auxiliary loss).
"""
import time

import numpy as np
import torch
from torch.utils.data import RandomSampler

from benchmarks.common import Result, count_flops, ensure_full_data, matmul_peak_flops, skipped, sync
from pa3.data import CityscapesSegmentation, make_loader
from pa3.engine import Training, train_one_epoch
from pa3.inference import to_device
from pa3.losses import build_loss
from pa3.models import build_model
from pa3.transforms import TrainPreset

GOAL = 0.9
GPU_REFERENCE = "gpu reference: DeepLabv3-R101 512x1024 train step, pa3 bf16+CL vs torchvision fp32"
NUM_CLASSES = 19


class _Started:
    """A loader whose iterator is already running (workers up, first batch taken): steady state only."""

    def __init__(self, iterator, length):
        self.iterator, self.length = iterator, length

    def __iter__(self):
        return self.iterator

    def __len__(self):
        return self.length


def _settings(ctx):
    """(autocast dtype or None, channels_last) — the GPU speed settings, none on CPU."""
    if ctx.cuda:
        torch.backends.cudnn.benchmark = True
        return torch.bfloat16, True
    return None, False


def bare_steps(model, criterion, optimizer, images, masks, steps, device, amp_dtype=None):
    """``steps`` training steps on one batch already on ``device``; returns seconds."""
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = criterion(model(images), masks)
        loss.item()  # train_one_epoch checks every loss for NaN/inf: same synchronisation
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return time.perf_counter() - start


def step_flops(name, criterion, batch_shape, device):
    """FLOPs of one forward + backward (FlopCounterMode) of model ``name``, counted on the meta device
    (shapes only: exact and free, where a real count would cost a whole training step)."""
    with torch.device("meta"):
        model = build_model(name, NUM_CLASSES).train()
        images = torch.empty(batch_shape)
        masks = torch.zeros(batch_shape[0], *batch_shape[2:], dtype=torch.int64)
        loss_fn = build_loss("ce", NUM_CLASSES)
    return count_flops(lambda: loss_fn(model(images), masks).backward())


def _train_model(ctx, dataset, name, batch, steps, repeats, workers, peak, warmup=1):
    device = ctx.device
    amp_dtype, channels_last = _settings(ctx)
    torch.manual_seed(0)
    model = build_model(name, NUM_CLASSES).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    criterion = build_loss("ce", NUM_CLASSES).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    sampler = RandomSampler(dataset, replacement=True, num_samples=batch * (1 + steps * repeats),
                            generator=torch.Generator().manual_seed(0))
    loader = make_loader(dataset, batch, train=True, num_workers=workers, sampler=sampler)

    it = iter(loader)
    images, masks = to_device(*next(it), device, channels_last)  # the bare step's batch, model-ready
    flops = step_flops(name, criterion, tuple(images.shape), device)
    if warmup:  # allocator, oneDNN/cuDNN primitives; without it the pipeline goes first and pays for them
        bare_steps(model, criterion, optimizer, images, masks, warmup, device, amp_dtype)

    bare, pipe = [], []
    for r in range(repeats):  # interleaved: pipeline, bare, pipeline, bare, ...
        sync(device)
        start = time.perf_counter()
        out = train_one_epoch(Training(model, criterion, optimizer, device, amp_dtype=amp_dtype,
                                       channels_last=channels_last, steps_per_epoch=steps), _Started(it, steps), epoch=0)
        sync(device)
        pipe.append(time.perf_counter() - start)
        assert out["steps"] == steps and np.isfinite(out["loss_sum"]), out
        bare.append(bare_steps(model, criterion, optimizer, images, masks, steps, device, amp_dtype))
    del it

    bare_s, pipe_s = float(np.median(bare)), float(np.median(pipe))
    n = batch * steps
    ratio = bare_s / pipe_s
    row = Result(f"train {name} samples/s ({dataset.size[0]}x{dataset.size[1]}, bs {batch}, {steps} steps, "
                 f"{workers} workers)", f"{n / pipe_s:.2f} /s", f"{n / bare_s:.2f} /s", ratio, f">= {GOAL}")
    achieved = flops * steps / pipe_s
    row.details = {"pipeline_s": pipe, "bare_s": bare, "steps": steps, "batch": batch, "warmup_steps": warmup,
                   "step_flops": flops, "achieved_flops_per_s_pipeline": achieved,
                   "achieved_flops_per_s_bare": flops * steps / bare_s,
                   "matmul_peak_flops_per_s": peak, "fraction_of_peak": achieved / peak}
    flop_row = Result(f"  {name} achieved GFLOP/s vs fp32 matmul peak ({flops / batch / 1e9:.1f} GFLOP/sample "
                      f"fwd+bwd)", f"{achieved / 1e9:.1f} GFLOP/s", f"{peak / 1e9:.1f} GFLOP/s", achieved / peak,
                      "-", "-")
    return [row.check(minimum=GOAL), flop_row]


def gpu_reference(ctx, size=(512, 1024), batch=4, steps=10):
    """DeepLabv3-R101 at 512x1024 on CUDA: pa3's step (AMP bf16, channels_last) vs torchvision's reference
    recipe (fp32, contiguous, SGD momentum 0.9, CE + 0.5 * auxiliary CE), same batch, interleaved."""
    if not ctx.cuda:
        return [skipped(GPU_REFERENCE, goal="> 1x")]
    import torchvision

    device = ctx.device
    torch.backends.cudnn.benchmark = True
    images = torch.randn(batch, 3, *size, device=device)
    masks = torch.randint(0, NUM_CLASSES, (batch, *size), device=device)
    torch.manual_seed(0)
    ours = build_model("deeplabv3", NUM_CLASSES).to(device).to(memory_format=torch.channels_last).train()
    ours_opt = torch.optim.Adam(ours.parameters(), lr=1e-4)
    ours_x = images.contiguous(memory_format=torch.channels_last)
    ref = torchvision.models.segmentation.deeplabv3_resnet101(weights=None, weights_backbone=None,
                                                              num_classes=NUM_CLASSES, aux_loss=True).to(device).train()
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)
    ce = torch.nn.CrossEntropyLoss(ignore_index=255)
    criterion = build_loss("ce", NUM_CLASSES).to(device)

    def ref_steps(n):
        sync(device)
        start = time.perf_counter()
        for _ in range(n):
            out = ref(images)
            loss = ce(out["out"], masks) + 0.5 * ce(out["aux"], masks)
            ref_opt.zero_grad(set_to_none=True)
            loss.backward()
            ref_opt.step()
        loss.item()
        sync(device)
        return time.perf_counter() - start

    ours_steps = lambda n: bare_steps(ours, criterion, ours_opt, ours_x, masks, n, device, torch.bfloat16)  # noqa: E731
    ours_steps(2)
    ref_steps(2)
    ours_t, ref_t = [], []
    for _ in range(3):
        ours_t.append(ours_steps(steps))
        ref_t.append(ref_steps(steps))
    o, r = float(np.median(ours_t)), float(np.median(ref_t))
    row = Result(f"gpu reference: DeepLabv3-R101 {size[0]}x{size[1]} bs {batch} train samples/s, pa3 bf16+CL "
                 f"vs torchvision fp32", f"{batch * steps / o:.1f} /s", f"{batch * steps / r:.1f} /s", r / o, "> 1x")
    row.details = {"pa3_s": ours_t, "reference_s": ref_t, "gpu": torch.cuda.get_device_name(),
                   "pa3_peak_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20}
    return [row.check(minimum=1.0)]


def run(ctx):
    root = ensure_full_data(ctx)
    if ctx.smoke:  # (batch, steps, repeats, warm-up steps) per model
        size, plan = (32, 64), {"fcn": (2, 2, 1, 1)}
    elif ctx.cuda:
        size, plan = (256, 512), {"fcn": (8, 20, 2, 3), "unet": (8, 10, 2, 3)}
    else:  # a UNet step at 256x512 costs ~785 GFLOP per sample: 2 steps of 2 samples, no warm-up
        size, plan = (256, 512), {"fcn": (4, 8, 2, 1), "unet": (2, 2, 1, 0)}
    workers = 4 if ctx.cuda else 1
    dataset = CityscapesSegmentation(root, "train", size=size, transforms=TrainPreset(normalize=False), cache=True,
                                     cache_dir=ctx.workdir / "cache")
    peak = matmul_peak_flops(ctx.device, size=256 if ctx.smoke else 2048)
    rows = []
    for name, (batch, steps, repeats, warmup) in plan.items():
        rows += _train_model(ctx, dataset, name, batch, steps, repeats, workers, peak, warmup)
    if ctx.cuda and not ctx.gpu_reference:
        rows.append(skipped(GPU_REFERENCE, "skipped: pass --gpu-reference", "> 1x"))
    else:
        rows += gpu_reference(ctx)
    return rows
