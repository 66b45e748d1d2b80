"""Tests for pa3.device: precision and memory format choices, the glibc allocator setting."""
import platform

import pytest
import torch

from pa3 import device as pa3_device
from pa3.device import resolve_amp, use_channels_last

CPU = torch.device("cpu")


@pytest.fixture
def native_bf16(monkeypatch):
    """Pretend the CPU has native bf16 (and restore the cached answer afterwards)."""
    monkeypatch.setattr(pa3_device, "cpu_has_native_bf16", lambda: True)


def test_cpu_auto_is_bf16_only_where_native(monkeypatch):
    monkeypatch.setattr(pa3_device, "cpu_has_native_bf16", lambda: True)
    assert resolve_amp("auto", CPU) is torch.bfloat16
    monkeypatch.setattr(pa3_device, "cpu_has_native_bf16", lambda: False)
    assert resolve_amp("auto", CPU) is None
    assert resolve_amp("bf16", CPU) is torch.bfloat16  # asked for explicitly: emulated, but allowed


def test_cpu_bf16_is_auto_on_a_cpu_and_fp32_on_a_gpu(monkeypatch, native_bf16):
    """The default and grading profiles' precision: bf16 on CPUs that compute it natively (as calibrated), fp32 on
    a GPU, whatever the environment says (PA3_AMP is read by the notebook setup only)."""
    monkeypatch.setenv("PA3_AMP", "off")
    assert resolve_amp("cpu_bf16", CPU) is torch.bfloat16 and resolve_amp("auto", CPU) is torch.bfloat16
    assert resolve_amp("cpu_bf16", torch.device("cuda", 0)) is None
    monkeypatch.setattr(pa3_device, "cpu_has_native_bf16", lambda: False)
    assert resolve_amp("cpu_bf16", CPU) is None


def test_amp_values_checked():
    with pytest.raises(ValueError, match="amp='half'"):
        resolve_amp("half", CPU)
    assert resolve_amp("fp16", CPU) is torch.float16  # the T4's path, run on the CPU (tests/test_fp16.py)


@pytest.mark.parametrize("env", [{"ATEN_CPU_CAPABILITY": "avx2"}, {"ONEDNN_MAX_CPU_ISA": "AVX2"}])
def test_kernels_limited_below_bf16_means_no_native_bf16(env):
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "from pa3.device import cpu_has_native_bf16 as f; print(f())"],
                         env={**os.environ, **env}, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_channels_last_setting():
    assert use_channels_last("auto") and use_channels_last("on") and use_channels_last(True)
    assert not use_channels_last("off") and not use_channels_last(False)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_importing_pa3_tunes_glibc_and_pa3_malloc_default_leaves_it():
    import os
    import subprocess
    import sys

    script = "import pa3, pa3.device as d; print(d._allocator_tuned)"
    tuned = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    left = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PA3_MALLOC": "default"},
                          capture_output=True, text=True, check=True)
    assert (tuned.stdout.strip(), left.stdout.strip()) == ("True", "False")


def test_bf16_channels_last_training_matches_fp32_closely(native_bf16):
    """One forward of the baseline in bf16 + channels_last stays close to fp32 (same argmax mostly)."""
    from pa3.models import build_model

    torch.manual_seed(0)
    model = build_model("fcn", 19).eval()
    x = torch.randn(2, 3, 64, 128)
    with torch.no_grad():
        ref = model(x)
        with pa3_device.autocast(CPU, torch.bfloat16):
            fast = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert fast.shape == ref.shape
    assert (fast.float().argmax(1) == ref.argmax(1)).float().mean() > 0.9
