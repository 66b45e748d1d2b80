"""pa3's files: reading one it did not derive (what it holds, or one clear refusal), and writing atomically.

Checkpoints, pretrained weights and a run folder's JSON files are read here. Each reader returns what the
file holds or raises ``BadFileError`` (a ValueError) whose message names the file, says what is wrong with
it (empty, truncated, not a checkpoint, a folder, unreadable, ...) and what to do; a missing file raises
FileNotFoundError in the same shape. Derived data (resized caches, class frequencies, the synthetic set)
is not refused but rebuilt, by ``pa3.cache``, ``pa3.data`` and ``pa3.synthetic``. docs/files.md lists every
file pa3 reads.

The files that later runs read back (a run folder's checkpoints and JSON/CSV files, cache manifests, class
frequencies) are written by ``write_atomically``: a reader (or a resumed run) sees the old file or the new
one, never half of one. (A cache's arrays are renamed into place the same way before its manifest is
written; generated data, figures and prediction PNGs are rewritten whole by the command that makes them.)
"""
import csv
import hashlib
import json
import math
import os
import pickle
import shutil
import zipfile
from pathlib import Path

ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
PICKLE_MAGIC = b"\x80"  # torch.save(..., _use_new_zipfile_serialization=False) writes a bare pickle


class BadFileError(ValueError):
    """A file pa3 cannot use. ``.path``, ``.problem`` ("is truncated: ...") and ``.fix`` (what to do)."""

    def __init__(self, path, problem, fix, what="file"):
        self.path, self.problem, self.fix, self.what = Path(path), problem, fix, what
        super().__init__(f"{what} {path} {problem}" + (f". {fix}" if fix else ""))

    def __reduce__(self):  # picklable (DataLoader workers, multiprocessing) despite the extra arguments
        return type(self), (self.path, self.problem, self.fix, self.what)


def unreadable(path):
    """Why ``path`` cannot be read as a file at all, or None when it can.

    Returns one of "does not exist", "is a folder, not a file", "is empty (0 bytes)",
    "cannot be read (permission denied)", or "cannot be read (<OS error>)".
    """
    path = Path(path)
    try:
        if path.is_dir():
            return "is a folder, not a file"
        if not path.exists():
            return "does not exist"
        if path.stat().st_size == 0:
            return "is empty (0 bytes)"
        with open(path, "rb") as f:
            f.read(1)
    except PermissionError:
        return "cannot be read (permission denied)"
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    return None


def _check(path, what, fix):
    problem = unreadable(path)
    if problem == "does not exist":
        raise FileNotFoundError(f"{what} {path} does not exist. {fix}")
    if problem:
        raise BadFileError(path, problem, fix, what)
    return Path(path)


def _looks_like_text(data):
    printable = sum(32 <= b < 127 or b in b"\t\n\r" for b in data)
    return b"\0" not in data and printable >= 0.95 * len(data)


def _torch_damage(path, head, error):
    """What is wrong with a file torch.load could not read (``head``: its first bytes)."""
    if head.startswith(ZIP_MAGIC) and not zipfile.is_zipfile(path):
        return ("is truncated: its end is missing (an interrupted write, a full disk or an unfinished "
                "copy or sync)")
    if head.startswith((ZIP_MAGIC, PICKLE_MAGIC)):
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"is damaged: torch cannot read it ({reason})"
    kind = "it is a text file" if _looks_like_text(head) else "it holds binary data of another format"
    return f"is not a PyTorch file: {kind}, not what torch.save writes"


def load_torch(path, what, fix, map_location="cpu"):
    """``torch.load(path, weights_only=True)``: tensors, dicts, lists and numbers, never pickled code.

    Args:
        what: what the file should be, for the message ("checkpoint", "pretrained weights file").
        fix: what the user should do, for the message.
    Raises:
        FileNotFoundError: ``path`` does not exist.
        BadFileError: a folder, empty, unreadable, truncated, damaged, not a PyTorch file, or a file
            holding pickled Python objects (which safe loading refuses: they could run code).
    """
    import torch

    path = _check(path, what, fix)
    with open(path, "rb") as f:
        head = f.read(512)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error):
            raise BadFileError(
                path, "holds pickled Python objects (code), which safe loading (torch.load(weights_only=True)) "
                "refuses: loading a file like this could run arbitrary code",
                "Only load files written by pa3, or by torch.save(model.state_dict(), path), from a source you "
                "trust", what) from error
        raise BadFileError(path, _torch_damage(path, head, error), fix, what) from error
    except Exception as error:  # torch raises RuntimeError, OSError, EOFError, IndexError... on bad bytes
        raise BadFileError(path, _torch_damage(path, head, error), fix, what) from error


