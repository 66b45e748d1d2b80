"""Grading: trained numbers checked against expected values with tolerances measured by calibration.

Trained numbers are not portable. Another CPU's kernels (AVX2 instead of AVX-512), another thread count,
fp32 instead of bf16, or a GPU change the floats after the first step, and training amplifies that. So
the notebooks never compare a trained number as text. Instead an assertion cell calls ``check_runs``,
which compares each run's metrics with the expected values committed in ``pa3/expected/<profile>.json``:

    {"runs": {"baseline": {"miou": [0.290, 0.030], ...}, ...},    # [expected value, tolerance]
     "claims": [["unet", "baseline", "miou"], ...]}              # "unet beats baseline in mIoU"

The expected value is the committed run's; the tolerance is measured by ``benchmarks/calibrate.py``
from calibration runs that each change one factor of the committed run (seed, CPU kernels, thread
count, precision). A claim is listed only if it held in the committed run and in every calibration run.
The calibration table is ``benchmarks/calibration.md``.
"""
import math
from pathlib import Path

from pa3 import labels
from pa3.files import read_json, read_run_file

EXPECTED_DIR = Path(__file__).parent / "expected"

# What is checked in every run: (key, name in messages); "iou/<class>" is that class's IoU.
CHECKED = [("miou", "mIoU"), ("pixel_acc", "pixel accuracy")] + [
    (f"iou/{name}", f"IoU of {name}") for name in labels.REPORT_CLASSES]
METRIC_NAMES = dict(CHECKED)


def checked_values(metrics):
    """{key: value} of the numbers ``check_runs`` checks, from a run's metrics.json dict (fractions; a NaN, which
    JSON stores as null, comes back as NaN and fails its band)."""
    values = {key: float("nan") if metrics[key] is None else float(metrics[key]) for key in ("miou", "pixel_acc")}
    for name in labels.REPORT_CLASSES:
        value = metrics["iou"].get(name)  # {class name: IoU}; null for a class absent from both
        values[f"iou/{name}"] = float("nan") if value is None else float(value)
    return values


def expected_path(profile_name):
    return EXPECTED_DIR / f"{profile_name}.json"


def calibration_table(profile_name):
    """The benchmarks/ file that says how a profile's bands were measured (the student edition has the grading
    profile's)."""
    return "benchmarks/calibration.md" if profile_name == "default" else f"benchmarks/calibration_{profile_name}.md"


def load_expected(profile_name):
    """The expected values of ``profile_name``, or None when the profile has none (e.g. "full")."""
    path = expected_path(profile_name)
    if not path.exists():
        return None
    expected = read_json(path, "expected-values file", f"Restore it with git (git checkout -- {path.name}) or "
                         f"rewrite it with python -m benchmarks.calibrate", keys=("runs",))
    return {"runs": expected["runs"], "claims": expected.get("claims", [])}


def _run_metrics(name, profile):
    from pa3.experiments import run_dir

    return read_run_file(run_dir(name, profile), "metrics.json", keys=("miou", "pixel_acc", "iou"))


def band_failures(name, values, bands):
    """Messages for every value of run ``name`` outside its band; [] when all are inside."""
    failures = []
    for key, (center, tolerance) in bands.items():
        value = values.get(key, float("nan"))
        if not (math.isfinite(value) and abs(value - center) <= tolerance):
            failures.append(f"{name}: {METRIC_NAMES.get(key, key)} {value:.3f} outside the expected band "
                            f"{center:.3f} ± {tolerance:.3f}")
    return failures


def claim_failures(claims, values):
    """[(better, worse, message)] for every claim ``[better, worse, key]`` between two runs of ``values``
    ({run: checked_values}) that does not hold; claims naming a run outside ``values`` are not checked."""
    return [(better, worse, f"claim '{better} beats {worse} in {METRIC_NAMES[key]}' does not hold: "
                            f"{values[better][key]:.3f} vs {values[worse][key]:.3f}")
            for better, worse, key in claims
            if better in values and worse in values and not values[better][key] > values[worse][key]]


def check_runs(names, profile):
    """Assert that the trained numbers of experiments ``names`` lie in their calibrated bands.

    Also checks every calibrated claim ("a beats b in mIoU") whose two experiments are both in ``names``.
    Prints one line when everything holds (the same line on every machine); raises AssertionError naming
    each metric outside its band, the band and the value found.
    """
    expected = load_expected(profile.name)
    if expected is None:
        print(f"no expected values for profile {profile.name!r}: nothing to check")
        return
    failures, checked = [], 0
    values = {}
    for name in names:
        if name not in expected["runs"]:
            raise ValueError(f"{expected_path(profile.name)} has no expected values for {name!r}; "
                             f"recalibrate with python -m benchmarks.calibrate")
        values[name] = checked_values(_run_metrics(name, profile))
        failures += band_failures(name, values[name], expected["runs"][name])
        checked += len(expected["runs"][name])
    claims = [c for c in expected["claims"] if c[0] in values and c[1] in values]
    failures += [message for _, _, message in claim_failures(claims, values)]
    if failures:
        raise AssertionError(f"trained numbers outside their calibrated bands ({expected_path(profile.name).name}, "
                             f"measured in {calibration_table(profile.name)}):\n" + "\n".join(failures))
    said = f"; {len(claims)} calibrated claim{' holds' if len(claims) == 1 else 's hold'}" if claims else ""
    print(f"{', '.join(names)}: {checked} trained numbers within their calibrated bands{said}")
