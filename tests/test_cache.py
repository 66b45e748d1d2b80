"""Tests of pa3.cache through the Dataset that owns it: cached items equal decoded ones, a valid cache is
reused without decoding (also by DataLoader workers and under another spelling of the root), a changed
source rebuilds it."""
import os
import pickle

import numpy as np
import PIL.Image
import torch

from helpers import fake_image, fake_label_ids, write_frame
from pa3.data import CityscapesSegmentation

SIZE = (32, 64)  # dataset working size; the fake frames are 64x128


def test_cached_and_uncached_items_are_identical(root, cache_dir):
    cached = CityscapesSegmentation(root, "val", size=SIZE, cache=True, cache_dir=cache_dir)
    plain = CityscapesSegmentation(root, "val", size=SIZE, cache=False)
    for i in range(len(plain)):
        for a, b in zip(cached.load_raw(i), plain.load_raw(i)):
            assert torch.equal(a, b)


def test_cache_is_reused_without_decoding(root, cache_dir, monkeypatch):
    first = CityscapesSegmentation(root, "train", size=SIZE, cache_dir=cache_dir)
    expected = [first.load_raw(i) for i in range(len(first))]

    def refuse(*args, **kwargs):
        raise AssertionError("decoded a PNG although the cache is valid")

    monkeypatch.setattr(PIL.Image, "open", refuse)
    again = CityscapesSegmentation(root, "train", size=SIZE, cache_dir=cache_dir)
    assert again.cache_path == first.cache_path
    for i, (image, mask) in enumerate(expected):
        assert torch.equal(again.load_raw(i)[0], image) and torch.equal(again.load_raw(i)[1], mask)
    again[0]
    clone = pickle.loads(pickle.dumps(again))  # what DataLoader workers get (maps reopened lazily)
    assert clone.cache._arrays is None and torch.equal(clone.load_raw(1)[1], expected[1][1])
    # the same folder spelled relative to the working directory (as notebooks do) uses the same cache
    monkeypatch.chdir(root.parent)
    relative = CityscapesSegmentation(root.name, "train", size=SIZE, cache_dir=cache_dir)
    assert relative.cache_path == first.cache_path and torch.equal(relative.load_raw(0)[0], expected[0][0])


def test_cache_is_rebuilt_when_a_source_changes(root, cache_dir):
    ds = CityscapesSegmentation(root, "train", size=SIZE, cache_dir=cache_dir)
    before = ds.load_raw(0)[0].clone()
    image_path = ds.pairs[0][0]
    rng = np.random.default_rng(123)
    write_frame(root, "train", "aachen", 1, 19, fake_image(rng, fake_label_ids(rng, 64, 128), noise=40),
                fake_label_ids(rng, 64, 128), extras=False)
    assert image_path.exists()
    rebuilt = CityscapesSegmentation(root, "train", size=SIZE, cache_dir=cache_dir)
    assert not torch.equal(rebuilt.load_raw(0)[0], before)
    fresh = CityscapesSegmentation(root, "train", size=SIZE, cache=False)
    assert torch.equal(rebuilt.load_raw(0)[0], fresh.load_raw(0)[0])
    # A touched file (same bytes, new mtime) also invalidates.
    manifest = (rebuilt.cache_path / "manifest.json").stat().st_mtime_ns
    st = image_path.stat()
    os.utime(image_path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    CityscapesSegmentation(root, "train", size=SIZE, cache_dir=cache_dir)
    assert (rebuilt.cache_path / "manifest.json").stat().st_mtime_ns != manifest
