"""The dataset checker: ``python -m pa3 check ROOT`` reads every file of a Cityscapes root once and lists,
per split, what is wrong (layout, pairing, label format, unreadable or truncated files) and how to fix it.
"""
import os
from dataclasses import dataclass, field
from multiprocessing.pool import ThreadPool
from pathlib import Path

import numpy as np
from PIL import Image

from pa3.layout import (DatasetError, HOW_TO_GET, LAYOUT, SPLITS, VOID_LABEL_IDS, first_few, label_pattern,
                        label_values_problem, missing_root, scan)
from pa3.labels import IGNORE_INDEX

_PNG_END = b"IEND\xaeB`\x82"

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
                lines.append(f"{s.split}: {len(entries)} {what}: {first_few(entries, 3)}")
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
    problem = None if values is None else label_values_problem(values, label_file)
    if problem is not None:
        kind, offending = problem
        what = "values" if kind == "trainid_label" else "ids"
        problems.append((kind, f"{label_path} ({what} {offending if kind == 'trainid_label' else offending[:6]})"))
    return problems, image_size, values


def _is_placeholder(values, label_file):
    void = VOID_LABEL_IDS if label_file == "labelIds" else {IGNORE_INDEX}
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
        raise missing_root(root)
    label_pattern(label_file)
    report = CheckReport(root=root, label_file=label_file)
    present = [s for s in SPLITS if (root / "leftImg8bit" / s).is_dir() or (root / "gtFine" / s).is_dir()]
    for split in (present if splits is None else list(splits)):
        sr = report.splits[split] = SplitReport(split)
        if split not in present and not (root / "leftImg8bit" / split).is_dir():
            sr.add("missing", root / "leftImg8bit" / split)
            continue
        images, labels, bad = scan(root, split, label_file)
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
                                    f"{first_few(entries, 3)}")
            sr.notes.append(
                "labels are placeholders (Cityscapes publishes no test ground truth): never evaluate on "
                "them; use a held-out part of train/val for 'test' figures" if sr.placeholder else
                "labels are real (the synthetic set labels its test split; real Cityscapes does not)")
        elif sr.placeholder:
            sr.add("placeholder", f"{root / 'gtFine' / split} ({len(stems)} labels, all void)")
    return report


