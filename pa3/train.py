"""From a TrainConfig to a trained run folder: datasets, class weights, loaders, model, then ``fit``.

This is the one way pa3 wires a training run: ``python -m pa3 train`` (pa3.cli) and the report's
experiments (pa3.experiments) both build a TrainConfig and call ``train``. Under torchrun every process
calls it; rank 0 builds the resized caches and class frequencies first, the others then read them.
"""
import contextlib
from pathlib import Path

import torch
from torch.utils.data.distributed import DistributedSampler

from pa3 import distributed, rng
from pa3.data import CityscapesSegmentation, class_frequencies, make_loader
from pa3.layout import find_pairs
from pa3.engine import fit
from pa3.losses import class_weights
from pa3.models import WeightsUnavailable, build_model, check_input_size, pretrained_source
from pa3.transforms import EvalPreset, TrainPreset

WEIGHTED_LOSSES = ("weighted_ce", "ce_dice")  # the losses that take class weights


def datasets(config):
    """(train, val) datasets of ``config``: resized once to (config.height, config.width) and cached.

    Their items are uint8 (presets with ``normalize=False``: fewer bytes from the loader workers); ``fit``
    normalises each batch on the device. ``config.val_limit`` keeps the first val frames only.
    """
    size = (config.height, config.width)
    transforms = TrainPreset(normalize=False) if config.augment else EvalPreset(normalize=False)
    train_set = CityscapesSegmentation(config.data_root, "train", config.label_space, size, transforms)
    val_pairs = find_pairs(train_set.root, "val")[:config.val_limit]
    val_set = CityscapesSegmentation(config.data_root, "val", config.label_space, size, EvalPreset(normalize=False),
                                     pairs=val_pairs)
    return train_set, val_set


def class_weights_for(config, method="median"):
    """Class weights of ``config``'s training split (``pa3.losses.class_weights``), rounded to 6 digits so
    that config.json holds them exactly."""
    frequencies = class_frequencies(config.data_root, "train", config.label_space, (config.height, config.width))
    return [round(w, 6) for w in class_weights(frequencies, method).tolist()]


def loaders(config, train_set, val_set):
    """(train, val) DataLoaders; under torchrun each process reads its shard."""
    train_sampler = val_sampler = None
    rank, world_size = distributed.rank(), distributed.world_size()
    if world_size > 1:
        train_sampler = DistributedSampler(train_set, shuffle=True, seed=config.seed)
        # A strided shard counts every val image once (DistributedSampler pads with repeats); every
        # rank needs at least one image (DDP syncs BatchNorm buffers at the first eval forward).
        val_sampler = (list(range(rank, len(val_set), world_size)) if len(val_set) >= world_size
                       else DistributedSampler(val_set, shuffle=False))
    train_loader = make_loader(train_set, config.batch_size, train=True, num_workers=config.num_workers,
                               seed=config.seed, sampler=train_sampler)
    val_loader = make_loader(val_set, config.batch_size, train=False, num_workers=config.num_workers,
                             sampler=val_sampler)
    return train_loader, val_loader


def build_with_weights(config, num_classes):
    """The model of ``config``, from its pretrained weights where it asks for them, with one line saying which.

    Offline, torchvision's weights (``pretrained=True``) cannot be downloaded: the model then starts from
    scratch, and the line says so and where to put the file to use them (a local state dict works offline).
    """
    pretrained = config.pretrained
    if not pretrained:
        return build_model(config.model, num_classes, pretrained=False)
    try:
        model = build_model(config.model, num_classes, pretrained=pretrained)
        if distributed.is_main_process():
            print(f"{config.model}: starts from {pretrained_source(config.model, pretrained)}")
    except WeightsUnavailable as error:
        rng.seed_everything(config.seed)  # the same initial weights as a run that asked for none
        model = build_model(config.model, num_classes, pretrained=False)
        if distributed.is_main_process():
            print(f"{config.model}: offline, so it starts from scratch instead of "
                  f"{pretrained_source(config.model, pretrained)}; {str(error).split('Offline? ')[-1]}")
    return model


def train(config, run_dir, resume=True, weighting=None):
    """Train ``config`` into ``run_dir`` (resuming a stopped run there unless ``resume=False``).

    Args:
        config: TrainConfig; its data_root (None = ``pa3.layout.default_data_root()``) is the dataset. Its
            ``threads`` (if set) are torch's CPU threads while it trains.
        weighting: class-weighting method of ``pa3.losses.class_weights`` for a loss in WEIGHTED_LOSSES
            whose config has no class_weights yet; default "median" for "weighted_ce". The weights are
            stored in the config (and so in config.json).
    Returns:
        the run folder (Path).
    """
    if weighting is not None and config.loss not in WEIGHTED_LOSSES:
        raise ValueError(f"class weighting (--weighting {weighting}) needs loss 'weighted_ce' or 'ce_dice' (--loss), "
                         f"not {config.loss!r}")
    # refuse a size the model cannot take before building a cache at that size
    check_input_size(config.model, torch.empty(1, 3, config.height, config.width, device="meta"))
    with _threads(config.threads):
        _train(config, run_dir, resume, weighting)
    return Path(run_dir)


@contextlib.contextmanager
def _threads(threads):
    """torch's intra-op CPU threads set to ``threads`` (None: as they are), and back afterwards."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(config, run_dir, resume, weighting):
    first = distributed.rank() == 0
    if not first:
        distributed.barrier()  # rank 0 prepares data and caches first
    try:
        train_set, val_set = datasets(config)
        if config.class_weights is None and (config.loss == "weighted_ce" or weighting is not None):
            config.class_weights = class_weights_for(config, weighting or "median")
    finally:  # also on an error, so the other ranks do not wait forever (they then fail the same way)
        if first:
            distributed.barrier()
    train_loader, val_loader = loaders(config, train_set, val_set)
    rng.seed_everything(config.seed)  # the initial weights must not depend on what ran before in this process
    model = build_with_weights(config, train_set.num_classes)
    fit(model, train_loader, val_loader, config, run_dir, resume=resume)
