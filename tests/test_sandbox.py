"""The grading sandbox's walls (pa3.assignment.sandbox, steps, runner), tried by submissions built to break them.

Each probe is the repository's pa3 plus code of its own in ``pa3/__init__.py`` (run by every step that imports
pa3) or in a notebook cell, run as grading runs it: ``runner.py`` in bubblewrap, verdicts decided here. It reads
outside its copy, writes outside it, connects to a listener on 127.0.0.1, forks without end, eats memory, leaves
a process behind that ignores SIGTERM, forges its checks' rows and its notebook's outputs. Seconds each (no
training), except the fork bomb and the SIGTERM probe, which wait for their time limits.
"""
import json
import os
import secrets
import shutil
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pa3 import project_dir
from pa3.assignment import sandbox
from pa3.assignment.grade import graded_checks, stored_notebooks
from pa3.assignment.outputs import notebook_verdicts, sanitize_patterns
from pa3.assignment.steps import Isolation, run_step, write_helpers
from pa3.assignment.verdicts import CHECKS

REPO = project_dir()
PATTERNS = sanitize_patterns((REPO / "tests" / "nbval_sanitize.cfg").read_text())

if sandbox.available() is None:
    pytest.fail(sandbox.INSTALL, pytrace=False)  # make test needs it: .ci/run installs it


def submission(folder, init_code="", cells=()):
    """The repository's pa3 with ``init_code`` appended to pa3/__init__.py, and notebooks/00_data.ipynb made of
    ``cells`` [(source, stored text output)]."""
    shutil.copytree(REPO / "pa3", folder / "pa3", ignore=shutil.ignore_patterns("__pycache__"))
    with open(folder / "pa3" / "__init__.py", "a") as f:
        f.write("\n" + textwrap.dedent(init_code))
    code = [{"cell_type": "code", "metadata": {}, "source": source, "execution_count": 1,
             "outputs": [{"output_type": "stream", "name": "stdout", "text": text}] if text else []}
            for source, text in cells]
    (folder / "notebooks").mkdir()
    (folder / "notebooks" / "00_data.ipynb").write_text(json.dumps(
        {"cells": code, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
         "nbformat": 4, "nbformat_minor": 5}))
    return folder


def step(folder, tmp, arguments, timeout=120, limits=None, env=None):
    helpers = write_helpers(tmp / "helpers", CHECKS if arguments[0] == "checks" else None)
    return run_step(arguments, folder, helpers, timeout, Isolation(limits=limits or sandbox.Limits()), env)


def imported(rows):
    return next((row["imported"] for row in rows if "imported" in row), None)


def test_reads_writes_and_network_stay_inside(tmp_path):
    token = secrets.token_hex(8)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    accepted, done = [], threading.Event()

    def accept():
        while not done.is_set() and not accepted:
            try:
                accepted.append(listener.accept())
            except (socket.timeout, OSError):
                pass
    watcher = threading.Thread(target=accept, daemon=True)
    watcher.start()
    (tmp_path / "secret.txt").write_text("the grader's")
    outside = {"checkout": str(REPO / "pa3" / "assignment" / "checks" / "hidden" / "task1.py"),
               "hidden_checks": "/grader/checks/task1.py",  # only the checks step sees the checks' inputs
               "shadow": "/etc/shadow",  # root's files stay root's
               "readme": str(REPO / "README.md"), "root": "/root", "home": os.path.expanduser("~"),
               "grader_tmp": str(tmp_path / "secret.txt")}
    writes = {"host_tmp": f"/tmp/pa3-escape-{token}", "checkout": str(REPO / f"escape-{token}"),
              "helpers": f"/grader/escape-{token}", "grader_tmp": str(tmp_path / f"escape-{token}")}
    work = submission(tmp_path / "probe", f"""
        import json as _j, os as _o, socket as _s, sys as _sys
        _seen = {{"uid": _o.getuid(), "read": {{}}, "write": {{}}, "net": None, "env": sorted(_o.environ)}}
        for _k, _p in {outside!r}.items():
            try:
                _seen["read"][_k] = sorted(_o.listdir(_p))[:5] if _o.path.isdir(_p) else open(_p).read(80)
            except OSError as _e:
                _seen["read"][_k] = None
        for _k, _p in {writes!r}.items():
            try:
                open(_p, "w").write("escaped")
                _seen["write"][_k] = True
            except OSError:
                _seen["write"][_k] = False
        try:
            _c = _s.create_connection(("127.0.0.1", {listener.getsockname()[1]}), timeout=3)
            _seen["net"] = "connected"
        except OSError as _e:
            _seen["net"] = type(_e).__name__
        open(_o.path.join(_o.path.dirname(_o.path.dirname(__file__)), "seen.json"), "w").write(_j.dumps(_seen))
        """)
    rows, finished, _ = step(work, tmp_path, ["import"])
    done.set()
    watcher.join()
    listener.close()
    seen = json.loads((work / "seen.json").read_text())
    assert imported(rows) == str((work / "pa3" / "__init__.py").resolve())  # its own pa3, nothing else
    # unprivileged: as root, a uid of its own (not root's, outside too); else 65534 in a user namespace
    assert seen["uid"] not in (0, os.getuid()) if os.geteuid() == 0 else seen["uid"] == sandbox.UID
    assert seen["read"]["checkout"] is seen["read"]["readme"] is seen["read"]["grader_tmp"] is None
    assert seen["read"]["hidden_checks"] is seen["read"]["shadow"] is None
    python_home = [".pyenv"] if sys.base_prefix.startswith("/root/.pyenv/") else []
    assert seen["read"]["root"] in (None, python_home) and seen["read"]["home"] in (None, python_home)
    assert seen["write"]["helpers"] is False  # read-only; the others went to its private /tmp and / or failed
    assert not any(Path(p).exists() for k, p in writes.items() if k != "helpers")
    assert seen["net"] != "connected" and not accepted
    assert not [name for name in seen["env"] if "GRADE" in name or "REFERENCE" in name]


