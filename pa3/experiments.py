"""The report's experiments by name, and run folders that notebooks train once and read many times.

Table 5 of the report compares five models trained with cross-entropy (upper part) and the baseline FCN
trained with Dice loss, weighted cross-entropy and data augmentation (lower part). Each experiment
below is one row; ``run_experiment`` trains it into ``<runs_dir>/<profile>/<name>`` unless a complete
run with the same configuration is already there, so the comparison notebook can redraw every table
and figure without retraining.
"""
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from pa3 import labels
from pa3.camvid import CAMVID_STAMP
from pa3.checkpoint import load_model
from pa3.config import upgrade_config_dict
from pa3.data import CityscapesSegmentation, make_loader
from pa3.files import read_run_file, sources_digest, write_json
from pa3.inference import evaluate, metrics_summary
from pa3.models import MODELS
from pa3.synthetic import SYNTHETIC_STAMP
from pa3.train import class_weights_for, train


@dataclass(frozen=True)
class Experiment:
    model: str  # a name of pa3.models.MODELS
    display: str = ""  # the row name in the report's tables; default the model's (``MODELS[model].display``)
    loss: str = "ce"
    augment: bool = False

    def __post_init__(self):
        if not self.display:
            object.__setattr__(self, "display", MODELS[self.model].display)


EXPERIMENTS = {
    # Table 5, upper part: architectures, all with cross-entropy
    "baseline": Experiment("fcn"),
    "resnet50": Experiment("resnet50_deconv"),
    "unet": Experiment("unet"),
    "deeplab": Experiment("deeplabv3"),
    "ours": Experiment("resnet101_aspp"),
    "unet_aspp": Experiment("unet_aspp"),
    # Table 5, lower part: the baseline with other losses / augmented data
    "dice": Experiment("fcn", "Dice Loss", loss="dice"),
    "weighted": Experiment("fcn", "Weight. Loss", loss="weighted_ce"),
    "augmented": Experiment("fcn", "Augmented", augment=True),
}


TABLE5_UPPER = ("baseline", "resnet50", "unet", "deeplab", "ours", "unet_aspp")  # architectures (+ U-Net+ASPP)
TABLE5_LOWER = ("baseline", "dice", "weighted", "augmented")  # the baseline with other losses / augmentation
# What each notebook trains (it trains what it needs when run alone); 00 and 05 train nothing.
NOTEBOOKS = {"01_baseline": ("baseline",), "02_losses": ("baseline", "weighted", "dice"),
             "03_augmentation": ("baseline", "augmented"),
             "04_deeper_models": ("unet", "resnet50", "deeplab", "ours", "unet_aspp")}
TABLE7_ROWS = ("baseline", "augmented", "weighted", "dice", "resnet50", "unet", "deeplab", "ours", "unet_aspp")
# (the rows of the report's Table 7 prediction grid, in its order, and the U-Net + ASPP)


def check_experiment(name):
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def trainable(names, profile):
    """The experiments of ``names`` that ``profile`` trains on this machine, in order; one line for each it
    leaves to a GPU (``Profile.gpu_only``, e.g. the ResNet and ASPP models of the camvid CPU profile)."""
    kept = [name for name in names if profile.trains(check_experiment(name).model)]
    left = [name for name in names if name not in kept]
    if left:
        print(f"left to a GPU under profile {profile.name!r} (too slow on this CPU): {', '.join(left)}; "
              f"PROFILE = \"camvid_gpu\" on a GPU trains them")
    return kept


def miou_column(profile):
    """Name of the mIoU column in the tables: it says which classes count ("mIoU" = the 19 Cityscapes
    benchmark classes; CamVid's score is over its 11 classes)."""
    space = profile.config.label_space
    if space == "trainId":
        return "mIoU"
    return f"mIoU ({labels.num_classes(space)} {'CamVid' if space == 'camvid' else space} classes)"


def make_config(name, profile):
    """The TrainConfig of experiment ``name`` under ``profile``: the profile's config for its model, with the
    experiment's loss and augmentation (and, for weighted cross-entropy, the training split's class weights)."""
    exp = check_experiment(name)
    config = profile.config_for(exp.model, loss=exp.loss, augment=exp.augment)
    if exp.loss == "weighted_ce":  # in the config, so that a finished run is found by its weights too
        config.class_weights = class_weights_for(config)
    return config


