"""The dataset on disk: what to generate (``SyntheticConfig``, splits, cities), the files of one
frame in the Cityscapes layout, ``generate`` (every split, in worker processes), the stamp
``pa3_synthetic.json`` that marks a folder as pa3's, ``default_synthetic_root`` and ``ensure_synthetic`` (reuse or
regenerate).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .. import labels, project_dir, short_path
from ..layout import SPLITS
from ..files import BadFileError, read_json, remove, write_json
from .classes import _NAMES
from .scene import render_scene


GENERATOR_VERSION = 2  # 2: the sky gradient no longer depends on the CPU's SIMD features
SYNTHETIC_STAMP = "pa3_synthetic.json"
CITIES = {
    "train": ("aachen_syn", "bochum_syn", "bremen_syn", "cologne_syn", "darmstadt_syn"),
    "val": ("frankfurt_syn", "lindau_syn", "munster_syn"),
    "test": ("berlin_syn", "bielefeld_syn"),
}
FRAME = 19  # Cityscapes' annotated frame is the 20th of each snippet: <city>_<seq>_000019


@dataclass
class SyntheticConfig:
    """What to generate: images per split, image size (height, width) and the seed."""
    n_train: int = 300
    n_val: int = 60
    n_test: int = 60
    height: int = 256
    width: int = 512
    seed: int = 0


def _polygons_json(instance_ids, height, width):
    """Minimal gtFine_polygons.json: one bounding polygon per visible instance."""
    ys, xs = np.nonzero(instance_ids >= 1000)
    objects = []
    if len(ys):
        ids = instance_ids[ys, xs]
        order = np.argsort(ids, kind="stable")
        ids, ys, xs = ids[order], ys[order], xs[order]
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        for iid, x0, x1, y0, y1 in zip(ids[starts], np.minimum.reduceat(xs, starts), np.maximum.reduceat(xs, starts),
                                       np.minimum.reduceat(ys, starts), np.maximum.reduceat(ys, starts)):
            box = [[int(x0), int(y0)], [int(x1), int(y0)], [int(x1), int(y1)], [int(x0), int(y1)]]
            objects.append({"label": _NAMES[int(iid) // 1000], "polygon": box})
    return {"imgHeight": int(height), "imgWidth": int(width), "objects": objects}


_COLOUR_LUT = np.concatenate([labels.palette("labelId"), np.full((34, 1), 255, np.uint8)], 1)


def _write_one(task):
    root, split, split_index, index, city, seq, seed, height, width = task
    rng = np.random.default_rng([seed, split_index, index])
    image, label_ids, instance_ids = render_scene(rng, height, width)
    stem = f"{city}_{seq:06d}_{FRAME:06d}"
    img_dir = Path(root, "leftImg8bit", split, city)
    gt_dir = Path(root, "gtFine", split, city)
    Image.fromarray(image, "RGB").save(img_dir / f"{stem}_leftImg8bit.png", compress_level=1)
    Image.fromarray(label_ids, "L").save(gt_dir / f"{stem}_gtFine_labelIds.png", compress_level=1)
    Image.fromarray(instance_ids).save(gt_dir / f"{stem}_gtFine_instanceIds.png", compress_level=1)
    Image.fromarray(_COLOUR_LUT[label_ids], "RGBA").save(gt_dir / f"{stem}_gtFine_color.png", compress_level=1)
    with open(gt_dir / f"{stem}_gtFine_polygons.json", "w") as f:
        json.dump(_polygons_json(instance_ids, height, width), f)


def _tasks(root, config):
    counts = {"train": config.n_train, "val": config.n_val, "test": config.n_test}
    tasks = []
    for split_index, split in enumerate(SPLITS):
        n, cities = counts[split], CITIES[split]
        for i in range(n):
            c = i * len(cities) // n  # contiguous blocks of images per city
            first = -(-c * n // len(cities))  # first index of city c
            tasks.append((str(root), split, split_index, i, cities[c], i - first, config.seed,
                          config.height, config.width))
    return tasks


def _stamp(config):
    return {"generator_version": GENERATOR_VERSION, "config": asdict(config)}


def default_synthetic_root() -> Path:
    """Where the synthetic set lives by default: ``data/synthetic`` of ``pa3.project_dir()``."""
    return project_dir() / "data" / "synthetic"


def generate(root, config=None, workers=2, progress=True) -> Path:
    """Write every split of the synthetic set under ``root`` (Cityscapes layout), replacing any old one.

    Args:
        root: dataset root; its ``leftImg8bit/`` and ``gtFine/`` are deleted and rewritten, but only if
            pa3 wrote them (``root/pa3_synthetic.json`` exists): a folder holding other data (real
            Cityscapes) raises FileExistsError and is left untouched.
        config: SyntheticConfig (default: SyntheticConfig()).
        workers: processes drawing in parallel; the output does not depend on it.
        progress: show a tqdm bar (silent anyway when TQDM_DISABLE=1).
    Returns:
        root as a Path. The stamp ``root/pa3_synthetic.json`` (config + GENERATOR_VERSION) is completed
        last, so an interrupted run is regenerated by ``ensure_synthetic``.
    """
    config = config or SyntheticConfig()
    root = Path(root)
    foreign = [sub for sub in ("leftImg8bit", "gtFine") if (root / sub).exists()]
    if foreign and not (root / SYNTHETIC_STAMP).exists():
        raise FileExistsError(
            f"{root} already holds {' and '.join(s + '/' for s in foreign)} but no {SYNTHETIC_STAMP}: it is not a "
            "synthetic set written by pa3 (real Cityscapes?), and generating here would delete it. Choose an "
            "empty folder (python -m pa3 generate --root NEW_FOLDER), or delete it yourself first.")
    root.mkdir(parents=True, exist_ok=True)
    remove(root / SYNTHETIC_STAMP)  # a damaged stamp (even a folder or an unreadable file) is replaced
    # the stamp marks the folder as pa3's from the start; "complete" is only dropped at the end, so an
    # interrupted run never matches ensure_synthetic's check and is regenerated
    write_json(root / SYNTHETIC_STAMP, {**_stamp(config), "complete": False})
    for sub in ("leftImg8bit", "gtFine"):
        shutil.rmtree(root / sub, ignore_errors=True)
    tasks = _tasks(root, config)
    for t in tasks:
        for sub in ("leftImg8bit", "gtFine"):
            Path(root, sub, t[1], t[4]).mkdir(parents=True, exist_ok=True)
    # disable is only passed to switch the bar off, so that TQDM_DISABLE=1 keeps working otherwise
    bar = tqdm(total=len(tasks), desc="synthetic Cityscapes", unit="img", **({} if progress else {"disable": True}))
    if workers and workers > 1 and len(tasks) > 1:
        with get_context().Pool(min(workers, len(tasks))) as pool:
            for _ in pool.imap_unordered(_write_one, tasks, chunksize=4):
                bar.update()
    else:
        for task in tasks:
            _write_one(task)
            bar.update()
    bar.close()
    write_json(root / SYNTHETIC_STAMP, _stamp(config))
    return root


def _read_stamp(path):
    """(the stamp, None); (None, what is wrong with it) when damaged; (None, None) when there is none."""
    try:
        return read_json(path, "synthetic-set stamp", "", keys=("generator_version", "config")), None
    except FileNotFoundError:
        return None, None
    except BadFileError as error:
        return None, error.problem


def ensure_synthetic(root=None, config=None) -> Path:
    """Return the synthetic set's root, generating it only if missing, damaged or made with another config/version.

    Args:
        root: dataset root (default ``default_synthetic_root()``, i.e. <repo>/data/synthetic).
        config: SyntheticConfig (default: SyntheticConfig()).
    Returns:
        root as a Path. Prints one line saying where the data is and whether it was generated or reused,
        after one line saying why when a damaged or incomplete set is regenerated.
    """
    config = config or SyntheticConfig()
    root = Path(root) if root is not None else default_synthetic_root()
    current, problem = _read_stamp(root / SYNTHETIC_STAMP)
    n = config.n_train + config.n_val + config.n_test
    size = f"{n} images at {config.height}x{config.width}"
    complete = (root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir()
    if current == _stamp(config) and complete:
        print(f"Synthetic Cityscapes data reused at {short_path(root)} ({size}, seed {config.seed})")
        return root
    if current == _stamp(config):
        problem = "is there but leftImg8bit/ or gtFine/ is missing"
    elif current is not None and current.get("complete") is False:
        problem = "says an earlier generation was interrupted"
    if problem:  # derived data: regenerated, never used damaged, and never silently
        print(f"{short_path(root / SYNTHETIC_STAMP)} {problem}; regenerating the synthetic set")
    generate(root, config)
    print(f"Synthetic Cityscapes data generated at {short_path(root)} ({size}, seed {config.seed})")
    return root
