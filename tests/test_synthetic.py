"""Tests for pa3.synthetic: determinism, Cityscapes layout, label contents, the stamp, class skew."""
import hashlib
import json
import re

import numpy as np
import pytest
from PIL import Image

from pa3 import synthetic
from pa3.synthetic import SyntheticConfig, ensure_synthetic, generate, render_scene

TINY = SyntheticConfig(n_train=4, n_val=2, n_test=2, height=64, width=128, seed=0)
IMAGE_RE = re.compile(r"^(\w+)_(\d{6})_(\d{6})_leftImg8bit\.png$")
REPORT_IDS = (11, 20, 24, 26, 33)  # building, traffic sign, person, car, bicycle


def _digest(root):
    """{relative path: sha256} of every file under root."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("syn") / "data", TINY, workers=1, progress=False)


def test_same_seed_same_bytes_any_worker_count(tiny, tmp_path):
    again = generate(tmp_path / "again", TINY, workers=2, progress=False)
    assert _digest(tiny) == _digest(again)


def test_different_seed_different_bytes(tiny, tmp_path):
    other = generate(tmp_path / "other", SyntheticConfig(**{**vars(TINY), "seed": 1}), workers=1, progress=False)
    a, b = _digest(tiny), _digest(other)
    assert a.keys() == b.keys()
    images = [k for k in a if k.endswith("_leftImg8bit.png")]
    assert all(a[k] != b[k] for k in images)


def test_cityscapes_layout_and_names(tiny):
    counts = {"train": TINY.n_train, "val": TINY.n_val, "test": TINY.n_test}
    for split, n in counts.items():
        images = sorted((tiny / "leftImg8bit" / split).glob("*/*.png"))
        assert len(images) == n
        for img in images:
            m = IMAGE_RE.match(img.name)
            assert m, img.name
            city = img.parent.name
            assert m.group(1) == city and city in synthetic.CITIES[split]
            gt = tiny / "gtFine" / split / city / img.name.replace("_leftImg8bit.png", "")
            for suffix in ("labelIds.png", "instanceIds.png", "color.png", "polygons.json"):
                assert gt.with_name(f"{gt.name}_gtFine_{suffix}").is_file()
    assert json.loads((tiny / "pa3_synthetic.json").read_text())["generator_version"] == synthetic.GENERATOR_VERSION


def test_label_files_look_like_cityscapes(tiny):
    for lab_path in sorted(tiny.glob("gtFine/*/*/*_gtFine_labelIds.png")):
        stem = lab_path.name[: -len("_labelIds.png")]
        with Image.open(lab_path) as im:
            assert im.mode == "L"
            lab = np.array(im)
        assert lab.dtype == np.uint8 and lab.shape == (TINY.height, TINY.width)
        assert lab.max() <= 33 and not (lab == 255).any()
        inst_path = lab_path.with_name(f"{stem}_instanceIds.png")
        assert inst_path.read_bytes()[24] == 16  # PNG IHDR bit depth: 16-bit like Cityscapes
        with Image.open(inst_path) as im:
            inst = np.array(im).astype(np.int64)
        things = inst >= 1000
        assert np.array_equal(np.where(things, inst // 1000, inst), lab)  # instance ids agree with labels
        assert set(np.unique(inst[things] // 1000)) <= {24, 25, 26, 33}
        with Image.open(lab_path.with_name(f"{stem}_color.png")) as im:
            assert im.mode == "RGBA"
        poly = json.loads(lab_path.with_name(f"{stem}_polygons.json").read_text())
        assert (poly["imgHeight"], poly["imgWidth"]) == (TINY.height, TINY.width)


def test_every_split_has_the_report_classes(tiny):
    for split in ("train", "val", "test"):
        present = set()
        for p in (tiny / "gtFine" / split).glob("*/*_gtFine_labelIds.png"):
            present |= set(np.unique(np.array(Image.open(p))).tolist())
        assert set(REPORT_IDS) <= present, (split, set(REPORT_IDS) - present)


def test_every_scene_has_car_person_sign_rider_bicycle():
    for i in range(6):
        image, lab, inst = render_scene(np.random.default_rng([3, 0, i]), 128, 256)
        assert image.shape == (128, 256, 3) and image.dtype == np.uint8
        assert lab.dtype == np.uint8 and inst.dtype == np.uint16
        counts = np.bincount(lab.ravel(), minlength=34)
        assert all(counts[c] >= 4 for c in (20, 24, 25, 26, 33)), counts


def test_class_frequencies_are_skewed_like_cityscapes():
    counts = np.zeros(34, np.int64)
    for i in range(12):
        counts += np.bincount(render_scene(np.random.default_rng([0, 0, i]), 128, 256)[1].ravel(), minlength=34)
    freq = counts / counts.sum()
    assert freq[[7, 11, 21, 23]].sum() > 0.5  # road, building, vegetation, sky
    assert all(0 < freq[c] < 0.03 for c in (20, 24, 33))  # traffic sign, person, bicycle


def test_ensure_synthetic_reuses_then_regenerates(tmp_path, capsys):
    root = tmp_path / "data"
    ensure_synthetic(root, TINY)
    assert "generated" in capsys.readouterr().out
    stamp = root / "pa3_synthetic.json"
    first = next(root.glob("leftImg8bit/train/*/*.png"))
    mtimes = (stamp.stat().st_mtime_ns, first.stat().st_mtime_ns)
    ensure_synthetic(root, TINY)
    assert "reused" in capsys.readouterr().out
    assert (stamp.stat().st_mtime_ns, first.stat().st_mtime_ns) == mtimes
    bigger = SyntheticConfig(**{**vars(TINY), "n_val": 3})
    ensure_synthetic(root, bigger)
    assert "generated" in capsys.readouterr().out
    assert len(list(root.glob("leftImg8bit/val/*/*.png"))) == 3
    assert json.loads(stamp.read_text())["config"]["n_val"] == 3


def test_generate_refuses_a_folder_it_did_not_write(tmp_path):
    real = tmp_path / "cityscapes"
    label = real / "gtFine" / "val" / "lindau" / "lindau_000000_000019_gtFine_labelIds.png"
    label.parent.mkdir(parents=True)
    label.write_bytes(b"not ours")
    with pytest.raises(FileExistsError, match=r"no pa3_synthetic\.json.*would delete it.*--root NEW_FOLDER"):
        generate(real, TINY, workers=1, progress=False)
    with pytest.raises(FileExistsError):
        ensure_synthetic(real, TINY)
    assert label.read_bytes() == b"not ours" and not (real / synthetic.SYNTHETIC_STAMP).exists()


def test_interrupted_generation_is_redone(tmp_path):
    root = generate(tmp_path / "syn", TINY, workers=1, progress=False)
    stamp = root / synthetic.SYNTHETIC_STAMP
    # as a run killed mid-way leaves it: the stamp says incomplete, some files are missing
    stamp.write_text(json.dumps({**json.loads(stamp.read_text()), "complete": False}))
    victim = next((root / "gtFine").rglob("*_gtFine_labelIds.png"))
    victim.unlink()
    ensure_synthetic(root, TINY)
    assert victim.exists() and "complete" not in json.loads(stamp.read_text())


def test_short_path_hides_the_machine_prefix_inside_the_project(tmp_path, monkeypatch):
    import pa3

    monkeypatch.setenv("PA3_HOME", str(tmp_path))
    (tmp_path / "data" / "synthetic").mkdir(parents=True)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert pa3.short_path(tmp_path / "data" / "synthetic") == "../data/synthetic"
    assert pa3.short_path("/somewhere/else") == "/somewhere/else"


def test_short_path_does_not_follow_a_linked_data_folder(tmp_path, monkeypatch):
    """A grader links the embedded set into a submission: the notebooks must print what the student's own
    data folder printed (../data/synthetic), not the link's target."""
    import pa3

    elsewhere = tmp_path / "elsewhere" / "synthetic"
    elsewhere.mkdir(parents=True)
    home = tmp_path / "submission"
    (home / "data").mkdir(parents=True)
    (home / "notebooks").mkdir()
    (home / "data" / "synthetic").symlink_to(elsewhere, target_is_directory=True)
    monkeypatch.setenv("PA3_HOME", str(home))
    monkeypatch.chdir(home / "notebooks")
    assert pa3.short_path(home / "data" / "synthetic") == "../data/synthetic"
    linked_home = tmp_path / "linked"  # the project itself reached through a link
    linked_home.symlink_to(home, target_is_directory=True)
    monkeypatch.setenv("PA3_HOME", str(linked_home))
    assert pa3.short_path(linked_home / "data" / "synthetic") == "../data/synthetic"


def test_default_set_is_the_same_without_numpy_simd(tmp_path):
    """The default set, generated with numpy's AVX2 and AVX-512 code paths off, matches the committed
    manifest (data/synthetic.sha256) pixel for pixel: the data does not depend on the CPU."""
    import os
    import subprocess
    import sys

    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    active = [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(active)}
    script = ("import sys; from numpy._core._multiarray_umath import __cpu_features__ as f; "
              f"assert not any(f[n] for n in {active!r}), 'SIMD still on'; "
              "from pa3.synthetic import generate; generate(sys.argv[1], progress=False)")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "set")], env=env, check=True)
    expected = synthetic.read_manifest()
    found = synthetic.checksums(tmp_path / "set")
    differing = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
    assert not differing, f"{len(differing)} files differ from {synthetic.MANIFEST.name}, e.g. {differing[:3]}"


def test_manifest_lines_are_checked(tmp_path):
    bad = tmp_path / "bad.sha256"
    bad.write_text("abc  leftImg8bit/x.png\n")
    with pytest.raises(ValueError, match="bad.sha256 is not a checksum manifest: line 1"):
        synthetic.read_manifest(bad)
