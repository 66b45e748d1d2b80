"""Evaluation: pa3's ``evaluate_label_pngs`` vs cityscapesscripts' ``evaluateImgLists`` on the same PNGs.

Ground truth: the full-size synthetic val labels (labelIds). Predictions: the ground truth shifted by a
few pixels with a random block of wrong ids per image, written as labelId PNGs like a submission; five
different ones per label (100 pairs), a run long enough to time as an evaluation of Cityscapes' 500 val
images would be. The two must give identical per-class IoU
(|delta| <= 1e-6, asserted) and the same confusion matrix; the figure is image pairs/s.
"""
import copy
import math

import numpy as np
from PIL import Image

from benchmarks.common import Result, ensure_full_data, fmt_rate, interleaved
from pa3 import labels
from pa3.layout import find_pairs
from pa3.official_eval import evaluate_label_pngs

GOAL = 3.0
TOLERANCE = 1e-6


def write_predictions(gt_paths, folder, seed=0):
    """A perturbed copy of every ground-truth PNG (shift + a block of random ids), as labelId PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    preds = []
    for i, gt_path in enumerate(gt_paths):
        gt = np.array(Image.open(gt_path))
        h, w = gt.shape
        pred = np.roll(gt, (max(1, h // 256), -max(1, w // 256)), (0, 1))
        y, x = rng.integers(0, h - h // 8), rng.integers(0, w - w // 8)
        pred[y:y + h // 8, x:x + w // 8] = rng.integers(0, 34)
        path = folder / f"{i:03d}_pred_labelIds.png"
        Image.fromarray(pred).save(path)
        preds.append(path)
    return preds


def official_evaluate(pred_paths, gt_paths):
    """cityscapesscripts' evaluateImgLists, quiet, no instance scores, no JSON file."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as evl

    if not hasattr(np, "in1d"):  # cityscapesscripts 2.3.0 calls np.in1d, removed in numpy 2.4
        np.in1d = np.isin
    args = copy.deepcopy(evl.args)
    args.quiet = True
    args.evalInstLevelScore = False
    args.evalPixelAccuracy = False
    args.JSONOutput = False
    return evl.evaluateImgLists([str(p) for p in pred_paths], [str(p) for p in gt_paths], args)


def max_iou_delta(ours, ref):
    """Largest |pa3 - official| over per-class IoUs (NaN must match NaN), and the mIoU delta."""
    worst = 0.0
    for name in labels.class_names("trainId"):
        a, b = ours["iou"][name], ref["classScores"][name]
        if math.isnan(a) or math.isnan(b):
            assert math.isnan(a) and math.isnan(b), f"{name}: pa3 {a} vs official {b}"
            continue
        worst = max(worst, abs(a - b))
    return worst, abs(ours["miou"] - ref["averageScoreClasses"])


def run(ctx):
    root = ensure_full_data(ctx)
    labels_val = [label for _, label in find_pairs(root, "val")]
    gt_paths, pred_paths = [], []
    for k in range(1 if ctx.smoke else 5):
        gt_paths += labels_val
        pred_paths += write_predictions(labels_val, ctx.workdir / f"eval_preds_{k}", seed=k)
    n = len(gt_paths)
    repeats = 1 if ctx.smoke else 3

    ref = official_evaluate(pred_paths, gt_paths)
    rows, times = [], {}
    fns = {"official": lambda: official_evaluate(pred_paths, gt_paths)}
    for workers in (1, 2):
        fns[f"pa3_{workers}"] = (lambda k: lambda: evaluate_label_pngs(pred_paths, gt_paths, num_workers=k))(workers)
    times = interleaved(fns, repeats=repeats, warmup=0 if ctx.smoke else 1)
    for workers in (1, 2):
        ours = evaluate_label_pngs(pred_paths, gt_paths, num_workers=workers)
        delta, miou_delta = max_iou_delta(ours, ref)
        assert delta <= TOLERANCE and miou_delta <= TOLERANCE, f"IoU differs from cityscapesscripts by {delta}"
        np.testing.assert_array_equal(ours["mat"], np.array(ref["confMatrix"], dtype=np.int64))
        ours_s, ref_s = float(np.median(times[f"pa3_{workers}"])), float(np.median(times["official"]))
        row = Result(f"eval images/s, {n} label PNG pairs ({'x'.join(map(str, Image.open(gt_paths[0]).size[::-1]))}), "
                     f"{'1 thread' if workers == 1 else f'{workers} threads'}, max |dIoU| {delta:.1e}",
                     fmt_rate(n / ours_s, "img/s"), fmt_rate(n / ref_s, "img/s"), ref_s / ours_s, f">= {GOAL:.0f}x")
        row.details = {"pa3_s": times[f"pa3_{workers}"], "official_s": times["official"], "images": n,
                       "max_abs_iou_delta": delta, "miou_delta": miou_delta, "miou": ours["miou"],
                       "official_csupport": _csupport()}
        rows.append(row.check(minimum=GOAL))
    return rows


def _csupport():
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as evl

    return bool(evl.CSUPPORT)
