"""Embedded synthetic street scenes, written in the exact Cityscapes folder layout.

Real Cityscapes needs a login and ~11 GB, so pa3 ships a generator of small, deterministic street scenes
that the real dataset class reads unchanged: ``leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png``
beside ``gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_{labelIds,instanceIds,color,polygons}``.

Each scene is drawn in perspective from a random camera (horizon, vanishing point, focal length): sky,
a road with lane markings, sidewalks, building facades with windows, walls and fences, trees, terrain,
poles with traffic lights and signs, cars, pedestrians, cyclists (rider on a bicycle), the ego-vehicle
hood and the rectification border. Image and label are drawn from the *same* polygons, far to near
(painter's algorithm), so what the image shows is what the label says; texture, lighting and sensor noise
then make the classes distinguishable but not trivially. Class frequencies are skewed like Cityscapes
(road, building, vegetation, sky, car, sidewalk common; traffic sign, person, bicycle rare), and every
image holds at least one car, person, traffic sign and rider on a bicycle, so every split contains the
report's five classes (building, traffic sign, person, car, bicycle).

One difference from the real dataset is deliberate: real Cityscapes' ``test`` split has placeholder
labels (the ground truth is withheld), whereas the synthetic ``test`` split has real labels, so the
figures the report labels "test" can be reproduced on it.

Output is a pure function of ``SyntheticConfig``: image ``i`` of a split is drawn from a generator seeded
with ``(seed, split, i)``, whatever the number of worker processes.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from . import labels, project_dir, short_path
from .files import BadFileError, read_json, read_text, remove, write_json

GENERATOR_VERSION = 2  # 2: the sky gradient no longer depends on the CPU's SIMD features
STAMP_NAME = "pa3_synthetic.json"
SPLITS = ("train", "val", "test")
CITIES = {
    "train": ("aachen_syn", "bochum_syn", "bremen_syn", "cologne_syn", "darmstadt_syn"),
    "val": ("frankfurt_syn", "lindau_syn", "munster_syn"),
    "test": ("berlin_syn", "bielefeld_syn"),
}
FRAME = 19  # Cityscapes' annotated frame is the 20th of each snippet: <city>_<seq>_000019

# labelIds (cityscapesscripts.helpers.labels) of the classes drawn here
EGO, BORDER, OUT_OF_ROI = 1, 2, 3
ROAD, SIDEWALK = 7, 8
BUILDING, WALL, FENCE = 11, 12, 13
POLE, LIGHT, SIGN = 17, 19, 20
VEGETATION, TERRAIN, SKY = 21, 22, 23
PERSON, RIDER, CAR, BICYCLE = 24, 25, 26, 33
_NAMES = labels.class_names("labelId")

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
# Traffic signs by kind: (face colour, colour of the inner field, size of the inner field relative to the face)
_SIGN_STYLES = [((200, 30, 35), (240, 240, 236), 0.68),  # 0 round, red ring (prohibition)
                ((200, 30, 35), (240, 240, 236), 0.68),  # 1 triangle, red rim (warning, give way)
                ((30, 80, 170), (235, 235, 235), 0.4),  # 2 square, blue (information)
                ((230, 190, 30), (245, 245, 240), 0.55),  # 3 diamond, yellow (priority road)
                ((230, 230, 225), (30, 30, 30), 0.4),  # 4 wide plate, white (street name)
                ((30, 80, 170), (235, 235, 235), 0.4)]  # 5 round, blue (mandatory direction)
# Bicycle seen from the side, heading right: joints (local metres, origin on the ground below the crank)
# and the frame tubes between them.
_BICYCLE_JOINTS = {"rear hub": (-0.55, 0.34), "front hub": (0.55, 0.34), "crank": (0.0, 0.3),
                   "saddle": (-0.18, 0.88), "head tube": (0.42, 0.9), "handlebar": (0.38, 1.02)}
_BICYCLE_TUBES = [("rear hub", "crank"), ("rear hub", "saddle"), ("crank", "saddle"), ("saddle", "head tube"),
                  ("crank", "head tube"), ("head tube", "front hub"), ("head tube", "handlebar")]
_GROUND_START = 0.5  # metres in front of the camera where the ground polygons begin

# Multiplicative texture amplitude per labelId: coarse blotches and fine grain.
_COARSE_TEXTURE = np.full(256, 0.05, np.float32)
_FINE_TEXTURE = np.full(256, 0.04, np.float32)
for _ids, _coarse, _fine in [((ROAD,), 0.07, 0.06), ((SIDEWALK,), 0.07, 0.07), ((BUILDING,), 0.08, 0.05),
                             ((WALL,), 0.10, 0.08), ((FENCE,), 0.06, 0.08), ((VEGETATION,), 0.28, 0.28),
                             ((TERRAIN,), 0.20, 0.16), ((SKY,), 0.03, 0.01), ((CAR,), 0.04, 0.03),
                             ((EGO, BORDER, OUT_OF_ROI), 0.03, 0.02)]:
    _COARSE_TEXTURE[list(_ids)], _FINE_TEXTURE[list(_ids)] = _coarse, _fine


@dataclass
class SyntheticConfig:
    """What to generate: images per split, image size (height, width) and the seed."""
    n_train: int = 300
    n_val: int = 60
    n_test: int = 60
    height: int = 256
    width: int = 512
    seed: int = 0


# ---- colours and shapes -------------------------------------------------------------------------------------

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


def _segment_quad(p0, p1, width0, width1=None):
    """Quad (4, 2) around the segment p0-p1 (local metres), width0 wide at p0 and width1 (default width0) at p1."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    along = p1 - p0
    normal = np.array([-along[1], along[0]]) / max(np.hypot(*along), 1e-9)
    width1 = width0 if width1 is None else width1
    return np.array([p0 + normal * width0 / 2, p1 + normal * width1 / 2,
                     p1 - normal * width1 / 2, p0 - normal * width0 / 2])


def _ellipse(cx, cy, rx, ry, n):
    """n points (n, 2) on the ellipse around (cx, cy) with radii rx, ry."""
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], -1)


def _scale_about_centre(points, factor):
    """points (n, 2) scaled by factor (a number or one per axis) about their mean."""
    centre = points.mean(0)
    return centre + (points - centre) * factor


# ---- camera, canvas, street ---------------------------------------------------------------------------------

class _Camera:
    """A pinhole camera on a car, looking down the street with a level horizon.

    World points are in metres: X right, Y up from the road surface, Z forward from the camera.
    Image points are in pixels: x right, y down from the top-left corner.
    """

    def __init__(self, rng, height, width):
        self.height, self.width = height, width
        self.cx = width * rng.uniform(0.42, 0.58)  # vanishing point: x ...
        self.cy = height * rng.uniform(0.38, 0.47)  # ... and y, the horizon's row
        self.fx = 1.1 * width * rng.uniform(0.9, 1.1)  # focal length in pixels
        self.fy = self.fx * 2.0 * height / width  # square pixels at the 1:2 Cityscapes aspect ratio
        self.mount_height = rng.uniform(1.15, 1.45)  # metres above the road
        self.pixel_scale = width / 512.0  # pixels per pixel of a 512-wide image, for details sized in pixels

    def project(self, X, Y, Z):
        """World points (broadcastable arrays, metres) -> pixels (..., 2).

        Depths under 0.3 m are clamped, so that ground and wall polygons starting behind the camera stay finite.
        """
        Z = np.maximum(np.asarray(Z, float), 0.3)
        x = self.cx + self.fx * np.asarray(X, float) / Z
        y = self.cy - self.fy * (np.asarray(Y, float) - self.mount_height) / Z
        return np.stack(np.broadcast_arrays(x, y), -1)

    def billboard(self, X, Z, local):
        """An upright plane standing at (X, 0, Z), facing the camera: local metres (..., 2), x right and y up,
        -> pixels (..., 2). Thin things (people, poles, trees, signs) are drawn flat like this, at one depth.
        """
        local = np.asarray(local, float)
        return np.stack([self.cx + self.fx * (X + local[..., 0]) / Z,
                         self.cy - self.fy * (local[..., 1] - self.mount_height) / Z], -1)

    def ground_rect(self, x0, x1, z0, z1):
        """Rectangle on the road surface, x0..x1 across and z0..z1 deep (metres) -> pixels (4, 2)."""
        return self.project([x0, x1, x1, x0], 0.0, [z0, z0, z1, z1])

    def wall_rect(self, X, z0, z1, y0, y1):
        """Rectangle in the vertical plane X (parallel to the road), z0..z1 deep and y0..y1 high -> pixels (4, 2)."""
        return self.project(X, [y0, y0, y1, y1], [z0, z1, z1, z0])

    def nearest_visible_depth(self, X, Z):
        """Smallest depth >= Z at which lateral position X (+-1 m) projects inside the central 90% of the width."""
        room = (self.cx - 0.05 * self.width) if X < 0 else (0.95 * self.width - self.cx)
        return max(Z, self.fx * (abs(X) + 1.0) / room)


