"""Cityscapes data: file layout and pairing, a dataset checker, the Dataset with its resized cache,
class frequencies and the DataLoader factory.

The same code reads real Cityscapes and the embedded synthetic set, because both use the real layout::

    ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

Images and labels are paired by their ``<city>_<seq>_<frame>`` stem, never by sort order. Decoding a
2048x1024 PNG dominates loading, so the first pass over a split writes the resized images and encoded
masks to two ``.npy`` files (``data/cache/<key>/``) that later runs memory-map.
"""
import csv
import hashlib
import json
import os
import random
import re
from dataclasses import dataclass, field
from multiprocessing.pool import ThreadPool
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pa3 import project_dir, short_path
from pa3.files import BadFileError, read_json, remove, unreadable
from pa3.labels import IGNORE_INDEX, check_space, class_names, decode_lut, encode_lut, num_classes
from pa3.transforms import EvalPreset

SPLITS = ("train", "val", "test")
LABEL_FILES = ("labelIds", "labelTrainIds")
CACHE_VERSION = 1
# Resized caches are used automatically up to this many pixels per image (512 x 1024).
AUTO_CACHE_MAX_PIXELS = 512 * 1024
_IMAGE_RE = re.compile(r"^(?P<stem>.+_\d+_\d+)_leftImg8bit\.png$")
_ANY_LABEL_RE = re.compile(r"^(?P<stem>.+_\d+_\d+)_gtFine_")  # any gtFine file (labelIds, labelTrainIds, ...)
_VOID_LABEL_IDS = {0, 1, 2, 3}  # unlabeled, ego vehicle, rectification border, out of roi
_MAX_LABEL_ID = 33
_MAX_TRAIN_ID = 18
_PNG_END = b"IEND\xaeB`\x82"
_SHOW = 5  # offending files named in a message

LAYOUT = (
    "expected layout:\n"
    "  ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png\n"
    "  ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png"
)
HOW_TO_GET = (
    "To use real Cityscapes: register at https://www.cityscapes-dataset.com, download "
    "leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip, unzip both into one folder (it then holds "
    "leftImg8bit/ and gtFine/) and `export PA3_DATA=/path/to/that/folder` (see data/README.md). "
    "To use the embedded synthetic data instead: unset PA3_DATA (or run `python -m pa3 generate`)."
)


class DatasetError(Exception):
    """A dataset problem; the message names the root or file, the expected layout and the fix."""


def default_data_root():
    """The data root: ``$PA3_DATA`` if set (must exist), else the synthetic set (generated on first use)."""
    env = os.environ.get("PA3_DATA", "").strip()
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise DatasetError(f"PA3_DATA={env} does not exist or is not a folder.\n{HOW_TO_GET}")
        return root
    from pa3.synthetic import ensure_synthetic

    return Path(ensure_synthetic())


def _missing_root(root):
    return DatasetError(f"dataset root {root} does not exist.\n{LAYOUT}\n{HOW_TO_GET}")


def _label_re(label_file):
    if label_file not in LABEL_FILES:
        raise ValueError(f"unknown label_file {label_file!r}; choose one of {LABEL_FILES}")
    return re.compile(rf"^(?P<stem>.+_\d+_\d+)_gtFine_{label_file}\.png$")


def _first(paths, n=_SHOW):
    paths = [str(p) for p in paths]
    more = f" ... and {len(paths) - n} more" if len(paths) > n else ""
    return ", ".join(paths[:n]) + more


def _scan(root, split, label_file="labelIds"):
    """Index one split without raising: (images {stem: path}, labels {stem: path}, bad [messages])."""
    root = Path(root)
    found, bad = [{}, {}], []
    for k, (folder, suffix, regex) in enumerate((
        (root / "leftImg8bit" / split, "_leftImg8bit.png", _IMAGE_RE),
        (root / "gtFine" / split, f"_gtFine_{label_file}.png", _label_re(label_file)),
    )):
        if not folder.is_dir():
            continue
        for path in folder.rglob(f"*{suffix}"):
            match = regex.match(path.name)
            if match is None:
                bad.append(f"{path} (name is not <city>_<seq>_<frame>{suffix})")
            elif path.parent.parent != folder:
                bad.append(f"{path} (not in a <city> folder directly under {folder})")
            elif match["stem"] in found[k]:
                bad.append(f"{path} (same stem as {found[k][match['stem']]})")
            else:
                found[k][match["stem"]] = path
    return found[0], found[1], sorted(bad)


def _stem(path):
    name = Path(path).name
    match = _IMAGE_RE.match(name)
    return match["stem"] if match else Path(path).stem.removesuffix("_leftImg8bit")


