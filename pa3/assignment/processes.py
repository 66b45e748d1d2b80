"""Running code in a fresh process with a time limit (its whole process group killed at the limit), the environment
it gets (the only module of pa3.assignment that reads ``os.environ``), and reading pytest's verdicts back for the
students' ``check`` (the report plugin, ``report_plugin.py``, appends one JSON line per test). Grading runs every
step through ``run_limited`` too, inside a sandbox (``steps``, ``sandbox``), where the sandbox's own pid namespace
takes everything the step started with it.
"""
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PLUGIN_NAME = "pa3_grade_report"  # pa3/assignment/report_plugin.py, copied into the helper folder under this name
PLUGIN_FILE = Path(__file__).parent / "report_plugin.py"


@dataclass
class Finished:
    returncode: int | None  # None: killed at the time limit
    output: str
    seconds: float

    @property
    def timed_out(self):
        return self.returncode is None

    def why(self):
        """One line on how the process ended, for feedback."""
        if self.timed_out:
            return f"stopped at its time limit after {self.seconds:.0f} s"
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"crashed ({name})"
        if self.returncode > 128:  # a sandbox (bwrap) or a shell reports a death by signal N as 128 + N
            try:
                return f"crashed ({signal.Signals(self.returncode - 128).name}; exit status {self.returncode})"
            except ValueError:
                pass
        return f"exit status {self.returncode}"


def child_env(**extra):
    """This process's environment without pa3's settings (``PA3_*``) and ``PYTHONPATH``, plus ``extra``: a child
    that runs another folder's pa3 gets only the settings meant for it."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PA3_") and k != "PYTHONPATH"}
    return {**inherited, **extra}


def whole_env(pythonpath_first, **extra):
    """This process's whole environment (a student's own settings, PA3_DATA among them, kept) with
    ``pythonpath_first`` ahead of its PYTHONPATH, plus ``extra``."""
    pythonpath = os.pathsep.join(filter(None, [str(pythonpath_first), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": pythonpath, **extra}


def run_limited(command, timeout, cwd, env, stdin_text=None, on_line=None):
    """Run ``command`` with ``timeout`` seconds; on timeout kill its whole process group. ``stdin_text``: written to
    its standard input, which is then closed; ``on_line``: called with each line of its output (each at most
    ``MAX_LINE`` characters) as it comes, instead of collecting the output in ``Finished.output``. Returns Finished."""
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.PIPE if stdin_text is not None else None,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                               start_new_session=True)
    reader = None
    if on_line is not None:
        reader = threading.Thread(target=_read_lines, args=(process.stdout, on_line), daemon=True)
        reader.start()
        if stdin_text is not None:
            try:
                process.stdin.write(stdin_text)
                process.stdin.close()
            except OSError:  # it ended before reading it
                pass
    try:
        if reader is None:
            output, _ = process.communicate(stdin_text, timeout=max(1.0, timeout))
        else:
            output = ""
            process.wait(timeout=max(1.0, timeout))
        returncode = process.returncode
    except subprocess.TimeoutExpired:
        _kill_group(process)
        output = "" if reader is not None else process.communicate()[0]
        process.wait()
        returncode = None
    _kill_group(process)  # whatever it left behind goes too
    if reader is not None:
        reader.join(timeout=30)
    return Finished(returncode, output or "", time.monotonic() - started)


MAX_LINE = 256 * 2**20


def _read_lines(stream, on_line):
    while True:
        line = stream.readline(MAX_LINE)
        if not line:
            break
        on_line(line)


def _kill_group(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def read_verdicts(path):
    """{nodeid: {"outcome", "when", "message"}} from the plugin's JSON lines. Every collected test first
    has outcome "collected" (still so if the process was stopped before it ran); then the last word on it
    wins, except that a failure (in setup, call or teardown) is kept over a later pass."""
    verdicts = {}
    if not os.path.exists(path):
        return verdicts
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut off by the kill at the time limit
            old = verdicts.get(row["nodeid"])
            if old is None or old["outcome"] in ("passed", "collected"):
                verdicts[row["nodeid"]] = row
    return verdicts
