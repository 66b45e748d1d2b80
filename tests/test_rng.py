"""Tests of pa3.rng: an epoch's random draws depend on (seed, epoch, rank) only; states restore exactly.
(Exact resume through fit, which relies on both, is tested in test_engine.py.)"""
import torch

import tiny_fit
from pa3 import distributed, rng


def test_every_rank_draws_its_own_augmentation(monkeypatch):
    """Under torchrun the same (seed, epoch) must not give every rank the same crops and flips; rank 0
    keeps the single-process seeds (so a 1-process run is unchanged)."""
    train, _ = tiny_fit.tiny_loaders()
    draws = {}
    for rank in (0, 1, 0):
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        rng.seed_for_epoch(0, 3, train)
        draws.setdefault(rank, []).append(torch.rand(4))
    assert torch.equal(draws[0][0], draws[0][1]) and not torch.equal(draws[0][0], draws[1][0])
    rng.seed_everything(rng.epoch_seed(0, 3))
    assert torch.equal(torch.rand(4), draws[0][0])


def test_a_saved_state_replays_every_generator():
    import random

    import numpy as np

    train, _ = tiny_fit.tiny_loaders()
    rng.seed_for_epoch(0, 1, train)
    state = rng.get_state(train)
    first = (torch.rand(3), np.random.rand(3), random.random(), [len(b[0]) for b in train][:1], list(train.sampler))
    rng.seed_everything(99)  # anything in between
    rng.set_state(state, train)
    again = (torch.rand(3), np.random.rand(3), random.random(), [len(b[0]) for b in train][:1], list(train.sampler))
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2:] == again[2:]