def find_pairs(root, split, label_file="labelIds"):
    """Pair the images and labels of one split by their ``<city>_<seq>_<frame>`` stem.

    Args:
        root: dataset root holding leftImg8bit/ and gtFine/.
        split: "train", "val" or "test" (any folder name under leftImg8bit/ works).
        label_file: "labelIds" (``*_gtFine_labelIds.png``) or "labelTrainIds".
    Returns:
        list of (image path, label path), sorted by stem.
    Raises:
        DatasetError: missing root, empty split, unpaired or misnamed files (nothing is skipped silently).
    """
    root = Path(root)
    if not root.is_dir():
        raise _missing_root(root)
    images, labels, bad = _scan(root, split, label_file)
    if not images and not labels and not bad:
        present = [s for s in SPLITS if (root / "leftImg8bit" / s).is_dir()]
        raise DatasetError(
            f"split {split!r} under {root} is empty; expected leftImg8bit/{split}/<city>/*_leftImg8bit.png "
            f"and gtFine/{split}/<city>/*_gtFine_{label_file}.png (splits found: {present or 'none'}).\n"
            f"{LAYOUT}\n{HOW_TO_GET}"
        )
    lonely_images = sorted(images[s] for s in images.keys() - labels.keys())
    lonely_labels = sorted(labels[s] for s in labels.keys() - images.keys())
    problems = []
    if lonely_images:
        problems.append(f"{len(lonely_images)} image(s) without a *_gtFine_{label_file}.png label: "
                        f"{_first(lonely_images)}")
    if lonely_labels:
        problems.append(f"{len(lonely_labels)} label(s) without a *_leftImg8bit.png image: "
                        f"{_first(lonely_labels)}")
    if bad:
        problems.append(f"{len(bad)} misnamed or misplaced file(s): {_first(bad)}")
    if problems:
        raise DatasetError(
            f"split {split!r} under {root}: images and labels do not pair up by stem.\n  "
            + "\n  ".join(problems)
            + f"\n{LAYOUT}\nFix: restore the missing files (re-unzip the archives) or remove the strays; "
            f"`python -m pa3 check {root}` lists every problem."
        )
    return [(images[s], labels[s]) for s in sorted(images)]


def read_csv_list(csv_path, root=None):
    """Read a course-kit CSV list of (image path, label path) rows.

    The header row is optional (detected: neither cell ends in .png/.jpg). Relative paths resolve
    against ``root`` if given, else against the CSV's folder.

    Returns:
        list of (image path, label path) in file order.
    Raises:
        DatasetError: a row with fewer than two columns, files that do not exist, or (for Cityscapes file
            names) an image paired with another frame's label; the rows are named.
    """
    csv_path = Path(csv_path)
    fix = "Give the path of a CSV list whose rows are 'image path, label path'"
    problem = unreadable(csv_path)
    if problem:
        raise DatasetError(f"CSV list {csv_path} {problem}. {fix}")
    base = Path(root) if root is not None else csv_path.parent
    pairs, missing, crossed = [], [], []
    try:
        with open(csv_path, newline="") as f:
            rows = [(n, [c.strip() for c in row]) for n, row in enumerate(csv.reader(f), 1)]
    except (UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"CSV list {csv_path} is not a text file of rows ({error}). {fix}") from error
    rows = [(n, row) for n, row in rows if any(row)]
    if rows and not any(c.lower().endswith((".png", ".jpg", ".jpeg")) for c in rows[0][1][:2]):
        rows = rows[1:]  # header
    for n, row in rows:
        if len(row) < 2 or not row[0] or not row[1]:
            raise DatasetError(f"{csv_path} row {n}: expected two columns 'image path, label path', got {row}")
        pair = tuple(p if p.is_absolute() else base / p for p in (Path(row[0]), Path(row[1])))
        for p in pair:
            if not p.is_file():
                missing.append(f"row {n}: {p}")
        image_match = _IMAGE_RE.match(pair[0].name)
        label_match = _ANY_LABEL_RE.match(pair[1].name)
        if image_match and label_match and image_match["stem"] != label_match["stem"]:
            crossed.append(f"row {n}: {pair[0].name} with {pair[1].name}")
        pairs.append(pair)
    if crossed:  # Cityscapes names carry <city>_<seq>_<frame>: a row that pairs two frames is a shifted list
        raise DatasetError(
            f"{csv_path}: {len(crossed)} row(s) pair an image with the label of another frame: {_first(crossed)}.\n"
            "Each row must hold the image and the label of the same <city>_<seq>_<frame>; fix the list.")
    if missing:
        raise DatasetError(
            f"{csv_path}: {len(missing)} listed file(s) do not exist: {_first(missing)}.\n"
            f"Relative paths resolve against {base}; pass root= to resolve them elsewhere."
        )
    if not pairs:
        raise DatasetError(f"CSV list {csv_path} holds no rows")
    return pairs


