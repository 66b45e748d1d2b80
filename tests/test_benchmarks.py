"""CI smoke test of the benchmarks: every path runs at tiny sizes and checks its own correctness
(cache == naive decode, IoU == cityscapesscripts, meta FLOPs == real FLOPs, tiling == whole image when
the window is the image). No timing is asserted: timings at these sizes mean nothing."""
import json

from benchmarks import run as bench_run
from pa3.models import MODELS


def test_smoke_run_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "smoke.json"
    report = bench_run.run(smoke=True, out=out)

    assert report["failed"] == []
    saved = json.loads(out.read_text())
    assert saved["smoke"] is True
    for key in ("cpu", "cores", "torch", "date"):
        assert saved["machine"][key], key
    assert set(saved["benchmarks"]) == set(bench_run.BENCHMARKS)
    rows = saved["rows"]
    assert rows and all(set(r) == set(bench_run.COLUMNS) for r in rows)
    assert not any(str(r["met"]).startswith("error") for r in rows)
    assert not any(r["met"] in ("yes", "no") for r in rows)  # goals are not judged at smoke sizes
    names = " ".join(r["benchmark"] for r in rows)
    for what in ("cpu train step fcn", "kernel share", "loader", "eval", "train fcn", "model fcn", "full-res"):
        assert what in names, what
    eval_rows = saved["benchmarks"]["eval"]["rows"]
    assert all(r["details"]["max_abs_iou_delta"] <= 1e-6 for r in eval_rows)

    models = json.loads((tmp_path / "models_smoke.json").read_text())
    assert set(models) == set(MODELS)
    for record in models.values():
        assert record["params"] > 0 and record["gflops_512x1024"] > 0
        assert {"params", "gflops_512x1024", "peak_mem_mb"} <= set(record)

    table = capsys.readouterr().out
    assert "| benchmark" in table and "written:" in table


def test_format_table_columns():
    row = bench_run.Result("x", "1 /s", "2 /s", 0.5, ">= 1x", "no")
    lines = bench_run.format_table([row]).splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == list(bench_run.COLUMNS)
    assert "0.50x" in lines[2]


def test_gpu_check_smoke_runs_every_section_on_the_cpu(tmp_path, capsys):
    """`python -m benchmarks.gpu_check --smoke`: every path the GPU check takes, at tiny sizes on the CPU, so
    that the script cannot rot before a GPU comes. No timing or band is judged at these sizes."""
    from benchmarks import gpu_check
    from pa3.experiments import EXPERIMENTS

    report = gpu_check.run(smoke=True, out=tmp_path / "gpu.json", device="cpu")
    saved = json.loads((tmp_path / "gpu.json").read_text())
    assert saved["smoke"] is True and set(saved["sections"]) == {"check cells", "profile steps", "precision",
                                                                 "memory refusal"}
    assert [r["name"] for r in saved["sections"]["check cells"]] == list(EXPERIMENTS)
    steps = saved["sections"]["profile steps"]
    assert [r["name"] for r in steps] == [f"{p} {m}" for p in gpu_check.PROFILE_NAMES for m in MODELS]
    assert all(r["result"] == "ran" and r["images_per_s"] > 0 and r["estimate_gib"] > 0 for r in steps)
    precisions = {r["name"] for r in saved["sections"]["precision"]}
    assert {"fcn fp16+scaler channels_last", "fcn bf16 contiguous", "fcn fp32 channels_last"} <= precisions
    refusal = saved["sections"]["memory refusal"][0]
    assert refusal["result"] == "pass" and "will not fit" in refusal["details"]
    assert "| section | name | result |" in capsys.readouterr().out
    assert report["sections"] == saved["sections"]
