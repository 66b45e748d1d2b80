"""Comparing a notebook's stored outputs with those of its execution in the sandbox, by nbval's rules, outside it.

As ``pytest --nbval`` does: streams of one name are merged (carriage returns and backspaces applied), every output
field is compared except metadata, tracebacks, execution counts, widget ids and images, strings after the
sanitize rules (``tests/nbval_sanitize.cfg``); a cell fails when it raised (unless marked NBVAL_RAISES_EXCEPTION)
or when its outputs differ (unless marked NBVAL_IGNORE_OUTPUT); NBVAL_SKIP cells are not run.
"""
import re
from collections import defaultdict

from pa3.assignment.report_plugin import ANSI, indent, shorten

SKIP_COMPARE = ("metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
                "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg")
CARRIAGE_RETURN = re.compile(r"^.*\r(?=[^\n])", re.M)
BACKSPACE = re.compile("[^\n]\x08")  # a character and a backspace after it


def markers(cell):
    """The nbval markers of a cell (its comments and its metadata tags): {"skip", "ignore", "raises"} subset."""
    source = "".join(cell.get("source", ""))
    tags = set((cell.get("metadata") or {}).get("tags", []))
    found = set()
    if "NBVAL_SKIP" in source or "nbval-skip" in tags:
        found.add("skip")
    if "NBVAL_IGNORE_OUTPUT" in source or "nbval-ignore-output" in tags:
        found.add("ignore")
    if "NBVAL_RAISES_EXCEPTION" in source or "raises-exception" in tags:
        found.add("raises")
    return found


def sanitize_patterns(text):
    """[(regex, replacement)] of a sanitize file (nbval's format)."""
    return re.findall(r"^regex: (.*)$\n^replace: (.*)$", text, flags=re.M)


def _sanitize(value, patterns):
    if not isinstance(value, str):
        return value
    for regex, replacement in patterns:
        value = re.sub(regex, replacement, value)
    return value


def _text(value):
    return "".join(value) if isinstance(value, list) else value


def _coalesced(outputs):
    merged, streams = [], {}
    for output in outputs:
        output = dict(output)
        if output.get("output_type") == "stream":
            output["text"] = _text(output.get("text", ""))
            if output.get("name") in streams:
                streams[output["name"]]["text"] += output["text"]
                continue
            streams[output.get("name")] = output
        merged.append(output)
    for output in streams.values():
        old = None
        while old != output["text"]:
            old, output["text"] = output["text"], BACKSPACE.sub("", output["text"])
        output["text"] = CARRIAGE_RETURN.sub("", output["text"])
    return merged


def _fields(outputs, patterns):
    """{field: [sanitized values]}: nbval's flattened view of a cell's outputs."""
    fields = defaultdict(list)
    for output in _coalesced(outputs):
        if output.get("output_type") == "stream":
            output = {output.get("name", "stdout"): output["text"]}
        for key, value in output.items():
            if key in SKIP_COMPARE:
                continue
            if key == "data" and isinstance(value, dict):
                for data_key, data in value.items():
                    if data_key not in SKIP_COMPARE:
                        fields[data_key].append(_sanitize(_text(data), patterns))
            else:
                fields[key].append(_sanitize(_text(value), patterns))
    return fields


def shown(outputs, patterns):
    """What a list of outputs shows, sanitized (images by their type only)."""
    parts = []
    for output in _coalesced(outputs):
        kind = output.get("output_type")
        if kind == "stream":
            parts.append(output["text"])
        elif kind == "error":
            parts.append(f"{output.get('ename')}: {output.get('evalue')}")
        else:
            data = output.get("data", {})
            parts.append(_text(data["text/plain"]) if "text/plain" in data else f"<{', '.join(sorted(data))}>")
    return _sanitize("".join(p if p.endswith("\n") else p + "\n" for p in parts), patterns)


def cell_verdict(cell, executed, patterns):
    """("passed" | "failed" | "skipped" | "not reached", message) of one code cell: ``cell`` as stored in the
    submission, ``executed`` its outputs from the sandbox (None: execution stopped before it)."""
    found = markers(cell)
    if "skip" in found:
        return "skipped", ""
    if executed is None:
        return "not reached", "execution stopped before this cell (time limit or crash)"
    if not isinstance(executed, list) or not all(isinstance(o, dict) for o in executed):
        return "failed", "its outputs came back malformed"
    errors = [o for o in executed if o.get("output_type") == "error"]
    if errors and "raises" not in found:
        lines = [ln for ln in ANSI.sub("", "\n".join(map(str, errors[0].get("traceback") or []))).splitlines()
                 if ln.strip()]
        last = f"{errors[0].get('ename')}: {ANSI.sub('', str(errors[0].get('evalue')))}"
        return "failed", f"it raised {last}\n" + indent(shorten("\n".join(lines[-12:]) or last, keep=12))
    if "ignore" in found:
        return "passed", ""
    stored = cell.get("outputs", [])
    if _fields(stored, patterns) != _fields(executed, patterns):
        return "failed", ("its output differs from the one stored in the notebook.\nstored:\n"
                          + indent(shorten(shown(stored, patterns))) + "\ncomputed now:\n"
                          + indent(shorten(shown(executed, patterns))))
    return "passed", ""


def notebook_verdicts(stored, executed_cells, patterns):
    """{code cell index: (outcome, message)} of a notebook: ``stored`` the submission's notebook (a dict),
    ``executed_cells`` the outputs per code cell that came back from the sandbox."""
    code = [c for c in stored.get("cells", []) if isinstance(c, dict) and c.get("cell_type") == "code"]
    executed_cells = executed_cells if isinstance(executed_cells, list) else []
    return {index: cell_verdict(cell, executed_cells[index] if index < len(executed_cells) else None, patterns)
            for index, cell in enumerate(code)}
