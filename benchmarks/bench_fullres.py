"""Full-resolution (1024x2048) inference with bounded memory: sliding-window vs whole-image, same model.

Model: pa3's FCN (seeded initialisation, the same weights on both sides, passed as a state dict). Each
side runs in a fresh process on the same full-size frames so that its peak memory is its own (CPU:
growth of ru_maxrss during inference; CUDA: torch.cuda.max_memory_allocated). Reported: time, peak
memory (ratio = whole / sliding, > 1 means tiling saves memory) and the pixel agreement of the two
predictions.
"""
import json
import sys
import time

import numpy as np
import torch

from benchmarks.common import REPO_ROOT, Result, ensure_full_data, maxrss_mb, peak_rss_since, reset_peak_rss, run_worker
from pa3.checkpoint import load_model
from pa3.inference import predict
from pa3.models import build_model

NUM_CLASSES = 19
MODEL = "fcn"
TRAINED = REPO_ROOT / "runs" / "default" / "baseline" / "best.pt"


def infer(payload):
    """Worker body: predictions for the first ``n`` val frames at full size, with time and peak memory."""
    from pa3.data import CityscapesSegmentation

    torch.set_num_threads(payload["threads"])
    device = torch.device(payload["device"])
    model = build_model(MODEL, payload["num_classes"])
    model.load_state_dict(torch.load(payload["weights"], weights_only=True))
    model = model.to(device).eval()
    ds = CityscapesSegmentation(payload["root"], "val", size=None, cache=False)
    images = [ds[i][0][None] for i in range(payload["n"])]  # (1, 3, H, W) float32, decoded before measuring
    window = tuple(payload["window"]) if payload["window"] else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    token = reset_peak_rss()
    preds, start = [], time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for x in images:
            preds.append(predict(model, x.to(device), sliding_window=window).to(torch.uint8).cpu().numpy())
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        method = "torch.cuda.max_memory_allocated"
    else:
        peak, method = peak_rss_since(token)
    np.save(payload["out"], np.concatenate(preds))
    return {"seconds": seconds, "peak_mem_mb": peak, "rss_mb": maxrss_mb(), "mem_method": method, "shape": list(images[0].shape)}


def _model(ctx):
    """A trained FCN when the report's baseline run exists (predictions then mean something), else a
    seeded random one; the same state dict goes to both sides."""
    if not ctx.smoke and TRAINED.is_file():
        try:
            model = load_model(TRAINED)
            if type(model).__name__ == "FCN":
                return model.eval(), f"trained: {TRAINED.relative_to(REPO_ROOT)}"
        except Exception:  # noqa: BLE001 - an unfinished or foreign run: fall back
            pass
    torch.manual_seed(0)
    return build_model(MODEL, NUM_CLASSES).eval(), "seeded random initialisation (no trained FCN found)"


def run(ctx):
    root = ensure_full_data(ctx)
    window = (32, 64) if ctx.smoke else (512, 1024)
    n = 1 if ctx.smoke else 2
    model, source = _model(ctx)
    weights = ctx.workdir / "fullres_fcn.pt"
    torch.save(model.state_dict(), weights)

    if ctx.smoke:  # a window as large as the image must reproduce whole-image inference exactly
        x = torch.randn(1, 3, 64, 128)
        assert torch.equal(predict(model, x), predict(model, x, sliding_window=(64, 128)))

    results = {}
    for mode, win in (("whole", None), ("sliding", window)):
        payload = {"root": str(root), "weights": str(weights), "window": win, "n": n, "device": str(ctx.device),
                   "threads": torch.get_num_threads(), "num_classes": model.classifier.out_channels, "out": str(ctx.workdir / f"fullres_{mode}.npy")}
        results[mode] = run_worker("benchmarks.bench_fullres", payload)
        results[mode]["pred"] = np.load(payload["out"])
    whole, sliding = results["whole"], results["sliding"]
    agreement = float((whole["pred"] == sliding["pred"]).mean())
    classes = int(len(np.unique(whole["pred"])))
    h, w = whole["shape"][-2:]
    mem = Result(f"full-res {h}x{w} {MODEL} peak memory, sliding {window[0]}x{window[1]} vs whole image "
                 f"(agreement {agreement:.2%})", f"{sliding['peak_mem_mb']:.0f} MB", f"{whole['peak_mem_mb']:.0f} MB",
                 whole["peak_mem_mb"] / max(sliding["peak_mem_mb"], 1e-9), "> 1x")
    mem.check(minimum=1.0)
    speed = Result(f"  full-res {MODEL} s/image, sliding vs whole image", f"{sliding['seconds'] / n:.2f} s",
                   f"{whole['seconds'] / n:.2f} s", whole["seconds"] / sliding["seconds"], "-", "-")
    details = {"pixel_agreement": agreement, "classes_predicted": classes, "images": n, "window": list(window),
               "whole": {k: v for k, v in whole.items() if k != "pred"},
               "sliding": {k: v for k, v in sliding.items() if k != "pred"},
               "weights": source}
    mem.details = speed.details = details
    return [mem, speed]


if __name__ == "__main__":  # worker: python -m benchmarks.bench_fullres '{...}'
    args = json.loads(sys.argv[1])
    reply = infer(args)
    with open(args["reply"], "w") as f:
        json.dump(reply, f)