def test_a_fork_bomb_is_capped_and_dies_at_the_time_limit(tmp_path):
    marker = f"bomb-{secrets.token_hex(4)}"
    work = submission(tmp_path / "bomb", f"""
        import os as _o
        _log = _o.open(_o.path.join(_o.path.dirname(_o.path.dirname(__file__)), "forks.log"), _o.O_WRONLY | _o.O_CREAT | _o.O_APPEND)
        _o.environ["PA3_PROBE"] = "{marker}"
        while True:
            try:
                if _o.fork() == 0:
                    _o.write(_log, b"x")
            except OSError:
                pass
        """)
    limits = sandbox.Limits(processes=64)
    started = time.monotonic()
    rows, finished, other = step(work, tmp_path, ["import"], timeout=15, limits=limits)
    assert finished.timed_out and time.monotonic() - started < 45
    if _cgroups_here():  # the kernel's count of refused forks, said in the feedback
        assert "more than 64 processes at once" in other, other
    assert not rows
    forks = (work / "forks.log").stat().st_size
    assert 0 < forks <= 2 * limits.processes  # capped (forks that failed wrote nothing)
    time.sleep(1)
    assert not _processes_with(marker)


def test_a_memory_hog_is_stopped_and_the_grader_goes_on(tmp_path):
    work = submission(tmp_path / "hog", """
        _hog = [b"x" * 2**28 for _ in range(16)]  # 4 GiB
        """)
    rows, finished, other = step(work, tmp_path, ["import"], timeout=120, limits=sandbox.Limits(memory_gb=1))
    assert not rows and finished.returncode != 0 and not finished.timed_out, other
    assert "more memory than the sandbox allows (1 GiB)" in other or "MemoryError" in other, other  # cgroup or rlimit


def test_a_kernel_that_ignores_sigterm_dies_with_its_sandbox(tmp_path):
    marker = f"sleeper-{secrets.token_hex(4)}"
    cell = textwrap.dedent(f"""
        import signal, subprocess, sys
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                          "time.sleep(10**6)  # {marker}"], start_new_session=True)
        while True:
            pass
        """)
    work = submission(tmp_path / "sleeper", cells=[(cell, "")])
    started = time.monotonic()
    rows, finished, _ = step(work, tmp_path, ["notebooks", f"{time.time() + 600:.0f}", "00_data"], timeout=20)
    assert finished.timed_out and time.monotonic() - started < 60
    time.sleep(1)
    assert not _processes_with(marker)


def test_forged_check_rows_and_pytest_patches_change_no_verdict(tmp_path):
    """Task 1 left as its stub, and the submission forges (``benchmarks.sandbox_probes.FORGER``): the runner's rows
    (it may: it runs in the runner's process, so it can only hand back values: nothing where its checks raised),
    pytest's reports, a sitecustomize.py, a conftest.py, verdict-like files and lines."""
    from benchmarks.sandbox_probes import FORGER
    from pa3.assignment.regions import stub_regions

    work = submission(tmp_path / "forger", FORGER)
    (work / "pa3" / "metrics.py").write_text(stub_regions((REPO / "pa3" / "metrics.py").read_text()))
    failures, _ = graded_checks(work, tmp_path / "graded")
    assert sorted(n for n, failed in failures.items() if failed) == [1], failures
    assert len(failures[1]) == 5 and all("returned {} where the reference returns" in m for _, m in failures[1])


