"""Tests of pa3.dataset_check: the dataset checker accepts good roots and names every problem with its fix.
(tests/test_data.py::test_checker_and_dataset_catch_one_bad_input holds the checker and the Dataset to the
same label rules.)"""
import numpy as np
import pytest
from PIL import Image

from helpers import make_fake_cityscapes
from pa3.dataset_check import check_dataset
from pa3.layout import DatasetError, find_pairs


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
