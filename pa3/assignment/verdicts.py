"""The grader's verdicts on the task checks, decided outside the sandbox.

A task's graded checks are the ``check_*`` functions of ``checks/hidden/task<N>.py``. Each returns values: what the
pa3 it imports computes for fixed inputs. The sandbox runs them with the submission's pa3 (``runner.py``); the
grader runs them here with its own (the reference) and compares: every value equal to the reference's (numbers
and tensors within a relative 1e-4), or, where a check has a ``judge_*`` of the same name (random augmentations,
the layer-by-layer model checks), that function's message. The expected values never enter the sandbox, and what
comes back from it is only ever compared, never believed.
"""
import functools
import importlib.util
import math
import sys
from pathlib import Path

import torch

from pa3.assignment import probe
from pa3.assignment.check import explain
from pa3.assignment.runner import from_json_value, to_json_value

CHECKS = Path(__file__).parent / "checks" / "hidden"


@functools.lru_cache(maxsize=None)
def check_module(task, checks_dir=CHECKS):
    """The graded checks of ``task`` as a module, imported once with the pa3 of this process."""
    sys.modules.setdefault("pa3_probe", probe)  # the name the checks import it by (in the sandbox: a copy)
    path = Path(checks_dir) / f"task{task}.py"
    spec = importlib.util.spec_from_file_location(f"pa3_graded_task{task}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_names(module):
    return [name for name in vars(module) if name.startswith("check_")]


def reference_values(tasks, checks_dir=CHECKS):
    """{task: {check: values}} computed with this process's pa3, in the form they come back from the sandbox."""
    values = {}
    for task in tasks:
        module = check_module(task, checks_dir)
        values[task] = {name: from_json_value(to_json_value(getattr(module, name)()))
                        for name in check_names(module)}
    return values


def judge_task(task, rows, reference, checks_dir=CHECKS, why_missing="it did not run"):
    """[(check, message)] of the failed checks of ``task``: ``rows`` are the sandbox's {check: row} (row holds
    "values" or "error"), ``reference`` this release's {check: values}."""
    module = check_module(task, checks_dir)
    failures = []
    if "import" in rows and "error" in rows["import"]:
        return [("task checks (import)", explain(f"importing what the checks use raised "
                                                 f"{_clip(str(rows['import']['error']), 600)}"))]
    for name in check_names(module):
        label = name.removeprefix("check_")
        what = (getattr(module, name).__doc__ or label).strip()
        row = rows.get(name)
        if row is None:
            failures.append((label, f"{what}: no result ({why_missing})"))
        elif "error" in row:
            failures.append((label, explain(f"{what}: raised {_clip(str(row['error']), 600)}")))
        else:
            try:
                mine = from_json_value(row.get("values"))
                judge = getattr(module, f"judge_{label}", None)
                message = judge(mine, reference[name]) if judge else compare(mine, reference[name], what)
            except Exception as error:  # values of an unexpected form
                message = f"{what}: returned values of an unexpected form ({type(error).__name__}: {error})"
            if message:
                failures.append((label, _clip(explain(message), MAX_MESSAGE)))
    return failures


MAX_MESSAGE = 2000  # characters of one failure's message: what the sandbox sent back is shown, not all of it


def _clip(text, width):
    return text if len(text) <= width else text[:width - 25] + f" [... {len(text) - width + 25} more characters]"


def compare(mine, reference, what):
    """None when ``mine`` equals ``reference`` key by key (numbers and tensors within a relative 1e-4), else a
    message naming the first value that differs, yours and the reference's."""
    if not isinstance(mine, dict) or set(mine) != set(reference):
        return f"{what}: returned {_show(mine)} where the reference returns values for {sorted(reference)}"
    for key, ref in reference.items():
        if not same(mine[key], ref):
            return f"{what}: `{key}` is {_show(mine[key])}; the reference's is {_show(ref)}"
    return None


def same(a, b):
    if torch.is_tensor(b) or torch.is_tensor(a):
        if not (torch.is_tensor(a) and torch.is_tensor(b)) or a.shape != b.shape:
            return False
        if a.dtype.is_floating_point or b.dtype.is_floating_point:
            return bool(torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-6, equal_nan=True))
        return bool(torch.equal(a.long(), b.long()))
    if isinstance(b, float) or isinstance(a, float):
        if not isinstance(a, (int, float)) or isinstance(a, bool):
            return False
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)
    if isinstance(b, list):
        return isinstance(a, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(b, dict):
        return isinstance(a, dict) and set(a) == set(b) and all(same(a[k], b[k]) for k in b)
    return type(a) is type(b) and a == b


def _show(value, width=300):
    if torch.is_tensor(value):
        shown = value.flatten()[:12].tolist()
        if value.dtype.is_floating_point:
            shown = [round(v, 5) for v in shown]
        text = f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}: {shown}" + \
               (" ..." if value.numel() > 12 else "")
    elif isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."
