"""What runs inside the grading sandbox: ``python -I /grader/runner.py MODE ROOT ...``.

The grader writes the job to its stdin as one JSON line, ``{"secret": ..., "kernel_env": {...}}`` (the notebook
kernels' environment). It hands values back, never verdicts (the grader decides outside, ``pa3.assignment.verdicts``),
as JSON lines on stdout that start with the secret (code of the submission never sees it):

- ``[--contained] import ROOT``: imports the submission's pa3 (the one in ROOT) and its modules; one line
  ``{"imported": where}``;
- ``checks ROOT N ...``: for task N, every ``check_*`` function of /grader/checks/task<N>.py, run with the
  submission's pa3: ``{"task": N, "check": name, "values": ...}`` or ``{..., "error": "Type: message (at ...)"}``;
- ``notebooks ROOT DEADLINE NAME ...``: executes notebooks/NAME.ipynb of ROOT in order (nbclient, a fresh kernel
  each with the job's ``kernel_env`` and ROOT on its PYTHONPATH, errors kept as outputs, like nbval):
  ``{"notebook": NAME, "cells": [outputs of each code cell], "stopped": why or None}``.

With ``--contained`` (the grader gives it in a sandbox only), before a notebook's line is written every other
process of the sandbox is killed, and the runner cannot be traced or read by them (``PR_SET_DUMPABLE`` 0), so a
kernel cannot rewrite what comes back. Imports only the standard library at the top (this file is copied into the
sandbox's helper folder).
"""
import json
import os
import signal
import sys
import time
import traceback

HELPER_DIR = os.path.dirname(os.path.abspath(__file__))  # /grader in the sandbox: this file, the checks


# ---------------------------------------------------------------------------------------------------------
# values: JSON with tensors (both sides)

DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")


def to_json_value(value):
    """A JSON-able form of ``value``: numbers, strings, None, lists/tuples, dicts with str keys, tensors and numpy
    arrays (as {"__tensor__": [dtype, shape, flat values]}); anything else as its repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if type(value).__module__ == "numpy" or type(value).__name__ == "ndarray":
        import torch
        value = torch.as_tensor(value) if getattr(value, "ndim", 0) else value.item()
        if not hasattr(value, "dtype"):
            return value
    if type(value).__name__ == "Tensor" or type(value).__module__.startswith("torch"):
        try:
            dtype = str(value.dtype).removeprefix("torch.")
            flat = value.detach().cpu()
            flat = (flat.float() if dtype in ("float16", "bfloat16") else flat).reshape(-1).tolist()
            return {"__tensor__": [dtype, list(value.shape), flat]}
        except Exception:
            pass
    return repr(value)


def from_json_value(value):
    """The values ``to_json_value`` wrote, tensors back as torch tensors (of the listed dtypes only)."""
    import torch
    if isinstance(value, list):
        return [from_json_value(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__tensor__"}:
            dtype, shape, flat = value["__tensor__"]
            if dtype not in DTYPES:
                raise ValueError(f"a tensor of dtype {dtype!r}")
            return torch.tensor(flat, dtype=getattr(torch, dtype)).reshape(shape)
        return {k: from_json_value(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------------------------------------
# inside the sandbox

def _emit(secret, row):
    sys.stdout.write(f"\n{secret} {json.dumps(row)}\n")
    sys.stdout.flush()


def _raised_at(error, root):
    """' (raised at pa3/x.py line N)' for the innermost frame of the submission's code, else ''."""
    frames = traceback.extract_tb(error.__traceback__)
    for frame in reversed(frames):
        if frame.filename.startswith(root.rstrip("/") + "/"):
            return f" (raised at {os.path.relpath(frame.filename, root)} line {frame.lineno})"
    return ""


def _undumpable():
    """No other process of the sandbox (same uid) may trace this one or open its /proc files."""
    import ctypes
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4


def _kill_the_others():
    """SIGKILL to every other process of the sandbox's pid namespace (pid 1, bwrap, is spared by the kernel)."""
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
    time.sleep(0.05)


def run_import(secret, root):
    import pa3
    for name in ("metrics", "losses", "transforms", "models", "experiments"):
        __import__(f"pa3.{name}")
    _emit(secret, {"imported": os.path.realpath(pa3.__file__)})


def run_graded_checks(secret, root, tasks):
    import importlib
    sys.path[:0] = [os.path.join(HELPER_DIR, "checks"), HELPER_DIR]
    for task in tasks:
        _emit(secret, {"task": task, "start": True})
        try:
            module = importlib.import_module(f"task{task}")
        except BaseException as error:  # noqa: BLE001 - the submission's import may raise anything
            _emit(secret, {"task": task, "check": "import", "error": f"{type(error).__name__}: {error}"
                                                                      f"{_raised_at(error, root)}"})
            _emit(secret, {"task": task, "end": True})
            continue
        for name in [n for n in vars(module) if n.startswith("check_")]:
            try:
                row = {"task": task, "check": name, "values": to_json_value(getattr(module, name)())}
            except BaseException as error:  # noqa: BLE001
                row = {"task": task, "check": name,
                       "error": f"{type(error).__name__}: {error}{_raised_at(error, root)}"}
            _emit(secret, row)
        _emit(secret, {"task": task, "end": True})


def execute_notebooks(secret, root, names, deadline, contained, kernel_env):
    import nbformat
    from nbclient import NotebookClient

    env = {**kernel_env, "PYTHONPATH": root}  # the submission's pa3 for the kernel (this process runs isolated from it)
    for name in names:
        path = os.path.join(root, "notebooks", f"{name}.ipynb")
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs = []
                if "NBVAL_SKIP" in cell.source or "nbval-skip" in cell.metadata.get("tags", []):
                    cell.source = ""  # not run (the grader skips its comparison)
        client = NotebookClient(notebook, kernel_name="python3", allow_errors=True, record_timing=False,
                                timeout=None, timeout_func=lambda cell: max(1, int(deadline - time.time())),
                                resources={"metadata": {"path": os.path.join(root, "notebooks")}})
        stopped = None
        try:
            client.execute(env=env, stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"))
        except BaseException as error:  # noqa: BLE001 - a timeout, a dead kernel
            stopped = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        if contained:
            _kill_the_others()
        cells = [cell.get("outputs", []) if cell.get("execution_count") or cell.get("outputs") else None
                 for cell in notebook.cells if cell.cell_type == "code"]
        _emit(secret, {"notebook": name, "cells": cells, "stopped": stopped})
        if time.time() >= deadline:
            break


def main(argv):
    _undumpable()
    job = json.loads(sys.stdin.readline())
    sys.stdin.close()
    secret = job["secret"]
    contained = argv[0] == "--contained"  # in a sandbox's own pid namespace: may kill every other process
    mode, root, rest = argv[contained], argv[contained + 1], argv[contained + 2:]
    os.chdir(root)
    if mode == "notebooks":
        execute_notebooks(secret, root, rest[1:], deadline=float(rest[0]), contained=contained,
                          kernel_env=job["kernel_env"])
        return
    sys.path.insert(0, root)
    if mode == "import":
        run_import(secret, root)
    elif mode == "checks":
        run_graded_checks(secret, root, [int(n) for n in rest])


if __name__ == "__main__":
    main(sys.argv[1:])
