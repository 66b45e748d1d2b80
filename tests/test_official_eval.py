"""Tests of pa3.official_eval: labelId PNGs scored like cityscapesscripts (parity with the official script
on hand-made label images, with both decoders), mixed sizes, and refusals of files that are not labelId PNGs.
"""
import copy
import math

import numpy as np
import pytest
import torch
from PIL import Image

from pa3 import labels, official_eval
from pa3.metrics import ConfusionMatrix
from pa3.official_eval import evaluate_label_pngs


def nan_equal(a, b, tol=1e-6):
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def blocky(rng, pool, height, width, block=8):
    """Random piecewise-constant labelId map drawn from `pool`, uint8 (height, width)."""
    small = rng.choice(pool, size=(height // block, width // block))
    return np.kron(small, np.ones((block, block), dtype=np.int64)).astype(np.uint8)


def write_pairs(tmp_path, void_predictions, n=3, height=64, width=128):
    rng = np.random.default_rng(42)
    ev = [l for l in range(34) if labels.encode_lut("trainId")[l] != 255]
    # GT: void (0-6) and ignoreInEval ids (9, 10, 14-16, 18, 29, 30) plus most evaluated classes;
    # truck (27) only in GT, bus (28) only in prediction, train (31) and motorcycle (32) nowhere.
    gt_pool = [0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30] + [l for l in ev if l not in (28, 31, 32)]
    pred_pool = [l for l in ev if l not in (27, 31, 32)] + ([0, 4, 9, 14, 29] if void_predictions else [])
    preds, gts = [], []
    for i in range(n):
        gt = blocky(rng, gt_pool, height, width)
        pred = np.where(gt == 27, 26, gt)  # truck predicted as car
        pred = np.where(np.isin(pred, pred_pool), pred, 7)  # void GT regions predicted as road
        noise = blocky(rng, pred_pool, height, width, block=4)
        pred = np.where(rng.random((height, width)) < 0.3, noise, pred).astype(np.uint8)
        stem = f"frankfurt_000000_{i:06d}"
        gts.append(tmp_path / f"{stem}_gtFine_labelIds.png")
        preds.append(tmp_path / f"{stem}_pred.png")
        Image.fromarray(gt).save(gts[-1])
        Image.fromarray(pred).save(preds[-1])
    return preds, gts


def official(preds, gts, tmp_path, monkeypatch):
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as evl

    monkeypatch.setattr(np, "in1d", np.isin, raising=False)  # cityscapesscripts 2.3.0 vs numpy >= 2.4
    args = copy.deepcopy(evl.args)
    args.quiet = True
    args.evalInstLevelScore = False
    args.evalPixelAccuracy = False
    args.JSONOutput = True
    args.exportFile = str(tmp_path / "resultPixelLevelSemanticLabeling.json")
    return evl.evaluateImgLists([str(p) for p in preds], [str(p) for p in gts], args)


@pytest.mark.parametrize("void_predictions", [False, True])
@pytest.mark.parametrize("decoder", ["imagecodecs", "PIL"])
def test_parity_with_cityscapesscripts(tmp_path, monkeypatch, void_predictions, decoder):
    preds, gts = write_pairs(tmp_path, void_predictions)
    if decoder == "imagecodecs":
        assert official_eval.imagecodecs is not None, "imagecodecs (requirements.txt) is not installed"
        assert torch.equal(official_eval._read_label_png(gts[0]), torch.from_numpy(np.array(Image.open(gts[0]))))
    else:  # the fallback when imagecodecs is missing
        monkeypatch.setattr(official_eval, "imagecodecs", None)
        assert official_eval._read_label_png(gts[0]) is None
    ref = official(preds, gts, tmp_path, monkeypatch)
    ours = evaluate_label_pngs(preds, gts, num_workers=2)

    names = labels.class_names("trainId")
    assert math.isnan(ref["classScores"]["train"]) and ref["classScores"]["truck"] == 0.0  # the setup works
    for name in names:
        assert nan_equal(ours["iou"][name], ref["classScores"][name]), name
    assert nan_equal(ours["miou"], ref["averageScoreClasses"])
    for category in labels.CATEGORIES:
        assert nan_equal(ours["category_iou"][category], ref["categoryScores"][category]), category
    np.testing.assert_array_equal(ours["mat"], np.array(ref["confMatrix"], dtype=np.int64))

    if not void_predictions:  # a model's trainId predictions never hold void ids
        cm = ConfusionMatrix(19)
        for p, g in zip(preds, gts):
            cm.update(torch.from_numpy(labels.encode(np.array(Image.open(g)), "trainId")).long(),
                      torch.from_numpy(labels.encode(np.array(Image.open(p)), "trainId")).long())
        m = cm.compute()
        for name, iou in m["iou"].items():
            assert nan_equal(iou, ref["classScores"][name]), name
        assert nan_equal(m["miou"], ref["averageScoreClasses"])
        for category in labels.CATEGORIES:
            assert nan_equal(m["category_iou"][category], ref["categoryScores"][category]), category


@pytest.mark.parametrize("num_workers", [1, 2])
def test_evaluate_label_pngs_mixed_sizes(tmp_path, num_workers):
    """Images of different sizes (odd widths too) in one run: each thread's reused decode and count
    buffers follow the size; the confusion matrix is the plain numpy count."""
    rng = np.random.default_rng(0)
    preds, gts, expected = [], [], np.zeros((34, 34), dtype=np.int64)
    for i, (h, w) in enumerate([(64, 128), (37, 77), (64, 128), (5, 3), (37, 77)]):
        gt, pred = rng.integers(0, 34, (h, w), dtype=np.uint8), rng.integers(0, 34, (h, w), dtype=np.uint8)
        gts.append(tmp_path / f"{i}_gt.png")
        preds.append(tmp_path / f"{i}_pred.png")
        Image.fromarray(gt).save(gts[-1])
        Image.fromarray(pred).save(preds[-1])
        expected += np.bincount(gt.astype(np.int64).ravel() * 34 + pred.ravel(), minlength=34 * 34).reshape(34, 34)
    np.testing.assert_array_equal(evaluate_label_pngs(preds, gts, num_workers=num_workers)["mat"], expected)


def test_evaluate_label_pngs_rejects_wrong_files(tmp_path):
    gt = np.full((4, 4), 7, dtype=np.uint8)
    Image.fromarray(gt).save(tmp_path / "gt.png")
    Image.fromarray(np.full((4, 4), 255, dtype=np.uint8)).save(tmp_path / "trainids.png")
    Image.fromarray(np.zeros((4, 5), dtype=np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(ValueError, match="to_label_ids"):
        evaluate_label_pngs([tmp_path / "trainids.png"], [tmp_path / "gt.png"])
    with pytest.raises(ValueError, match="trainId or colour"):
        evaluate_label_pngs([tmp_path / "gt.png"], [tmp_path / "trainids.png"])
    with pytest.raises(ValueError, match="size mismatch"):
        evaluate_label_pngs([tmp_path / "small.png"], [tmp_path / "gt.png"])
    with pytest.raises(ValueError, match="1 predictions for 0"):
        evaluate_label_pngs([tmp_path / "gt.png"], [])
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "colour.png")
    Image.fromarray(gt.astype(np.uint16)).save(tmp_path / "gt16.png")
    # errors raised in the worker threads reach the caller, naming the file
    with pytest.raises(ValueError, match="colour.png has shape"):
        evaluate_label_pngs([tmp_path / "gt.png", tmp_path / "colour.png"], [tmp_path / "gt.png"] * 2, num_workers=2)
    with pytest.raises(ValueError, match="gt16.png is uint16"):
        evaluate_label_pngs([tmp_path / "gt.png"] * 2, [tmp_path / "gt.png", tmp_path / "gt16.png"], num_workers=2)
    m = evaluate_label_pngs([tmp_path / "gt.png"], [tmp_path / "gt.png"])
    assert m["iou"]["road"] == 1.0 and m["miou"] == 1.0 and math.isnan(m["iou"]["car"])
