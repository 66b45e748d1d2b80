import os

os.environ.setdefault("TQDM_DISABLE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import make_fake_cityscapes  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def root(tmp_path):
    """A small fake Cityscapes root (64x128 frames; train 4, val 2, test 2 with placeholder labels)."""
    return make_fake_cityscapes(tmp_path / "cs", {"train": 4, "val": 2, "test": 2})


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"
