"""One grading step: ``runner.py`` on a submission's copy, in a bubblewrap sandbox (or, with ``--no-sandbox``, in
a plain process), with a time limit; the rows it hands back.

The grader writes the job to the runner's standard input: a fresh secret (only output lines that start with it are
the runner's rows, ``runner.py``) and the notebook kernels' environment. Everything else the step printed is kept,
shortened, to explain a crash.
"""
import collections
import json
import secrets
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pa3.assignment import sandbox
from pa3.assignment.processes import child_env, run_limited
from pa3.assignment.report_plugin import ANSI

# What every run of a submission's code gets, as `make test` and conftest.py set it for the committed outputs:
# no progress bars, one thread, a fixed hash seed.
QUIET = {"TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
# What a notebook kernel gets of the runner's environment (the runner adds PYTHONPATH, the submission's folder).
KERNEL_ENV = ("PA3_PROFILE", "PA3_HOME", "PA3_FIGURES", "TQDM_DISABLE", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
              "PYTHONHASHSEED", "PATH", "HOME", "LANG", "MPLCONFIGDIR")
MAX_OUTPUT_KEPT = 40  # lines of other output kept to explain a crash


@dataclass
class Isolation:
    """How a submission's code runs: ``sandboxed`` (bubblewrap, the default) with ``limits``, or not at all."""
    sandboxed: bool = True
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)
    readable: tuple = ()  # folders it may read besides the system and the Python environment (the data)


def write_helpers(helper_dir, checks_dir=None):
    """The folder a sandbox sees at /grader: the runner, and, for the checks step (``checks_dir`` given), the model
    probe and the graded checks (their inputs; their expected values stay with the grader)."""
    helper_dir = Path(helper_dir)
    helper_dir.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).parent
    shutil.copyfile(here / "runner.py", helper_dir / "runner.py")
    if checks_dir is not None:
        (helper_dir / "checks").mkdir(exist_ok=True)
        shutil.copyfile(here / "probe.py", helper_dir / "pa3_probe.py")
        for path in sorted(Path(checks_dir).glob("task*.py")):
            shutil.copyfile(path, helper_dir / "checks" / path.name)
    return helper_dir


def run_step(arguments, work, helpers, timeout, isolation, env=None):
    """Run ``runner.py ARGUMENTS`` (mode, then its arguments after the folder) on the submission in ``work``.
    Returns (rows, Finished, the last lines of its other output). Its output comes through a pipe, read as it
    comes: whatever opens that pipe from inside can add lines, never take back the runner's."""
    secret = secrets.token_hex(16)
    work = Path(work).resolve()
    environment = {"PA3_HOME": str(work), **QUIET, **(env or {})}
    mode, rest = arguments[0], [str(a) for a in arguments[1:]]
    cgroups = None
    if isolation.sandboxed:
        argv = [sys.executable, "-I", f"{sandbox.HELPERS}/runner.py", "--contained", mode, str(work), *rest]
        uid = sandbox.next_uid()
        sandbox.hand_over(work, uid)
        cgroups = sandbox.make_cgroups(isolation.limits)
        command = sandbox.command(argv, work, readable=isolation.readable, helpers=helpers, env=environment,
                                  limits=isolation.limits, cgroup=cgroups, uid=uid)
        process_env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
        runner_env = sandbox.inside_env(environment)
    else:
        command = [sys.executable, "-I", str(Path(helpers) / "runner.py"), mode, str(work), *rest]
        process_env = runner_env = child_env(**environment)
    # the job on the runner's stdin: the secret that frames its rows, and its kernels' part of its environment
    job = {"secret": secret, "kernel_env": {k: str(runner_env[k]) for k in KERNEL_ENV if k in runner_env}}
    rows, other, prefix = [], collections.deque(maxlen=MAX_OUTPUT_KEPT), secret + " "

    def on_line(line):
        if line.startswith(prefix):
            try:
                rows.append(json.loads(line[len(prefix):]))
            except json.JSONDecodeError:
                pass
        elif line.strip():
            other.append(ANSI.sub("", line.rstrip()[:500]))
    try:
        finished = run_limited(command, timeout, cwd=work, env=process_env, stdin_text=json.dumps(job) + "\n",
                               on_line=on_line)
        other.extend(sandbox.limits_hit(cgroups, isolation.limits))  # the last lines: shown when the step failed
    finally:
        sandbox.remove_cgroups(cgroups)
    return rows, finished, "\n".join(other)