def steps_per_epoch(name, profile):
    """Optimiser steps per epoch of experiment ``name`` over the profile's training frames."""
    config = profile.config_for(check_experiment(name).model)
    return config.steps_per_epoch(profile.frames["train"] // config.batch_size)


def run_dir(name, profile):
    return Path(profile.runs_dir) / profile.name / name


def same_sources(name, profile):
    """True when the run folder was trained by the pa3 sources running now (its sources.json)."""
    folder = run_dir(name, profile)
    if not (folder / "sources.json").exists():
        return False
    return read_run_file(folder, "sources.json", keys=("pa3_sources",))["pa3_sources"] == sources_digest()


def is_complete(name, profile):
    """True when the run folder holds a finished run of exactly this experiment's configuration, trained by
    the pa3 sources running now."""
    folder = run_dir(name, profile)
    if not (folder / "metrics.json").exists() or not (folder / "config.json").exists():
        return False
    status = read_run_file(folder, "metrics.json", keys=("status",))["status"]
    saved = read_run_file(folder, "config.json", keys=("model",))
    same_config = upgrade_config_dict(saved) == make_config(name, profile).to_dict()  # fields added since: defaults
    return status in ("complete", "early_stopped") and same_config and same_sources(name, profile)


def run_experiment(name, profile, force=False):
    """Train experiment ``name`` unless its run folder is already complete; return the run folder.

    A run trained by other pa3 sources (the code changed since) is trained again from the start. A model the
    profile leaves to a GPU (``Profile.gpu_only``, no GPU here) is not trained: one line says so and the
    result is None.
    """
    if not trainable([name], profile):
        return None
    folder = run_dir(name, profile)
    if is_complete(name, profile) and not force:
        print(f"{name}: using the finished run in runs/{profile.name}/{name}")
        return folder
    stale = (folder / "config.json").exists() and not same_sources(name, profile)
    if stale:
        print(f"{name}: runs/{profile.name}/{name} was trained by other pa3 sources; training it again")
    return train(make_config(name, profile), folder, resume=not (force or stale))


def train_runs(names, profile):
    """Train (or reuse) the runs ``names``; return those that finished, in order. A run whose training fails
    (an error in the code it runs) is left out, with one line naming it and the error, so that a comparison
    shows every run that could be trained instead of stopping at the first that could not."""
    finished = []
    for name in names:
        try:
            folder = run_experiment(name, profile)
        except Exception as error:  # noqa: BLE001 - said, and the run is left out of what follows
            print(f"run {name!r} could not be trained ({type(error).__name__}: {error}): it is missing from the "
                  f"tables and figures below")
            continue
        if folder is not None:
            finished.append(name)
    return finished


def load_run(name, profile):
    """(history DataFrame, final metrics dict) of a finished run.

    ``metrics["iou"]`` is {class name: IoU} in class order, as ``pa3.inference.evaluate`` returns it, with NaN
    for a class absent from ground truth and prediction (null in metrics.json).
    """
    folder = run_dir(name, profile)
    history = pd.DataFrame(read_run_file(folder, "history.json", expect=list))
    metrics = read_run_file(folder, "metrics.json", keys=("status", "iou"))
    metrics["iou"] = {c: float("nan") if iou is None else iou for c, iou in metrics["iou"].items()}
    return history, metrics


def comparison_table(names, profile):
    """The report's Tables 5 and 6 for finished runs ``names``: one row per experiment (its display name),
    IoU of the report's five classes, mIoU and pixel accuracy, in percent (``pa3.viz.results_table``)."""
    from pa3.viz import results_table  # here: matplotlib costs ~0.5 s, and the grader imports this module

    df = results_table({EXPERIMENTS[name].display: load_run(name, profile)[1] for name in names})
    return df.rename(columns={"mIoU": miou_column(profile)})


def class_ious(names, profile):
    """{display name: {class name: IoU}} of finished runs ``names``, for ``pa3.viz.iou_bars``."""
    return {EXPERIMENTS[name].display: load_run(name, profile)[1]["iou"] for name in names}


def trained_model(name, profile, device="cpu"):
    """The best checkpoint of a finished run, in eval mode."""
    return load_model(run_dir(name, profile) / "best.pt").to(device).eval()


def figure_split(profile):
    """The split the report's "test" figures come from: the synthetic set and CamVid label their test split;
    real Cityscapes' test labels are placeholders, so the held-out labelled split there is val."""
    labelled = (SYNTHETIC_STAMP, CAMVID_STAMP)
    root = profile.config.data_root
    return "test" if root and any(Path(root, f).exists() for f in labelled) else "val"


def test_metrics(name, profile, force=False):
    """Metrics of a finished run's best checkpoint on ``figure_split(profile)``, scored at the labels' own
    resolution (the model sees the profile's size; its logits are upsampled bilinearly), as CamVid's
    published scores are (360x480). Written once to ``<run>/eval_<split>.json`` and read back after.

    Returns:
        dict: "split", "frames", "size" (of the labels), "model_input", and ``pa3.inference.metrics_summary``.
    """
    split = figure_split(profile)
    path = run_dir(name, profile) / f"eval_{split}.json"
    config = make_config(name, profile)
    if path.exists() and not force:
        saved = read_run_file(path.parent, path.name, keys=("miou", "iou", "model_input"))
        if saved.get("checkpoint_mtime") == (run_dir(name, profile) / "best.pt").stat().st_mtime:
            return saved
    dataset = CityscapesSegmentation(config.data_root, split, config.label_space, size=None)
    model = trained_model(name, profile)
    metrics = evaluate(model, make_loader(dataset, 4, train=False), label_space=config.label_space,
                       input_size=(config.height, config.width))
    height, width = dataset[0][1].shape
    result = {"split": split, "frames": len(dataset), "size": [height, width],
              "model_input": [config.height, config.width],
              "checkpoint_mtime": (run_dir(name, profile) / "best.pt").stat().st_mtime, **metrics_summary(metrics)}
    write_json(path, result)
    return result


REPORT_IMAGE_IDS = (1, 2, 4, 9)  # "image IDs 1, 2, 4, 9": positions in the test list sorted by name


def report_images(profile):
    """(images float (4,3,H,W), masks (4,H,W), ids) of the report's Table 7 images."""
    config = profile.config
    dataset = CityscapesSegmentation(config.data_root, figure_split(profile), config.label_space,
                                     (config.height, config.width))
    items = [dataset[i] for i in REPORT_IMAGE_IDS]
    images = torch.stack([x for x, _ in items])
    masks = torch.stack([y for _, y in items])
    return images, masks, list(REPORT_IMAGE_IDS)

