"""Run the benchmarks, print the table and write the JSON (and models.json for the comparison notebook).

    python -m benchmarks.run [--smoke] [--only NAME ...] [--out benchmarks/results/latest.json] [--gpu-reference]

Every figure is a ratio measured side by side in this run; see benchmarks/README.md.
"""
import argparse
import dataclasses
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

from benchmarks.common import RESULTS_DIR, Context, Result, machine_info  # noqa: E402

BENCHMARKS = ("cpu", "loader", "eval", "train", "models", "fullres")
COLUMNS = ("benchmark", "pa3", "baseline", "ratio", "goal", "met")


def format_table(rows):
    """The result rows as a Markdown table (also readable as plain text)."""
    cells = [[r.benchmark, r.pa3, r.baseline, "-" if r.ratio is None else f"{r.ratio:.2f}x", r.goal, r.met]
             for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(COLUMNS)]
    line = lambda values: "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"  # noqa: E731
    return "\n".join([line(COLUMNS), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells)])


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def run(smoke=False, only=None, out=None, gpu_reference=False, device=None, threads=None):
    """Run the selected benchmarks; returns the report dict (also written to ``out`` as JSON)."""
    only = list(only or BENCHMARKS)
    unknown = [n for n in only if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    out = Path(out) if out else RESULTS_DIR / ("smoke.json" if smoke else "latest.json")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # One thread by default on CPU: on a shared 2-core machine two OpenMP threads wait on each other's
    # barriers whenever another process holds a core (measured 4-5x slower), which would swamp the ratios.
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads or (1 if device.type == "cpu" else previous_threads))
    workdir = Path(tempfile.mkdtemp(prefix="pa3-bench-"))
    ctx = Context(smoke=smoke, device=device, workdir=workdir, gpu_reference=gpu_reference)
    report = {"machine": machine_info(), "smoke": smoke, "device": str(device), "benchmarks": {}, "rows": []}
    rows, failed = [], []
    try:
        for name in only:
            print(f"== {name}", flush=True)
            start = time.perf_counter()
            try:
                bench_rows = importlib.import_module(f"benchmarks.bench_{name}").run(ctx)
            except Exception as e:  # noqa: BLE001 - one failing benchmark must not hide the others
                traceback.print_exc()
                failed.append(name)
                bench_rows = [Result(name, "-", "-", None, "", f"error: {type(e).__name__}: {e}"[:120])]
            seconds = time.perf_counter() - start
            for r in bench_rows:
                print(format_table([r]).splitlines()[-1], flush=True)
            rows += bench_rows
            report["benchmarks"][name] = {"seconds": seconds, "rows": [dataclasses.asdict(r) for r in bench_rows]}
            if name == "models":
                from benchmarks.bench_models import models_json

                report["models"] = models_json(bench_rows)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        torch.set_num_threads(previous_threads)
    if smoke:  # tiny sizes: the timings mean nothing, goals are not judged
        for r in rows:
            if r.met in ("yes", "no"):
                r.met = "n/a (smoke)"
    report["rows"] = [{c: getattr(r, c) for c in COLUMNS} for r in rows]
    report["failed"] = failed
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_json_safe(report), indent=1) + "\n")
    if "models" in report:
        models_path = out.parent / ("models_smoke.json" if smoke else "models.json")
        models_path.write_text(json.dumps(_json_safe(report["models"]), indent=1) + "\n")
        report["models_path"] = str(models_path)
    m = report["machine"]
    print(f"\n{m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
          f"GPU: {m['gpu'] or 'none'}, {m['date']}, load average {m['load_average']}")
    print(format_table(rows))
    print(f"\nwritten: {out}" + (f" and {report['models_path']}" if "models_path" in report else ""))
    report["out"] = str(out)
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks every path, times nothing useful")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"some of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--out", help="JSON path (default benchmarks/results/latest.json, smoke.json with --smoke)")
    parser.add_argument("--gpu-reference", action="store_true",
                        help="CUDA: DeepLabv3-R101 512x1024, pa3's step vs torchvision's reference recipe")
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--threads", type=int, help="torch threads (default 1 on CPU, see README)")
    args = parser.parse_args(argv)
    report = run(args.smoke, args.only, args.out, args.gpu_reference, args.device, args.threads)
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