# ----------------------------------------------------------------------------------------------
# Checker

# kind -> (what is wrong, how to fix it)
PROBLEMS = {
    "missing": ("split folder missing",
                "unzip leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip into ROOT"),
    "empty": ("no *_leftImg8bit.png images", "unzip leftImg8bit_trainvaltest.zip into ROOT"),
    "bad_name": ("misnamed, misplaced or duplicate files",
                 "files must be named <city>_<seq>_<frame>_leftImg8bit.png / _gtFine_labelIds.png "
                 "inside a <city> folder"),
    "image_without_label": ("images without a label file", "unzip gtFine_trainvaltest.zip into ROOT"),
    "label_without_image": ("labels without an image file", "unzip leftImg8bit_trainvaltest.zip into ROOT"),
    "colour_label": ("label PNGs that are RGB/RGBA colour renderings, not labelIds",
                     "use the *_gtFine_labelIds.png files (uint8 ids), not *_gtFine_color.png renderings"),
    "label_mode": ("label PNGs that are not single-channel 8-bit", "use the uint8 *_gtFine_labelIds.png files"),
    "trainid_label": ("labelIds PNGs that hold trainIds (value 255 present, all others <= 18)",
                      "restore the original *_gtFine_labelIds.png, or pass label_file='labelTrainIds' for "
                      "files made by csCreateTrainIdLabelImgs"),
    "outside_table": ("label PNGs with ids outside the Cityscapes table",
                      "labelIds hold 0..33 (trainIds 0..18 and 255); re-export the labels"),
    "size_mismatch": ("image/label size mismatch", "image and label of a frame must have the same size"),
    "unreadable": ("unreadable or truncated files", "re-download or re-unzip the archive"),
    "placeholder": ("labels are all void (placeholders) outside the test split",
                    "use the real gtFine annotations for train/val"),
}


@dataclass
class SplitReport:
    """What ``check_dataset`` found in one split; ``problems`` maps a PROBLEMS kind to offending entries."""

    split: str
    images: int = 0
    labels: int = 0
    pairs: int = 0
    placeholder: bool = False  # every label is void/single-valued (the real test split)
    sizes: dict = field(default_factory=dict)  # (w, h) -> number of images
    problems: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.problems

    def add(self, kind, entry):
        self.problems.setdefault(kind, []).append(str(entry))


@dataclass
class CheckReport:
    """Result of ``check_dataset``: ``.ok``, ``.splits`` {split: SplitReport}, ``str()`` is a table."""

    root: Path
    label_file: str = "labelIds"
    splits: dict = field(default_factory=dict)

    @property
    def ok(self):
        return bool(self.splits) and all(s.ok for s in self.splits.values())

    def __str__(self):
        lines = [f"Cityscapes check of {self.root} (labels: *_gtFine_{self.label_file}.png)"]
        if not self.splits:
            lines += ["no split found (no leftImg8bit/<split> or gtFine/<split> folder)", LAYOUT]
            return "\n".join(lines)
        lines.append(f"{'split':<8}{'images':>8}{'labels':>8}{'pairs':>8}  {'size':<11} status")
        for s in self.splits.values():
            size = ", ".join(f"{w}x{h}" for w, h in s.sizes) or "-"
            if not s.ok:
                status = "PROBLEMS: " + ", ".join(s.problems)
            elif s.placeholder:
                status = "ok (placeholder labels)"
            else:
                status = "ok"
            lines.append(f"{s.split:<8}{s.images:>8}{s.labels:>8}{s.pairs:>8}  {size:<11} {status}")
        for s in self.splits.values():
            for note in s.notes:
                lines.append(f"note: {s.split}: {note}")
            for kind, entries in s.problems.items():
                what, fix = PROBLEMS[kind]
                lines.append(f"{s.split}: {len(entries)} {what}: {_first(entries, 3)}")
                lines.append(f"    fix: {fix}")
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)

    def raise_if_failed(self):
        """Raise DatasetError (expected layout, first offending files, the fix) unless ``ok``."""
        if self.ok:
            return self
        raise DatasetError(f"{self}\n{LAYOUT}\n{HOW_TO_GET}")


