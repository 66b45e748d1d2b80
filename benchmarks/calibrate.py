"""Calibrate the tolerances of the notebooks' checks of trained numbers (pa3.grading).

Trains every experiment of the default profile once as committed and once per calibration variant,
each variant changing one factor, then writes the expected values and tolerances:

    python -m benchmarks.calibrate run committed                 # into runs/default (what the notebooks reuse)
    python -m benchmarks.calibrate run seed --runs-dir /tmp/cal  # likewise threads, fp32, kernels
    python -m benchmarks.calibrate summarize --runs-dir /tmp/cal # -> pa3/expected/default.json, calibration.md

``--profile grading`` calibrates the profile that grades submissions of the student edition (pa3.assignment)
instead: every student runs seed 0, so its variants are threads, fp32 and kernels (no seed), and it writes
pa3/expected/grading.json and benchmarks/calibration_grading.md.

A tolerance is twice the largest deviation from the committed value over the variants, and at least
TOLERANCE_FLOOR. A claim "a beats b in mIoU" is kept only if it held, by at least CLAIM_MARGIN, in the
committed run and in every variant.
"""
import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# variant -> (environment, profile fields): each differs from the committed run in one factor
VARIANTS = {
    "committed": ({}, {}),
    "seed": ({}, {"seed": 1}),
    "threads": ({"PA3_THREADS": "2", "OMP_NUM_THREADS": "2"}, {}),
    "fp32": ({"PA3_AMP": "off"}, {}),
    "kernels": ({"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}, {}),
}
DESCRIPTIONS = {
    "committed": "the committed run: seed 0, 1 thread, AVX-512 kernels, bf16 autocast (native on this CPU)",
    "seed": "seed 1 instead of 0 (initial weights, data order, augmentation)",
    "threads": "2 torch threads instead of 1 (other reduction orders)",
    "fp32": "fp32 instead of bf16 autocast (PA3_AMP=off): what a CPU without native bf16 runs",
    "kernels": "ATen and oneDNN limited to AVX2 (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2); "
               "pa3 then also trains in fp32, as on an AVX2-only machine",
}
TOLERANCE_FACTOR = 2.0
TOLERANCE_FLOOR = 0.02  # 2 points: below this the bands would be narrower than a grader can rely on
CLAIM_MARGIN = 0.01
REPO = Path(__file__).resolve().parents[1]


PROFILE = os.environ.get("PA3_CALIBRATE_PROFILE", "default")  # set by --profile (and passed to the _train process)
SEEDLESS = ("grading",)  # profiles whose runs always use seed 0: no "seed" variant


def _report_path(profile):
    return REPO / "benchmarks" / ("calibration.md" if profile == "default" else f"calibration_{profile}.md")


def _profile(variant, runs_dir):
    from pa3.notebook_setup import setup_notebook

    profile = setup_notebook(PROFILE)
    changes = dict(VARIANTS[variant][1])
    if runs_dir is not None:
        changes["runs_dir"] = str(Path(runs_dir) / variant)
    return dataclasses.replace(profile, **changes)


def train(variant, runs_dir):
    """Train every experiment of the profile under ``variant`` (in this process)."""
    from pa3.experiments import EXPERIMENTS, run_dir, run_experiment

    profile = _profile(variant, runs_dir)
    for name in EXPERIMENTS:
        started = time.perf_counter()
        run_experiment(name, profile)
        seconds = time.perf_counter() - started
        (run_dir(name, profile) / "calibration_seconds.txt").write_text(f"{seconds:.1f}\n")
        print(f"{variant}: {name} done in {seconds:.0f} s", flush=True)


def run(variant, runs_dir):
    """Train ``variant`` in a fresh process with its environment (kernel settings act at start-up).

    It runs in notebooks/, as the notebooks do: a run's config holds the data folder as seen from there
    ("../data/synthetic"), and only a run with the notebooks' exact config is reused by them.
    """
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": pythonpath, "PA3_CALIBRATE_PROFILE": PROFILE,
           **VARIANTS[variant][0]}
    command = [sys.executable, "-m", "benchmarks.calibrate", "_train", variant]
    if runs_dir is not None:
        command += ["--runs-dir", str(Path(runs_dir).resolve())]
    subprocess.run(command, env=env, cwd=REPO / "notebooks", check=True)


def _load(variant, runs_dir):
    from pa3.experiments import EXPERIMENTS, run_dir
    from pa3.grading import checked_values

    profile = _profile(variant, None if variant == "committed" else runs_dir)
    values, ends = {}, {}
    for name in EXPERIMENTS:
        folder = run_dir(name, profile)
        if variant != "committed" and not (folder / "metrics.json").exists():
            continue  # not (yet) trained in this variant: shown as "-", not counted
        metrics = json.loads((folder / "metrics.json").read_text())
        if metrics.get("status") != "complete":
            continue
        history = json.loads((folder / "history.json").read_text())
        values[name] = checked_values(metrics)
        ends[name] = [row["miou"] for row in history[-3:]]
    return values, ends


def summarize(runs_dir, variants):
    from pa3.experiments import EXPERIMENTS
    from pa3.grading import CHECKED, expected_path

    committed, committed_ends = _load("committed", runs_dir)
    others = {v: _load(v, runs_dir) for v in variants}
    expected = {"runs": {}, "claims": []}
    rows = []
    for name in EXPERIMENTS:
        bands = {}
        for key, label in CHECKED:
            center = committed[name][key]
            found = {v: others[v][0][name][key] for v in variants if name in others[v][0]}
            deviation = max(abs(x - center) for x in found.values())
            tolerance = max(TOLERANCE_FACTOR * deviation, TOLERANCE_FLOOR)
            bands[key] = [round(center, 4), round(tolerance, 4)]
            rows.append((name, label, center, found, deviation, tolerance))
        expected["runs"][name] = bands
    all_runs = [committed] + [others[v][0] for v in variants]
    for better in EXPERIMENTS:
        for worse in EXPERIMENTS:
            both = [r for r in all_runs if better in r and worse in r]
            if better != worse and all(r[better]["miou"] - r[worse]["miou"] >= CLAIM_MARGIN for r in both):
                expected["claims"].append([better, worse, "miou"])
    path = expected_path(PROFILE)
    path.parent.mkdir(exist_ok=True)
    runs = [f" {json.dumps(name)}: {json.dumps(bands)}" for name, bands in expected["runs"].items()]
    path.write_text('{"runs": {\n' + ",\n".join(runs) + '\n},\n"claims": ' + json.dumps(expected["claims"]) + "}\n")

    ends = {"committed": committed_ends, **{v: others[v][1] for v in variants}}
    lines = [f"# Calibration of the notebooks' checks ({PROFILE} profile)", "",
             f"Written by `python -m benchmarks.calibrate summarize --profile {PROFILE}`; the bands are in "
             f"`pa3/expected/{PROFILE}.json`.",
             "Each variant retrains every experiment from scratch and differs from the committed run in one factor:", ""]
    lines += [f"- **{v}**: {DESCRIPTIONS[v]}" for v in ["committed", *variants]]
    lines += ["", f"Tolerance = max({TOLERANCE_FACTOR:g} × largest deviation from the committed value, "
              f"{TOLERANCE_FLOOR:g}). Values are fractions (0.30 = 30 %).", "",
              "| experiment | metric | committed | " + " | ".join(variants) + " | max deviation | tolerance |",
              "|---|---|--:|" + "--:|" * len(variants) + "--:|--:|"]
    for name, label, center, found, deviation, tolerance in rows:
        lines.append(f"| {name} | {label} | {center:.3f} | "
                     + " | ".join(f"{found[v]:.3f}" if v in found else "-" for v in variants)
                     + f" | {deviation:.3f} | {tolerance:.3f} |")
    lines += ["", "## Claims that held in every run (by at least "
              f"{CLAIM_MARGIN:g} mIoU)", ""]
    lines += [f"- {a} beats {b} in mIoU" for a, b, _ in expected["claims"]] or ["- none"]
    lines += ["", "## Convergence: the last three validation mIoUs of every run", "",
              "| experiment | " + " | ".join(ends) + " |", "|---|" + "---|" * len(ends)]
    for name in EXPERIMENTS:
        lines.append(f"| {name} | " + " | ".join(" / ".join(f"{100 * x:.1f}" for x in ends[v][name]) if name in ends[v]
                                                  else "-" for v in ends) + " |")
    _report_path(PROFILE).write_text("\n".join(lines) + "\n")
    print(f"wrote {path.relative_to(REPO)} and {_report_path(PROFILE).relative_to(REPO)}")


def main(argv=None):
    global PROFILE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=PROFILE, choices=("default", "grading"),
                        help="the profile to calibrate (default: default)")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("run", "_train"):
        p = sub.add_parser(command)
        p.add_argument("variant", choices=list(VARIANTS))
        p.add_argument("--runs-dir", help="root of the variants' run folders (not used for 'committed')")
    p = sub.add_parser("summarize")
    p.add_argument("--runs-dir", required=True)
    p.add_argument("--variants", nargs="+", help="default: every variant (but seed for a seedless profile)")
    args = parser.parse_args(argv)
    PROFILE = args.profile
    if args.command == "summarize":
        skip = ("committed", "seed") if PROFILE in SEEDLESS else ("committed",)
        summarize(args.runs_dir, args.variants or [v for v in VARIANTS if v not in skip])
        return
    runs_dir = None if args.variant == "committed" else (args.runs_dir or "/tmp/pa3-calibration")
    (train if args.command == "_train" else run)(args.variant, runs_dir)


if __name__ == "__main__":
    main()
