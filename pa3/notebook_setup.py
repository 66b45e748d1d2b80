"""The first cell of every notebook: the profile (its name and the ``PA3_*`` variables, read here once), seeds,
threads, deterministic mode, and the data folder.

``PA3_PROFILE`` picks the profile (or the parameters cell's ``PROFILE``), ``PA3_DATA`` points at real data,
``PA3_RUNS`` moves the run folders (e.g. onto Google Drive), ``PA3_FIGURES`` the figures (the tests point it at a
temporary folder), ``PA3_THREADS`` pins another number of CPU threads and ``PA3_AMP`` another precision (e.g.
``off``: fp32 where pa3 would use bf16). Everything that changes a run's result lands in ``profile.config``.
"""
import dataclasses
import os
import warnings
from pathlib import Path

import torch

from pa3 import short_path
from pa3.camvid import ensure_camvid
from pa3.device import AMP_MODES
from pa3.layout import HOW_TO_GET, default_data_root
from pa3.profiles import PROFILES, REPO_ROOT
from pa3.rng import seed_everything


def get_profile(name=None, data_root=None):
    """The profile ``name`` (default: $PA3_PROFILE or "default") with ``data_root`` (default: $PA3_DATA) and the
    other ``PA3_*`` settings of this module's docstring applied."""
    env = {key: os.environ.get(key, "").strip() for key in
           ("PA3_PROFILE", "PA3_DATA", "PA3_RUNS", "PA3_FIGURES", "PA3_THREADS", "PA3_AMP")}
    name = name or env["PA3_PROFILE"] or "default"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)} (PA3_PROFILE)")
    profile = PROFILES[name]
    config = {"data_root": data_root or env["PA3_DATA"] or profile.config.data_root}
    if env["PA3_THREADS"]:
        try:
            config["threads"] = int(env["PA3_THREADS"])
        except ValueError:
            raise ValueError(f"PA3_THREADS={env['PA3_THREADS']!r}: give a number of threads, e.g. 2") from None
    if env["PA3_AMP"]:
        if env["PA3_AMP"].lower() not in AMP_MODES:
            raise ValueError(f"PA3_AMP={env['PA3_AMP']!r}; choose one of {AMP_MODES}")
        config["amp"] = env["PA3_AMP"].lower()
    changes = {"config": dataclasses.replace(profile.config, **config)}
    if env["PA3_RUNS"]:  # e.g. a folder on Google Drive, so that runs survive a disconnect
        changes["runs_dir"] = env["PA3_RUNS"]
    if env["PA3_FIGURES"]:  # e.g. a temporary folder: tests leave figures/ as committed
        relative = Path(profile.figures_dir).relative_to(REPO_ROOT / "figures")  # "" or "camvid", ...
        changes["figures_dir"] = str(Path(env["PA3_FIGURES"]) / relative)
    return dataclasses.replace(profile, **changes)


def setup_notebook(profile=None, data_root=None, seed=0):
    """Seed, pin threads, quiet warnings, resolve the profile and its data.

    Returns the Profile, its ``config.data_root`` resolved to a folder that exists (the embedded synthetic set
    is generated on first use, CamVid downloaded and converted).
    """
    prof = get_profile(profile, data_root)
    seed_everything(seed)
    if prof.config.threads:
        torch.set_num_threads(prof.config.threads)
    torch.use_deterministic_algorithms(prof.cpu_calibrated, warn_only=True)
    if prof.cpu_calibrated and torch.cuda.is_available():
        # never measured against the CPU-calibrated values: TF32 stays off (and amp "cpu_bf16" is fp32 there)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    warnings.filterwarnings("ignore")  # warning texts hold temp paths, which break nbval comparisons
    if prof.config.data_root is None and prof.dataset == "camvid":
        root = ensure_camvid()  # data/camvid: reused, else downloaded and converted (python -m pa3 data camvid)
    elif prof.config.data_root is None:
        root = default_data_root()
    else:
        root = Path(prof.config.data_root).expanduser()
        if not root.exists():
            raise FileNotFoundError(
                f"data root {root} does not exist; set PA3_DATA (or DATA_ROOT in the parameters cell) to your "
                f"Cityscapes folder (it holds leftImg8bit/ and gtFine/), or leave both unset to use the embedded "
                f"synthetic data.\n{HOW_TO_GET}")
    # e.g. ../data/synthetic from notebooks/
    prof = dataclasses.replace(prof, config=dataclasses.replace(prof.config, data_root=short_path(root)))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"profile {prof.name!r}: frames resized to {prof.config.height}x{prof.config.width}, "
          f"label space {prof.config.label_space}, device {device}")
    return prof
