"""Running a submission's code in a fresh process with a time limit, and reading pytest's verdicts back.

Each step of grading is one subprocess in its own session: at the time limit the whole process group is
killed (pytest and the Jupyter kernel nbval started), so a submission that loops forever cannot outlive it.
Verdicts come back through a small pytest plugin (``report_plugin.py``) that appends one JSON line per test.
"""
import json
import os
import signal
import subprocess
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
        return f"exit status {self.returncode}"


def run_limited(command, timeout, cwd, env, stdin_text=None, output_path=None):
    """Run ``command`` with ``timeout`` seconds; on timeout kill its whole process group. ``stdin_text``: written to
    its standard input, which is then closed; ``output_path``: its output goes to that file (and ``output`` is
    left empty) instead of into memory. Returns Finished."""
    started = time.monotonic()
    output_file = open(output_path, "w") if output_path else None
    process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.PIPE if stdin_text is not None else None,
                               stdout=output_file or subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               errors="replace", start_new_session=True)
    try:
        output, _ = process.communicate(stdin_text, timeout=max(1.0, timeout))
        returncode = process.returncode
    except subprocess.TimeoutExpired:
        _kill_group(process)
        output, _ = process.communicate()
        returncode = None
    finally:
        if output_file:
            output_file.close()
    _kill_group(process)  # whatever it left behind (a kernel nbval started) goes too
    return Finished(returncode, output or "", time.monotonic() - started)


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
