"""pa3.data: label tables vs cityscapesscripts, layout pairing, CSV lists, the checker, the dataset,
its cache, class frequencies and the loader."""
import os
import pickle

import numpy as np
import PIL.Image
import pytest
import torch
from cityscapesscripts.helpers.labels import id2label, trainId2label
from PIL import Image

from helpers import fake_image, fake_label_ids, make_fake_cityscapes, write_frame
from pa3 import labels
from pa3.check import check_dataset
from pa3.data import (CityscapesSegmentation, DatasetError, class_frequencies, default_data_root, find_pairs,
                      make_loader, read_csv_list)
from pa3.transforms import denormalize

SIZE = (32, 64)  # dataset working size; the fake frames are 64x128


@pytest.fixture
def root(tmp_path):
    return make_fake_cityscapes(tmp_path / "cs", {"train": 4, "val": 2, "test": 2})


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


def first_label(root, split="train"):
    return find_pairs(root, split)[0][1]


# -- label tables -------------------------------------------------------------------------------

def test_encode_lut_matches_cityscapesscripts_for_every_id():
    train, ident = labels.encode_lut("trainId"), labels.encode_lut("labelId")
    for i in range(256):
        if i in id2label:
            t = id2label[i].trainId
            assert train[i] == (t if 0 <= t < 255 else 255), id2label[i].name
            assert ident[i] == i
        else:
            assert train[i] == 255 and ident[i] == 255
    assert set(range(34)) <= set(id2label)


def test_names_colours_and_categories_match_cityscapesscripts():
    for space, table in (("trainId", [trainId2label[t] for t in range(19)]),
                         ("labelId", [id2label[i] for i in range(34)])):
        assert labels.num_classes(space) == len(table)
        assert labels.class_names(space) == [l.name for l in table]
        assert labels.palette(space).tolist() == [list(l.color) for l in table]
        # evaluated classes carry their cityscapesscripts category; void/ignored ones -1
        expected = [labels.CATEGORIES.index(l.category) if not l.ignoreInEval else -1 for l in table]
        assert labels.category_index(space).tolist() == expected
    assert labels.CATEGORIES == sorted({l.category for l in id2label.values() if not l.ignoreInEval},
                                       key=lambda c: min(l.categoryId for l in id2label.values() if l.category == c))
    assert labels.REPORT_CLASSES == tuple(id2label[i].name for i in (11, 20, 24, 26, 33))


def test_encode_refuses_values_that_would_wrap_around():
    assert labels.encode(np.array([26, 200], dtype=np.uint16), "labelId").tolist() == [26, 255]
    with pytest.raises(ValueError, match=r"\[26001, 26001\].*instanceIds"):
        labels.encode(np.array([26001], dtype=np.uint16))
    with pytest.raises(ValueError, match="0..255"):
        labels.encode(np.array([-1]))


def test_to_label_ids_inverts_encode():
    for t in range(19):
        assert labels.to_label_ids(np.array([t]), "trainId")[0] == trainId2label[t].id
    ids = np.arange(34, dtype=np.uint8)
    assert np.array_equal(labels.to_label_ids(labels.encode(ids, "labelId"), "labelId"), ids)
    trains = labels.encode(ids, "trainId")
    valid = trains != 255
    assert np.array_equal(labels.to_label_ids(trains, "trainId")[valid], ids[valid])
    assert labels.to_label_ids(np.array([255]), "trainId")[0] == 0


# -- layout and pairing -----------------------------------------------------------------------

def test_find_pairs_pairs_by_stem_not_creation_order(tmp_path):
    root = make_fake_cityscapes(tmp_path / "cs", {"train": 5}, order=[3, 0, 4, 2, 1], train_ids=True)
    pairs = find_pairs(root, "train")
    stems = [p[0].name.removesuffix("_leftImg8bit.png") for p in pairs]
    assert stems == sorted(stems) and len(pairs) == 5
    for image, label in pairs:
        assert label.name == image.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png")
        assert label.parent.name == image.parent.name
    trains = find_pairs(root, "train", label_file="labelTrainIds")
    assert [l.name.endswith("_gtFine_labelTrainIds.png") for _, l in trains] == [True] * 5


