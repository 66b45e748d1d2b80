"""CPU training at the speed of the hardware: pa3's training step against a bare fp32 loop.

Each side runs in a fresh process (the allocator setting acts process-wide), alternating bare, pa3,
bare, pa3, ...; the figure of each side is the median over repeats:

- **bare**: the model in fp32, NCHW, glibc's default allocator (``PA3_MALLOC=default``); forward, loss,
  backward, Adam step on one pre-loaded batch.
- **pa3**: ``pa3.engine.train_one_epoch`` with what ``fit`` uses on this CPU (``pa3.device``):
  channels_last, bf16 autocast where the CPU computes bf16 natively, glibc kept from unmapping freed
  memory; the same batch, fed as the uint8 batch the loader hands over.

Also printed: the kernel (system) share of the CPU time of each side, from getrusage: page faults and
page clearing show up there. Goals: pa3 at least 2x the bare step's speed, kernel share at most 5 %.
"""
import json
import os
import subprocess
import sys

import numpy as np

from benchmarks.common import Result

MODELS = ("fcn", "unet", "resnet101_aspp")
SPEED_GOAL = 2.0
KERNEL_SHARE_GOAL = 0.05


def _step_process(side, model_name, height, width, batch, steps, threads):
    """Run one side in this (fresh) process; prints a JSON line with seconds per step and CPU times."""
    import resource
    import time

    import torch

    torch.set_num_threads(threads)
    from pa3.device import resolve_amp, use_channels_last
    from pa3.engine import Training, train_one_epoch
    from pa3.losses import build_loss
    from pa3.models import build_model

    torch.manual_seed(0)
    device = torch.device("cpu")
    model = build_model(model_name, 19).train()
    criterion = build_loss("ce", 19)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    images = torch.randint(0, 256, (batch, 3, height, width), dtype=torch.uint8)
    masks = torch.randint(0, 19, (batch, height, width), dtype=torch.uint8)

    if side == "bare":
        x = images.float().div(255)

        def run(n):
            for _ in range(n):
                loss = criterion(model(x), masks.long())
                loss.item()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    else:
        channels_last = use_channels_last("auto")
        amp_dtype = resolve_amp("auto", device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)

        def run(n):
            train_one_epoch(Training(model, criterion, optimizer, device, amp_dtype=amp_dtype,
                                     channels_last=channels_last, steps_per_epoch=n), [(images, masks)] * n, epoch=1)

    run(2)  # warm-up: oneDNN primitives, allocator
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    run(steps)
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"step_s": seconds / steps, "user_s": after.ru_utime - before.ru_utime,
                      "system_s": after.ru_stime - before.ru_stime,
                      "minor_faults": after.ru_minflt - before.ru_minflt}))


def _measure(side, model_name, size, batch, steps, threads):
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": str(threads)}
    if side == "bare":
        env["PA3_MALLOC"] = "default"
    code = ("import sys; from benchmarks.bench_cpu import _step_process; "
            f"_step_process({side!r}, {model_name!r}, {size[0]}, {size[1]}, {batch}, {steps}, {threads})")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(ctx):
    import torch

    if ctx.cuda:
        return [Result("cpu training step", "-", "-", None, "", "skipped: a CPU benchmark (device is CUDA)")]
    threads = torch.get_num_threads()
    size, batch, repeats = ((32, 64), 2, 1) if ctx.smoke else ((128, 256), 8, 2)
    rows = []
    for name in MODELS:
        steps = 1 if ctx.smoke else {"fcn": 10, "unet": 3, "resnet101_aspp": 3}[name]
        runs = {"bare": [], "pa3": []}
        for _ in range(repeats):
            for side in ("bare", "pa3"):
                runs[side].append(_measure(side, name, size, batch, steps, threads))
        step = {s: float(np.median([r["step_s"] for r in runs[s]])) for s in runs}
        share = {s: float(np.median([r["system_s"] / max(r["user_s"] + r["system_s"], 1e-9) for r in runs[s]]))
                 for s in runs}
        label = f"cpu train step {name} ({size[0]}x{size[1]}, bs {batch}, {threads} threads)"
        row = Result(label, f"{1000 * step['pa3']:.0f} ms", f"{1000 * step['bare']:.0f} ms fp32",
                     step["bare"] / step["pa3"], f">= {SPEED_GOAL:g}x")
        row.details = {"runs": runs, "steps": steps}
        kernel = Result(f"  {name} kernel share of CPU time", f"{100 * share['pa3']:.1f} %",
                        f"{100 * share['bare']:.1f} %", None, f"<= {100 * KERNEL_SHARE_GOAL:g} %",
                        "yes" if share["pa3"] <= KERNEL_SHARE_GOAL else "no")
        rows += [row.check(minimum=SPEED_GOAL), kernel]
    return rows
