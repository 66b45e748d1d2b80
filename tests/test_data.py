"""pa3.data: label tables vs cityscapesscripts, layout pairing, CSV lists, the checker, the dataset,
its cache, class frequencies and the loader."""

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import make_fake_cityscapes
from pa3 import labels
from pa3.dataset_check import check_dataset
from pa3.data import CityscapesSegmentation, class_frequencies, make_loader
from pa3.layout import DatasetError, default_data_root, find_pairs, read_csv_list
from pa3.transforms import denormalize

SIZE = (32, 64)  # dataset working size; the fake frames are 64x128


def first_label(root, split="train"):
    return find_pairs(root, split)[0][1]


# -- label tables -------------------------------------------------------------------------------

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


def test_pa3_data_is_read_by_the_command_line_and_the_notebook_setup(monkeypatch, root, tmp_path):
    """$PA3_DATA is read at the edges (the CLI's --data default, the notebooks' profile); inside pa3 the default
    data root is the embedded synthetic set."""
    from pa3.cli import _data_root
    from pa3.notebook_setup import get_profile

    monkeypatch.setenv("PA3_DATA", str(root))
    assert _data_root(None) == root and _data_root(str(tmp_path)) == tmp_path
    assert get_profile("default").config.data_root == str(root)
    assert default_data_root().name == "synthetic"
    monkeypatch.setenv("PA3_DATA", str(tmp_path / "missing"))
    with pytest.raises(DatasetError, match="(?s)PA3_DATA=.*missing.*gtFine_trainvaltest.zip"):
        _data_root(None)


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
