"""pa3's training-memory estimate against the measured peak RSS of real training steps on the CPU.

    python -m benchmarks.bench_memory                  # fcn and unet at 256x512, batch 2 (~5 min, 1 thread)
    python -m benchmarks.bench_memory --models fcn resnet50_deconv --size 128 256 --batch 4 --malloc default

Each case runs in a fresh process (``benchmarks.common.run_worker``): import pa3, one warm-up training step
of the same model at 64x128 (loads oneDNN's kernels and the thread pool: library memory, not the training
step's), free it, reset the peak RSS (``reset_peak_rss``: gc, malloc_trim, /proc/self/clear_refs), then
build the model and Adam and run two training steps with ``pa3.engine.train_one_epoch`` in fp32 with
channels_last, as ``fit`` does (the second step is the steady state: Adam's state exists during its
backward). The figure is the rise of the peak RSS (VmHWM) over the idle process, beside
``pa3.memory.estimate_memory`` for the same model, size, batch and precision. The rise varies from run to
run (fcn at 256x512: 359-422 MiB with plain glibc), so each case runs ``--repeats`` times and the median
counts.

glibc: pa3 keeps freed memory in the heap on import (``pa3.device.tune_allocator``), so a freed activation
is reused rather than returned. Both settings are measured: ``PA3_MALLOC=default`` (plain glibc: large
blocks are mmapped and unmapped, RSS follows the live bytes) and pa3's setting.
"""
import argparse
import json
import os
import statistics
import sys

MALLOC = {"default": "default", "pa3": ""}  # PA3_MALLOC value per setting ("" = pa3's tuned allocator)


def measure(payload):
    """Worker body: peak RSS rise (MiB) of two training steps over the idle process."""
    import torch

    from benchmarks.common import peak_rss_since, reset_peak_rss
    from pa3.engine import Training, train_one_epoch
    from pa3.losses import build_loss
    from pa3.models import build_model

    torch.set_num_threads(payload["threads"])
    name, batch, (height, width) = payload["model"], payload["batch"], payload["size"]
    cpu = torch.device("cpu")
    criterion = build_loss("ce", 19)

    def step_data(h, w, steps=2):
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (batch, 3, h, w), dtype=torch.uint8, generator=g)  # what loaders carry
        masks = torch.randint(0, 19, (batch, h, w), generator=g)
        return [(images, masks)] * steps

    def train(data):
        torch.manual_seed(0)
        model = build_model(name, 19).to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(model.parameters())
        train_one_epoch(Training(model, criterion, optimizer, cpu, channels_last=True), data, epoch=1)

    train(step_data(64, 128, steps=1))  # warm-up: libraries and kernels, not measured
    data = step_data(height, width)
    token = reset_peak_rss()
    train(data)
    peak, method = peak_rss_since(token)
    return {"peak_rise_mib": peak, "method": method}


def run(models=("fcn", "unet"), size=(256, 512), batch=2, threads=1, mallocs=tuple(MALLOC), repeats=3):
    """Measure every (model, glibc setting) ``repeats`` times, each in a fresh process; print and return rows
    with the median, min and max of the measured rise and the ratio estimate / median."""
    from benchmarks.common import run_worker
    from pa3.memory import estimate_memory

    rows = []
    for name in models:
        estimate = estimate_memory(name, batch, size, "fp32")
        mib = estimate.total / 2**20
        for malloc in mallocs:
            os.environ["PA3_MALLOC"] = MALLOC[malloc]  # inherited by the worker, which imports pa3 afresh
            payload = {"model": name, "batch": batch, "size": list(size), "threads": threads}
            measured = sorted(run_worker("benchmarks.bench_memory", payload)["peak_rise_mib"] for _ in range(repeats))
            median = statistics.median(measured)
            rows.append({"model": name, "size": f"{size[0]}x{size[1]}", "batch": batch, "malloc": malloc,
                         "measured_mib": [round(m) for m in measured], "median_mib": round(median),
                         "estimate_mib": round(mib), "ratio": round(mib / median, 3), "estimate": str(estimate)})
            print(f"{name} {size[0]}x{size[1]} batch {batch} fp32, glibc {malloc:7s}: measured peak RSS rise "
                  f"{median:5.0f} MiB (median of {repeats}: {', '.join(f'{m:.0f}' for m in measured)}), "
                  f"estimate {mib:5.0f} MiB, ratio {mib / median:.2f}", flush=True)
    print("estimates:\n  " + "\n  ".join(sorted({r["estimate"] for r in rows})))
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1].startswith("{"):  # worker: python -m benchmarks.bench_memory '{...}'
        args = json.loads(sys.argv[1])
        with open(args["reply"], "w") as f:
            json.dump(measure(args), f)
    else:
        parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        parser.add_argument("--models", nargs="+", default=["fcn", "unet"])
        parser.add_argument("--size", nargs=2, type=int, default=[256, 512], metavar=("H", "W"))
        parser.add_argument("--batch", type=int, default=2)
        parser.add_argument("--threads", type=int, default=1)
        parser.add_argument("--repeats", type=int, default=3, help="fresh processes per case (median reported)")
        parser.add_argument("--malloc", nargs="+", default=list(MALLOC), choices=list(MALLOC),
                            help="glibc as it is (default) and/or pa3's setting (pa3)")
        args = parser.parse_args()
        run(args.models, tuple(args.size), args.batch, args.threads, args.malloc, args.repeats)
