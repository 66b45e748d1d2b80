"""One GPU check: every open GPU question of pa3 answered in one run of a few minutes, on one GPU, no downloads.

    python -m benchmarks.gpu_check            # on a GPU (make gpu-check): at most ~8 minutes
    python -m benchmarks.gpu_check --smoke    # the same paths on the CPU at tiny sizes (CI), no GPU needed

Sections (one table, one JSON: benchmarks/results/gpu_check.json, or --out):

1. **check cells** — the default profile's runs trained as a notebook trains them on this device (on CUDA:
   fp32 with TF32 off, as ``setup_notebook`` sets it) into a temporary folder, then each run's numbers against
   the CPU-calibrated bands of ``pa3/expected/default.json`` (``pa3.grading``): pass/fail per run. Under
   --smoke the runs are cut to a few steps, so the bands are not expected to hold: only the path is checked.
2. **profile steps** — per model under the ``colab`` and ``full`` profiles: one real training step (after one
   warm-up step) at the profile's size, micro-batch and precision; ``torch.cuda.max_memory_allocated()``
   against ``pa3.memory``'s estimate (ratio), images/s, and the sustained TFLOP/s implied by pa3's FLOP count
   (the hours tables assume 6 on a T4 and 50 on an A100).
3. **precision** — fp32, fp16 + GradScaler and bf16, channels_last on and off: images/s side by side.
4. **memory refusal** — a setting that cannot fit is refused by ``fit`` before the first step. Under --smoke
   the CPU is given a T4's memory for this check (a CPU has no memory limit to refuse against).
"""
import argparse
import contextlib
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import sync
from pa3 import memory
from pa3.device import autocast
from pa3.losses import build_loss
from pa3.memory import GIB, InsufficientMemoryError, estimate_memory
from pa3.models import MODELS, build_model, count_flops, set_activation_checkpointing

PROFILE_NAMES = ("colab", "full")
SMOKE_SIZE = (64, 128)
PRECISIONS = {"fp32": None, "fp16+scaler": torch.float16, "bf16": torch.bfloat16}
ASSUMED_TFLOPS = {"T4": 6.0, "A100": 50.0}


def training_step(model, optimizer, scaler, images, masks, criterion, amp_dtype):
    """One optimiser step as ``pa3.engine.train_one_epoch`` takes it (autocast, fp32 loss, scaler for fp16)."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(images.device, amp_dtype):
        logits = model(images)
    loss = criterion(logits.float(), masks)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.item()


def timed_steps(name, device, batch, size, amp_dtype, channels_last=True, activation_checkpointing=False, steps=1,
                num_classes=19):
    """(seconds per step, peak CUDA bytes or None) of ``steps`` training steps after one warm-up step."""
    torch.manual_seed(0)
    model = build_model(name, num_classes).to(device).train()
    if activation_checkpointing:
        set_activation_checkpointing(model, True)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    criterion = build_loss("ce", num_classes).to(device)
    images = torch.randn(batch, 3, *size, device=device).contiguous(memory_format=memory_format)
    masks = torch.randint(0, num_classes, (batch, *size), device=device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    training_step(model, optimizer, scaler, images, masks, criterion, amp_dtype)  # warm-up (cuDNN, allocator)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        training_step(model, optimizer, scaler, images, masks, criterion, amp_dtype)
    sync(device)
    seconds = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    del model, optimizer, images, masks
    return seconds, peak


def check_cells(device, smoke, workdir):
    """Section 1: the default profile's runs on this device, each against its calibrated bands."""
    from pa3 import experiments, grading
    from pa3.notebook_setup import setup_notebook

    with contextlib.redirect_stdout(sys.stderr):  # the runs' epoch lines go to stderr, the table to stdout
        profile = setup_notebook("default")
        profile = dataclasses.replace(profile, runs_dir=str(workdir / "runs"))
        if smoke:
            small = dataclasses.replace(profile.config, height=SMOKE_SIZE[0] // 2, width=SMOKE_SIZE[1] // 2,
                                        epochs=1, max_steps_per_epoch=2, batch_size=2)
            profile = dataclasses.replace(profile, config=small, models={})
        names = list(experiments.EXPERIMENTS)
        expected = grading.load_expected("default")
        rows = []
        for name in names:
            start = time.perf_counter()
            experiments.run_experiment(name, profile)
            seconds = time.perf_counter() - start
            values = grading.checked_values(grading._run_metrics(name, profile))
            failures = grading.band_failures(name, values, expected["runs"][name])
            result = ("pass" if not failures else "fail") if not smoke else "ran (smoke: bands not expected)"
            rows.append({"section": "check cells", "name": name, "result": result,
                         "miou": round(values["miou"], 4), "seconds": round(seconds, 1),
                         "details": failures or "every checked number inside its band"})
    return rows


