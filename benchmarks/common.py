"""Shared pieces of the benchmarks: the Result row, machine info, data set-up, timing and peak memory.

Every figure a benchmark reports is a ratio of two things measured in the same run on the same machine,
interleaved where that is cheap, so that load from other processes affects both sides alike.
"""
import ctypes
import dataclasses
import datetime
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
FULL_DATA = REPO_ROOT / "data" / "synthetic_full"  # git-ignored (data/synthetic*/)
FULL_SIZE = (1024, 2048)  # Cityscapes (height, width)
NO_GPU = "skipped: no GPU"


@dataclasses.dataclass
class Result:
    """One row of the table: pa3's figure, the baseline's, their ratio and the goal it is held to."""

    benchmark: str
    pa3: str
    baseline: str
    ratio: float | None = None
    goal: str = ""
    met: str = "-"  # "yes" | "no" | "-" (informative row) | "skipped: ..."
    details: dict = dataclasses.field(default_factory=dict)

    def check(self, minimum=None, maximum=None):
        """Set ``met`` from ``ratio`` against a goal ``ratio >= minimum`` (or ``<= maximum``)."""
        if self.ratio is None or not np.isfinite(self.ratio):
            self.met = "no"
        elif minimum is not None:
            self.met = "yes" if self.ratio >= minimum else "no"
        elif maximum is not None:
            self.met = "yes" if self.ratio <= maximum else "no"
        return self


def skipped(benchmark, why=NO_GPU, goal=""):
    """A row for a benchmark that did not run; never a made-up number."""
    return Result(benchmark, "-", "-", None, goal, why)


@dataclasses.dataclass
class Context:
    """What every benchmark gets: smoke mode, the device, where data and scratch files go."""

    smoke: bool
    device: torch.device
    workdir: Path  # scratch (temporary caches, prediction PNGs); deleted after the run
    data_root: Path | None = None  # full-size synthetic set (None until ensure_full_data)
    gpu_reference: bool = False  # run the DeepLabv3-R101 comparison with torchvision's recipe (CUDA)

    @property
    def cuda(self):
        return self.device.type == "cuda"


def machine_info():
    """CPU model, cores, memory, GPU, library versions and the date, for the JSON and the README."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
                break
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem_gb = None
    import PIL
    import torchvision

    try:
        import imagecodecs  # evaluation's PNG decoder
        imagecodecs_version = imagecodecs.__version__
    except ImportError:
        imagecodecs_version = None

    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gb": None if mem_gb is None else round(mem_gb, 1),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "imagecodecs": imagecodecs_version,
        "platform": platform.platform(),
    }


def ensure_full_data(ctx, n_train=24, n_val=20):
    """The full-size (1024x2048) synthetic set, generated once into data/synthetic_full (not timed).

    In smoke mode a tiny set (64x128, a few images) is generated into the scratch folder instead.
    """
    if ctx.data_root is None:
        from pa3.synthetic import SyntheticConfig, ensure_synthetic

        if ctx.smoke:
            config = SyntheticConfig(n_train=4, n_val=2, n_test=0, height=64, width=128)
            ctx.data_root = Path(ensure_synthetic(ctx.workdir / "synthetic_smoke", config))
        else:
            config = SyntheticConfig(n_train=n_train, n_val=n_val, n_test=0, height=FULL_SIZE[0], width=FULL_SIZE[1])
            ctx.data_root = Path(ensure_synthetic(FULL_DATA, config))
    return ctx.data_root


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device=None):
    """(seconds, fn()) with CUDA synchronised around the call."""
    if device is not None:
        sync(device)
    start = time.perf_counter()
    out = fn()
    if device is not None:
        sync(device)
    return time.perf_counter() - start, out


def interleaved(fns, repeats, warmup=1):
    """Time several callables in turns (a, b, a, b, ...) so that background load hits all alike.

    Returns:
        {name: [seconds per repeat]} (warm-up calls not included).
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def matmul_peak_flops(device, size=2048, repeats=5, dtype=torch.float32):
    """Measured matmul throughput (FLOP/s, best of ``repeats``) of an (n, n) @ (n, n) product."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        seconds, _ = timed(lambda: torch.mm(a, b), device)
        best = min(best, seconds)
    return 2 * size**3 / best


def count_flops(fn):
    """FLOPs counted by torch.utils.flop_counter.FlopCounterMode while running ``fn()``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def maxrss_mb():
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20


def _status_kb(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss():
    """Start a peak-memory measurement: free what can be freed, then reset the peak RSS.

    Garbage-collects, gives freed heap pages back to the OS (glibc ``malloc_trim``: otherwise the next
    allocations reuse them and never raise the peak) and resets the kernel's high-water mark to the
    current RSS (Linux: ``/proc/self/clear_refs`` <- 5). Returns a token for :func:`peak_rss_since`.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return ("hwm", _status_kb("VmRSS") / 1024)
    except (OSError, TypeError):
        return ("maxrss", maxrss_mb())  # no reset possible: growth of ru_maxrss (a lower bound)


def peak_rss_since(token):
    """(peak RSS growth in MiB since ``reset_peak_rss``, method name)."""
    method, base = token
    peak = _status_kb("VmHWM") / 1024 if method == "hwm" else maxrss_mb()
    return peak - base, "VmHWM after clear_refs" if method == "hwm" else "ru_maxrss growth"


def run_worker(module, payload, timeout=600):
    """Run ``python -m <module> '<json payload>'`` in a fresh process and return its JSON reply.

    A fresh process per measurement gives an honest ru_maxrss: torch allocations are invisible to
    tracemalloc, and a process's peak RSS never goes down.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".json", delete=False) as f:
        reply = Path(f.name)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", module, json.dumps({**payload, "reply": str(reply)})]
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:3])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.loads(reply.read_text())
    finally:
        reply.unlink(missing_ok=True)


def fmt_rate(x, unit):
    return f"{x:,.1f} {unit}" if x < 100 else f"{x:,.0f} {unit}"
