"""The pytest plugin that reports what a check run saw: one JSON line per test outcome into the file given by
``--grade-report PATH``, with a message a student can act on.

pa3.assignment copies this file into a helper folder as ``pa3_grade_report.py`` and loads it for the students'
public checks with ``-p pa3_grade_report --grade-report PATH --code-root FOLDER`` (it imports nothing of pa3;
FOLDER holds the pa3 under test). A failed check's message is its own words (its AssertionError), or the
exception and the line of the student's code that raised it. (Notebook outputs are compared by
``pa3.assignment.outputs``, outside pytest.)
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


def indent(text):
    return "\n".join("    " + line for line in (text.splitlines() or ["(nothing)"]))


def pytest_addoption(parser):
    group = parser.getgroup("pa3_grade_report")
    group.addoption("--grade-report", metavar="PATH", help="append one JSON line per test outcome to PATH")
    group.addoption("--code-root", metavar="FOLDER", help="the folder of the code under test (where it raised)")


def pytest_configure(config):
    """Register the report into ``--grade-report``."""
    config.pluginmanager.register(GradeReport(config.getoption("grade_report"), config.getoption("code_root")),
                                  "pa3_grade_report_writer")


class GradeReport:
    """Appends one JSON line per outcome to ``path``; ``home``: the folder of the code under test."""

    def __init__(self, path, home):
        self.path, self.home = path, home

    def write(self, nodeid, when, outcome, message):
        with open(self.path, "a") as f:
            f.write(json.dumps({"nodeid": nodeid, "when": when, "outcome": outcome, "message": message}) + "\n")

    def pytest_collection_modifyitems(self, items):
        for item in items:
            self.write(item.nodeid, "collect", "collected", "")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.when == "call" or report.outcome != "passed":
            message = ""
            if report.failed and call.excinfo is not None:
                message = _message(call, self.home)
            elif report.skipped:
                message = "skipped"
            self.write(report.nodeid, report.when, report.outcome, message)

    def pytest_collectreport(self, report):
        if report.failed:
            self.write(report.nodeid, "collect", "failed", shorten(ANSI.sub("", str(report.longrepr)), keep=12))


def _message(call, home):
    error = call.excinfo.value
    if isinstance(error, AssertionError) and str(error).strip():
        return shorten(FLAG_HINT.sub("", str(error)).rstrip())
    return shorten(f"{type(error).__name__}: {error}{_where(call.excinfo, home)}")


def _where(excinfo, home):
    """Where in the code under test (the folder ``home``) the exception was raised, if it was."""
    for entry in reversed(excinfo.traceback):
        path = str(entry.path)
        if home and path.startswith(home.rstrip("/") + "/"):
            return f" (raised at {os.path.relpath(path, home)} line {entry.lineno + 1})"
    return ""