def profile_steps(device, smoke):
    """Section 2: one training step per model under the colab and full profiles: memory, images/s, TFLOP/s."""
    from pa3.costs import GPUS
    from pa3.profiles import PROFILES

    rows = []
    for profile_name in PROFILE_NAMES:
        profile = PROFILES[profile_name]
        gpu = GPUS[profile.gpu]
        for name in MODELS:
            config = profile.config_for(name)
            micro = config.batch_size // config.accumulation_steps
            size = (config.height, config.width)
            if smoke:
                micro, size = MODELS[name].min_train_batch, (32, 64)  # the least each model trains on
            precision = "fp32" if smoke else gpu.precision  # fp16 convolutions are emulated (slow) on a CPU
            amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}[precision]
            estimate = estimate_memory(name, micro, size, precision, config.activation_checkpointing)
            try:
                seconds, peak = timed_steps(name, device, micro, size, amp_dtype, activation_checkpointing=config.activation_checkpointing)
            except torch.cuda.OutOfMemoryError as error:
                rows.append({"section": "profile steps", "name": f"{profile_name} {name}", "result": "out of memory",
                             "details": str(error).split("\n")[0]})
                continue
            flops = count_flops(name, 19, size) * micro * (4 if config.activation_checkpointing else 3)
            rows.append({
                "section": "profile steps", "name": f"{profile_name} {name}", "result": "ran",
                "size": f"{size[0]}x{size[1]}", "micro_batch": micro,
                "precision": precision, "activation_checkpointing": config.activation_checkpointing, "estimate_gib": round(estimate.gib, 2),
                "measured_gib": None if peak is None else round(peak / GIB, 2),
                "measured_over_estimate": None if peak is None else round(peak / estimate.total, 2),
                "images_per_s": round(micro / seconds, 2), "tflops": round(flops / seconds / 1e12, 3),
                "assumed_tflops": ASSUMED_TFLOPS[profile.gpu],
            })
    return rows


def precision_steps(device, smoke):
    """Section 3: images/s per precision and memory format, side by side, for three models."""
    size, batch = ((32, 64), 2) if smoke else ((256, 512), 4)
    rows = []
    for name in ("fcn",) if smoke else ("fcn", "unet", "resnet101_aspp"):
        for precision, amp_dtype in PRECISIONS.items():
            for channels_last in (True, False):
                seconds, _ = timed_steps(name, device, batch, size, amp_dtype, channels_last, steps=1 if smoke else 3)
                rows.append({"section": "precision", "name": f"{name} {precision} "
                             f"{'channels_last' if channels_last else 'contiguous'}", "result": "ran",
                             "size": f"{size[0]}x{size[1]}", "micro_batch": batch,
                             "images_per_s": round(batch / seconds, 2)})
    base = {r["name"].split()[0]: r["images_per_s"] for r in rows if r["name"].endswith("fp32 channels_last")}
    for r in rows:
        r["vs_fp32_channels_last"] = round(r["images_per_s"] / base[r["name"].split()[0]], 2)
    return rows


def memory_refusal(device, smoke, workdir):
    """Section 4: fit refuses, before its first step, a setting whose estimate exceeds the device's memory."""
    from pa3.config import TrainConfig
    from pa3.engine import fit

    config = TrainConfig(model="unet", height=512, width=1024, batch_size=64, epochs=1, device=str(device),
                         amp="fp16" if device.type == "cuda" else "off")
    original = memory.device_memory
    if device.type != "cuda":  # a CPU has no limit to refuse against: give it a T4's for this check
        memory.device_memory = lambda d: int(14.7 * GIB)
    steps = []
    model = build_model("unet", 19)
    model.register_forward_pre_hook(lambda *a: steps.append(1))
    loader = [(torch.zeros(64, 3, 8, 8, dtype=torch.uint8), torch.zeros(64, 8, 8, dtype=torch.long))]
    try:
        fit(model, loader, loader, config, workdir / "refused", num_classes=19)
        result, details = "fail", "fit started training: nothing was refused"
    except InsufficientMemoryError as error:
        result = "pass" if not steps else "fail"
        details = str(error).split(". Stopping")[0] + f" ({len(steps)} forward passes before the refusal)"
    finally:
        memory.device_memory = original
    return [{"section": "memory refusal", "name": "unet 512x1024 batch 64", "result": result, "details": details}]


def run(smoke=False, out=None, device=None):
    """Run every section; print one table; write the JSON. Returns the report dict."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu" and not smoke:
        raise SystemExit("no GPU here: the full check needs CUDA; run with --smoke for the CPU version (CI)")
    workdir = Path(tempfile.mkdtemp(prefix="pa3-gpu-check-"))
    started = time.perf_counter()
    report = {"smoke": smoke, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "sections": {}}
    try:
        for section, fn in (("check cells", lambda: check_cells(device, smoke, workdir)),
                            ("profile steps", lambda: profile_steps(device, smoke)),
                            ("precision", lambda: precision_steps(device, smoke)),
                            ("memory refusal", lambda: memory_refusal(device, smoke, workdir))):
            start = time.perf_counter()
            report["sections"][section] = fn()
            print(f"[{section}: {time.perf_counter() - start:.0f} s]", file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(format_table(report))
    out = Path(out or Path(__file__).parent / "results" / ("gpu_check_smoke.json" if smoke else "gpu_check.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {out} ({report['seconds']} s on {report['device']})")
    return report


COLUMNS = ("section", "name", "result", "miou", "estimate_gib", "measured_gib", "measured_over_estimate",
           "images_per_s", "tflops", "vs_fp32_channels_last")


def format_table(report):
    rows = [r for section in report["sections"].values() for r in section]
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join("" if r.get(c) is None else str(r[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (CI): every path, no GPU")
    parser.add_argument("--out", help="JSON path (default benchmarks/results/gpu_check[_smoke].json)")
    parser.add_argument("--device", help="default: cuda if available, else cpu (with --smoke)")
    args = parser.parse_args(argv)
    run(args.smoke, args.out, args.device)


if __name__ == "__main__":
    main()