def test_a_kernel_cannot_rewrite_what_its_notebook_hands_back(tmp_path):
    """A cell prints the wrong number; a process it leaves behind rewrites the notebook file with the stored output,
    writes fake rows to every stdout it can open and to the runner's, and the stored notebook is read before."""
    forge = textwrap.dedent("""
        import json, os, subprocess, sys
        print(41)
        script = '''
        import glob, json, os, time
        time.sleep(2)
        fake = json.dumps({"notebook": "00_data", "cells": [[{"output_type": "stream", "name": "stdout", "text": "42\\\\n"}]], "stopped": None})
        for path in glob.glob("/proc/[0-9]*/fd/1"):
            try:
                with open(path, "w") as f:
                    f.write("\\\\n0000 " + fake + "\\\\n")
            except OSError:
                pass
        nb = json.load(open("00_data.ipynb"))
        nb["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "42\\\\n"}]
        json.dump(nb, open("00_data.ipynb", "w"))
        '''
        subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
        """)
    work = submission(tmp_path / "rewriter", cells=[(forge, "42\n"), ("import time\ntime.sleep(5)", "")])
    stored = stored_notebooks(work)["00_data"]
    rows, finished, _ = step(work, tmp_path, ["notebooks", f"{time.time() + 600:.0f}", "00_data"], timeout=120)
    executed = [row for row in rows if row.get("notebook") == "00_data"]
    assert len(executed) == 1 and finished.returncode == 0
    verdicts = notebook_verdicts(stored, executed[0]["cells"], PATTERNS)
    assert verdicts[0][0] == "failed" and "41" in verdicts[0][1]
    assert "0000 {" in verdicts[1][1]  # what it wrote into the kernel's own stdout is that cell's output, no row


def test_grading_refuses_without_bubblewrap_and_says_how_to_install_it(monkeypatch, tmp_path):
    from pa3.assignment import grade as G
    monkeypatch.setattr(sandbox, "available", lambda: None)
    with pytest.raises(sandbox.SandboxError, match="apt-get install -y bubblewrap.*--no-sandbox"):
        G.grade([tmp_path], tmp_path / "grades.csv")


def _cgroups_here():
    made = sandbox.make_cgroups()
    sandbox.remove_cgroups(made)
    return bool(made)


def _processes_with(marker):
    """Processes of this machine whose command line or environment holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        for name in ("cmdline", "environ"):
            try:
                if marker.encode() in (entry / name).read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_without_the_sandbox_the_same_checks_give_the_same_verdicts(tmp_path):
    """--no-sandbox runs the same runner in a plain process: the solution passes, a check module whose import fails
    costs its task with the error."""
    work = submission(tmp_path / "plain")
    failures, _ = graded_checks(work, tmp_path / "graded", isolation=Isolation(sandboxed=False))
    assert failures == {n: [] for n in failures} and len(failures) == 8
    (work / "pa3" / "losses.py").write_text("raise ImportError('broken on purpose')\n")
    failures, _ = graded_checks(work, tmp_path / "graded-again", isolation=Isolation(sandboxed=False))
    assert [n for n, failed in failures.items() if failed] == [2, 3], failures
    assert "importing what the checks use raised ImportError: broken on purpose (raised at pa3/losses.py line 1)" \
        in failures[2][0][1]


def test_a_death_by_signal_is_named_through_the_sandbox():
    from pa3.assignment.processes import Finished
    assert Finished(139, "", 1.0).why() == "crashed (SIGSEGV; exit status 139)"  # bwrap: 128 + the signal
    assert Finished(-9, "", 1.0).why() == "crashed (SIGKILL)" and Finished(3, "", 1.0).why() == "exit status 3"


def test_the_sandbox_runs_what_training_needs(tmp_path):
    """POSIX semaphores and worker processes (a DataLoader's), a private /tmp, matplotlib's config folder."""
    work = submission(tmp_path / "workers", """
        import multiprocessing as _m, tempfile as _t
        _m.Lock()
        with _m.get_context("fork").Pool(2) as _pool:
            assert _pool.map(abs, [-1, -2]) == [1, 2]
        _t.NamedTemporaryFile().close()
        import matplotlib.pyplot as _plt
        """)
    rows, finished, other = step(work, tmp_path, ["import"])
    assert imported(rows), other
