"""The Cityscapes layout: where a root keeps its frames, how images and labels are paired (by their
``<city>_<seq>_<frame>`` stem, never by sort order), course-kit CSV lists, and the rules for label values.
``pa3.data`` (the Dataset) and ``pa3.dataset_check`` (the checker) build on it.

    ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
"""
import csv
import re
from pathlib import Path

from pa3.files import unreadable
from pa3.labels import IGNORE_INDEX

SPLITS = ("train", "val", "test")
LABEL_FILES = ("labelIds", "labelTrainIds")
# Resized caches are used automatically up to this many pixels per image (512 x 1024).
_IMAGE_RE = re.compile(r"^(?P<stem>.+_\d+_\d+)_leftImg8bit\.png$")
_ANY_LABEL_RE = re.compile(r"^(?P<stem>.+_\d+_\d+)_gtFine_")  # any gtFine file (labelIds, labelTrainIds, ...)
VOID_LABEL_IDS = {0, 1, 2, 3}  # unlabeled, ego vehicle, rectification border, out of roi
MAX_LABEL_ID = 33
MAX_TRAIN_ID = 18
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
    """The embedded synthetic set (generated on first use): the data when none is named (``PA3_DATA`` is read by
    the command line and the notebook setup)."""
    from pa3.synthetic import ensure_synthetic

    return Path(ensure_synthetic())


def missing_root(root):
    return DatasetError(f"dataset root {root} does not exist.\n{LAYOUT}\n{HOW_TO_GET}")


def label_pattern(label_file):
    if label_file not in LABEL_FILES:
        raise ValueError(f"unknown label_file {label_file!r}; choose one of {LABEL_FILES}")
    return re.compile(rf"^(?P<stem>.+_\d+_\d+)_gtFine_{label_file}\.png$")


def first_few(paths, n=_SHOW):
    paths = [str(p) for p in paths]
    more = f" ... and {len(paths) - n} more" if len(paths) > n else ""
    return ", ".join(paths[:n]) + more


def label_values_problem(values, label_file):
    """What is wrong with the values a label PNG holds (sorted, distinct): ("trainid_label" or
    "outside_table", the offending values), or None. A labelIds PNG holds ids 0..33 (255 with nothing
    above 18 is a trainId PNG); a labelTrainIds PNG holds 0..18 and 255."""
    values = [int(v) for v in values]
    if label_file == "labelIds":
        if not values or values[-1] <= MAX_LABEL_ID:
            return None
        if values[-1] == IGNORE_INDEX and max(values[:-1], default=0) <= MAX_TRAIN_ID:
            return "trainid_label", values
        return "outside_table", [v for v in values if v > MAX_LABEL_ID]
    outside = [v for v in values if MAX_TRAIN_ID < v < IGNORE_INDEX]
    return ("outside_table", outside) if outside else None


def scan(root, split, label_file="labelIds"):
    """Index one split without raising: (images {stem: path}, labels {stem: path}, bad [messages])."""
    root = Path(root)
    found, bad = [{}, {}], []
    for k, (folder, suffix, regex) in enumerate((
        (root / "leftImg8bit" / split, "_leftImg8bit.png", _IMAGE_RE),
        (root / "gtFine" / split, f"_gtFine_{label_file}.png", label_pattern(label_file)),
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


def frame_name(path):
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
        raise missing_root(root)
    images, labels, bad = scan(root, split, label_file)
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
                        f"{first_few(lonely_images)}")
    if lonely_labels:
        problems.append(f"{len(lonely_labels)} label(s) without a *_leftImg8bit.png image: "
                        f"{first_few(lonely_labels)}")
    if bad:
        problems.append(f"{len(bad)} misnamed or misplaced file(s): {first_few(bad)}")
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
            f"{csv_path}: {len(crossed)} row(s) pair an image with the label of another frame: {first_few(crossed)}.\n"
            "Each row must hold the image and the label of the same <city>_<seq>_<frame>; fix the list.")
    if missing:
        raise DatasetError(
            f"{csv_path}: {len(missing)} listed file(s) do not exist: {first_few(missing)}.\n"
            f"Relative paths resolve against {base}; pass root= to resolve them elsewhere."
        )
    if not pairs:
        raise DatasetError(f"CSV list {csv_path} holds no rows")
    return pairs