def read_text(path, what, fix):
    """The text (UTF-8) in ``path``; FileNotFoundError, or BadFileError for a folder, an empty, unreadable
    or binary file."""
    path = _check(path, what, fix)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadFileError(path, "is not a text file (it holds binary data)", fix, what) from error


def read_json(path, what, fix, expect=dict, keys=()):
    """The JSON value in ``path``, checked to be an ``expect`` (dict or list) holding ``keys``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        BadFileError: a folder, empty, unreadable, not text, truncated or invalid JSON, or JSON of
            another shape (not an ``expect``, or without one of ``keys``).
    """
    text = read_text(path, what, fix)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        if not text.strip():
            problem = "is blank (no JSON in it)"
        elif error.pos >= len(text.rstrip()):
            problem = f"is truncated: its JSON ends early ({error.msg} at character {error.pos})"
        else:
            problem = f"is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})"
        raise BadFileError(path, problem, fix, what) from error
    kinds = {dict: "a JSON object", list: "a JSON list"}
    if not isinstance(value, expect):
        found = kinds.get(type(value), f"a JSON {type(value).__name__}")
        raise BadFileError(path, f"holds {found}, not {kinds[expect]}", fix, what)
    missing = [k for k in keys if k not in value]
    if missing:
        raise BadFileError(path, f"is not what pa3 writes there: it lacks {', '.join(map(repr, missing))}", fix, what)
    return value


RUN_FILE_FIX = ("pa3 wrote it while training: delete it and run the same training again (it resumes from last.pt "
                "and rewrites the file; a finished run is not retrained), or start over (--force on the command "
                "line, run_experiment(..., force=True), fit(..., resume=False))")


def read_run_file(folder, name, expect=dict, keys=()):
    """The JSON in run folder ``folder``'s file ``name`` (config.json, metrics.json, history.json), checked."""
    path = Path(folder) / name
    if not path.exists():
        raise FileNotFoundError(f"run file {path} does not exist: train that run first (pa3 writes it while training)")
    return read_json(path, "run file", RUN_FILE_FIX, expect=expect, keys=keys)


def remove(path):
    """Delete a derived file (or whatever took its place: a folder, an unreadable file) before rebuilding it."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def write_atomically(path, write):
    """Call ``write(tmp_path)`` then rename onto ``path``; on failure remove tmp and keep the old file.

    The temporary name carries the process id, so processes writing the same file never share one.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if not isinstance(error, Exception):  # KeyboardInterrupt etc.: clean up, then let it through
            raise
        raise OSError(f"could not write {path.name} in folder {path.parent}: {error}. The previous {path.name} "
                      f"(if any) is left intact; free disk space or choose another folder.") from error


def remove_temporaries(folder):
    """Delete the temporaries ``write_atomically`` leaves in ``folder`` when its process is killed mid-write."""
    for tmp in Path(folder).glob("*.tmp[0-9]*"):
        remove(tmp)


def write_text(path, text):
    write_atomically(path, lambda tmp: Path(tmp).write_text(text))


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN (class absent) -> null, so the files are strict JSON
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path, data, indent=2):
    """``data`` as strict JSON (NaN and infinities become null), written atomically."""
    write_text(path, json.dumps(_json_safe(data), indent=indent) + "\n")


def write_csv(path, rows):
    """A list of dicts as CSV with a header (the first row's keys), written atomically."""
    fields = list(rows[0]) if rows else ["epoch"]

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    write_atomically(path, write)


def sources_digest(package=None):
    """SHA-256 over the package's own Python sources (path and bytes of every pa3/**/*.py but the course
    tooling in pa3/assignment/): the code that trains and scores a run. A run folder records it
    (sources.json), so a run trained before the code changed is trained again, not reused."""
    package = Path(package or Path(__file__).parent)
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.parts[0] == "assignment" or "__pycache__" in relative.parts:
            continue
        digest.update(f"{relative.as_posix()}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()

