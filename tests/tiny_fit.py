"""A tiny training setup for tests/test_engine.py, also run as a script by the tests that kill a training
subprocess (SIGINT, SIGTERM, SIGKILL), so that both run exactly the same code.

    python tests/tiny_fit.py RUN_DIR [MARKER STEP]     # TINY_AMP=fp16: the T4's fp16 + GradScaler path
"""
import os
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pa3.config import TrainConfig
from pa3.engine import fit


class TinyNet(nn.Module):
    def __init__(self, num_classes=3):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Dropout2d(0.2))
        self.classifier = nn.Conv2d(8, num_classes, 1)

    def forward(self, x):
        return self.classifier(self.features(x))


def tiny_data(n=16, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, size, size, generator=g)
    masks = (images[:, 0] > 0).long() + (images[:, 1] > 0.5).long()  # 3 classes, learnable pixel-wise
    masks[:, :2, :2] = 255  # a few ignored pixels
    return TensorDataset(images, masks)


def tiny_loaders(batch_size=4, seed=0):
    train = DataLoader(tiny_data(), batch_size=batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    val = DataLoader(tiny_data(n=8, seed=1), batch_size=4)
    return train, val


def tiny_config(**kwargs):
    values = dict(model="tiny", epochs=3, batch_size=4, lr=1e-2, device="cpu")
    values.update(kwargs)
    return TrainConfig(**values)


class MarkerLoss(nn.Module):
    """Cross-entropy that writes a marker file after `after` calls, then slows down (to be killed)."""

    def __init__(self, marker=None, after=None):
        super().__init__()
        self.ce = nn.CrossEntropyLoss(ignore_index=255)
        self.marker, self.after, self.calls = marker, after, 0

    def forward(self, logits, target):
        self.calls += torch.is_grad_enabled()  # count training steps, not validation batches
        if self.marker and self.calls == self.after:
            open(self.marker, "w").write("ready")
        if self.marker and self.calls >= self.after:
            time.sleep(0.5)
        return self.ce(logits, target)


def run(run_dir, marker=None, after=None, **config):
    torch.manual_seed(123)  # model init
    model = TinyNet()
    train, val = tiny_loaders()
    fit(model, train, val, tiny_config(**config), run_dir, criterion=MarkerLoss(marker, after),
        num_classes=3)
    return model


if __name__ == "__main__":
    torch.set_num_threads(1)
    amp = {"amp": os.environ["TINY_AMP"]} if os.environ.get("TINY_AMP") else {}
    run(sys.argv[1], *(sys.argv[2:3] or [None]), *(map(int, sys.argv[3:4]) or []), **amp)
