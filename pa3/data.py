"""Cityscapes data: the Dataset, class frequencies and the DataLoader factory. The file layout, pairing and CSV
lists are ``pa3.layout``; the dataset checker is ``pa3.dataset_check``; the resized cache
the Dataset keeps is ``pa3.cache``.

The same code reads real Cityscapes and the embedded synthetic set, because both use the real layout::

    ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

Images and labels are paired by their ``<city>_<seq>_<frame>`` stem, never by sort order. Decoding a
2048x1024 PNG dominates loading, so the first pass over a split at a size writes the resized frames to a
cache (``data/cache/<key>/``) that later runs memory-map.
"""
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pa3 import default_cache_dir, short_path
from pa3.cache import CacheError, ResizedCache, cache_key, manifest
from pa3.files import BadFileError, read_json, remove, unreadable, write_json
from pa3.labels import IGNORE_INDEX, check_space, class_names, decode_lut, encode_lut, num_classes
from pa3.layout import (LAYOUT, MAX_LABEL_ID, MAX_TRAIN_ID, DatasetError, default_data_root, find_pairs, first_few,
                        frame_name, label_pattern, label_values_problem, missing_root)
from pa3.transforms import EvalPreset

AUTO_CACHE_MAX_PIXELS = 512 * 1024

# ----------------------------------------------------------------------------------------------
# Dataset and cache


def _label_lut(label_space, label_file):
    """uint8 (256,) lookup: value stored in the label PNG -> class index of ``label_space``."""
    if label_file == "labelIds":
        return encode_lut(label_space)
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)  # trainId PNG: 0..18, 255 ignore
    n = MAX_TRAIN_ID + 1
    lut[:n] = encode_lut(label_space)[decode_lut("trainId")[:n]]  # trainId -> labelId -> the space's index
    return lut


def _open_png(path, what):
    """The decoded PIL image at ``path``, or a DatasetError that says why it cannot be read."""
    try:
        image = Image.open(path)
        image.load()
    except Exception as e:  # noqa: BLE001 - any decoder error means an unusable file
        raise DatasetError(f"cannot read {what} {path}: {_why(path, e)}. Re-download or re-unzip it.") from e
    return image


def _why(path, error):
    """Why a file could not be decoded: 'it is empty (0 bytes)', 'it is a folder, ...', else the decoder's error."""
    problem = unreadable(path)
    return f"it {problem}" if problem else str(error)


