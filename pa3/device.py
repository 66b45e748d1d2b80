"""Where a model runs and at what precision: the device, autocast, channels_last, and the CPU allocator.

On a GPU the choices are the usual ones (bf16 autocast on Ampere and newer, fp16 with a GradScaler
before). On a CPU two more things decide the speed of training:

- **bf16 autocast where the CPU computes bf16 natively** (AVX512-BF16 or AMX, e.g. AMD Zen 4, Intel
  Sapphire Rapids): oneDNN's bf16 convolutions run about twice as fast as fp32 there. Elsewhere bf16 is
  emulated and slower than fp32, so it stays off. ``TrainConfig.amp="off"`` turns it off everywhere.
- **glibc's allocator kept from returning memory to the OS**: a training step frees its activations and
  allocates them again in the next step. By default glibc serves large blocks with fresh ``mmap`` calls
  and unmaps them on free, so every step page-faults (and zero-fills) its whole working set again; on
  2 cores that kernel time was about a third of a training run. ``tune_allocator`` (called when pa3 is
  imported, so notebooks, the CLI and the tests all get it) makes glibc serve them from its heap and keep
  the freed memory for the next step. ``PA3_MALLOC=default`` leaves glibc as it is (read in pa3/__init__.py).
"""
import ctypes
import ctypes.util
import functools
import os
import platform

import torch

AMP_MODES = ("auto", "cpu_bf16", "off", "bf16", "fp16")

# glibc mallopt() parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_KEEP_BYTES = 2**31 - 1  # mallopt takes an int: keep up to 2 GiB of freed memory at the heap's top

# oneDNN ISA limits (ONEDNN_MAX_CPU_ISA) under which bf16 still runs natively
_BF16_ISAS = {"ALL", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
              "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2"}

_allocator_tuned = False


def tune_allocator():
    """Keep glibc from unmapping freed memory (no mmap for large blocks, no trimming of the heap's top).

    Returns True if the setting is in effect (Linux with glibc).
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    if platform.system() != "Linux":
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _allocator_tuned = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))
    except (OSError, AttributeError):
        return False
    return _allocator_tuned


@functools.cache
def cpu_has_native_bf16():
    """True when this CPU computes bf16 natively and pa3's kernels may use it.

    Needs the avx512_bf16 or amx_bf16 CPU flag, ATen dispatching AVX-512 code (``ATEN_CPU_CAPABILITY``
    not limiting it to AVX2) and oneDNN not limited below its bf16 ISA (``ONEDNN_MAX_CPU_ISA``).
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:  # not Linux: no way to tell cheaply, so no bf16
        return False
    if not {"avx512_bf16", "amx_bf16"} & set(flags):
        return False
    if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return False
    isa = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").strip().upper()
    return isa in _BF16_ISAS


def resolve_device(device="auto"):
    """"auto" -> cuda (this process's GPU under torchrun) if available, else cpu; "cuda" -> "cuda:<current>"."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # under torchrun, distributed.setup set it
    return device


def resolve_amp(amp, device):
    """Autocast dtype for ``amp`` on ``device`` (None = fp32).

    "auto": on CUDA bf16 where the GPU computes it natively (Ampere and newer), else fp16; on a CPU bf16
    where it is native (``cpu_has_native_bf16``), else fp32. "cpu_bf16": the CPU's choice of "auto", fp32 on a
    GPU (the default and grading profiles, calibrated on CPUs). "bf16"/"fp16" force that dtype, "off" is fp32.
    "fp16" on a CPU runs the T4's code path (fp16 autocast, with the GradScaler ``fit`` adds for fp16) where no
    GPU is: slow (emulated), for tests of that path.
    """
    if amp not in AMP_MODES:
        raise ValueError(f"amp={amp!r}; choose one of {AMP_MODES}")
    if amp == "cpu_bf16":
        amp = "auto" if device.type == "cpu" else "off"
    if amp == "off":
        return None
    if device.type == "cpu":
        if amp == "fp16":
            return torch.float16
        return torch.bfloat16 if amp == "bf16" or cpu_has_native_bf16() else None
    # bf16 only where the GPU computes it natively (Ampere and newer); T4/V100 emulate it slowly
    if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported(including_emulation=False)):
        return torch.float16
    return torch.bfloat16


def use_channels_last(setting):
    """channels_last memory format for ``setting`` ("auto"/"on" -> True, "off" -> False).

    "auto" is on: oneDNN's CPU convolutions and cuDNN's tensor-core kernels both prefer NHWC.
    """
    if setting == "auto":
        return True
    return setting in (True, "on", "true", "1")


def autocast(device, amp_dtype):
    """The autocast context for ``amp_dtype`` on ``device`` (disabled when amp_dtype is None)."""
    return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