class _Canvas:
    """The three images of a scene, painted with the same polygons: the photo (RGB), the labelIds and the instance ids.

    `fill` paints all three; `paint` only the photo, for details (windows, lamps, lane markings) that belong to the
    class they are painted on, as in Cityscapes.
    """

    def __init__(self, background):
        height, width = background.shape[:2]  # background: uint8 (H, W, 3), the sky
        self.photo = Image.fromarray(background)
        self.labels = Image.new("L", (width, height), SKY)
        self.instances = Image.new("I", (width, height), 0)  # 0: no instance
        self._photo_pen, self._label_pen, self._instance_pen = (
            ImageDraw.Draw(self.photo), ImageDraw.Draw(self.labels), ImageDraw.Draw(self.instances))
        self._instances_of = {}  # labelId -> instances made so far

    def new_instance(self, label):
        """A new instance id of class label: labelId * 1000 + k, k = 0, 1, ... as in Cityscapes."""
        k = self._instances_of.get(label, 0)
        self._instances_of[label] = k + 1
        return label * 1000 + k

    def fill(self, points, colour, label, instance_id=0):
        """Polygon points (n, 2) in pixels."""
        xy = np.asarray(points, float).ravel().tolist()
        self._photo_pen.polygon(xy, fill=colour)
        self._label_pen.polygon(xy, fill=label)
        self._instance_pen.polygon(xy, fill=instance_id)

    def paint(self, points, colour):
        self._photo_pen.polygon(np.asarray(points, float).ravel().tolist(), fill=colour)

    def ring(self, cx, cy, rx, ry, colour, width, label, instance_id):
        """Ellipse outline width pixels thick around (cx, cy), radii rx, ry (pixels)."""
        box = [cx - rx, cy - ry, cx + rx, cy + ry]
        width = max(1, int(round(width)))
        self._photo_pen.ellipse(box, outline=colour, width=width)
        self._label_pen.ellipse(box, outline=label, width=width)
        self._instance_pen.ellipse(box, outline=instance_id, width=width)

    def label_ids(self):
        return np.asarray(self.labels)  # uint8 (H, W), read-only, not changed by later painting


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


# ---- the scene, step by step --------------------------------------------------------------------------------
# Every random draw goes through the scene's one generator, in a fixed order: drawing once more, once less or in
# another order changes the rest of the scene, and with it the committed checksums (data/synthetic.sha256).

def render_scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one street scene.

    Args:
        rng: the only source of randomness (same state -> same scene).
        height, width: image size in pixels (drawing is in world units, so any size works).
    Returns:
        image uint8 (H, W, 3) RGB, label_ids uint8 (H, W) Cityscapes labelIds 0..33,
        instance_ids uint16 (H, W): labelId * 1000 + k for person/rider/car/bicycle, else the labelId.
    """
    scene = _Scene(rng, int(height), int(width))  # camera, sky and street layout
    road_colour = _paint_ground(scene)
    zebra = _paint_markings(scene, road_colour)
    _paint_backdrop(scene)
    for side in scene.street.sides:
        _paint_facades(scene, side)
        _paint_walls_and_fences(scene, side)
    guaranteed, car, cyclist = _place_guaranteed(scene)
    placed = list(guaranteed.values())
    for side in scene.street.sides:
        placed += _place_roadside(scene, side)
    placed += _place_traffic(scene, car, cyclist, zebra)
    for thing in sorted(placed, key=lambda thing: -thing.depth):  # far to near; a stable sort keeps ties in order
        thing.paint()
    _repaint_hidden(scene, guaranteed)
    _paint_ego_vehicle(scene)
    _paint_border(scene)
    return _photograph(scene)


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


# ---- ground ---------------------------------------------------------------------------------------------------

def _paint_ground(scene):
    """Both sides' ground, then the road over it with darker patches. Returns the road's colour."""
    rng, camera, canvas, street = scene.rng, scene.camera, scene.canvas, scene.street
    road = _jittered(rng, (rng.uniform(80, 125),) * 3, 4)
    road = tuple(int(np.clip(v + d, 0, 255)) for v, d in zip(road, (2, 0, 4)))  # asphalt is a little blue
    paving = _pick(rng, _PAVING)
    for side in street.sides:
        _paint_sidewalk(scene, side, paving)
    canvas.fill(camera.ground_rect(*street.road, _GROUND_START, street.far), road, ROAD)
    # asphalt patches and car shadows: darker road, still road
    for _ in range(rng.integers(0, 5)):
        x, z = rng.uniform(*street.road), rng.uniform(8, 60)
        dx, dz = rng.uniform(0.5, 3), rng.uniform(1, 6)
        patch = tuple(int(v * rng.uniform(0.8, 0.92)) for v in road)  # one random factor per channel
        canvas.paint(camera.ground_rect(x, x + dx, z, z + dz), patch)
    return road


def _paint_sidewalk(scene, side, paving):
    """What lies beyond the facade line (terrain or pavement), the green strip, and the sidewalk with paving joints
    and a lighter kerb stone (joints and kerb are still sidewalk)."""
    rng, camera, canvas, far = scene.rng, scene.camera, scene.canvas, scene.street.far
    beyond = TERRAIN if rng.random() < 0.5 else SIDEWALK
    colour = _jittered(rng, (118, 138, 78), 12) if beyond == TERRAIN else _jittered(rng, paving, 8)
    canvas.fill(camera.ground_rect(side.facade, side.sign * 300.0, _GROUND_START, far), colour, beyond)
    if side.strip > 0:
        canvas.fill(camera.ground_rect(side.walk_outer, side.facade, _GROUND_START, far),
                    _jittered(rng, (112, 136, 74), 14), TERRAIN)
    walk = _jittered(rng, paving, 8)
    canvas.fill(camera.ground_rect(side.kerb, side.walk_outer, _GROUND_START, far), walk, SIDEWALK)
    for z in np.arange(rng.uniform(1, 2.5), 45, rng.uniform(1.2, 2.5)):
        canvas.paint(camera.ground_rect(side.kerb, side.walk_outer, z, z + 0.05), _scaled(walk, 0.8))
    canvas.paint(camera.ground_rect(side.kerb, side.kerb + side.sign * 0.18, _GROUND_START, far), _scaled(walk, 1.15))


def _paint_markings(scene, road_colour):
    """Worn edge lines, lane dashes, a double centre line on two-way roads and sometimes a zebra crossing (paint
    only: markings are labelled road). Returns the zebra crossing's (near, far) depths, or None."""
    rng, camera, canvas, street = scene.rng, scene.camera, scene.canvas, scene.street
    white = _jittered(rng, (215, 215, 210), 8)
    worn = tuple(int(0.55 * p + 0.45 * q) for p, q in zip(white, road_colour))
    left, right = street.lanes
    for x in (left + 0.15, right - 0.15):
        canvas.paint(camera.ground_rect(x - 0.07, x + 0.07, _GROUND_START, street.far), worn)
    dash, gap = rng.uniform(2.5, 4), rng.uniform(4, 8)
    centre = int(rng.integers(1, street.n_lanes)) if street.two_way else -1  # the line between the directions
    for i in range(1, street.n_lanes):
        x = left + i * street.lane_width
        if i == centre:
            for offset in (-0.12, 0.12):
                canvas.paint(camera.ground_rect(x + offset - 0.06, x + offset + 0.06, _GROUND_START, street.far),
                             white)
            continue
        for z in np.arange(rng.uniform(0, dash + gap), 90, dash + gap):
            canvas.paint(camera.ground_rect(x - 0.08, x + 0.08, z, z + dash), white)
    if rng.random() < 0.25:
        z = rng.uniform(12, 30)
        for x in np.arange(street.road[0] + 0.4, street.road[1] - 0.4, 1.0):
            canvas.paint(camera.ground_rect(x, x + 0.5, z, z + 3.0), white)
        return z, z + 3.0
    return None


