"""Solution regions: the lines between ``# BEGIN SOLUTION task N`` and ``# END SOLUTION`` (as nbgrader marks
them). In the repository they hold the complete solution; the student edition replaces each region by one
line at the same indentation, ``raise NotImplementedError("Task N (...): ...")``, so the module still imports
and calling the unfinished function names its task.
"""
import re

from pa3.assignment.tasks import TASKS, stub_message

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION task (?P<task>\d+)[ \t]*$")
END = re.compile(r"^[ \t]*# END SOLUTION[ \t]*$")


class RegionError(ValueError):
    """Markers that do not pair up (a BEGIN without END, an END without BEGIN, nesting, an unknown task)."""


def find_regions(text, source="<text>"):
    """[(task, first line index, last line index)] of the regions in ``text`` (marker lines included)."""
    regions, open_at, task = [], None, None
    for number, line in enumerate(text.splitlines()):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if open_at is not None:
                raise RegionError(f"{source}:{number + 1}: BEGIN SOLUTION inside the region opened at line "
                                  f"{open_at + 1}; close it with # END SOLUTION first")
            task = int(begin["task"])
            if task not in TASKS:
                raise RegionError(f"{source}:{number + 1}: task {task} is not in pa3.assignment.tasks.TASKS")
            open_at = number
        elif end:
            if open_at is None:
                raise RegionError(f"{source}:{number + 1}: END SOLUTION without a BEGIN SOLUTION task N above it")
            regions.append((task, open_at, number))
            open_at = None
        elif "SOLUTION" in line and line.lstrip().startswith("#") and re.search(r"(BEGIN|END) SOLUTION", line):
            raise RegionError(f"{source}:{number + 1}: malformed marker {line.strip()!r}; write "
                              f"'# BEGIN SOLUTION task N' or '# END SOLUTION' on a line of its own")
    if open_at is not None:
        raise RegionError(f"{source}:{open_at + 1}: BEGIN SOLUTION task {task} is never closed (# END SOLUTION)")
    return regions


def stub_regions(text, source="<text>"):
    """``text`` with every region replaced by its task's ``raise NotImplementedError(...)`` line."""
    lines = text.splitlines(keepends=True)
    for task, first, last in reversed(find_regions(text, source)):
        indent = BEGIN.match(lines[first].rstrip("\n"))["indent"]
        lines[first:last + 1] = [f"{indent}raise NotImplementedError({stub_message(task)!r})\n"]
    return "".join(lines)


def solution_regions(text, source="<text>"):
    """{task: [region text, ...]} (marker lines excluded): what a submission wrote for each task."""
    lines = text.splitlines(keepends=True)
    found = {}
    for task, first, last in find_regions(text, source):
        found.setdefault(task, []).append("".join(lines[first + 1:last]))
    return found


STUB = re.compile(r"^(?P<indent>[ \t]*)raise NotImplementedError\((?P<message>['\"]Task (?P<task>\d+) \(.*)\)[ \t]*$")


def fill_stubs(text, answers, source="<text>"):
    """``text`` of the student edition with its stubs replaced by ``answers`` ({task: [region text, ...]}, as
    ``solution_regions`` returns them), in order: how a submission is rebuilt from the solution."""
    lines = text.splitlines(keepends=True)
    used = {}
    out = []
    for number, line in enumerate(lines):
        stub = STUB.match(line.rstrip("\n"))
        if not stub:
            out.append(line)
            continue
        task = int(stub["task"])
        index = used.get(task, 0)
        if index >= len(answers.get(task, [])):
            raise RegionError(f"{source}:{number + 1}: no answer for stub {index + 1} of task {task}")
        out.append(answers[task][index])
        used[task] = index + 1
    return "".join(out)