def _png_complete(path):
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() < 12:
            return False
        f.seek(-8, os.SEEK_END)
        return f.read() == _PNG_END


def _inspect_pair(image_path, label_path, label_file):
    """Check one frame; returns (problems [(kind, entry)], image size or None, label values or None)."""
    problems, image_size, values = [], None, None
    try:
        with Image.open(image_path) as im:  # header only
            image_size = im.size
        if not _png_complete(image_path):
            raise OSError("truncated (no IEND chunk at the end)")
    except Exception as e:  # noqa: BLE001 - any decoder error means an unusable file
        problems.append(("unreadable", f"{image_path} ({e})"))
    try:
        with Image.open(label_path) as im:
            mode, label_size = im.mode, im.size
            if mode in ("RGB", "RGBA", "LA", "PA") or len(im.getbands()) >= 3:
                problems.append(("colour_label", f"{label_path} (mode {mode})"))
            elif mode not in ("L", "P"):
                problems.append(("label_mode", f"{label_path} (mode {mode})"))
            else:
                im.load()
                values = np.flatnonzero(np.bincount(np.asarray(im).ravel(), minlength=256))
    except Exception as e:  # noqa: BLE001
        problems.append(("unreadable", f"{label_path} ({e})"))
        label_size = None
    if image_size and label_size and image_size != label_size:
        problems.append(("size_mismatch", f"{image_path} {image_size[0]}x{image_size[1]} vs "
                                          f"{label_path} {label_size[0]}x{label_size[1]}"))
    if values is not None:
        vals = values.tolist()
        if label_file == "labelIds":
            if IGNORE_INDEX in vals and max((v for v in vals if v != IGNORE_INDEX), default=0) <= _MAX_TRAIN_ID:
                problems.append(("trainid_label", f"{label_path} (values {vals})"))
            elif vals[-1] > _MAX_LABEL_ID:
                outside = [v for v in vals if v > _MAX_LABEL_ID]
                problems.append(("outside_table", f"{label_path} (ids {outside[:6]})"))
        else:
            outside = [v for v in vals if _MAX_TRAIN_ID < v < IGNORE_INDEX]
            if outside:
                problems.append(("outside_table", f"{label_path} (ids {outside[:6]})"))
    return problems, image_size, values


def _is_placeholder(values, label_file):
    void = _VOID_LABEL_IDS if label_file == "labelIds" else {IGNORE_INDEX}
    return len(values) <= 1 or set(int(v) for v in values) <= void


def check_dataset(root, splits=None, label_file="labelIds", threads=None):
    """Check a Cityscapes root: layout, pairing, label format and every file's readability.

    Headers of all files are read (size/mode, no decode), every label is decoded (uint8, fast) in a
    thread pool, and every image PNG must end with its IEND chunk (truncation).

    Args:
        root: dataset root holding leftImg8bit/ and gtFine/.
        splits: splits to check; default every split of SPLITS that is present.
        label_file: "labelIds" or "labelTrainIds".
    Returns:
        CheckReport; ``print(report)`` shows a table, ``report.raise_if_failed()`` raises DatasetError.
    Raises:
        DatasetError: when ``root`` does not exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise _missing_root(root)
    _label_re(label_file)
    report = CheckReport(root=root, label_file=label_file)
    present = [s for s in SPLITS if (root / "leftImg8bit" / s).is_dir() or (root / "gtFine" / s).is_dir()]
    for split in (present if splits is None else list(splits)):
        sr = report.splits[split] = SplitReport(split)
        if split not in present and not (root / "leftImg8bit" / split).is_dir():
            sr.add("missing", root / "leftImg8bit" / split)
            continue
        images, labels, bad = _scan(root, split, label_file)
        sr.images, sr.labels = len(images), len(labels)
        for entry in bad:
            sr.add("bad_name", entry)
        for stem in sorted(images.keys() - labels.keys()):
            sr.add("image_without_label", images[stem])
        for stem in sorted(labels.keys() - images.keys()):
            sr.add("label_without_image", labels[stem])
        if not images:
            sr.add("empty", root / "leftImg8bit" / split)
        stems = sorted(images.keys() & labels.keys())
        sr.pairs = len(stems)
        if not stems:
            continue
        with ThreadPool(threads or min(8, os.cpu_count() or 1)) as pool:
            results = pool.starmap(_inspect_pair, [(images[s], labels[s], label_file) for s in stems],
                                   chunksize=16)
        placeholders = 0
        for problems, size, values in results:
            for kind, entry in problems:
                sr.add(kind, entry)
            if size:
                sr.sizes[size] = sr.sizes.get(size, 0) + 1
            placeholders += values is not None and _is_placeholder(values, label_file)
        sr.placeholder = placeholders == len(stems)
        if split == "test":  # placeholder labels are expected there: value problems are only noted
            for kind in ("trainid_label", "outside_table"):
                entries = sr.problems.pop(kind, [])
                if entries:
                    sr.notes.append(f"{len(entries)} {PROBLEMS[kind][0]} (test labels are never evaluated): "
                                    f"{_first(entries, 3)}")
            sr.notes.append(
                "labels are placeholders (Cityscapes publishes no test ground truth): never evaluate on "
                "them; use a held-out part of train/val for 'test' figures" if sr.placeholder else
                "labels are real (the synthetic set labels its test split; real Cityscapes does not)")
        elif sr.placeholder:
            sr.add("placeholder", f"{root / 'gtFine' / split} ({len(stems)} labels, all void)")
    return report


# ----------------------------------------------------------------------------------------------
# Dataset and cache


def default_cache_dir():
    """``$PA3_CACHE`` if set, else ``data/cache`` of ``pa3.project_dir()`` (``~/.cache/pa3`` where that is
    read-only)."""
    env = os.environ.get("PA3_CACHE", "").strip()
    if env:
        return Path(env).expanduser()
    if os.access(project_dir(), os.W_OK):
        return project_dir() / "data" / "cache"
    return Path.home() / ".cache" / "pa3"


def _label_lut(label_space, label_file):
    """uint8 (256,) lookup: value stored in the label PNG -> class index of ``label_space``."""
    if label_file == "labelIds":
        return encode_lut(label_space)
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)  # trainId PNG: 0..18, 255 ignore
    n = _MAX_TRAIN_ID + 1
    lut[:n] = np.arange(n) if label_space == "trainId" else decode_lut("trainId")[:n]
    return lut


def _why(path, error):
    """Why a file could not be decoded: 'it is empty (0 bytes)', 'it is a folder, ...', else the decoder's error."""
    problem = unreadable(path)
    return f"it {problem}" if problem else str(error)


