"""CamVid results of the camvid profile's runs, next to the published scores: the test split scored as CamVid
is (mIoU over its 11 classes, void ignored, at 360x480: the model sees the profile's size and its logits are
upsampled), CPU minutes per run, and validation mIoU against CPU minutes.

    python -m benchmarks.camvid                  # trains what is missing (PROFILE camvid), then reports
    python -m benchmarks.camvid --no-train       # reports the finished runs only

Writes figures/<profile>/camvid_test.md (and .csv) and figures/<profile>/miou_vs_minutes.png, and prints the
table. The runs are the notebooks' own (runs/camvid/<experiment>), so a notebook run under PROFILE = "camvid"
and this script share them.
"""
import argparse
import os
from pathlib import Path

import pandas as pd

from pa3 import camvid, viz
from pa3.experiments import EXPERIMENTS, is_complete, load_run, run_experiment, test_metrics, trainable
from pa3.notebook_setup import setup_notebook

RUNS = ("baseline", "unet", "weighted", "dice", "augmented", "resnet50", "deeplab", "ours", "unet_aspp")


def results(profile, names):
    """One row per finished run: test mIoU and pixel accuracy at the labels' resolution, CPU minutes, epochs."""
    rows = {}
    for name in names:
        history, metrics = load_run(name, profile)
        scored = test_metrics(name, profile)
        rows[EXPERIMENTS[name].display] = {
            "model": EXPERIMENTS[name].model,
            "test mIoU (11 classes)": round(100 * scored["miou"], 1),
            "test pixel acc.": round(100 * scored["pixel_acc"], 1),
            "val mIoU (best)": round(100 * max(history["miou"]), 1),
            "epochs": int(history["epoch"].max()),
            "training minutes": round(history["seconds"].sum() / 60, 1),
            "status": metrics["status"],
        }
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("Method")
    published = pd.DataFrame({name: {"test mIoU (11 classes)": 100 * score}
                              for name, score in camvid.PUBLISHED.items()}).T.rename_axis("Method")
    return pd.concat([table, published])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="camvid", choices=("camvid", "camvid_gpu"))
    parser.add_argument("--no-train", action="store_true", help="report finished runs only")
    args = parser.parse_args(argv)
    # the notebooks' runs: a run's config records its data folder as the notebooks see it (../data/camvid)
    os.chdir(Path(__file__).resolve().parents[1] / "notebooks")
    profile = setup_notebook(args.profile)
    names = trainable(list(RUNS), profile)
    if not args.no_train:
        for name in names:
            run_experiment(name, profile)
    names = [name for name in names if is_complete(name, profile)]
    table = results(profile, names)
    figures = Path(profile.figures_dir)
    viz.save_table(table, figures / "camvid_test")
    histories = {EXPERIMENTS[name].display: load_run(name, profile)[0] for name in names}
    viz.miou_against_minutes(histories, references=camvid.PUBLISHED,
                             title=f"CamVid val mIoU (11 classes) against training minutes ({profile.name})",
                             save=figures / "miou_vs_minutes.png")
    print(viz.markdown_table(table))
    print(f"written: {figures / 'camvid_test.md'}, {figures / 'miou_vs_minutes.png'}")


if __name__ == "__main__":
    main()
