"""Tests for pa3.grading: trained numbers against calibrated bands, with messages a grader can act on."""
import dataclasses
import json

import pytest

from pa3 import grading, labels
from pa3.notebook_setup import get_profile


def _metrics(miou, building=0.6):
    iou = {name: 0.0 for name in labels.class_names("trainId")}
    iou.update({"building": building, "traffic sign": 0.1, "person": 0.05, "car": 0.7, "bicycle": 0.02})
    return {"status": "complete", "miou": miou, "pixel_acc": 0.8, "iou": iou}


@pytest.fixture
def graded(tmp_path, monkeypatch):
    """A profile whose runs live in tmp_path, with expected values for 'baseline' and 'unet'."""
    profile = dataclasses.replace(get_profile("default"), name="graded", runs_dir=str(tmp_path / "runs"))
    for name, miou in (("baseline", 0.30), ("unet", 0.35)):
        folder = tmp_path / "runs" / "graded" / name
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(_metrics(miou)))
    bands = lambda miou: {**{key: [v, 0.02] for key, v in grading.checked_values(_metrics(miou)).items()},
                          "miou": [miou, 0.03]}
    expected = {"runs": {"baseline": bands(0.30), "unet": bands(0.35)}, "claims": [["unet", "baseline", "miou"]]}
    monkeypatch.setattr(grading, "EXPECTED_DIR", tmp_path / "expected")
    (tmp_path / "expected").mkdir()
    (tmp_path / "expected" / "graded.json").write_text(json.dumps(expected))
    return profile, tmp_path / "runs" / "graded"


def test_values_in_their_bands_pass_with_one_line(graded, capsys):
    profile, _ = graded
    grading.check_runs(["baseline", "unet"], profile)
    assert capsys.readouterr().out == ("baseline, unet: 14 trained numbers within their calibrated bands; "
                                       "1 calibrated claim holds\n")


def test_a_run_10_points_off_fails_naming_metric_band_and_value(graded):
    profile, runs = graded
    (runs / "baseline" / "metrics.json").write_text(json.dumps(_metrics(0.20)))
    with pytest.raises(AssertionError) as error:
        grading.check_runs(["baseline"], profile)
    assert "baseline: mIoU 0.200 outside the expected band 0.300 ± 0.030" in str(error.value)


def test_a_claim_that_no_longer_holds_fails(graded):
    profile, runs = graded
    (runs / "unet" / "metrics.json").write_text(json.dumps(_metrics(0.29)))
    expected = json.loads((grading.EXPECTED_DIR / "graded.json").read_text())
    expected["runs"]["unet"]["miou"] = [0.30, 0.05]  # inside its band, but below the baseline
    (grading.EXPECTED_DIR / "graded.json").write_text(json.dumps(expected))
    with pytest.raises(AssertionError, match="claim 'unet beats baseline in mIoU' does not hold: 0.290 vs 0.300"):
        grading.check_runs(["baseline", "unet"], profile)


def test_nan_is_outside_every_band():
    failures = grading.band_failures("x", {"miou": float("nan")}, {"miou": [0.3, 0.1]})
    assert failures == ["x: mIoU nan outside the expected band 0.300 ± 0.100"]


def test_profile_without_expected_values_says_so(graded, capsys):
    profile, _ = graded
    grading.check_runs(["baseline"], dataclasses.replace(profile, name="full"))
    assert "no expected values for profile 'full'" in capsys.readouterr().out


def test_missing_run_and_unknown_experiment_are_clear(graded):
    profile, runs = graded
    with pytest.raises(ValueError, match="no expected values for 'dice'"):
        grading.check_runs(["dice"], profile)
    (runs / "unet" / "metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"unet[/\\]metrics.json does not exist: train that run first"):
        grading.check_runs(["unet"], profile)


def test_committed_expected_values_cover_every_experiment():
    from pa3.experiments import EXPERIMENTS

    expected = grading.load_expected("default")
    assert expected is not None, "pa3/expected/default.json is committed"
    assert set(expected["runs"]) == set(EXPERIMENTS)
    for bands in expected["runs"].values():
        assert set(bands) == {key for key, _ in grading.CHECKED}
        assert all(tolerance >= 0.02 for _, tolerance in bands.values())
