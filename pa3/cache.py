"""The resized cache: a dataset's frames decoded and resized once, then memory-mapped by every later run.

Decoding a 2048x1024 PNG dominates loading, so the first pass over a split at a size writes

    <cache dir>/<key>/images.npy      uint8 (N, H, W, 3)
    <cache dir>/<key>/masks.npy       uint8 (N, H, W), class indices of the label space, 255 = ignore
    <cache dir>/<key>/manifest.json   the parameters and every source file's (name, bytes, mtime)

It is derived data: a cache whose manifest no longer matches its sources, or that is damaged, is rebuilt
(and says so), never used. ``pa3.data.CityscapesSegmentation`` owns one ``ResizedCache``.
"""
import hashlib
import json
import os
from multiprocessing.pool import ThreadPool
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pa3 import short_path
from pa3.files import BadFileError, read_json, remove, unreadable, write_text

CACHE_VERSION = 1  # part of every cache's key and manifest: raising it rebuilds every cache


class CacheError(Exception):
    """A cache went bad after it was checked (the message says to create the dataset again)."""


def _relative(path, root):
    try:
        return str(Path(path).relative_to(root)) if root is not None else str(path)
    except ValueError:
        return str(path)


def cache_key(root, pairs, split, size, label_space, label_file):
    """The cache folder's name: the parameters and a digest of the root and the (image, label) listing."""
    size_name = "full" if size is None else f"{size[0]}x{size[1]}"
    # keyed by the folder, not by how its path was spelled (relative, absolute, through a link)
    resolved = None if root is None else Path(root).resolve()
    listing = "\n".join(f"{_relative(i, root)}\t{_relative(l, root)}" for i, l in pairs)
    digest = hashlib.sha1(f"{CACHE_VERSION}\n{resolved}\n{listing}".encode()).hexdigest()[:12]
    return f"{split}-{size_name}-{label_space}-{label_file}-{digest}"


def manifest(root, pairs, split, size, label_space, label_file):
    """Parameters and (name, bytes, mtime) of every source file: any change invalidates the cache."""
    sources = []
    for pair in pairs:
        for p in pair:
            st = os.stat(p)
            sources.append([_relative(p, root), st.st_size, st.st_mtime_ns])
    return {
        "version": CACHE_VERSION,
        "root": None if root is None else str(Path(root).resolve()),
        "split": split,
        "size": list(size),
        "label_space": label_space,
        "label_file": label_file,
        "shape": [len(pairs), *size],
        "sources": sources,
    }


class ResizedCache:
    """The cache of one dataset (``manifest``: its parameters and sources) at one size, in ``folder``."""

    def __init__(self, folder, manifest):
        self.folder, self.manifest = Path(folder), manifest
        self.shape = tuple(manifest["shape"])  # (N, H, W)
        self.text = json.dumps(manifest, sort_keys=True)
        self.fingerprint = hashlib.sha1(self.text.encode()).hexdigest()  # changes with any source or parameter
        self._arrays, self._pid = None, None

    def __getstate__(self):  # DataLoader workers reopen the memory maps themselves
        state = self.__dict__.copy()
        state["_arrays"], state["_pid"] = None, None
        return state

    def ensure(self, decode, desc):
        """Build the cache with ``decode(i) -> (image uint8 (H, W, 3), mask uint8 (H, W))`` unless it is valid."""
        problem = self.problem()
        if problem is not None:
            if problem != "missing":  # derived data: rebuilt, never used damaged, and never silently
                print(f"cache {short_path(self.folder)}: {problem}; rebuilding it")
            self.build(decode, desc)

    def problem(self):
        """None when the cache holds exactly the manifest's arrays; else what is wrong ("missing" if never built)."""
        folder = self.folder
        if not folder.is_dir() or not any(folder.iterdir()):
            return "missing"
        try:
            stored = read_json(folder / "manifest.json", "cache manifest", "", keys=("version", "sources"))
        except FileNotFoundError:
            return "manifest.json is missing (an interrupted build)"
        except BadFileError as error:
            return f"manifest.json {error.problem}"
        if stored != self.manifest:
            return "its source files or parameters changed since it was built"
        n, h, w = self.shape
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

    def build(self, decode, desc):
        folder = self.folder
        folder.mkdir(parents=True, exist_ok=True)
        remove(folder / "manifest.json")  # invalid until every array is written
        n, h, w = self.shape
        tmp = {name: folder / f"{name}.npy.tmp{os.getpid()}" for name in ("images", "masks")}
        try:
            images = np.lib.format.open_memmap(tmp["images"], mode="w+", dtype=np.uint8, shape=(n, h, w, 3))
            masks = np.lib.format.open_memmap(tmp["masks"], mode="w+", dtype=np.uint8, shape=(n, h, w))
            with ThreadPool(2) as pool:  # PIL decodes with the GIL released
                for i, (image, mask) in enumerate(tqdm(pool.imap(decode, range(n)), total=n, desc=desc)):
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
        write_text(folder / "manifest.json", self.text)

    def arrays(self):
        """The memory-mapped (images, masks) arrays, opened lazily once per process."""
        if self._arrays is None or self._pid != os.getpid():
            try:
                arrays = tuple(np.load(self.folder / f"{n}.npy", mmap_mode="r") for n in ("images", "masks"))
            except (OSError, ValueError) as error:  # damaged after the dataset checked it
                raise CacheError(f"cache {self.folder} is damaged ({error}). Create the dataset again: "
                                 f"pa3 checks its cache then and rebuilds it") from error
            if arrays[1].shape != self.shape:
                raise CacheError(f"cache {self.folder} does not match the dataset. Create the dataset again: "
                                 f"pa3 checks its cache then and rebuilds it")
            self._arrays, self._pid = arrays, os.getpid()
        return self._arrays