class CityscapesSegmentation(Dataset):
    """Cityscapes (or the synthetic set) as (image, mask) pairs, resized once and cached.

    Args:
        root: dataset root; None = ``default_data_root()`` ($PA3_DATA or the synthetic set).
        split: "train", "val" or "test".
        label_space: "trainId" (19 classes), "labelId" (34 classes) or "camvid" (11); other pixels are 255.
        size: (height, width) to resize to (image bilinear with antialias, mask nearest); None keeps 2048x1024.
        transforms: callable (image uint8 (3,H,W), mask uint8 (H,W)) -> (float32, int64); default EvalPreset().
        cache: "auto" (on when size is set and H*W <= 512*1024), True or False.
        pairs: explicit [(image path, label path)] (e.g. from ``read_csv_list``) instead of scanning ``split``.
        label_file: "labelIds" (``*_gtFine_labelIds.png``) or "labelTrainIds".
        cache_dir: where resized caches live; default ``pa3.default_cache_dir()``.
    Items:
        (image float32 (3, H, W) normalised with ImageNet mean/std, mask int64 (H, W), 255 = ignore).
    """

    def __init__(self, root=None, split="train", label_space="trainId", size=(256, 512), transforms=None,
                 cache="auto", pairs=None, label_file="labelIds", cache_dir=None):
        self.label_space = check_space(label_space)
        label_pattern(label_file)
        self.label_file = label_file
        self.split = split
        if root is None and pairs is None:
            root = default_data_root()
        self.root = None if root is None else Path(root)
        if self.root is not None and not self.root.is_dir():
            raise missing_root(self.root)
        if pairs is None:
            self.pairs = find_pairs(self.root, split, label_file)
        else:
            self.pairs = [(Path(i), Path(l)) for i, l in pairs]
            missing = [p for pair in self.pairs for p in pair if not p.is_file()]
            if missing:
                raise DatasetError(f"{len(missing)} listed file(s) do not exist: {first_few(missing)}")
        if not self.pairs:
            raise DatasetError(f"split {split!r} under {self.root} is empty; expected "
                               f"leftImg8bit/{split}/<city>/*_leftImg8bit.png\n{LAYOUT}")
        self.names = [frame_name(i) for i, _ in self.pairs]
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
        parameters = {"split": split, "size": self.size, "label_space": label_space, "label_file": label_file}
        self.cache_path = Path(cache_dir or default_cache_dir()) / cache_key(self.root, self.pairs, **parameters)
        self.cache = None  # the ResizedCache, when the items come from one
        if cache:
            self.cache = ResizedCache(self.cache_path, manifest(self.root, self.pairs, **parameters))
            self.cache.ensure(self._decode, desc=f"caching {split} at {self.size[0]}x{self.size[1]}")

    @property
    def cached(self):
        return self.cache is not None

    @property
    def fingerprint(self):
        """Hash of the cache manifest (parameters + every source's name/size/mtime); None without a cache."""
        return None if self.cache is None else self.cache.fingerprint

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        image, mask = self.load_raw(i)
        return self.transforms(image, mask)

    def load_raw(self, i):
        """(image uint8 tensor (3, H, W), mask uint8 tensor (H, W)) after resize + encode, before transforms."""
        if self.cached:
            images, masks = self.cached_arrays()
            image, mask = np.array(images[i]), np.array(masks[i])
        else:
            image, mask = self._decode(i)
        return torch.from_numpy(image).permute(2, 0, 1).contiguous(), torch.from_numpy(mask)

    def __repr__(self):
        return (f"CityscapesSegmentation(root={self.root}, split={self.split!r}, n={len(self)}, "
                f"label_space={self.label_space!r}, size={self.size}, cached={self.cached})")

    def cached_arrays(self):
        """The cache's memory-mapped (images uint8 (N, H, W, 3), masks uint8 (N, H, W))."""
        try:
            return self.cache.arrays()
        except CacheError as error:
            raise DatasetError(str(error)) from error

    # -- decoding ------------------------------------------------------------------------------
    def _decode(self, i):
        """Read, check, resize and encode frame i: (image uint8 (H, W, 3), mask uint8 (H, W))."""
        image_path, label_path = self.pairs[i]
        image, label = _open_png(image_path, "image"), _open_png(label_path, "label")
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
        if int(ids.max()) <= (MAX_LABEL_ID if self.label_file == "labelIds" else MAX_TRAIN_ID):
            return  # every frame of a valid dataset: no histogram needed
        problem = label_values_problem(np.flatnonzero(np.bincount(ids.ravel(), minlength=256)), self.label_file)
        if problem is None:
            return
        kind, values = problem
        if kind == "trainid_label":
            raise DatasetError(
                f"label {label_path} holds 255 and only values <= 18: it looks like a trainId PNG, "
                f"but labelIds were expected (a labelIds PNG never holds 255). Restore "
                f"*_gtFine_labelIds.png or pass label_file='labelTrainIds'.")
        if self.label_file == "labelIds":
            raise DatasetError(f"label {label_path} holds ids outside the Cityscapes table (0..33): "
                               f"{values[:6]}. Labels must be "
                               f"*_gtFine_labelIds.png files (uint8 ids 0..33): restore or re-export this file.")
        raise DatasetError(f"label {label_path} holds values outside trainIds 0..18/255: {values[:6]}. "
                           f"Restore or re-create it with cityscapesscripts' csCreateTrainIdLabelImgs.")


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
    fingerprint = ds.fingerprint
    if fingerprint is not None:
        counts, problem = _stored_frequencies(path, fingerprint, ds.num_classes)
        if counts is not None:
            return counts
        if problem:  # derived data: counted again, never used damaged, and never silently
            print(f"{short_path(path)} {problem}; counting the pixels again")
            remove(path)
    counts = np.zeros(256, dtype=np.int64)
    if ds.cached:
        masks = ds.cached_arrays()[1]
        for start in range(0, len(masks), 64):  # bincount widens to int64: go in chunks
            counts += np.bincount(np.asarray(masks[start:start + 64]).ravel(), minlength=256)
    else:
        for i in tqdm(range(len(ds)), desc=f"counting {split} pixels"):
            counts += np.bincount(ds.load_raw(i)[1].numpy().ravel(), minlength=256)
    counts = counts[: ds.num_classes]
    if fingerprint is not None:
        record = {"fingerprint": fingerprint, "label_space": label_space, "class_names": ds.class_names,
                  "counts": counts.tolist()}
        write_json(path, record, indent=1)
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
