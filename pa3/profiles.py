"""Profiles: one setting switches every notebook between the CPU demo and the report-scale run.

- ``"default"`` — the embedded synthetic street scenes, small resolution, a few epochs: every notebook
  runs on a 2-core CPU in minutes and its outputs are what the repository commits (and nbval checks).
- ``"full"`` — real Cityscapes (``PA3_DATA=/path/to/cityscapes``), the report's resolution and epochs,
  meant for a GPU (Colab or a workstation).

Select with the environment variable ``PA3_PROFILE`` (or the notebook's parameters cell); point at real
data with ``PA3_DATA``. Nothing else in a notebook changes between the two. ``PA3_RUNS`` moves the run
folders (e.g. onto Google Drive), ``PA3_THREADS`` pins another number of CPU threads, ``PA3_AMP=off``
trains in fp32 where pa3 would use bf16.
"""
import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pa3 import project_dir, short_path

REPO_ROOT = project_dir()  # data/, runs/, figures/ live here (see pa3.project_dir)


@dataclass(frozen=True)
class Budget:
    """How long one experiment trains under a profile."""
    epochs: int
    max_steps_per_epoch: int | None  # None = whole epochs
    batch_size: int


@dataclass
class Profile:
    name: str
    data_root: str | None  # None = the embedded synthetic set (generated on first use)
    height: int  # training/evaluation resolution (images are resized once, then cached)
    width: int
    budgets: dict  # model name -> Budget; key "default" for the rest
    val_limit: int | None  # evaluate on the first n val frames (None = all)
    num_workers: int
    threads: int | None  # torch intra-op threads (pinned so CPU results reproduce)
    label_space: str = "trainId"
    lr_schedule: str = "none"  # "poly": the learning rate decays to 0 over the run, so curves level off
    seed: int = 0
    runs_dir: str = str(REPO_ROOT / "runs")
    figures_dir: str = str(REPO_ROOT / "figures")
    pretrained: bool = False  # ImageNet weights for ResNet backbones (needs internet or a local file)

    def budget(self, model):
        return self.budgets.get(model, self.budgets["default"])


PROFILES = {
    # 2 CPU cores: every experiment trains with the same protocol (64x128 frames, batches of 4, Adam with
    # a poly schedule, 10 validations on the whole val split): 200 steps (2.7 passes over the 300 training
    # frames), and 400 for ResNet-50 + deconvolutions, which starts from scratch here and was still rising
    # after 200. The ResNet-101 models (DeepLabv3, Ours) cost 3-4x as much per step and keep 200 steps, so
    # that all notebooks fit 30 minutes on 2 cores. An "epoch" here is a fixed number of steps. Chosen by
    # measurement: benchmarks/calibration.md has the curves' end points and the spread across machines.
    # One thread: at 64x128 a second thread gains little, and one-thread runs share a busy machine well
    # (two OpenMP threads stall whenever another process holds one of their cores). PA3_THREADS overrides.
    "default": Profile(
        name="default", data_root=None, height=64, width=128,
        budgets={"resnet50_deconv": Budget(10, 40, 4), "default": Budget(10, 20, 4)},
        val_limit=None, num_workers=0, threads=1, lr_schedule="poly",
    ),
    # A GPU and real Cityscapes: the report's scale.
    "full": Profile(
        name="full", data_root=None, height=512, width=1024,
        budgets={"default": Budget(60, None, 8)},
        val_limit=None, num_workers=2, threads=None, pretrained=True,
        figures_dir=str(REPO_ROOT / "figures" / "full"),
    ),
}


def get_profile(name=None, data_root=None):
    """The profile ``name`` (default: $PA3_PROFILE or "default") with ``data_root`` (default: $PA3_DATA)."""
    name = name or os.environ.get("PA3_PROFILE", "default")
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)} (PA3_PROFILE)")
    data_root = data_root or os.environ.get("PA3_DATA") or PROFILES[name].data_root
    profile = dataclasses.replace(PROFILES[name], data_root=data_root)
    if os.environ.get("PA3_RUNS"):  # e.g. a folder on Google Drive, so that runs survive a disconnect
        profile.runs_dir = os.environ["PA3_RUNS"]
    if os.environ.get("PA3_THREADS"):
        try:
            profile.threads = int(os.environ["PA3_THREADS"])
        except ValueError:
            raise ValueError(f"PA3_THREADS={os.environ['PA3_THREADS']!r}: give a number of threads, e.g. 2") from None
    return profile


def setup_notebook(profile=None, data_root=None, seed=0):
    """First cell of every notebook: seed, pin threads, quiet warnings, resolve the profile and data.

    Returns the Profile, with ``data_root`` resolved to a folder that exists (the embedded synthetic set
    is generated on first use).
    """
    from pa3.engine import seed_everything

    prof = get_profile(profile, data_root)
    seed_everything(seed)
    if prof.threads:
        torch.set_num_threads(prof.threads)
    torch.use_deterministic_algorithms(prof.name == "default", warn_only=True)
    warnings.filterwarnings("ignore")  # warning texts hold temp paths, which break nbval comparisons
    from pa3.data import default_data_root

    if prof.data_root is None:
        root = default_data_root()
    else:
        root = Path(prof.data_root).expanduser()
        if not root.exists():
            from pa3.data import HOW_TO_GET

            raise FileNotFoundError(
                f"data root {root} does not exist; set PA3_DATA (or DATA_ROOT in the parameters cell) to your "
                f"Cityscapes folder (it holds leftImg8bit/ and gtFine/), or leave both unset to use the embedded "
                f"synthetic data.\n{HOW_TO_GET}")
    prof = dataclasses.replace(prof, data_root=short_path(root))  # e.g. ../data/synthetic from notebooks/
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"profile {prof.name!r}: frames resized to {prof.height}x{prof.width}, "
          f"label space {prof.label_space}, device {device}")
    return prof