def _atomic_write_text(path, text):
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class CityscapesSegmentation(Dataset):
    """Cityscapes (or the synthetic set) as (image, mask) pairs, resized once and cached.

    Args:
        root: dataset root; None = ``default_data_root()`` ($PA3_DATA or the synthetic set).
        split: "train", "val" or "test".
        label_space: "trainId" (19 classes) or "labelId" (34 classes); other pixels are 255.
        size: (height, width) to resize to (image bilinear with antialias, mask nearest); None keeps 2048x1024.
        transforms: callable (image uint8 (3,H,W), mask uint8 (H,W)) -> (float32, int64); default EvalPreset().
        cache: "auto" (on when size is set and H*W <= 512*1024), True or False.
        pairs: explicit [(image path, label path)] (e.g. from ``read_csv_list``) instead of scanning ``split``.
        label_file: "labelIds" (``*_gtFine_labelIds.png``) or "labelTrainIds".
        cache_dir: where resized caches live; default ``default_cache_dir()``.
    Items:
        (image float32 (3, H, W) normalised with ImageNet mean/std, mask int64 (H, W), 255 = ignore).
    """

    def __init__(self, root=None, split="train", label_space="trainId", size=(256, 512), transforms=None,
                 cache="auto", pairs=None, label_file="labelIds", cache_dir=None):
        self.label_space = check_space(label_space)
        _label_re(label_file)
        self.label_file = label_file
        self.split = split
        if root is None and pairs is None:
            root = default_data_root()
        self.root = None if root is None else Path(root)
        if self.root is not None and not self.root.is_dir():
            raise _missing_root(self.root)
        if pairs is None:
            self.pairs = find_pairs(self.root, split, label_file)
        else:
            self.pairs = [(Path(i), Path(l)) for i, l in pairs]
            missing = [p for pair in self.pairs for p in pair if not p.is_file()]
            if missing:
                raise DatasetError(f"{len(missing)} listed file(s) do not exist: {_first(missing)}")
        if not self.pairs:
            raise DatasetError(f"split {split!r} under {self.root} is empty; expected "
                               f"leftImg8bit/{split}/<city>/*_leftImg8bit.png\n{LAYOUT}")
        self.names = [_stem(i) for i, _ in self.pairs]
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.num_classes = num_classes(label_space)
        self.class_names = class_names(label_space)
        self._lut = _label_lut(label_space, label_file)
        self.transforms = EvalPreset() if transforms is None else transforms
        if cache == "auto":
            cache = self.size is not None and self.size[0] * self.size[1] <= AUTO_CACHE_MAX_PIXELS
        elif cache not in (True, False):
            raise ValueError(f"cache must be 'auto', True or False, got {cache!r}")
        if cache and self.size is None:
            raise ValueError("cache=True needs a size; full-resolution caches would be huge")
        self.cached = bool(cache)
        self.cache_path = Path(cache_dir or default_cache_dir()) / self._cache_key()
        self._arrays, self._pid, self._fingerprint = None, None, None
        if self.cached:
            self._ensure_cache()

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        image, mask = self.load_raw(i)
        return self.transforms(image, mask)

    def load_raw(self, i):
        """(image uint8 tensor (3, H, W), mask uint8 tensor (H, W)) after resize + encode, before transforms."""
        if self.cached:
            images, masks = self._open_cache()
            image, mask = np.array(images[i]), np.array(masks[i])
        else:
            image, mask = self._decode(i)
        return torch.from_numpy(image).permute(2, 0, 1).contiguous(), torch.from_numpy(mask)

    def __repr__(self):
        return (f"CityscapesSegmentation(root={self.root}, split={self.split!r}, n={len(self)}, "
                f"label_space={self.label_space!r}, size={self.size}, cached={self.cached})")

    def __getstate__(self):  # DataLoader workers reopen the memory maps themselves
        state = self.__dict__.copy()
        state["_arrays"], state["_pid"] = None, None
        return state

    # -- decoding ------------------------------------------------------------------------------
    def _decode(self, i):
        """Read, check, resize and encode frame i: (image uint8 (H, W, 3), mask uint8 (H, W))."""
        image_path, label_path = self.pairs[i]
        try:
            image = Image.open(image_path)
            image.load()
        except Exception as e:  # noqa: BLE001
            raise DatasetError(f"cannot read image {image_path}: {_why(image_path, e)}. "
                               f"Re-download or re-unzip it.") from e
        try:
            label = Image.open(label_path)
            label.load()
        except Exception as e:  # noqa: BLE001
            raise DatasetError(f"cannot read label {label_path}: {_why(label_path, e)}. "
                               f"Re-download or re-unzip it.") from e
        if label.mode not in ("L", "P"):
            raise DatasetError(
                f"label {label_path} has mode {label.mode}, not a single-channel 8-bit id image: it looks "
                f"like a colour rendering (or instanceIds). Use the *_gtFine_{self.label_file}.png files."
            )
        if image.size != label.size:
            raise DatasetError(f"size mismatch: image {image_path} is {image.size[0]}x{image.size[1]} but "
                               f"label {label_path} is {label.size[0]}x{label.size[1]}; the image and label of "
                               f"a frame must have the same size: restore the original files (re-unzip the "
                               f"archives). `python -m pa3 check ROOT` lists every mismatch.")
        ids = np.asarray(label)
        self._check_values(ids, label_path)
        if image.mode != "RGB":
            image = image.convert("RGB")
        if self.size is not None and image.size != (self.size[1], self.size[0]):
            wh = (self.size[1], self.size[0])
            image = image.resize(wh, Image.BILINEAR)  # PIL filters with antialias when shrinking
            ids = np.asarray(Image.fromarray(ids).resize(wh, Image.NEAREST))
        return np.array(image), self._lut[ids]

    def _check_values(self, ids, label_path):
        top = int(ids.max())
        if self.label_file == "labelIds" and top > _MAX_LABEL_ID:
            values = np.flatnonzero(np.bincount(ids.ravel(), minlength=256))
            if top == IGNORE_INDEX and values[:-1].max(initial=0) <= _MAX_TRAIN_ID:
                raise DatasetError(
                    f"label {label_path} holds 255 and only values <= 18: it looks like a trainId PNG, "
                    f"but labelIds were expected (a labelIds PNG never holds 255). Restore "
                    f"*_gtFine_labelIds.png or pass label_file='labelTrainIds'.")
            raise DatasetError(f"label {label_path} holds ids outside the Cityscapes table (0..33): "
                               f"{[int(v) for v in values if v > _MAX_LABEL_ID][:6]}. Labels must be "
                               f"*_gtFine_labelIds.png files (uint8 ids 0..33): restore or re-export this file.")
        if self.label_file == "labelTrainIds" and _MAX_TRAIN_ID < top:
            values = np.flatnonzero(np.bincount(ids.ravel(), minlength=256))
            outside = [int(v) for v in values if _MAX_TRAIN_ID < v < IGNORE_INDEX]
            if outside:
                raise DatasetError(f"label {label_path} holds values outside trainIds 0..18/255: {outside[:6]}. "
                                   f"Restore or re-create it with cityscapesscripts' csCreateTrainIdLabelImgs.")

    # -- cache ---------------------------------------------------------------------------------
    def _cache_key(self):
        size = "full" if self.size is None else f"{self.size[0]}x{self.size[1]}"
        # keyed by the folder, not by how its path was spelled (relative, absolute, through a link)
        root = None if self.root is None else self.root.resolve()
        listing = "\n".join(f"{self._rel(i)}\t{self._rel(l)}" for i, l in self.pairs)
        digest = hashlib.sha1(f"{CACHE_VERSION}\n{root}\n{listing}".encode()).hexdigest()[:12]
        return f"{self.split}-{size}-{self.label_space}-{self.label_file}-{digest}"

    def _rel(self, path):
        try:
            return str(Path(path).relative_to(self.root)) if self.root is not None else str(path)
        except ValueError:
            return str(path)

    def _manifest(self):
        """Parameters and (name, bytes, mtime) of every source file: any change invalidates the cache."""
        sources = []
        for pair in self.pairs:
            for p in pair:
                st = os.stat(p)
                sources.append([self._rel(p), st.st_size, st.st_mtime_ns])
        return {
            "version": CACHE_VERSION,
            "root": None if self.root is None else str(self.root.resolve()),
            "split": self.split,
            "size": list(self.size),
            "label_space": self.label_space,
            "label_file": self.label_file,
            "shape": [len(self.pairs), *self.size],
            "sources": sources,
        }

    @property
    def fingerprint(self):
        """Hash of the cache manifest (parameters + every source's name/size/mtime)."""
        return self._fingerprint

    def _ensure_cache(self):
        manifest = self._manifest()
        text = json.dumps(manifest, sort_keys=True)
        self._fingerprint = hashlib.sha1(text.encode()).hexdigest()
        problem = self._cache_problem(manifest)
        if problem is not None:
            if problem != "missing":  # derived data: rebuilt, never used damaged, and never silently
                print(f"cache {short_path(self.cache_path)}: {problem}; rebuilding it")
            self._build_cache(text)

    def _cache_problem(self, manifest):
        """None when the cache holds exactly ``manifest``'s arrays; else what is wrong ("missing" if never built)."""
        folder = self.cache_path
        if not folder.is_dir() or not any(folder.iterdir()):
            return "missing"
        try:
            stored = read_json(folder / "manifest.json", "cache manifest", "", keys=("version", "sources"))
        except FileNotFoundError:
            return "manifest.json is missing (an interrupted build)"
        except BadFileError as error:
            return f"manifest.json {error.problem}"
        if stored != manifest:
            return "its source files or parameters changed since it was built"
        n, (h, w) = len(self.pairs), self.size
        for name, shape in (("images.npy", (n, h, w, 3)), ("masks.npy", (n, h, w))):
            problem = unreadable(folder / name)
            if problem:
                return f"{name} {problem}"
            try:
                array = np.lib.format.open_memmap(folder / name, mode="r")
            except (OSError, ValueError, EOFError) as error:
                return f"{name} is truncated or damaged ({error})"
            if array.shape != shape or array.dtype != np.uint8:
                return f"{name} holds {array.dtype} {array.shape}, not uint8 {shape}"
        return None

    def _build_cache(self, manifest_text):
        folder = self.cache_path
        folder.mkdir(parents=True, exist_ok=True)
        remove(folder / "manifest.json")  # invalid until every array is written
        n, (h, w) = len(self.pairs), self.size
        tmp = {name: folder / f"{name}.npy.tmp{os.getpid()}" for name in ("images", "masks")}
        try:
            images = np.lib.format.open_memmap(tmp["images"], mode="w+", dtype=np.uint8, shape=(n, h, w, 3))
            masks = np.lib.format.open_memmap(tmp["masks"], mode="w+", dtype=np.uint8, shape=(n, h, w))
            desc = f"caching {self.split} at {h}x{w}"
            with ThreadPool(2) as pool:  # PIL decodes with the GIL released
                for i, (image, mask) in enumerate(tqdm(pool.imap(self._decode, range(n)), total=n, desc=desc)):
                    images[i], masks[i] = image, mask
            images.flush()
            masks.flush()
            del images, masks
            for name, p in tmp.items():
                remove(folder / f"{name}.npy")  # whatever is there (a damaged file, a folder)
                os.replace(p, folder / f"{name}.npy")
        finally:
            for p in tmp.values():
                p.unlink(missing_ok=True)
        _atomic_write_text(folder / "manifest.json", manifest_text)

    def _open_cache(self):
        """The memory-mapped (images, masks) arrays, opened lazily once per process."""
        if self._arrays is None or self._pid != os.getpid():
            try:
                arrays = tuple(np.load(self.cache_path / f"{n}.npy", mmap_mode="r") for n in ("images", "masks"))
            except (OSError, ValueError) as error:  # damaged after the dataset checked it
                raise DatasetError(f"cache {self.cache_path} is damaged ({error}). Create the dataset again: "
                                   f"pa3 checks its cache then and rebuilds it") from error
            if arrays[1].shape != (len(self.pairs), *self.size):
                raise DatasetError(f"cache {self.cache_path} does not match the dataset. Create the dataset again: "
                                   f"pa3 checks its cache then and rebuilds it")
            self._arrays, self._pid = arrays, os.getpid()
        return self._arrays


