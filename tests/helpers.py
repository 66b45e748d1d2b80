"""Test helpers: tiny random-but-valid datasets in the Cityscapes layout, written with PIL.

``make_fake_cityscapes`` does not depend on ``pa3.synthetic``; it writes exactly the files of a real
Cityscapes copy (images, labelIds, instanceIds, color, polygons and optionally labelTrainIds).
"""
import json
from pathlib import Path

import numpy as np
from PIL import Image

from pa3 import labels

# labelIds drawn as random boxes: road, sidewalk, building, pole, traffic sign, vegetation, sky,
# person, car, bicycle.
_SCENE_IDS = (7, 8, 11, 17, 20, 21, 23, 24, 26, 33)
CITIES = ("aachen", "bremen")


def fake_label_ids(rng, height, width, n_boxes=6):
    """labelIds uint8 (H, W): scene boxes, out-of-roi (3) at the top rows, rectification border (2) at the
    left/right columns and ego vehicle (1) at the bottom, like a Cityscapes frame."""
    lab = np.full((height, width), 23, np.uint8)                # sky
    lab[height // 2:] = 7                                     # road
    lab[height // 4: height // 2] = 11                        # building
    for _ in range(n_boxes):
        y0, x0 = rng.integers(0, height - 2), rng.integers(0, width - 2)
        h, w = rng.integers(2, max(3, height // 3)), rng.integers(2, max(3, width // 4))
        lab[y0:y0 + h, x0:x0 + w] = rng.choice(_SCENE_IDS)
    border = max(1, width // 64)
    lab[: max(1, height // 32)] = 3                            # out of roi
    lab[:, :border] = 2                                       # rectification border
    lab[:, width - border:] = 2
    lab[height - max(2, height // 8):, width // 4: 3 * width // 4] = 1   # ego vehicle
    return lab


def fake_image(rng, label_ids, noise=8):
    """RGB uint8 (H, W, 3): the class colour of every pixel plus a little noise."""
    colours = labels.palette("labelId").astype(np.int16)
    img = colours[label_ids]
    if noise:
        img = img + rng.integers(-noise, noise + 1, size=img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_frame(root, split, city, seq, frame, image, label_ids, extras=True, train_ids=False):
    """Write one frame's files; returns (image path, labelIds path)."""
    root = Path(root)
    stem = f"{city}_{seq:06d}_{frame:06d}"
    img_dir = root / "leftImg8bit" / split / city
    gt_dir = root / "gtFine" / split / city
    img_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    img_path = img_dir / f"{stem}_leftImg8bit.png"
    lab_path = gt_dir / f"{stem}_gtFine_labelIds.png"
    Image.fromarray(image).save(img_path, compress_level=1)
    Image.fromarray(label_ids).save(lab_path, compress_level=1)
    if train_ids:
        Image.fromarray(labels.encode(label_ids, "trainId")).save(
            gt_dir / f"{stem}_gtFine_labelTrainIds.png", compress_level=1)
    if extras:
        inst = label_ids.astype(np.uint16)
        inst[label_ids == 26] = 26 * 1000 + 1                 # one car instance, like 26001
        Image.fromarray(inst).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
        rgba = np.dstack([labels.to_rgb(label_ids, "labelId"), np.full(label_ids.shape, 255, np.uint8)])
        Image.fromarray(rgba).save(gt_dir / f"{stem}_gtFine_color.png", compress_level=1)
        h, w = label_ids.shape
        (gt_dir / f"{stem}_gtFine_polygons.json").write_text(
            json.dumps({"imgHeight": h, "imgWidth": w, "objects": []}))
    return img_path, lab_path


def make_fake_cityscapes(root, splits=None, size=(64, 128), seed=0, cities=CITIES, extras=True,
                         train_ids=False, test_placeholders=True, order=None, noise=8):
    """Write a small Cityscapes-layout dataset under ``root`` and return ``root`` as a Path.

    Args:
        splits: {split: number of frames}; default {"train": 3, "val": 2}.
        size: (height, width) of every frame.
        extras: also write instanceIds (uint16), color (RGBA) and polygons json siblings.
        train_ids: also write *_gtFine_labelTrainIds.png.
        test_placeholders: the "test" split gets all-zero labels, like real Cityscapes.
        order: optional permutation of frame indices giving the order files are written in.
    """
    root = Path(root)
    splits = {"train": 3, "val": 2} if splits is None else splits
    rng = np.random.default_rng(seed)
    h, w = size
    for split, n in splits.items():
        frames = list(range(n)) if order is None else list(order)
        for i in frames:
            lab = fake_label_ids(rng, h, w)
            img = fake_image(rng, lab, noise=noise)
            if split == "test" and test_placeholders:
                lab = np.zeros_like(lab)
            city = cities[i % len(cities)]
            write_frame(root, split, city, 1 + i // len(cities), 19 + i, img, lab, extras, train_ids)
    return root


def small_profile(name, root, runs_dir, **config):
    """``PROFILES[name]`` on the data at ``root`` with its base config changed by ``config`` and no per-model
    changes: a profile whose runs train in seconds, into ``runs_dir``."""
    import dataclasses

    from pa3.profiles import PROFILES

    profile = PROFILES[name]
    base = dataclasses.replace(profile.config, data_root=None if root is None else str(root), **config)
    return dataclasses.replace(profile, config=base, models={}, runs_dir=str(runs_dir))
