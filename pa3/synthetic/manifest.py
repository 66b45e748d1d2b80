"""Checksums of a synthetic set: ``MANIFEST`` (the committed checksums of the default set,
data/synthetic.sha256), ``checksums`` (a PNG's mode, size and pixels, any other file's bytes),
``write_manifest`` and ``read_manifest`` (``sha256sum`` format).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image

from .. import project_dir
from ..files import BadFileError, read_text


MANIFEST = project_dir() / "data" / "synthetic.sha256"  # checksums of the default set, committed


def _content_digest(path):
    # A PNG's pixels, not its bytes: another zlib build may compress the same pixels differently.
    if path.suffix == ".png":
        with Image.open(path) as image:
            header = f"{image.mode} {image.size[0]}x{image.size[1]}\n".encode()
            return hashlib.sha256(header + image.tobytes()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def checksums(root) -> dict:
    """{path relative to ``root``: sha256 of its content} for every file under ``root``, sorted by path.

    The content of a PNG is its mode, size and pixels; of any other file, its bytes.
    """
    root = Path(root)
    return {p.relative_to(root).as_posix(): _content_digest(p) for p in sorted(root.rglob("*")) if p.is_file()}


def write_manifest(root, path=MANIFEST):
    """Write ``checksums(root)``, one ``<sha256>  <relative path>`` line per file."""
    lines = [f"{digest}  {name}\n" for name, digest in checksums(root).items()]
    Path(path).write_text("".join(lines))


def read_manifest(path=MANIFEST) -> dict:
    """{relative path: sha256} from a ``sha256sum``-format file written by ``write_manifest``."""
    fix = f"Restore it with git (git checkout -- {Path(path).name}) or rewrite it with write_manifest"
    entries = {}
    for number, line in enumerate(read_text(path, "checksum manifest", fix).splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise BadFileError(path, f"is not a checksum manifest: line {number} is {line!r}, not "
                               f"'<sha256>  <path>'", fix, "checksum manifest")
        entries[name] = digest
    return entries