def class_frequencies(root=None, split="train", label_space="trainId", size=(256, 512), label_file="labelIds",
                      cache_dir=None):
    """Pixel count of every class over a split, at ``size``; computed once, stored as JSON by the cache.

    Ignored pixels (255: void classes, and ids that are not classes of ``label_space``) are not counted,
    so the sum is the number of labelled pixels, not N*H*W.

    Returns:
        np.ndarray int64 (C,), C = num_classes(label_space).
    """
    ds = CityscapesSegmentation(root, split, label_space, size, cache=size is not None, label_file=label_file,
                                cache_dir=cache_dir)
    path = ds.cache_path / "class_frequencies.json"
    fingerprint = ds.fingerprint if ds.cached else None
    if fingerprint is not None:
        counts, problem = _stored_frequencies(path, fingerprint, ds.num_classes)
        if counts is not None:
            return counts
        if problem:  # derived data: counted again, never used damaged, and never silently
            print(f"{short_path(path)} {problem}; counting the pixels again")
            remove(path)
    counts = np.zeros(256, dtype=np.int64)
    if ds.cached:
        masks = ds._open_cache()[1]
        for start in range(0, len(masks), 64):  # bincount widens to int64: go in chunks
            counts += np.bincount(np.asarray(masks[start:start + 64]).ravel(), minlength=256)
    else:
        for i in tqdm(range(len(ds)), desc=f"counting {split} pixels"):
            counts += np.bincount(ds.load_raw(i)[1].numpy().ravel(), minlength=256)
    counts = counts[: ds.num_classes]
    if fingerprint is not None:
        record = {"fingerprint": fingerprint, "label_space": label_space, "class_names": ds.class_names,
                  "counts": counts.tolist()}
        _atomic_write_text(path, json.dumps(record, indent=1))
    return counts


