"""Per model: parameters, forward FLOPs at 512x1024, inference latency and peak memory at 256x512.

FLOPs are counted by FlopCounterMode on the meta device (shapes only, no arithmetic, exact; the smoke
run checks it against a real CPU count). Latency (batch 1, torch.inference_mode, median of a few runs
after a warm-up) and peak memory run in a fresh process per model: on CPU the peak is the growth of
the RSS high-water mark during inference (reset just before it; torch allocations are invisible
to tracemalloc); on CUDA it is
torch.cuda.max_memory_allocated. These rows have no baseline: they feed the comparison notebook
(``models.json``: {name: {params, gflops_512x1024, cpu_latency_ms_256x512, peak_mem_mb}}).
"""
import json
import sys
import time

import numpy as np
import torch

from benchmarks.common import Result, count_flops, maxrss_mb, peak_rss_since, reset_peak_rss, run_worker

FLOPS_SIZE = (512, 1024)
NUM_CLASSES = 19


def meta_flops(name, size, batch=1):
    """Forward FLOPs of model ``name`` at ``size``, counted on the meta device (pa3.models.count_flops)."""
    from pa3.models import count_flops as model_flops

    return model_flops(name, NUM_CLASSES, size, batch)


def measure_inference(name, size, repeats, device="cpu", threads=None):
    """{latency_ms (median), latencies_ms, peak_mem_mb, rss_mb, params} for batch-1 inference."""
    from pa3.models import build_model, count_parameters

    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device)
    torch.manual_seed(0)
    model = build_model(name, NUM_CLASSES).to(device).eval()
    x = torch.randn(1, 3, *size, device=device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    token = reset_peak_rss()
    times = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for i in range(repeats + 1):  # the first run is the warm-up (and sets the memory peak)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            out = model(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:
                times.append((time.perf_counter() - start) * 1000)
    assert out.shape == (1, NUM_CLASSES, *size), out.shape
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        method = "torch.cuda.max_memory_allocated"
    else:
        peak, method = peak_rss_since(token)
    return {"latency_ms": float(np.median(times)), "latencies_ms": times, "peak_mem_mb": peak, "mem_method": method,
            "rss_mb": maxrss_mb(), "params": count_parameters(model)}


def run(ctx):
    from pa3.models import MODELS, build_model, count_parameters

    size = (64, 128) if ctx.smoke else (256, 512)
    repeats = 1 if ctx.smoke else 3
    threads = torch.get_num_threads()
    if ctx.smoke:  # the meta-device count is exact: check it against a real one once
        torch.manual_seed(0)
        model = build_model("fcn", NUM_CLASSES).eval()
        with torch.no_grad():
            real = count_flops(lambda: model(torch.randn(1, 3, *size)))
        assert real == meta_flops("fcn", size), "meta-device FLOP count differs from the real one"
    rows = []
    for name in MODELS:
        flops = meta_flops(name, FLOPS_SIZE)
        if ctx.smoke and name != "fcn":  # smoke: the measuring path is checked once (fcn)
            with torch.device("meta"):
                m = {"params": count_parameters(build_model(name, NUM_CLASSES)), "latency_ms": float("nan"),
                     "latencies_ms": [], "peak_mem_mb": None, "rss_mb": None, "mem_method": None}
        else:
            m = run_worker("benchmarks.bench_models", {"name": name, "size": size, "repeats": repeats,
                                                       "device": str(ctx.device), "threads": threads})
        device = "gpu" if ctx.cuda else "cpu"
        record = {"params": m["params"], "gflops_512x1024": flops / 1e9,
                  f"{device}_latency_ms_{size[0]}x{size[1]}": m["latency_ms"], "peak_mem_mb": m["peak_mem_mb"]}
        mem = "-" if m["peak_mem_mb"] is None else f"{m['peak_mem_mb']:.0f} MB"
        row = Result(f"model {name}: {m['params'] / 1e6:.1f} M params, {flops / 1e9:.0f} GFLOPs @512x1024, "
                     f"peak mem {mem}", "-" if m["latency_ms"] != m["latency_ms"] else f"{m['latency_ms']:.0f} ms", "-", None, f"{device} latency @{size[0]}x{size[1]}",
                     "-")
        row.details = {"model": name, "record": record, "latencies_ms": m["latencies_ms"], "rss_mb": m["rss_mb"], "mem_method": m["mem_method"],
                       "threads": threads, "flops_counted_on": "meta device, forward, batch 1"}
        rows.append(row)
    return rows


def models_json(rows):
    """{name: record} for the comparison notebook, from this benchmark's rows."""
    return {r.details["model"]: r.details["record"] for r in rows if "model" in r.details}


if __name__ == "__main__":  # worker: python -m benchmarks.bench_models '{"name": ..., "reply": path}'
    args = json.loads(sys.argv[1])
    result = measure_inference(args["name"], tuple(args["size"]), args["repeats"], args["device"], args["threads"])
    with open(args["reply"], "w") as f:
        json.dump(result, f)