def test_find_pairs_refuses_unpaired_files(root):
    # A label that sorts first but has no image: sort-order pairing would silently shift every pair.
    extra = root / "gtFine/train/aachen/aachen_000000_000001_gtFine_labelIds.png"
    extra.write_bytes(first_label(root).read_bytes())
    with pytest.raises(DatasetError, match=r"1 label\(s\) without .*aachen_000000_000001"):
        find_pairs(root, "train")
    extra.unlink()
    find_pairs(root, "train")[0][1].unlink()
    with pytest.raises(DatasetError, match=r"1 image\(s\) without .*aachen_000001_000019_leftImg8bit"):
        find_pairs(root, "train")


def test_find_pairs_refuses_misnamed_files(root):
    (root / "leftImg8bit/train/aachen/photo_leftImg8bit.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="photo_leftImg8bit.png"):
        find_pairs(root, "train")


def test_empty_split_and_missing_root(tmp_path, root):
    with pytest.raises(DatasetError, match=r"split 'extra' under .* is empty; expected leftImg8bit/extra"):
        find_pairs(root, "extra")
    with pytest.raises(DatasetError, match="is empty"):
        CityscapesSegmentation(root, "extra", cache=False)
    with pytest.raises(DatasetError, match="cityscapes-dataset.com.*PA3_DATA"):
        CityscapesSegmentation(tmp_path / "nowhere", cache=False)


def test_default_data_root_uses_pa3_data(monkeypatch, root, tmp_path):
    monkeypatch.setenv("PA3_DATA", str(root))
    assert default_data_root() == root
    monkeypatch.setenv("PA3_DATA", str(tmp_path / "missing"))
    with pytest.raises(DatasetError, match="(?s)PA3_DATA=.*missing.*gtFine_trainvaltest.zip"):
        default_data_root()


# -- CSV lists ----------------------------------------------------------------------------------

def test_read_csv_list_with_and_without_header(root, tmp_path):
    pairs = find_pairs(root, "train")
    rel = [(i.relative_to(root), l.relative_to(root)) for i, l in pairs]
    (root / "train.csv").write_text("img,label\n" + "".join(f"{i},{l}\n" for i, l in rel))
    assert read_csv_list(root / "train.csv") == pairs
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists/val.csv").write_text("".join(f"{i}, {l}\n" for i, l in rel[:2]))
    assert read_csv_list(tmp_path / "lists/val.csv", root=root) == pairs[:2]
    ds = CityscapesSegmentation(root, "train", size=SIZE, cache=False, pairs=read_csv_list(root / "train.csv"))
    assert len(ds) == 4 and ds.names[0] == pairs[0][0].name.removesuffix("_leftImg8bit.png")


def test_read_csv_list_names_missing_rows(root):
    (root / "bad.csv").write_text("img,label\nleftImg8bit/train/x.png,gtFine/train/x.png\n")
    with pytest.raises(DatasetError, match="row 2: .*x.png"):
        read_csv_list(root / "bad.csv")
    (root / "short.csv").write_text("a.png\n")
    with pytest.raises(DatasetError, match="row 1"):
        read_csv_list(root / "short.csv")


def test_read_csv_list_refuses_a_shifted_list(root):
    pairs = find_pairs(root, "train")
    shifted = [(i, l) for (i, _), (_, l) in zip(pairs, pairs[1:] + pairs[:1])]  # labels moved down a row
    (root / "shifted.csv").write_text("".join(f"{i},{l}\n" for i, l in shifted))
    with pytest.raises(DatasetError, match=r"(?s)row 1: .*_leftImg8bit\.png with .*_gtFine_labelIds\.png.*same <city>_<seq>_<frame>"):
        read_csv_list(root / "shifted.csv")


# -- checker ------------------------------------------------------------------------------------

def test_check_dataset_accepts_a_good_root(root):
    report = check_dataset(root)
    assert report.ok, str(report)
    assert list(report.splits) == ["train", "val", "test"]
    assert report.splits["train"].pairs == 4 and report.splits["train"].sizes == {(128, 64): 4}
    assert report.raise_if_failed() is report
    text = str(report)
    assert "train" in text and "OK" in text


def test_check_dataset_accepts_test_placeholders(root):
    report = check_dataset(root)
    test = report.splits["test"]
    assert test.ok and test.placeholder
    assert "placeholders" in str(report)
    assert not report.splits["train"].placeholder


def test_check_dataset_flags_placeholder_labels_outside_test(tmp_path):
    root = make_fake_cityscapes(tmp_path / "cs", {"train": 2})
    for _, label in find_pairs(root, "train"):
        Image.fromarray(np.zeros((64, 128), np.uint8)).save(label)
    report = check_dataset(root)
    assert not report.ok and "placeholder" in report.splits["train"].problems


def test_check_dataset_missing_root_and_no_splits(tmp_path):
    with pytest.raises(DatasetError, match="(?s)does not exist.*leftImg8bit_trainvaltest.zip.*PA3_DATA"):
        check_dataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    report = check_dataset(tmp_path / "empty")
    assert not report.ok and "no split found" in str(report)
    with pytest.raises(DatasetError, match="expected layout"):
        report.raise_if_failed()


def _colour(root, label):
    colour = label.with_name(label.name.replace("_labelIds", "_color"))
    label.write_bytes(colour.read_bytes())


def _train_ids(root, label):
    Image.fromarray(labels.encode(np.asarray(Image.open(label)), "trainId")).save(label)


def _outside(root, label):
    ids = np.array(Image.open(label))
    ids[5:9, 5:9] = 40
    Image.fromarray(ids).save(label)


def _size(root, label):
    Image.fromarray(np.array(Image.open(label))[:32, :64]).save(label)


def _truncate(root, label):
    label.write_bytes(label.read_bytes()[: label.stat().st_size // 2])


def _truncate_image(root, label):
    image = find_pairs(root, "train")[0][0]
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])


def _drop_label(root, label):
    label.unlink()


def _drop_image(root, label):
    find_pairs(root, "train")[0][0].unlink()


# (break the first train frame, problem kind reported by the checker, error of the dataset or None)
BROKEN = {
    "image_without_label": (_drop_label, "image_without_label", r"image\(s\) without"),
    "label_without_image": (_drop_image, "label_without_image", r"label\(s\) without"),
    "colour_label": (_colour, "colour_label", "looks like a colour rendering"),
    "trainid_label": (_train_ids, "trainid_label", "looks like a trainId PNG"),
    "outside_table": (_outside, "outside_table", r"outside the Cityscapes table .*\[40\]"),
    "size_mismatch": (_size, "size_mismatch", "size mismatch"),
    "truncated_label": (_truncate, "unreadable", "cannot read label"),
    "truncated_image": (_truncate_image, "unreadable", "cannot read image"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_checker_and_dataset_catch_one_bad_input(case, tmp_path):
    root = make_fake_cityscapes(tmp_path / "cs", {"train": 3})
    label = first_label(root)
    breaker, kind, dataset_error = BROKEN[case]
    breaker(root, label)
    report = check_dataset(root)
    train = report.splits["train"]
    assert not report.ok and list(train.problems) == [kind], str(report)
    assert len(train.problems[kind]) == 1
    assert "aachen_000001_000019" in train.problems[kind][0]
    with pytest.raises(DatasetError, match="fix: "):
        report.raise_if_failed()
    with pytest.raises(DatasetError, match=dataset_error):
        ds = CityscapesSegmentation(root, "train", size=SIZE, cache=False)
        [ds.load_raw(i) for i in range(len(ds))]
    # The cache build runs the same checks.
    with pytest.raises(DatasetError, match=dataset_error):
        CityscapesSegmentation(root, "train", size=SIZE, cache=True, cache_dir=tmp_path / "cache")


def test_label_train_ids_files(tmp_path, cache_dir):
    root = make_fake_cityscapes(tmp_path / "cs", {"train": 2}, train_ids=True)
    assert check_dataset(root, label_file="labelTrainIds").ok
    ref = CityscapesSegmentation(root, size=SIZE, cache=False)
    ds = CityscapesSegmentation(root, size=SIZE, cache=False, label_file="labelTrainIds")
    assert torch.equal(ds.load_raw(0)[1], ref.load_raw(0)[1])
    ids = CityscapesSegmentation(root, size=SIZE, cache=False, label_file="labelTrainIds", label_space="labelId")
    mask = ids.load_raw(0)[1].numpy()
    expected = labels.to_label_ids(ref.load_raw(0)[1].numpy(), "trainId")
    valid = mask != 255
    assert np.array_equal(mask[valid], expected[valid]) and np.all(ref.load_raw(0)[1].numpy()[~valid] == 255)


# -- dataset, cache -----------------------------------------------------------------------------

def test_items_have_the_contracted_types(root, cache_dir):
    ds = CityscapesSegmentation(root, "train", size=SIZE, cache_dir=cache_dir)
    assert ds.cached and len(ds) == 4 and ds.num_classes == 19
    image, mask = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, *SIZE)
    assert mask.dtype == torch.int64 and mask.shape == SIZE
    assert set(mask.unique().tolist()) <= set(range(19)) | {255}
    raw_image, raw_mask = ds.load_raw(0)
    assert raw_image.dtype == torch.uint8 and raw_image.shape == (3, *SIZE) and raw_mask.dtype == torch.uint8
    assert np.array_equal(denormalize(image), raw_image.permute(1, 2, 0).numpy())
    # Resize matches PIL (bilinear image, nearest mask encoded with the LUT).
    image_path, label_path = ds.pairs[0]
    ref = np.asarray(Image.open(image_path).resize(SIZE[::-1], Image.BILINEAR))
    assert np.array_equal(raw_image.permute(1, 2, 0).numpy(), ref)
    ref_mask = labels.encode(np.asarray(Image.open(label_path).resize(SIZE[::-1], Image.NEAREST)), "trainId")
    assert np.array_equal(raw_mask.numpy(), ref_mask)
    full = CityscapesSegmentation(root, "val", label_space="labelId", size=None, cache="auto")
    assert not full.cached and full.num_classes == 34
    assert full[0][1].shape == (64, 128) and full.load_raw(0)[1].max() <= 33


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
    assert clone._arrays is None and torch.equal(clone.load_raw(1)[1], expected[1][1])
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


def test_class_frequencies_count_labelled_pixels(root, cache_dir):
    counts = class_frequencies(root, "train", size=SIZE, cache_dir=cache_dir)
    assert counts.dtype == np.int64 and counts.shape == (19,)
    ds = CityscapesSegmentation(root, "train", size=SIZE, cache_dir=cache_dir)
    masks = np.stack([ds.load_raw(i)[1].numpy() for i in range(len(ds))])
    assert counts.sum() == masks.size - (masks == 255).sum()  # ignored pixels are not counted
    assert np.array_equal(counts, np.bincount(masks[masks != 255], minlength=19))
    assert (ds.cache_path / "class_frequencies.json").is_file()
    assert np.array_equal(class_frequencies(root, "train", size=SIZE, cache_dir=cache_dir), counts)
    ids = class_frequencies(root, "train", label_space="labelId", size=SIZE, cache_dir=cache_dir)
    assert ids.shape == (34,) and ids.sum() == masks.size  # every labelId 0..33 is a class there


def test_make_loader_is_deterministic(root, cache_dir):
    ds = CityscapesSegmentation(root, "train", size=SIZE, cache_dir=cache_dir)
    first = lambda seed: next(iter(make_loader(ds, 2, train=True, seed=seed)))  # noqa: E731
    a, b = first(0), first(0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    orders = {tuple(next(iter(make_loader(range(4), 4, train=True, seed=s))).tolist()) for s in range(5)}
    assert len(orders) > 1
    train = make_loader(ds, 3, train=True)
    assert len(train) == 1 and train.drop_last
    val = make_loader(ds, 3, train=False)
    assert len(val) == 2 and [len(x) for x, _ in val] == [3, 1]


def test_make_loader_with_workers_reads_the_cache(root, cache_dir):
    ds = CityscapesSegmentation(root, "val", size=SIZE, cache_dir=cache_dir)
    ds[0]  # opens the memory map in this process; workers must open their own
    batches = list(make_loader(ds, 2, train=False, num_workers=1))
    assert torch.equal(batches[0][1][0], ds[0][1])
