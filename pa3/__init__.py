"""pa3: CNNs for semantic segmentation of Cityscapes street scenes (a course report, reproduced)."""
import os
from pathlib import Path

__version__ = "0.1.0"


def project_dir():
    """Where pa3 keeps ``data/``, ``runs/`` and ``figures/``: ``$PA3_HOME`` if set, else the source checkout
    pa3 runs from (the folder holding its pyproject.toml), else the current directory (pa3 installed
    with a plain ``pip install``, whose site-packages is no place for data)."""
    env = os.environ.get("PA3_HOME", "").strip()
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parents[1]
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()


def short_path(path):
    """``path`` relative to the working directory when it lies inside ``project_dir()`` (so that what
    pa3 prints, and what notebooks show, holds no machine-specific prefix), else as given."""
    path = Path(path)
    try:
        path.resolve().relative_to(project_dir().resolve())
    except ValueError:
        return str(path)
    return os.path.relpath(path.resolve())



# On import, so that notebooks, the CLI and the tests all train without the page-fault storm (pa3.device).
from pa3.device import tune_allocator as _tune_allocator  # noqa: E402

_tune_allocator()
