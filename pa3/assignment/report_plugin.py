"""The pytest plugin that reports what a grading step saw: one JSON line per test outcome into
``$PA3_GRADE_REPORT``, with a message a student can act on.

pa3.assignment copies this file into a grading helper folder as ``pa3_grade_report.py`` and loads it with
``-p pa3_grade_report`` (it imports nothing of pa3). Messages:

- a check: the check's own words (its AssertionError), or the exception and the line of the student's code
  that raised it;
- a notebook cell (nbval) whose outputs differ: the stored and the computed output, both whole (shortened in
  the middle past ``KEEP`` lines);
- a notebook cell that raised: the end of its traceback, without colour codes.
"""
import json
import os
import re

import pytest

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# pytest's hints to flags a student cannot pass ("...Full output truncated (3 lines hidden), use '-vv' to show",
# "Omitting 6 identical items, use -vv to show"): the checks run with -vv, and what is left of a hint goes.
FLAG_HINT = re.compile(r"^.*(?:use '?-v+'? to|Use -v to).*\n?", re.M)
KEEP = 40  # lines of an output or traceback kept whole; longer ones lose their middle


def shorten(text, keep=KEEP):
    lines = ANSI.sub("", text).rstrip().splitlines()
    if len(lines) <= keep:
        return "\n".join(lines)
    half = keep // 2
    return "\n".join(lines[:half] + [f"[... {len(lines) - keep} lines left out ...]"] + lines[-half:])


def _indent(text):
    return "\n".join("    " + line for line in (text.splitlines() or ["(nothing)"]))


def _outputs_text(cell, outputs):
    """What a list of notebook outputs shows, sanitized as nbval compares it (images by name only)."""
    parts = []
    for output in outputs:
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif output.get("output_type") == "error":
            parts.append(f"{output.get('ename')}: {output.get('evalue')}")
        else:
            data = output.get("data", {})
            parts.append(data["text/plain"] if "text/plain" in data else f"<{', '.join(sorted(data))}>")
    return cell.sanitize("".join(part if part.endswith("\n") else part + "\n" for part in parts))


def pytest_configure(config):
    """Keep the stored and computed outputs of a cell whose outputs differ (nbval only says where they start
    to differ)."""
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:
        return
    original = IPyNbCell.compare_outputs

    def compare_outputs(self, test, ref, skip_compare=None):
        same = original(self, test, ref, skip_compare)
        if not same:
            self.pa3_outputs = (_outputs_text(self, ref), _outputs_text(self, test))
        return same

    IPyNbCell.compare_outputs = compare_outputs


def _message(item, call):
    error = call.excinfo.value
    stored_and_computed = getattr(item, "pa3_outputs", None)
    if stored_and_computed is not None:
        stored, computed = stored_and_computed
        return ("its output differs from the one stored in the notebook.\nstored:\n" + _indent(shorten(stored))
                + "\ncomputed now:\n" + _indent(shorten(computed)))
    traceback = getattr(error, "inner_traceback", None)
    if traceback:  # a notebook cell raised
        lines = [line for line in ANSI.sub("", traceback).strip().splitlines() if line.strip()]
        return f"it raised {lines[-1].strip()}\n" + _indent(shorten("\n".join(lines[-12:]), keep=12))
    if isinstance(error, AssertionError) and str(error).strip():
        return shorten(FLAG_HINT.sub("", str(error)).rstrip())
    return shorten(f"{type(error).__name__}: {error}{_where(call.excinfo)}")


def _where(excinfo):
    """Where in the code under test (``$PA3_HOME``) the exception was raised, if it was."""
    home = os.environ.get("PA3_HOME")
    for entry in reversed(excinfo.traceback):
        path = str(entry.path)
        if home and path.startswith(home.rstrip("/") + "/"):
            return f" (raised at {os.path.relpath(path, home)} line {entry.lineno + 1})"
    return ""


def _write(nodeid, when, outcome, message):
    with open(os.environ["PA3_GRADE_REPORT"], "a") as f:
        f.write(json.dumps({"nodeid": nodeid, "when": when, "outcome": outcome, "message": message}) + "\n")


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        _write(item.nodeid, "collect", "collected", "")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or report.outcome != "passed":
        message = ""
        if report.failed and call.excinfo is not None:
            message = _message(item, call)
        elif report.skipped:
            message = "skipped"
        _write(report.nodeid, report.when, report.outcome, message)


def pytest_collectreport(report):
    if report.failed:
        _write(report.nodeid, "collect", "failed", shorten(ANSI.sub("", str(report.longrepr)), keep=12))
