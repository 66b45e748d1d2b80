"""The scene's setting: the street layout (``_Side``, ``_Street``: lanes, road, sidewalks, facade
lines, in metres), the sky gradient, ``_Scene`` (what every painter shares: generator, camera, canvas,
street, horizon colour) and ``_Placed`` (an object waiting to be painted far to near).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .camera import _Camera
from .canvas import _Canvas
from .colours import _jittered


@dataclass
class _Side:
    """One side of the street, as lateral positions X in metres: road | sidewalk | green strip | facades."""
    sign: int  # -1 left, +1 right
    kerb: float  # where the road ends and the sidewalk begins
    walk_outer: float  # the sidewalk's outer edge
    facade: float  # where the buildings stand
    strip: float  # width of the green strip between sidewalk and facades (0: none)
    green: bool  # a park: hedges and dense trees instead of buildings
    parking: bool  # a 2.3 m parking strip (labelled road) along the kerb
    shade: float  # light on this side's facades (sun or shadow)


class _Street:
    """The street's layout: lanes, road, sidewalks and facade lines (metres, the camera at X = 0)."""

    def __init__(self, rng, facade_shade):
        self.lane_width = rng.uniform(3.0, 3.6)
        self.n_lanes = int(rng.choice([2, 2, 3, 4]))
        # the lane the camera drives in, counted from the left; the right one of two
        own = int(rng.integers(0, self.n_lanes)) if self.n_lanes > 2 else 1
        self.lanes = (-(own + 0.5) * self.lane_width, (self.n_lanes - own - 0.5) * self.lane_width)  # (left, right)
        parking = {-1: rng.random() < 0.35, 1: rng.random() < 0.35}
        self.road = (self.lanes[0] - 2.3 * parking[-1], self.lanes[1] + 2.3 * parking[1])  # (left, right) kerbs
        self.two_way = rng.random() < 0.6
        self.far = rng.uniform(150, 260)  # depth of the backdrop where the street ends
        sides = []
        for sign, kerb in ((-1, self.road[0]), (1, self.road[1])):
            walk_width = rng.uniform(1.8, 5.5)
            strip = rng.uniform(1.0, 4.0) if rng.random() < 0.3 else 0.0
            sides.append(_Side(sign, kerb, walk_outer=kerb + sign * walk_width,
                               facade=kerb + sign * (walk_width + strip), strip=strip, green=rng.random() < 0.15,
                               parking=parking[sign], shade=facade_shade[sign]))
        self.sides = tuple(sides)  # (left, right)

    def lane_centre(self, lane):
        return self.lanes[0] + (lane + 0.5) * self.lane_width

    def oncoming(self, X):
        """Whether a car at X faces the camera: on a two-way road, the lanes left of the camera's come towards it."""
        return self.two_way and X < -self.lane_width / 2

    def cyclist_x(self, rng):
        """Cyclists ride at the right edge of the right lane."""
        return self.lanes[1] - rng.uniform(0.6, 1.2)


def _sky(rng, camera, overcast):
    """Vertical gradient from the top row to the horizon: uint8 (H, W, 3), and its colour at the horizon (3,)."""
    if overcast:
        top, horizon = np.array(_jittered(rng, (165, 170, 182), 10)), np.array(_jittered(rng, (215, 215, 220), 8))
    else:
        top, horizon = np.array(_jittered(rng, (72, 122, 200), 14)), np.array(_jittered(rng, (185, 208, 232), 10))
    # math.pow, not numpy's: numpy's vectorised float32 power differs in the last bit between its
    # AVX-512 and baseline code paths, and that bit decides a pixel's grey level after truncation
    t = np.array([[math.pow(min(max(i / max(camera.cy, 1.0), 0.0), 1.0), 0.8)] for i in range(camera.height)])
    rows = top[None, :] * (1 - t) + horizon[None, :] * t  # (H, 3)
    return np.broadcast_to(rows[:, None, :], (camera.height, camera.width, 3)).astype(np.uint8), horizon


class _Scene:
    """What every painter shares: the random generator (the only source of randomness), the camera, the canvas,
    the street and the sky's colour at the horizon (haze fades distant things towards it)."""

    def __init__(self, rng, height, width):
        self.rng = rng
        self.camera = _Camera(rng, height, width)
        shade_left, shade_right = rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0)
        overcast = rng.random() < 0.35
        sky, self.horizon_colour = _sky(rng, self.camera, overcast)
        self.canvas = _Canvas(sky)
        self.street = _Street(rng, {-1: shade_left, 1: shade_right})


class _Placed(NamedTuple):
    """An object placed in the scene, to be painted far to near (painter's algorithm)."""
    depth: float  # metres
    paint: Callable[[], None]
