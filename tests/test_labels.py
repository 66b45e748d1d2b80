"""Tests of pa3.labels: the tables come from cityscapesscripts, never retyped; lookups, names and fallbacks."""
import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label, trainId2label

from pa3 import labels


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


def test_space_of_and_class_names_for():
    assert labels.space_of(19) == "trainId" and labels.space_of(34) == "labelId" and labels.space_of(3) is None
    assert labels.space_of(19, "labelId") is None  # a 19-way model is not a labelId model
    assert labels.class_names_for(19, "trainId") == labels.class_names("trainId")
    assert labels.class_names_for(34)[:2] == ["unlabeled", "ego vehicle"]
    assert labels.class_names_for(3) == ["class_0", "class_1", "class_2"]
    assert labels.class_names_for(19, "labelId") == [f"class_{i}" for i in range(19)]
