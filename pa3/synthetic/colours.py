"""Colours: the palettes the painters draw from (facades, cars, clothes, skin, paving, tyres) and the
small helpers that pick, jitter, scale and clip RGB colours.

Every random draw goes through the ``rng`` passed in, so the same generator state gives the same colours.
"""
from __future__ import annotations

import numpy as np


_BUILDING_COLOURS = [(196, 180, 150), (212, 206, 194), (150, 86, 66), (126, 121, 118), (205, 186, 122),
                     (96, 88, 80), (160, 165, 172), (182, 150, 128), (222, 216, 206), (140, 110, 92),
                     (172, 120, 96), (190, 196, 186)]
_CAR_COLOURS = [(205, 205, 210), (28, 28, 32), (150, 152, 158), (98, 100, 104), (150, 26, 28),
                (32, 52, 112), (22, 34, 70), (215, 214, 218), (58, 80, 62), (122, 110, 96), (60, 62, 66)]
_CLOTHES = [(30, 30, 36), (40, 48, 80), (120, 120, 124), (180, 170, 150), (150, 40, 40), (200, 200, 205),
            (60, 90, 60), (90, 60, 40), (30, 60, 130), (210, 170, 60), (110, 50, 110)]
_SKIN = [(235, 200, 170), (200, 160, 125), (150, 105, 75), (95, 65, 45)]

_PAVING = [(165, 163, 160), (150, 140, 135), (180, 170, 150), (140, 142, 146)]
_TYRE = (22, 22, 24)


def _pick(rng, palette):
    return palette[rng.integers(len(palette))]


def _to_rgb(colour):
    """Float RGB -> tuple of ints, clipped to 0..255 and truncated."""
    return tuple(int(v) for v in np.clip(colour, 0, 255))


def _jittered(rng, base, jitter, shade=1.0):
    """base RGB times shade plus Gaussian noise (std jitter, per channel)."""
    return _to_rgb(np.asarray(base, np.float64) * shade + rng.normal(0.0, jitter, 3))


def _scaled(colour, factor):
    """RGB tuple darkened (factor < 1) or lightened, channel by channel, at most 255."""
    return tuple(min(255, int(v * factor)) for v in colour)
