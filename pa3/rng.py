"""Random number generators: seed them, and save and restore their state for an exact resume.

Every epoch starts from RNG states that depend only on (seed, epoch, rank) (``seed_epoch``), so the
shuffle order and the random augmentations of an epoch are fixed in advance. A run stopped in the middle
of an epoch saves ``get_state`` in last.pt; the resumed run replays the data order up to that step, then
``set_state`` puts every generator back where it was. The states are tensors, lists and numbers, so
``torch.load(weights_only=True)`` accepts them.
"""
import random

import numpy as np
import torch

from pa3 import distributed


def seed_everything(seed):
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed, epoch):
    """The seed of epoch ``epoch`` of a run seeded with ``seed`` (before the per-rank offset)."""
    return seed * 100_003 + epoch  # distinct for every (seed, epoch) pair in practice


def _loader_generators(loader):
    generators = [loader.generator, getattr(loader.sampler, "generator", None)]
    unique = []
    for g in generators:
        if g is not None and all(g is not u for u in unique):
            unique.append(g)
    return unique


def seed_for_epoch(seed, epoch, loader):
    """Make the epoch's shuffle order, augmentations and dropout a function of (seed, epoch, rank) only.

    Under torchrun every rank draws its own augmentations and dropout (an offset per rank; rank 0 and a
    single process get the same seeds); the DistributedSampler's shuffle depends on (its seed, epoch) alone,
    so the ranks still split one permutation of the data between them.
    """
    rank_seed = epoch_seed(seed, epoch) + 1_000_003 * distributed.rank()
    seed_everything(rank_seed)
    for generator in _loader_generators(loader):
        generator.manual_seed(rank_seed)
    if hasattr(loader.sampler, "set_epoch"):  # DistributedSampler
        loader.sampler.set_epoch(epoch)


def get_state(loader):
    """Every generator an epoch draws from (torch, CUDA, NumPy, Python, the loader's), as a dict."""
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_initialized() else None,  # this process's GPU
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "python": {"version": version, "state": list(py_state), "gauss_next": gauss_next},
        "loader": [g.get_state() for g in _loader_generators(loader)],
    }


def set_state(state, loader):
    """Restore a ``get_state`` dict."""
    # RNG states must be CPU byte tensors, whatever map_location the checkpoint was loaded with
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    for generator, saved in zip(_loader_generators(loader), state["loader"]):
        generator.set_state(saved.cpu())