# ---- backdrop, buildings, walls, fences -----------------------------------------------------------------

def _paint_backdrop(scene):
    """Where the street ends: a row of buildings, tree clumps and gaps, hazed towards the horizon's colour."""
    rng, camera, canvas = scene.rng, scene.camera, scene.canvas
    far, haze = scene.street.far, scene.horizon_colour
    x = -220.0
    while x < 220:
        width = rng.uniform(8, 40)
        kind = rng.random()
        if kind < 0.6:
            colour = np.array(_pick(rng, _BUILDING_COLOURS), float)
            colour = tuple(int(v) for v in 0.55 * colour + 0.45 * haze)
            height = rng.uniform(6, 35)
            canvas.fill(camera.project([x, x + width, x + width, x], [0, 0, height, height], far), colour, BUILDING)
        elif kind < 0.85:
            colour = tuple(int(v) for v in 0.6 * np.array(_jittered(rng, (60, 90, 45), 10)) + 0.4 * haze)
            for _ in range(int(width // 5) + 1):  # crowns over a band of bushes
                cx, cy, radius = x + rng.uniform(0, width), rng.uniform(4, 10), rng.uniform(3, 7)
                crown = _ellipse(cx, cy, radius, radius * 0.8, 10)
                canvas.fill(camera.project(crown[:, 0], crown[:, 1], far), colour, VEGETATION)
            canvas.fill(camera.project([x, x + width, x + width, x], [0, 0, 4, 4], far), colour, VEGETATION)
        x += width


def _paint_facades(scene, side):
    """Buildings along one side, with gaps (hedges or nothing) between them; only hedges in a park."""
    rng = scene.rng
    z = rng.uniform(-6, 2)
    z_end = scene.street.far - rng.uniform(0, 40)
    p_gap = rng.uniform(0.05, 0.3)
    while z < z_end:
        length = rng.uniform(8, 32)
        z_near, z_far = max(z, 0.5), min(z + length, z_end)
        if side.green or rng.random() < p_gap:
            if rng.random() < 0.6:
                _paint_hedge(scene, side.facade + side.sign * rng.uniform(0, 3), z_near, z_far)
        else:
            _paint_building(scene, side, side.facade + side.sign * rng.uniform(0, 2.5), z_near, z_far)
        z += length


def _paint_walls_and_fences(scene, side):
    """Up to two low walls or fences just in front of the facade line."""
    rng, camera, canvas = scene.rng, scene.camera, scene.canvas
    for _ in range(rng.integers(0, 3)):
        z_near = rng.uniform(2, 60)
        z_far = z_near + rng.uniform(5, 30)
        x = side.facade - side.sign * 0.2
        if rng.random() < 0.5:
            canvas.fill(camera.wall_rect(x, z_near, z_far, 0, rng.uniform(0.8, 2.5)),
                        _jittered(rng, (155, 152, 145), 15, side.shade), WALL)
        else:
            _paint_fence(scene, side, x, z_near, z_far)


def _paint_building(scene, side, x, z_near, z_far):
    """Facade in the plane X = x from depth z_near to z_far: wall, maybe a pitched roof, cornice, upper-floor
    windows and a ground floor of shop windows and doors (details are paint only, labelled building)."""
    rng, camera, canvas = scene.rng, scene.camera, scene.canvas
    height = rng.uniform(7, 28) if rng.random() < 0.85 else rng.uniform(3.5, 7)
    wall = _jittered(rng, _pick(rng, _BUILDING_COLOURS), 12, side.shade)
    canvas.fill(camera.wall_rect(x, z_near, z_far, 0, height), wall, BUILDING)
    if rng.random() < 0.3:
        roof = _jittered(rng, (110, 60, 50) if rng.random() < 0.6 else (70, 72, 78), 10, side.shade)
        canvas.fill(camera.wall_rect(x + side.sign * 1.0, z_near, z_far, height, height + rng.uniform(1.5, 4)),
                    roof, BUILDING)
    canvas.paint(camera.wall_rect(x, z_near, z_far, height - 0.4, height), _scaled(wall, 0.8))
    if height < 4:
        return
    storey, window_width, window_height = rng.uniform(2.8, 3.5), rng.uniform(0.8, 1.5), rng.uniform(1.1, 1.7)
    spacing = window_width + rng.uniform(1.0, 2.2)
    ground_floor = rng.uniform(3.2, 4.5)
    window_z = np.arange(z_near + rng.uniform(0.5, 1.5), z_far - window_width - 0.3, spacing)
    window_y = ground_floor + 0.9 + np.arange(int((height - ground_floor - 1.0) // storey)) * storey
    if len(window_z) and len(window_y):
        _paint_windows(scene, x, window_z, window_y, window_width, window_height, wall)
    _paint_shop_fronts(scene, x, z_near, z_far, ground_floor)


def _paint_windows(scene, x, window_z, window_y, window_width, window_height, wall):
    """A grid of windows on the plane X = x: near edges at depths window_z, lower edges at heights window_y
    (metres). Each pane reflects its own brightness; panes large enough on screen get a light frame."""
    rng, camera, canvas = scene.rng, scene.camera, scene.canvas
    z0, y0 = np.meshgrid(window_z, window_y)  # (storeys, columns)
    quads = camera.project(x, np.stack([y0, y0, y0 + window_height, y0 + window_height], -1),
                           np.stack([z0, z0 + window_width, z0 + window_width, z0], -1))
    quads = quads.reshape(-1, 4, 2)
    heights = quads[:, 1, 1] - quads[:, 2, 1]  # pixels on screen (image y grows downwards)
    glass = np.array(_jittered(rng, (55, 62, 75), 10))
    frame = tuple(min(255, int(v * 1.25 + 20)) for v in wall)
    for quad, height in zip(quads, heights):
        if height < 1.2 * camera.pixel_scale or quad[:, 0].max() < 0 or quad[:, 0].min() > camera.width:
            continue  # too small to see, or off screen
        if height > 6 * camera.pixel_scale:
            canvas.paint(_scale_about_centre(quad, 1.18), frame)
        canvas.paint(quad, _to_rgb(glass * rng.uniform(0.6, 1.5)))


def _paint_shop_fronts(scene, x, z_near, z_far, ground_floor):
    """Shop windows and doors along the ground floor (ground_floor metres high) of the plane X = x."""
    rng, camera, canvas = scene.rng, scene.camera, scene.canvas
    z = z_near + rng.uniform(0.3, 2)
    while z < z_far - 2:
        width = rng.uniform(1.0, 3.5)
        colour = _jittered(rng, (45, 50, 58), 8) if rng.random() < 0.7 else _jittered(rng, (90, 60, 40), 10)
        canvas.paint(camera.wall_rect(x, z, min(z + width, z_far - 0.3), 0.3, rng.uniform(2.2, ground_floor - 0.5)),
                     colour)
        z += width + rng.uniform(1.0, 4.0)


def _paint_hedge(scene, x, z_near, z_far):
    rng = scene.rng
    scene.canvas.fill(scene.camera.wall_rect(x, z_near, z_far, 0, rng.uniform(0.8, 2.2)),
                      _jittered(rng, (50, 82, 34), 12), VEGETATION)


def _paint_fence(scene, side, x, z_near, z_far):
    """A fence in the plane X = x: wooden (close-set boards) or metal (posts and two rails)."""
    rng, camera, canvas = scene.rng, scene.camera, scene.canvas
    height = rng.uniform(0.9, 2.0)
    wooden = rng.random() < 0.5
    colour = _jittered(rng, (120, 90, 60) if wooden else (95, 105, 100), 12, side.shade)
    canvas.fill(camera.wall_rect(x, z_near, z_far, 0, height), colour, FENCE)
    post = _scaled(colour, 0.6)
    for z in np.arange(z_near, z_far, rng.uniform(0.15, 0.4) if wooden else rng.uniform(1.5, 2.5)):
        canvas.paint(camera.wall_rect(x, z, z + 0.04 if wooden else z + 0.1, 0, height), post)
    if not wooden:
        for y in (0.15, height - 0.1):
            canvas.paint(camera.wall_rect(x, z_near, z_far, y, y + 0.06), post)


# ---- trees, poles, traffic lights, signs ------------------------------------------------------------------------
# These and the road users below are billboards standing at (x, 0, z), drawn in local metres: x right, y up.

def _paint_tree(scene, x, z):
    """A trunk and a canopy of overlapping discs with light patches."""
    rng, camera, canvas = scene.rng, scene.camera, scene.canvas
    trunk, radius = rng.uniform(1.8, 4.0), rng.uniform(1.5, 3.8)  # trunk height and canopy radius
    bark = _jittered(rng, (80, 62, 45), 10)
    canvas.fill(camera.billboard(x, z, _segment_quad((0, 0), (0, trunk + radius * 0.5), 0.35, 0.22)), bark, VEGETATION)
    leaf = np.array(_jittered(rng, (58, 88, 36), 14))
    crown_y = trunk + radius
    for _ in range(rng.integers(3, 7)):
        dx, dy = rng.uniform(-0.6, 0.6) * radius, rng.uniform(-0.5, 0.5) * radius
        lobe = radius * rng.uniform(0.55, 0.9)
        colour = _to_rgb(leaf * rng.uniform(0.8, 1.2))
        canvas.fill(camera.billboard(x, z, _ellipse(dx, crown_y + dy, lobe, lobe * 0.9, 12)), colour, VEGETATION)
    for _ in range(rng.integers(3, 8)):
        dx, dy = rng.uniform(-0.4, 0.4) * radius, rng.uniform(-0.3, 0.3) * radius
        patch = radius * rng.uniform(0.15, 0.3)
        canvas.paint(camera.billboard(x, z, _ellipse(dx, crown_y + dy, patch, patch, 8)), _to_rgb(leaf * 1.35))


def _paint_pole(scene, x, z, side_sign, height, sign_at=None, light=False, arm=0.0):
    """A pole on the sidewalk of side side_sign, height metres tall; optionally an arm reaching arm metres over the
    road, a traffic light (hanging from the arm, or on top of the pole) and a sign centred sign_at metres up."""
    rng, camera, canvas = scene.rng, scene.camera, scene.canvas
    grey = _jittered(rng, (120, 122, 125), 14)
    canvas.fill(camera.billboard(x, z, _segment_quad((0, 0), (0, height), rng.uniform(0.12, 0.2))), grey, POLE)
    arm_end = 0.0  # local x of the arm's end
    if arm:
        arm_end = -side_sign * arm
        canvas.fill(camera.billboard(x, z, _segment_quad((0, height - 0.1), (arm_end, height - 0.1), 0.12)),
                    grey, POLE)
    if light:
        _paint_traffic_light(scene, x + arm_end, z, height - (0.15 if arm else -0.8))
    if sign_at is not None:
        _paint_sign(scene, x, z, sign_at)


def _paint_traffic_light(scene, x, z, top):
    """A housing hanging down from height top; 80% seen from the front: three lamps, one of them lit."""
    rng, camera, canvas = scene.rng, scene.camera, scene.canvas
    width, height = rng.uniform(0.3, 0.42), rng.uniform(0.8, 1.05)
    housing = _jittered(rng, (38, 40, 42), 8) if rng.random() < 0.75 else _jittered(rng, (160, 150, 60), 10)
    box = np.array([(-width / 2, top - height), (width / 2, top - height), (width / 2, top), (-width / 2, top)])
    canvas.fill(camera.billboard(x, z, box), housing, LIGHT)
    if rng.random() < 0.8:
        lit = rng.integers(3)
        for i, colour in enumerate([(230, 40, 30), (240, 180, 30), (60, 220, 110)]):  # red, amber, green
            shown = colour if i == lit else tuple(v // 4 + 20 for v in colour)
            lamp = _ellipse(0, top - height * (0.2 + 0.3 * i), width * 0.3, width * 0.3, 10)
            canvas.paint(camera.billboard(x, z, lamp), shown)


def _paint_sign(scene, x, z, y):
    """A traffic sign centred y metres up: its face with an inner field, or (20%) its grey back."""
    rng, camera, canvas = scene.rng, scene.camera, scene.canvas
    size = rng.uniform(0.55, 0.8)
    kind = rng.integers(len(_SIGN_STYLES))
    from_behind = rng.random() < 0.2
    outline = _sign_outline(rng, kind, size, y)
    face, inner, inner_size = _SIGN_STYLES[kind]
    canvas.fill(camera.billboard(x, z, outline), _jittered(rng, (130, 132, 135) if from_behind else face, 10), SIGN)
    if from_behind:
        return
    if kind != 3:  # the diamond's white field is drawn as it is
        inner = _jittered(rng, inner, 8)
    canvas.paint(camera.billboard(x, z, _scale_about_centre(outline, inner_size)), inner)


def _sign_outline(rng, kind, size, y):
    """Outline (n, 2) of a sign of the given kind (see _SIGN_STYLES), size metres across, centred y metres up."""
    half = size / 2
    if kind in (0, 5):
        return _ellipse(0, y, half, half, 16)
    if kind == 1:
        point_down = np.array([(-half, y + size * 0.35), (half, y + size * 0.35), (0, y - size * 0.5)])
        if rng.random() < 0.5:
            return np.array([(-half, y - size * 0.35), (half, y - size * 0.35), (0, y + size * 0.5)])
        return point_down
    if kind == 2:
        return np.array([(-half, y - half), (half, y - half), (half, y + half), (-half, y + half)])
    if kind == 3:
        return np.array([(0, y - half), (half, y), (0, y + half), (-half, y)])
    return np.array([(-size, y - size / 4), (size, y - size / 4), (size, y + size / 4), (-size, y + size / 4)])


# ---- cars -----------------------------------------------------------------------------------------------------

class _CarBox(NamedTuple):
    """A car's box (metres) and paint, shared by the painters of its faces."""
    x_centre: float
    x_left: float
    x_right: float
    z_near: float  # depth of the face towards the camera
    z_back: float
    sill: float  # height of the body's lower edge
    belt: float  # height of the windows' lower edge
    roof: float
    facing_us: bool  # the near face is the front (oncoming) rather than the rear
    body: tuple  # RGB
    glass: tuple  # RGB
    instance_id: int


def _paint_car(scene, x_centre, z_near, facing_us, instance_id=None):
    """A car centred at lateral x_centre with its near face at depth z_near: its shadow, the side face when the
    camera can see it (the car is wholly to one side), then the near face."""
    rng, camera, canvas = scene.rng, scene.camera, scene.canvas
    instance_id = instance_id or canvas.new_instance(CAR)
    width, length = rng.uniform(1.7, 2.0), rng.uniform(3.8, 5.0)
    roof = rng.uniform(1.4, 1.55) if rng.random() < 0.75 else rng.uniform(1.6, 2.1)  # a saloon or a van
    body = _jittered(rng, _pick(rng, _CAR_COLOURS), 8)
    glass = _jittered(rng, (40, 46, 56), 8)
    belt = roof * rng.uniform(0.5, 0.6)
    car = _CarBox(x_centre, x_centre - width / 2, x_centre + width / 2, z_near, z_near + length, sill=0.22,
                  belt=belt, roof=roof, facing_us=facing_us, body=body, glass=glass, instance_id=instance_id)
    canvas.paint(camera.ground_rect(car.x_left - 0.1, car.x_right + 0.1, z_near - 0.2, car.z_back + 0.1),
                 (35, 35, 38))
    if car.x_left > 0:
        _paint_car_side(scene, car, car.x_left)
    elif car.x_right < 0:
        _paint_car_side(scene, car, car.x_right)
    _paint_near_face(scene, car)


def _paint_car_side(scene, car, x):
    """The side face in the plane X = x, darker than the paint: lower body, cabin with its window, two wheels."""
    camera, canvas, instance_id = scene.camera, scene.canvas, car.instance_id
    shaded = _scaled(car.body, 0.75)
    canvas.fill(camera.wall_rect(x, car.z_near, car.z_back, car.sill, car.belt), shaded, CAR, instance_id)
    # the cabin sits towards the rear, with the longer bonnet in front
    if car.facing_us:
        cabin_near, cabin_back = car.z_near + 1.4, car.z_back - 0.4
    else:
        cabin_near, cabin_back = car.z_near + 0.4, car.z_back - 1.4
    cabin = camera.project(x, [car.belt, car.belt, car.roof, car.roof],
                           [cabin_near, cabin_back, cabin_back - 0.5, cabin_near + 0.6])
    canvas.fill(cabin, shaded, CAR, instance_id)
    canvas.paint(_scale_about_centre(cabin, 0.8), car.glass)
    for z in (car.z_near + 0.8, car.z_back - 0.85):
        tyre = _ellipse(z, 0.32, 0.32, 0.32, 12)  # (z, y) in the side plane
        canvas.fill(camera.project(x, tyre[:, 1], tyre[:, 0]), _TYRE, CAR, instance_id)
        hub = _ellipse(z, 0.32, 0.17, 0.17, 8)
        canvas.paint(camera.project(x, hub[:, 1], hub[:, 0]), (110, 110, 115))


def _paint_near_face(scene, car):
    """The rear (or the front, facing_us) at depth z_near: tyres below the body, the body, the cabin with its
    rear window or windscreen, bumper, lamps and licence plate (labelled car, like Cityscapes)."""
    camera, canvas, instance_id = scene.camera, scene.canvas, car.instance_id
    x0, x1, z, sill, belt = car.x_left, car.x_right, car.z_near, car.sill, car.belt
    canvas.fill(camera.project([x0 + 0.1, x0 + 0.4, x0 + 0.4, x0 + 0.1], [0, 0, 0.4, 0.4], z + 0.3), _TYRE, CAR,
                instance_id)
    canvas.fill(camera.project([x1 - 0.4, x1 - 0.1, x1 - 0.1, x1 - 0.4], [0, 0, 0.4, 0.4], z + 0.3), _TYRE, CAR,
                instance_id)
    canvas.fill(camera.project([x0, x1, x1, x0], [sill, sill, belt, belt], z), car.body, CAR, instance_id)
    roof_z = z + (0.7 if not car.facing_us else 1.2)  # the windscreen slopes more than the rear window
    cabin = np.concatenate([camera.project([x1 - 0.05, x0 + 0.05], belt, z + 0.1),
                            camera.project([x0 + 0.22, x1 - 0.22], car.roof, roof_z)])
    canvas.fill(cabin, car.body, CAR, instance_id)
    canvas.paint(_scale_about_centre(cabin, np.array([0.85, 0.75])), car.glass)
    canvas.paint(camera.project([x0, x1, x1, x0], [sill, sill, sill + 0.15, sill + 0.15], z - 0.01), (30, 30, 32))
    lamp = (250, 245, 225) if car.facing_us else (200, 30, 30)
    for left in (x0 + 0.08, x1 - 0.33):
        canvas.paint(camera.project([left, left + 0.25, left + 0.25, left],
                                    [belt - 0.22, belt - 0.22, belt - 0.06, belt - 0.06], z - 0.01), lamp)
    xc = car.x_centre
    canvas.paint(camera.project([xc - 0.26, xc + 0.26, xc + 0.26, xc - 0.26],
                                [sill + 0.17, sill + 0.17, sill + 0.29, sill + 0.29], z - 0.01), (225, 225, 220))


# ---- people and bicycles --------------------------------------------------------------------------------------

def _person_colours(rng):
    """(skin, shirt, trousers, hair) RGB."""
    return (_jittered(rng, _pick(rng, _SKIN), 8), _jittered(rng, _pick(rng, _CLOTHES), 14),
            _jittered(rng, _pick(rng, _CLOTHES), 10), _jittered(rng, (40, 30, 25), 10))


def _paint_person(scene, x, z, instance_id=None):
    """An adult or (10%) a child, standing or mid-stride: legs, torso, arms, neck, head and hair, each part a
    fraction of the height."""
    rng, camera, canvas = scene.rng, scene.camera, scene.canvas
    height = rng.uniform(1.55, 1.92) if rng.random() < 0.9 else rng.uniform(1.0, 1.4)
    instance_id = instance_id or canvas.new_instance(PERSON)
    stride = rng.uniform(-0.14, 0.14) * height
    skin, shirt, trousers, hair = _person_colours(rng)
    hip, shoulder = 0.52 * height, 0.82 * height

    def fill(local, colour):
        canvas.fill(camera.billboard(x, z, local), colour, PERSON, instance_id)

    for sign in (-1, 1):  # legs
        fill(_segment_quad((sign * 0.05 * height, hip), (sign * stride, 0.0), 0.085 * height, 0.06 * height), trousers)
    fill(np.array([(-0.11 * height, hip - 0.03 * height), (0.11 * height, hip - 0.03 * height),
                   (0.13 * height, shoulder), (-0.13 * height, shoulder)]), shirt)
    swing = rng.uniform(-0.05, 0.05) * height
    for sign in (-1, 1):  # arms
        fill(_segment_quad((sign * 0.13 * height, shoulder - 0.02 * height),
                           (sign * 0.15 * height + swing * sign, 0.47 * height), 0.055 * height, 0.045 * height), shirt)
    fill(_segment_quad((0, shoulder - 0.01 * height), (0, shoulder + 0.04 * height), 0.05 * height), skin)  # neck
    fill(_ellipse(0, 0.925 * height, 0.06 * height, 0.075 * height, 12), skin)
    canvas.paint(camera.billboard(x, z, _ellipse(0, 0.955 * height, 0.062 * height, 0.048 * height, 10)), hair)


def _paint_bicycle(scene, x, z, heading, instance_id, frame_colour):
    """A bicycle from the side, heading +1 (right) or -1 (left): tyres, frame tubes and saddle."""
    camera, canvas = scene.camera, scene.canvas
    wheel_radius = 0.34  # metres: the hubs' height in _BICYCLE_JOINTS
    px_per_m_x, px_per_m_y = camera.fx / z, camera.fy / z
    for hub in ("rear hub", "front hub"):
        centre = camera.billboard(x, z, (_BICYCLE_JOINTS[hub][0] * heading, wheel_radius))
        canvas.ring(centre[0], centre[1], wheel_radius * px_per_m_x, wheel_radius * px_per_m_y, (25, 25, 27),
                    max(1.0, 0.06 * px_per_m_x), BICYCLE, instance_id)
    for start, end in _BICYCLE_TUBES:
        p0, p1 = np.array(_BICYCLE_JOINTS[start]) * (heading, 1), np.array(_BICYCLE_JOINTS[end]) * (heading, 1)
        canvas.fill(camera.billboard(x, z, _segment_quad(p0, p1, 0.045)), frame_colour, BICYCLE, instance_id)
    saddle = _segment_quad((-0.25 * heading, 0.9), (-0.08 * heading, 0.9), 0.06)
    canvas.fill(camera.billboard(x, z, saddle), (20, 20, 20), BICYCLE, instance_id)


def _paint_rider(scene, x, z, rider_id=None, bicycle_id=None):
    """A cyclist: a bicycle (class bicycle) and its rider (class rider) pedalling, legs half a turn apart."""
    rng, camera, canvas = scene.rng, scene.camera, scene.canvas
    heading = 1 if rng.random() < 0.5 else -1
    bicycle_id = bicycle_id or canvas.new_instance(BICYCLE)
    rider_id = rider_id or canvas.new_instance(RIDER)
    frame_colour = _jittered(rng, _pick(rng, _CAR_COLOURS), 12)
    skin, shirt, trousers, hair = _person_colours(rng)
    height = rng.uniform(1.6, 1.9)
    crank = rng.uniform(0, 2 * np.pi)  # the pedals' angle
    _paint_bicycle(scene, x, z, heading, bicycle_id, frame_colour)

    def fill(local, colour):
        canvas.fill(camera.billboard(x, z, local), colour, RIDER, rider_id)

    hip, shoulder = np.array([-0.16 * heading, 0.95]), np.array([0.12 * heading, 0.95 + 0.3 * height])
    for k, side in enumerate((-1, 1)):
        pedal = np.array([0.17 * np.cos(crank + k * np.pi) * heading, 0.3 + 0.17 * np.sin(crank + k * np.pi)])
        knee = hip + np.array([0.3 * heading, -0.1 + 0.12 * side * np.sin(crank)])
        fill(_segment_quad(hip, knee, 0.14, 0.11), trousers)
        fill(_segment_quad(knee, pedal, 0.11, 0.09), trousers)
    fill(_segment_quad(hip, shoulder, 0.26, 0.3), shirt)
    fill(_segment_quad(shoulder, np.array([0.38 * heading, 1.02]), 0.09, 0.07), shirt)  # arm to the handlebar
    head = shoulder + np.array([0.07 * heading, 0.2])
    fill(_ellipse(head[0], head[1], 0.11, 0.13, 12), skin)
    helmet = _jittered(rng, _pick(rng, _CLOTHES), 10) if rng.random() < 0.5 else hair
    canvas.paint(camera.billboard(x, z, _ellipse(head[0], head[1] + 0.05, 0.12, 0.08, 10)), helmet)


def _paint_parked_bicycle(scene, x, z):
    rng = scene.rng
    _paint_bicycle(scene, x, z, 1 if rng.random() < 0.5 else -1, scene.canvas.new_instance(BICYCLE),
                   _jittered(rng, _pick(rng, _CAR_COLOURS), 12))


# ---- placing things ---------------------------------------------------------------------------------------------

def _place_guaranteed(scene):
    """One car, person, traffic sign and cyclist in every scene, placed in view above the ego vehicle's bonnet, so
    that every split holds the report's rare classes.

    Returns {labelId: _Placed} and the (X, Z) of the car and of the cyclist, which other traffic keeps clear of.
    """
    rng, camera, canvas, street = scene.rng, scene.camera, scene.canvas, scene.street
    free = [side for side in street.sides if not side.parking] or list(street.sides)  # no parked car hides them
    side = free[int(rng.integers(len(free)))]
    z_car, z_sign = rng.uniform(12, 30, size=2)
    z_person, z_cyclist = rng.uniform(11, 22, size=2)
    x_car = street.lane_centre(int(rng.integers(street.n_lanes)))
    x_person = side.kerb + side.sign * rng.uniform(0.6, 1.5)
    x_sign = side.kerb + side.sign * 0.5
    x_cyclist = street.cyclist_x(rng)
    z_car, z_person, z_sign, z_cyclist = (
        camera.nearest_visible_depth(x_car, z_car), camera.nearest_visible_depth(x_person, z_person),
        camera.nearest_visible_depth(x_sign, z_sign), camera.nearest_visible_depth(x_cyclist, z_cyclist))
    if abs(x_car - x_cyclist) < 2.5 and abs(z_car - z_cyclist) < 7:
        z_car = z_cyclist + 7.0  # the car drives ahead of the cyclist
    guaranteed = {
        CAR: _Placed(z_car, partial(_paint_car, scene, x_car, z_car, street.oncoming(x_car),
                                    canvas.new_instance(CAR))),
        PERSON: _Placed(z_person, partial(_paint_person, scene, x_person, z_person, canvas.new_instance(PERSON))),
        SIGN: _Placed(z_sign, partial(_paint_pole, scene, x_sign, z_sign, side.sign, rng.uniform(2.8, 3.6),
                                      sign_at=rng.uniform(2.0, 2.6))),
        RIDER: _Placed(z_cyclist, partial(_paint_rider, scene, x_cyclist, z_cyclist, canvas.new_instance(RIDER),
                                          canvas.new_instance(BICYCLE))),
    }
    return guaranteed, (x_car, z_car), (x_cyclist, z_cyclist)


def _place_roadside(scene, side):
    """Along one side: trees, poles, pedestrians, maybe a parked bicycle, parked cars in a parking strip."""
    rng = scene.rng
    placed = []
    if side.green or rng.random() < 0.55:  # trees on the sidewalk or the green strip, denser in a park
        x = (side.walk_outer + side.facade) / 2 if side.strip > 1.5 else side.walk_outer - side.sign * 0.8
        for z in np.arange(rng.uniform(3, 12), 120, rng.uniform(7, 16) if not side.green else rng.uniform(4, 9)):
            if rng.random() < 0.85:
                placed.append(_Placed(z, partial(_paint_tree, scene, x + rng.uniform(-0.4, 0.4), z)))
    for z in np.arange(rng.uniform(4, 20), 120, rng.uniform(14, 35)):  # poles at the kerb, some with a sign
        kind = rng.random()
        sign_at = rng.uniform(2.0, 3.0) if rng.random() < 0.35 else None
        x = side.kerb + side.sign * 0.5
        if kind < 0.2:  # traffic light on an arm over the road
            pole = partial(_paint_pole, scene, x, z, side.sign, rng.uniform(5.5, 7), light=True,
                           arm=rng.uniform(1.5, 4.5), sign_at=sign_at)
        elif kind < 0.4:  # traffic light on top
            pole = partial(_paint_pole, scene, x, z, side.sign, rng.uniform(2.8, 3.8), light=True, sign_at=sign_at)
        else:  # street light (its lamp is not drawn)
            pole = partial(_paint_pole, scene, x, z, side.sign, rng.uniform(6, 9), arm=rng.uniform(0.5, 1.8),
                           sign_at=sign_at)
        placed.append(_Placed(z, pole))
    for _ in range(int(rng.choice([0, 0, 1, 1, 2, 3, 5]))):  # pedestrians on the sidewalk
        z = rng.uniform(6, 70)
        x = rng.uniform(min(side.kerb, side.walk_outer), max(side.kerb, side.walk_outer))
        placed.append(_Placed(z, partial(_paint_person, scene, x, z)))
    if rng.random() < 0.25:
        z = rng.uniform(6, 50)
        placed.append(_Placed(z, partial(_paint_parked_bicycle, scene, side.walk_outer - side.sign * 0.5, z)))
    if side.parking:  # parked cars, rear towards the camera
        z = rng.uniform(3, 10)
        while z < 90:
            if rng.random() < 0.55:
                x = side.kerb - side.sign * rng.uniform(1.05, 1.25)
                placed.append(_Placed(z, partial(_paint_car, scene, x, z, False)))
            z += rng.uniform(5.2, 12.0)
    return placed


def _place_traffic(scene, car, cyclist, zebra):
    """Moving cars in the lanes (oncoming in the left lanes of a two-way road), more cyclists, and people on the
    zebra crossing (zebra: its (near, far) depths, or None)."""
    rng, street = scene.rng, scene.street
    placed = []
    taken = [car]  # (X, Z) of the cars so far
    x_cyclist, z_cyclist = cyclist
    for _ in range(int(rng.integers(1, 9))):
        x = street.lane_centre(int(rng.integers(street.n_lanes))) + rng.uniform(-0.3, 0.3)
        z = rng.uniform(5 if abs(x) > 2 else 9, 90)
        if any(abs(x - a) < 2.2 and abs(z - b) < 7 for a, b in taken):
            continue
        if abs(x - x_cyclist) < 2.2 and z < z_cyclist + 4:  # keep the guaranteed cyclist in sight
            continue
        taken.append((x, z))
        placed.append(_Placed(z, partial(_paint_car, scene, x, z, street.oncoming(x))))
    for _ in range(int(rng.choice([0, 0, 0, 1, 1, 2]))):
        z = rng.uniform(10, 60)
        placed.append(_Placed(z, partial(_paint_rider, scene, street.cyclist_x(rng), z)))
    if zebra and rng.random() < 0.7:
        for _ in range(int(rng.integers(1, 4))):
            z = rng.uniform(*zebra)
            placed.append(_Placed(z, partial(_paint_person, scene, rng.uniform(*street.road), z)))
    return placed


def _repaint_hidden(scene, guaranteed):
    """Paint a guaranteed object again, on top, if nearer objects hid (nearly) all of its class."""
    counts = np.bincount(scene.canvas.label_ids().ravel(), minlength=256)
    min_pixels = max(4, int(20 * scene.camera.height * scene.camera.width / (256 * 512)))
    for label, thing in guaranteed.items():
        classes = (label, BICYCLE) if label == RIDER else (label,)
        if any(counts[c] < min_pixels for c in classes):
            thing.paint()


# ---- ego vehicle, border, photograph -------------------------------------------------------------------------

def _paint_ego_vehicle(scene):
    """The bonnet of the camera's own car (92% of frames): a parabola across the bottom, an ornament and a
    reflection band."""
    rng, camera, canvas = scene.rng, scene.camera, scene.canvas
    if rng.random() >= 0.92:
        return
    height, width = camera.height, camera.width
    top, droop = height * rng.uniform(0.82, 0.9), height * rng.uniform(0.04, 0.1)  # pixels
    xs = np.linspace(0, width, 33)
    x_top = width * rng.uniform(0.45, 0.55)
    edge = top + droop * ((xs - x_top) / (width / 2)) ** 2  # (33,) y of the bonnet's edge
    canvas.fill(np.concatenate([np.stack([xs, edge], -1), [(width, height), (0, height)]]),
                _jittered(rng, (38, 40, 46), 8), EGO)
    ornament = _ellipse(x_top, top + height * 0.015, 4 * camera.pixel_scale, 2 * camera.pixel_scale, 8)
    canvas.paint(ornament, (150, 150, 155))
    band = [np.stack([xs, edge + height * 0.01], -1), np.stack([xs[::-1], edge[::-1] + height * 0.03], -1)]
    canvas.paint(np.concatenate(band), _jittered(rng, (70, 74, 84), 6))


def _paint_border(scene):
    """Rectification artefacts: a dark strip along the bottom (out of roi) and black wedges at the left and right
    edges (rectification border)."""
    rng, canvas = scene.rng, scene.canvas
    height, width = scene.camera.height, scene.camera.width
    if rng.random() < 0.8:
        strip = height * rng.uniform(0.005, 0.02)
        canvas.fill([(0, height - strip), (width, height - strip), (width, height), (0, height)], (12, 12, 14),
                    OUT_OF_ROI)
    for left in (True, False):
        if rng.random() < 0.7:
            top, bottom = width * rng.uniform(0, 0.008), width * rng.uniform(0.002, 0.012)  # the wedge's widths
            if left:
                wedge = [(0, 0), (top, 0), (bottom, height), (0, height)]
            else:
                wedge = [(width, 0), (width - top, 0), (width - bottom, height), (width, height)]
            canvas.fill(wedge, (0, 0, 0), BORDER)


def _photograph(scene):
    """The painted scene as the camera records it; the labels stay sharp.

    Returns image uint8 (H, W, 3), label_ids uint8 (H, W) and instance_ids uint16 (H, W).
    """
    rng, camera = scene.rng, scene.camera
    label_ids = scene.canvas.label_ids()
    lit = _light_and_texture(scene, label_ids)
    lens = Image.fromarray(lit.astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.45 * camera.pixel_scale))
    image = rng.standard_normal((camera.height, camera.width, 3), dtype=np.float32)
    image *= np.float32(rng.uniform(2.0, 7.0))  # sensor noise
    image += np.asarray(lens)
    image = np.clip(image, 0, 255, out=image).astype(np.uint8)
    instances = np.asarray(scene.canvas.instances)
    instance_ids = np.where(instances > 0, instances, label_ids).astype(np.uint16)
    return image, label_ids.copy(), instance_ids


def _light_and_texture(scene, label_ids):
    """Texture with a per-class amplitude (coarse blotches and fine grain), then lighting: overall brightness, a
    colour tint, a soft vertical falloff. Returns float32 (H, W, 3) clipped to 0..255."""
    rng, camera = scene.rng, scene.camera
    height, width = camera.height, camera.width
    coarse = _smooth_noise(rng, height, width, 14 * camera.pixel_scale)  # (H, W)
    fine = _smooth_noise(rng, height, width, 2.5 * camera.pixel_scale)
    texture = 1.0 + _COARSE_TEXTURE[label_ids] * coarse + _FINE_TEXTURE[label_ids] * fine  # (H, W)
    gain = (rng.uniform(0.65, 1.25) * rng.normal(1.0, 0.05, 3)).astype(np.float32)  # (3,)
    falloff = 1.0 - rng.uniform(0, 0.2) * np.arange(height, dtype=np.float32) / height  # (H,)
    offset = np.float32(rng.uniform(-8, 12))
    image = np.asarray(scene.canvas.photo, dtype=np.float32) * (texture * falloff[:, None])[..., None]
    image *= gain
    foliage = label_ids == VEGETATION  # its hue varies between yellow-green and blue-green
    image[..., 0] *= 1.0 + (0.15 * coarse) * foliage
    image += offset
    return np.clip(image, 0, 255, out=image)


def _smooth_noise(rng, height, width, cell):
    """Gaussian noise on a grid of cell-pixel squares, bicubically upsampled: float32 (H, W)."""
    grid_h, grid_w = int(np.ceil(height / cell)) + 2, int(np.ceil(width / cell)) + 2
    grid = rng.standard_normal((grid_h, grid_w), dtype=np.float32)
    return np.asarray(Image.fromarray(grid, "F").resize((width, height), Image.BICUBIC), dtype=np.float32)


def _polygons_json(instance_ids, height, width):
    """Minimal gtFine_polygons.json: one bounding polygon per visible instance."""
    ys, xs = np.nonzero(instance_ids >= 1000)
    objects = []
    if len(ys):
        ids = instance_ids[ys, xs]
        order = np.argsort(ids, kind="stable")
        ids, ys, xs = ids[order], ys[order], xs[order]
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        for iid, x0, x1, y0, y1 in zip(ids[starts], np.minimum.reduceat(xs, starts), np.maximum.reduceat(xs, starts),
                                       np.minimum.reduceat(ys, starts), np.maximum.reduceat(ys, starts)):
            box = [[int(x0), int(y0)], [int(x1), int(y0)], [int(x1), int(y1)], [int(x0), int(y1)]]
            objects.append({"label": _NAMES[int(iid) // 1000], "polygon": box})
    return {"imgHeight": int(height), "imgWidth": int(width), "objects": objects}


_COLOUR_LUT = np.concatenate([labels.palette("labelId"), np.full((34, 1), 255, np.uint8)], 1)


def _write_one(task):
    root, split, split_index, index, city, seq, seed, height, width = task
    rng = np.random.default_rng([seed, split_index, index])
    image, label_ids, instance_ids = render_scene(rng, height, width)
    stem = f"{city}_{seq:06d}_{FRAME:06d}"
    img_dir = Path(root, "leftImg8bit", split, city)
    gt_dir = Path(root, "gtFine", split, city)
    Image.fromarray(image, "RGB").save(img_dir / f"{stem}_leftImg8bit.png", compress_level=1)
    Image.fromarray(label_ids, "L").save(gt_dir / f"{stem}_gtFine_labelIds.png", compress_level=1)
    Image.fromarray(instance_ids).save(gt_dir / f"{stem}_gtFine_instanceIds.png", compress_level=1)
    Image.fromarray(_COLOUR_LUT[label_ids], "RGBA").save(gt_dir / f"{stem}_gtFine_color.png", compress_level=1)
    with open(gt_dir / f"{stem}_gtFine_polygons.json", "w") as f:
        json.dump(_polygons_json(instance_ids, height, width), f)


def _tasks(root, config):
    counts = {"train": config.n_train, "val": config.n_val, "test": config.n_test}
    tasks = []
    for split_index, split in enumerate(SPLITS):
        n, cities = counts[split], CITIES[split]
        for i in range(n):
            c = i * len(cities) // n  # contiguous blocks of images per city
            first = -(-c * n // len(cities))  # first index of city c
            tasks.append((str(root), split, split_index, i, cities[c], i - first, config.seed,
                          config.height, config.width))
    return tasks


def _stamp(config):
    return {"generator_version": GENERATOR_VERSION, "config": asdict(config)}


MANIFEST = project_dir() / "data" / "synthetic.sha256"  # checksums of the default set, committed


def _content_digest(path):
    # A PNG's pixels, not its bytes: another zlib build may compress the same pixels differently.
    if path.suffix == ".png":
        with Image.open(path) as image:
            header = f"{image.mode} {image.size[0]}x{image.size[1]}\n".encode()
            return hashlib.sha256(header + image.tobytes()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def checksums(root) -> dict:
    """{path relative to ``root``: sha256 of its content} for every file under ``root``, sorted by path.

    The content of a PNG is its mode, size and pixels; of any other file, its bytes.
    """
    root = Path(root)
    return {p.relative_to(root).as_posix(): _content_digest(p) for p in sorted(root.rglob("*")) if p.is_file()}


def write_manifest(root, path=MANIFEST):
    """Write ``checksums(root)``, one ``<sha256>  <relative path>`` line per file."""
    lines = [f"{digest}  {name}\n" for name, digest in checksums(root).items()]
    Path(path).write_text("".join(lines))


def read_manifest(path=MANIFEST) -> dict:
    """{relative path: sha256} from a ``sha256sum``-format file written by ``write_manifest``."""
    fix = f"Restore it with git (git checkout -- {Path(path).name}) or rewrite it with write_manifest"
    entries = {}
    for number, line in enumerate(read_text(path, "checksum manifest", fix).splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise BadFileError(path, f"is not a checksum manifest: line {number} is {line!r}, not "
                               f"'<sha256>  <path>'", fix, "checksum manifest")
        entries[name] = digest
    return entries


def default_root() -> Path:
    """Where the synthetic set lives by default: ``data/synthetic`` of ``pa3.project_dir()``."""
    return project_dir() / "data" / "synthetic"


def generate(root, config=None, workers=2, progress=True) -> Path:
    """Write every split of the synthetic set under ``root`` (Cityscapes layout), replacing any old one.

    Args:
        root: dataset root; its ``leftImg8bit/`` and ``gtFine/`` are deleted and rewritten, but only if
            pa3 wrote them (``root/pa3_synthetic.json`` exists): a folder holding other data (real
            Cityscapes) raises FileExistsError and is left untouched.
        config: SyntheticConfig (default: SyntheticConfig()).
        workers: processes drawing in parallel; the output does not depend on it.
        progress: show a tqdm bar (silent anyway when TQDM_DISABLE=1).
    Returns:
        root as a Path. The stamp ``root/pa3_synthetic.json`` (config + GENERATOR_VERSION) is completed
        last, so an interrupted run is regenerated by ``ensure_synthetic``.
    """
    config = config or SyntheticConfig()
    root = Path(root)
    foreign = [sub for sub in ("leftImg8bit", "gtFine") if (root / sub).exists()]
    if foreign and not (root / STAMP_NAME).exists():
        raise FileExistsError(
            f"{root} already holds {' and '.join(s + '/' for s in foreign)} but no {STAMP_NAME}: it is not a "
            "synthetic set written by pa3 (real Cityscapes?), and generating here would delete it. Choose an "
            "empty folder (python -m pa3 generate --root NEW_FOLDER), or delete it yourself first.")
    root.mkdir(parents=True, exist_ok=True)
    remove(root / STAMP_NAME)  # a damaged stamp (even a folder or an unreadable file) is replaced
    # the stamp marks the folder as pa3's from the start; "complete" is only dropped at the end, so an
    # interrupted run never matches ensure_synthetic's check and is regenerated
    write_json(root / STAMP_NAME, {**_stamp(config), "complete": False})
    for sub in ("leftImg8bit", "gtFine"):
        shutil.rmtree(root / sub, ignore_errors=True)
    tasks = _tasks(root, config)
    for t in tasks:
        for sub in ("leftImg8bit", "gtFine"):
            Path(root, sub, t[1], t[4]).mkdir(parents=True, exist_ok=True)
    # disable is only passed to switch the bar off, so that TQDM_DISABLE=1 keeps working otherwise
    bar = tqdm(total=len(tasks), desc="synthetic Cityscapes", unit="img", **({} if progress else {"disable": True}))
    if workers and workers > 1 and len(tasks) > 1:
        with get_context().Pool(min(workers, len(tasks))) as pool:
            for _ in pool.imap_unordered(_write_one, tasks, chunksize=4):
                bar.update()
    else:
        for task in tasks:
            _write_one(task)
            bar.update()
    bar.close()
    write_json(root / STAMP_NAME, _stamp(config))
    return root


def _read_stamp(path):
    """(the stamp, None); (None, what is wrong with it) when damaged; (None, None) when there is none."""
    try:
        return read_json(path, "synthetic-set stamp", "", keys=("generator_version", "config")), None
    except FileNotFoundError:
        return None, None
    except BadFileError as error:
        return None, error.problem


def ensure_synthetic(root=None, config=None) -> Path:
    """Return the synthetic set's root, generating it only if missing, damaged or made with another config/version.

    Args:
        root: dataset root (default ``default_root()``, i.e. <repo>/data/synthetic).
        config: SyntheticConfig (default: SyntheticConfig()).
    Returns:
        root as a Path. Prints one line saying where the data is and whether it was generated or reused,
        after one line saying why when a damaged or incomplete set is regenerated.
    """
    config = config or SyntheticConfig()
    root = Path(root) if root is not None else default_root()
    current, problem = _read_stamp(root / STAMP_NAME)
    n = config.n_train + config.n_val + config.n_test
    size = f"{n} images at {config.height}x{config.width}"
    complete = (root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir()
    if current == _stamp(config) and complete:
        print(f"Synthetic Cityscapes data reused at {short_path(root)} ({size}, seed {config.seed})")
        return root
    if current == _stamp(config):
        problem = "is there but leftImg8bit/ or gtFine/ is missing"
    elif current is not None and current.get("complete") is False:
        problem = "says an earlier generation was interrupted"
    if problem:  # derived data: regenerated, never used damaged, and never silently
        print(f"{short_path(root / STAMP_NAME)} {problem}; regenerating the synthetic set")
    generate(root, config)
    print(f"Synthetic Cityscapes data generated at {short_path(root)} ({size}, seed {config.seed})")
    return root