def _stored_frequencies(path, fingerprint, num_classes):
    """(counts, None) from a valid class-frequency file; (None, what is wrong) otherwise, (None, None) if absent."""
    try:
        stored = read_json(path, "class-frequency file", "", keys=("fingerprint", "counts"))
    except FileNotFoundError:
        return None, None
    except BadFileError as error:
        return None, error.problem
    counts = stored["counts"]
    if stored["fingerprint"] != fingerprint:
        return None, "was counted on other data (its cache was rebuilt since)"
    if not (isinstance(counts, list) and len(counts) == num_classes
            and all(type(c) is int and c >= 0 for c in counts)):
        return None, f"does not hold {num_classes} pixel counts"
    return np.array(counts, dtype=np.int64), None


def _seed_worker(worker_id):
    seed = torch.initial_seed() % 2**32  # distinct per worker, derived from the loader's generator
    np.random.seed(seed)
    random.seed(seed)


def make_loader(dataset, batch_size, train, num_workers=0, seed=0, sampler=None):
    """DataLoader with reproducible shuffling (seeded generator) and per-worker numpy/random seeds.

    Training loaders shuffle (unless a ``sampler`` is given) and drop the last incomplete batch (kept when
    the dataset is smaller than one batch). Pinned memory when CUDA is available.
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    n = len(sampler) if sampler is not None else len(dataset)
    # Workers are not persistent: each epoch's workers are seeded from the loader's generator, which the
    # engine re-seeds from (seed, epoch), so augmentation stays reproducible across a resume.
    kwargs = {"prefetch_factor": 2} if num_workers > 0 else {}
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=bool(train) and sampler is None,
        sampler=sampler,
        drop_last=bool(train) and n >= batch_size,
        num_workers=num_workers,
        generator=generator,
        worker_init_fn=_seed_worker,
        pin_memory=torch.cuda.is_available(),
        **kwargs,
    )
