"""Tests of the command line (pa3.cli): parsing, `check` exit codes, and a tiny train + evaluate run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pa3 import checkpoint
from pa3.cli import build_parser, main
from helpers import make_fake_cityscapes

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    monkeypatch.setenv("PA3_CACHE", str(tmp_path / "cache"))  # keep dataset caches out of the repo
    return make_fake_cityscapes(tmp_path / "data", splits={"train": 4, "val": 2, "test": 2}, size=(64, 128))


def test_parse_train_defaults_and_flags():
    args = build_parser().parse_args(["train"])
    assert (args.model, args.epochs, args.lr, args.height, args.width) == ("fcn", 10, 1e-3, 128, 256)
    assert args.force is False and args.pretrained is None and args.run_dir is None
    args = build_parser().parse_args(["train", "--model", "unet", "--loss", "weighted_ce", "--weighting", "enet",
                                      "--augment", "--force", "--pretrained", "--max-minutes", "5"])
    assert (args.model, args.loss, args.weighting, args.augment, args.force) == ("unet", "weighted_ce", "enet", True, True)
    assert args.pretrained == "imagenet" and args.max_minutes == 5.0
    assert build_parser().parse_args(["train", "--pretrained", "w.pth"]).pretrained == "w.pth"
    args = build_parser().parse_args(["train", "--accumulation-steps", "4", "--activation-checkpointing"])
    assert (args.accumulation_steps, args.activation_checkpointing) == (4, True)
    assert build_parser().parse_args(["train"]).accumulation_steps == 1
    args = build_parser().parse_args(["evaluate", "--checkpoint", "run/best.pt", "--sliding-window", "64", "128"])
    assert args.split == "val" and args.sliding_window == [64, 128]


@pytest.mark.parametrize("argv", [["train", "--model", "nope"], ["train", "--resume", "--force"], ["evaluate"], []])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2


def test_check_exit_codes(fake_root, capsys):
    assert main(["check", str(fake_root)]) == 0
    assert "train" in capsys.readouterr().out
    next((fake_root / "gtFine" / "val").rglob("*_gtFine_labelIds.png")).unlink()  # an image without its label
    assert main(["check", str(fake_root), "--splits", "val"]) == 1
    assert main(["check", str(fake_root / "missing")]) == 1
    assert "missing" in capsys.readouterr().err


def test_python_dash_m_entry_point(fake_root):
    result = subprocess.run([sys.executable, "-m", "pa3", "check", str(fake_root), "--splits", "train"],
                            cwd=REPO, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_train_then_evaluate_end_to_end(fake_root, tmp_path, capsys):
    run_dir, out = tmp_path / "run", tmp_path / "preds"
    common = ["--data", str(fake_root), "--height", "64", "--width", "128", "--batch-size", "2"]
    assert main(["train", *common, "--epochs", "1", "--run-dir", str(run_dir)]) == 0
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "building" in printed
    for name in ("config.json", "history.csv", "history.json", "metrics.json", "last.pt", "best.pt"):
        assert (run_dir / name).is_file(), name
    assert len(json.loads((run_dir / "history.json").read_text())) == 1

    # rerunning continues the run (1 -> 2 epochs); a changed config is refused without --force
    assert main(["train", *common, "--epochs", "2", "--run-dir", str(run_dir)]) == 0
    assert len(json.loads((run_dir / "history.json").read_text())) == 2
    assert main(["train", *common, "--epochs", "2", "--lr", "0.01", "--run-dir", str(run_dir)]) == 1
    assert "--force" in capsys.readouterr().err

    assert main(["evaluate", "--checkpoint", str(run_dir / "best.pt"), "--data", str(fake_root),
                 "--out", str(out)]) == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    stems = sorted(f.name.replace("_leftImg8bit.png", "") for f in (fake_root / "leftImg8bit" / "val").rglob("*.png"))
    assert pngs == [f"{stem}_pred_labelIds.png" for stem in stems]
    prediction = np.asarray(Image.open(out / pngs[0]))
    assert prediction.shape == (64, 128) and prediction.dtype == np.uint8
    assert set(np.unique(prediction)) <= {l for l in range(34)}
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["miou"] <= 1 and "building" in metrics["iou"]

    # predictions made at a lower resolution are written at the ground truth's resolution
    assert main(["evaluate", "--checkpoint", str(run_dir / "best.pt"), "--data", str(fake_root), "--size", "32", "64",
                 "--out", str(tmp_path / "small")]) == 0
    assert np.asarray(Image.open(tmp_path / "small" / pngs[0])).shape == (64, 128)

    # the test split's placeholder labels: predictions are written, metrics never reported
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run_dir / "best.pt"), "--data", str(fake_root),
                 "--split", "test", "--out", str(tmp_path / "test_preds")]) == 0
    captured = capsys.readouterr()
    assert "placeholders" in captured.err and "no metrics are reported" in captured.err
    assert "mIoU" not in captured.out and not (tmp_path / "test_preds" / "metrics.json").exists()
    assert list((tmp_path / "test_preds").glob("*_pred_labelIds.png"))
    assert checkpoint.load_model(run_dir / "best.pt").training is False


def test_train_weighted_loss_takes_class_weights_from_the_training_split(fake_root, tmp_path, capsys):
    """--loss weighted_ce --weighting enet: weights computed from the split's pixel frequencies, saved in
    the run's config; --weighting without a weighted loss is refused."""
    from pa3.data import class_frequencies
    from pa3.losses import class_weights

    run_dir = tmp_path / "weighted"
    common = ["--data", str(fake_root), "--height", "64", "--width", "128", "--batch-size", "2", "--epochs", "1"]
    assert main(["train", *common, "--loss", "weighted_ce", "--weighting", "enet", "--augment",
                 "--run-dir", str(run_dir)]) == 0
    saved = json.loads((run_dir / "config.json").read_text())
    expected = class_weights(class_frequencies(fake_root, "train", "trainId", (64, 128)), "enet")
    assert saved["loss"] == "weighted_ce" and saved["augment"] is True
    assert np.allclose(saved["class_weights"], expected.tolist())
    capsys.readouterr()
    assert main(["train", *common, "--weighting", "median", "--run-dir", str(tmp_path / "plain")]) == 1
    assert "class weighting (--weighting median) needs loss 'weighted_ce'" in capsys.readouterr().err


def test_generate_puts_a_non_default_set_beside_the_default_one(tmp_path, monkeypatch, capsys):
    """`generate --n-train 2 ...` must not land in data/synthetic, where the next default use would
    regenerate the default set over it."""
    import pa3.synthetic

    default = tmp_path / "data" / "synthetic"
    monkeypatch.setattr(pa3.synthetic, "default_synthetic_root", lambda: default)
    assert main(["generate", "--n-train", "2", "--n-val", "1", "--n-test", "1"]) == 0
    custom = tmp_path / "data" / "synthetic_256x512_2-1-1_seed0"
    assert (custom / "pa3_synthetic.json").exists() and not default.exists()
    assert f"export PA3_DATA={custom}" in capsys.readouterr().out
