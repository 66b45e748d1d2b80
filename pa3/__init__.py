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
