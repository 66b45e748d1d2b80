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
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from . import labels, project_dir, short_path
from .files import BadFileError, read_json, read_text, remove

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

# Multiplicative texture amplitude per labelId: coarse blotches and fine grain.
_COARSE = np.full(256, 0.05, np.float32)
_FINE = np.full(256, 0.04, np.float32)
for _ids, _c, _f in [((ROAD,), 0.07, 0.06), ((SIDEWALK,), 0.07, 0.07), ((BUILDING,), 0.08, 0.05),
                     ((WALL,), 0.10, 0.08), ((FENCE,), 0.06, 0.08), ((VEGETATION,), 0.28, 0.28),
                     ((TERRAIN,), 0.20, 0.16), ((SKY,), 0.03, 0.01), ((CAR,), 0.04, 0.03),
                     ((EGO, BORDER, OUT_OF_ROI), 0.03, 0.02)]:
    _COARSE[list(_ids)], _FINE[list(_ids)] = _c, _f


@dataclass
class SyntheticConfig:
    """What to generate: images per split, image size (height, width) and the seed."""
    n_train: int = 300
    n_val: int = 60
    n_test: int = 60
    height: int = 256
    width: int = 512
    seed: int = 0


def _col(rng, base, jitter=12.0, shade=1.0):
    c = np.asarray(base, np.float64) * shade + rng.normal(0.0, jitter, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _seg(p0, p1, t0, t1=None):
    """Quad around the segment p0-p1 (local metres) with thickness t0 at p0 and t1 at p1."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    n = np.array([-d[1], d[0]]) / max(np.hypot(*d), 1e-9)
    t1 = t0 if t1 is None else t1
    return np.array([p0 + n * t0 / 2, p1 + n * t1 / 2, p1 - n * t1 / 2, p0 - n * t0 / 2])


def _circle(cx, cy, rx, ry, n=14):
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], -1)


class _Scene:
    """One street scene: a random camera, three canvases (image, labelIds, instance ids) and the drawing
    primitives that paint the same polygon on all three."""

    def __init__(self, rng, height, width):
        self.rng, self.h, self.w = rng, height, width
        self.cx = width * rng.uniform(0.42, 0.58)
        self.cy = height * rng.uniform(0.38, 0.47)
        self.fx = 1.1 * width * rng.uniform(0.9, 1.1)
        self.fy = self.fx * 2.0 * height / width
        self.cam_h = rng.uniform(1.15, 1.45)
        self.px = width / 512.0  # pixels per pixel of a 512-wide image
        self.shade = {-1: rng.uniform(0.55, 1.0), 1: rng.uniform(0.55, 1.0)}  # facade lighting per side
        self.counters = {}
        self.overcast = rng.random() < 0.35
        self.img = Image.fromarray(self._sky())
        self.lab = Image.new("L", (width, height), SKY)
        self.ins = Image.new("I", (width, height), 0)
        self.di, self.dl, self.dn = ImageDraw.Draw(self.img), ImageDraw.Draw(self.lab), ImageDraw.Draw(self.ins)

    # ---- primitives -------------------------------------------------------------------------------
    def _sky(self):
        r = self.rng
        if self.overcast:
            top, bottom = np.array(_col(r, (165, 170, 182), 10)), np.array(_col(r, (215, 215, 220), 8))
        else:
            top, bottom = np.array(_col(r, (72, 122, 200), 14)), np.array(_col(r, (185, 208, 232), 10))
        self.horizon_colour = bottom
        # math.pow, not numpy's: numpy's vectorised float32 power differs in the last bit between its
        # AVX-512 and baseline code paths, and that bit decides a pixel's grey level after truncation
        t = np.array([[math.pow(min(max(i / max(self.cy, 1.0), 0.0), 1.0), 0.8)] for i in range(self.h)])
        rows = top[None, :] * (1 - t) + bottom[None, :] * t  # (H, 3)
        return np.broadcast_to(rows[:, None, :], (self.h, self.w, 3)).astype(np.uint8)

    def instance(self, label):
        k = self.counters.get(label, 0)
        self.counters[label] = k + 1
        return label * 1000 + k

    def fill(self, pts, colour, label, inst=0):
        xy = np.asarray(pts, float).ravel().tolist()
        self.di.polygon(xy, fill=colour)
        self.dl.polygon(xy, fill=label)
        self.dn.polygon(xy, fill=inst)

    def paint(self, pts, colour):
        self.di.polygon(np.asarray(pts, float).ravel().tolist(), fill=colour)

    def ring(self, cx, cy, rx, ry, colour, width, label, inst=0):
        box = [cx - rx, cy - ry, cx + rx, cy + ry]
        w = max(1, int(round(width)))
        self.di.ellipse(box, outline=colour, width=w)
        self.dl.ellipse(box, outline=label, width=w)
        self.dn.ellipse(box, outline=inst, width=w)

    def P(self, X, Y, Z):
        """World (X right, Y up, Z forward; metres) -> pixels (..., 2)."""
        Z = np.maximum(np.asarray(Z, float), 0.3)
        x = self.cx + self.fx * np.asarray(X, float) / Z
        y = self.cy - self.fy * (np.asarray(Y, float) - self.cam_h) / Z
        return np.stack(np.broadcast_arrays(x, y), -1)

    def bb(self, X, Z, local):
        """Billboard at (X, 0, Z) facing the camera: local metres (x right, y up) -> pixels."""
        local = np.asarray(local, float)
        return np.stack([self.cx + self.fx * (X + local[..., 0]) / Z,
                         self.cy - self.fy * (local[..., 1] - self.cam_h) / Z], -1)

    def ground(self, xa, xb, za, zb):
        return self.P([xa, xb, xb, xa], 0.0, [za, za, zb, zb])

    def wall_quad(self, X, za, zb, ya, yb):
        """Quad in the plane X = const (parallel to the road)."""
        return self.P(X, [ya, ya, yb, yb], [za, zb, zb, za])

    # ---- street layout ----------------------------------------------------------------------------
    def layout(self):
        r = self.rng
        self.lane_w = r.uniform(3.0, 3.6)
        self.n_lanes = int(r.choice([2, 2, 3, 4]))
        own = int(r.integers(0, self.n_lanes)) if self.n_lanes > 2 else 1
        self.x_lanes = (-(own + 0.5) * self.lane_w, (self.n_lanes - own - 0.5) * self.lane_w)
        parking = {-1: r.random() < 0.35, 1: r.random() < 0.35}  # a 2.3 m parking strip (road) at the kerb
        self.x_road = (self.x_lanes[0] - 2.3 * parking[-1], self.x_lanes[1] + 2.3 * parking[1])
        self.two_way = r.random() < 0.6
        self.z_far = r.uniform(150, 260)
        self.side = {}
        for s, edge in ((-1, self.x_road[0]), (1, self.x_road[1])):
            sw = r.uniform(1.8, 5.5)
            strip = r.uniform(1.0, 4.0) if r.random() < 0.3 else 0.0
            self.side[s] = dict(edge=edge, outer=edge + s * sw, facade=edge + s * (sw + strip),
                                strip=strip, green=r.random() < 0.15, parking=parking[s])

    def draw_ground(self):
        r, zn, zf = self.rng, 0.5, self.z_far
        road_c = _col(r, (r.uniform(80, 125),) * 3, 4)
        road_c = tuple(int(np.clip(v + d, 0, 255)) for v, d in zip(road_c, (2, 0, 4)))
        walk_base = [(165, 163, 160), (150, 140, 135), (180, 170, 150), (140, 142, 146)][r.integers(4)]
        for s, sd in self.side.items():
            beyond = TERRAIN if r.random() < 0.5 else SIDEWALK
            c = _col(r, (118, 138, 78), 12) if beyond == TERRAIN else _col(r, walk_base, 8)
            self.fill(self.ground(sd["facade"], s * 300.0, zn, zf), c, beyond)
            if sd["strip"] > 0:
                self.fill(self.ground(sd["outer"], sd["facade"], zn, zf), _col(r, (112, 136, 74), 14), TERRAIN)
            sd["walk_colour"] = _col(r, walk_base, 8)
            self.fill(self.ground(sd["edge"], sd["outer"], zn, zf), sd["walk_colour"], SIDEWALK)
            # paving joints and a lighter kerb (still sidewalk)
            joint = tuple(int(v * 0.8) for v in sd["walk_colour"])
            for z in np.arange(r.uniform(1, 2.5), 45, r.uniform(1.2, 2.5)):
                self.paint(self.ground(sd["edge"], sd["outer"], z, z + 0.05), joint)
            kerb = tuple(min(255, int(v * 1.15)) for v in sd["walk_colour"])
            self.paint(self.ground(sd["edge"], sd["edge"] + s * 0.18, zn, zf), kerb)
        self.fill(self.ground(*self.x_road, zn, zf), road_c, ROAD)
        # asphalt patches and car shadows: darker road, still road
        for _ in range(r.integers(0, 5)):
            x, z = r.uniform(*self.x_road), r.uniform(8, 60)
            dx, dz = r.uniform(0.5, 3), r.uniform(1, 6)
            self.paint(self.ground(x, x + dx, z, z + dz), tuple(int(v * r.uniform(0.8, 0.92)) for v in road_c))
        self.draw_markings(road_c)

    def draw_markings(self, road_c):
        r = self.rng
        paint = _col(r, (215, 215, 210), 8)
        worn = tuple(int(0.55 * p + 0.45 * q) for p, q in zip(paint, road_c))
        x0, x1 = self.x_lanes
        for x in (x0 + 0.15, x1 - 0.15):  # solid edge lines
            self.paint(self.ground(x - 0.07, x + 0.07, 0.5, self.z_far), worn)
        dash, gap = r.uniform(2.5, 4), r.uniform(4, 8)
        centre = int(r.integers(1, self.n_lanes)) if self.two_way else -1
        for i in range(1, self.n_lanes):
            x = x0 + i * self.lane_w
            if i == centre:
                for o in (-0.12, 0.12):
                    self.paint(self.ground(x + o - 0.06, x + o + 0.06, 0.5, self.z_far), paint)
                continue
            zs = np.arange(r.uniform(0, dash + gap), 90, dash + gap)
            for z in zs:
                self.paint(self.ground(x - 0.08, x + 0.08, z, z + dash), paint)
        if r.random() < 0.25:  # zebra crossing
            z = r.uniform(12, 30)
            for x in np.arange(self.x_road[0] + 0.4, self.x_road[1] - 0.4, 1.0):
                self.paint(self.ground(x, x + 0.5, z, z + 3.0), paint)
            self.zebra = (z, z + 3.0)

    # ---- buildings, backdrop, vegetation ----------------------------------------------------------
    def draw_backdrop(self):
        r, z = self.rng, self.z_far
        haze = self.horizon_colour
        x = -220.0
        while x < 220:
            wdt = r.uniform(8, 40)
            kind = r.random()
            if kind < 0.6:
                c = np.array(_BUILDING_COLOURS[r.integers(len(_BUILDING_COLOURS))], float)
                c = tuple(int(v) for v in 0.55 * c + 0.45 * haze)
                h = r.uniform(6, 35)
                self.fill(self.P([x, x + wdt, x + wdt, x], [0, 0, h, h], z), c, BUILDING)
            elif kind < 0.85:
                c = tuple(int(v) for v in 0.6 * np.array(_col(r, (60, 90, 45), 10)) + 0.4 * haze)
                for _ in range(int(wdt // 5) + 1):
                    cx, cy, rad = x + r.uniform(0, wdt), r.uniform(4, 10), r.uniform(3, 7)
                    self.fill(self.P(*(_circle(cx, cy, rad, rad * 0.8, 10).T), z), c, VEGETATION)
                self.fill(self.P([x, x + wdt, x + wdt, x], [0, 0, 4, 4], z), c, VEGETATION)
            x += wdt

    def draw_facades(self):
        r = self.rng
        for s, sd in self.side.items():
            z = r.uniform(-6, 2)
            z_end = self.z_far - r.uniform(0, 40)
            p_gap = r.uniform(0.05, 0.3)
            while z < z_end:
                length = r.uniform(8, 32)
                za, zb = max(z, 0.5), min(z + length, z_end)
                if sd["green"] or r.random() < p_gap:
                    if r.random() < 0.6:
                        self.hedge(sd["facade"] + s * r.uniform(0, 3), za, zb)
                else:
                    self.building(s, sd["facade"] + s * r.uniform(0, 2.5), za, zb)
                z += length
            # low walls or fences along the facade line
            for _ in range(r.integers(0, 3)):
                za = r.uniform(2, 60)
                zb = za + r.uniform(5, 30)
                x = sd["facade"] - s * 0.2
                if r.random() < 0.5:
                    self.fill(self.wall_quad(x, za, zb, 0, r.uniform(0.8, 2.5)),
                              _col(r, (155, 152, 145), 15, self.shade[s]), WALL)
                else:
                    self.fence(s, x, za, zb)

    def building(self, s, X, za, zb):
        r = self.rng
        h = r.uniform(7, 28) if r.random() < 0.85 else r.uniform(3.5, 7)
        base = _col(r, _BUILDING_COLOURS[r.integers(len(_BUILDING_COLOURS))], 12, self.shade[s])
        self.fill(self.wall_quad(X, za, zb, 0, h), base, BUILDING)
        if r.random() < 0.3:  # pitched roof
            roof = _col(r, (110, 60, 50) if r.random() < 0.6 else (70, 72, 78), 10, self.shade[s])
            self.fill(self.wall_quad(X + s * 1.0, za, zb, h, h + r.uniform(1.5, 4)), roof, BUILDING)
        dark = tuple(int(v * 0.8) for v in base)
        self.paint(self.wall_quad(X, za, zb, h - 0.4, h), dark)  # cornice
        if h < 4:
            return
        fh, ww, wh = r.uniform(2.8, 3.5), r.uniform(0.8, 1.5), r.uniform(1.1, 1.7)
        step = ww + r.uniform(1.0, 2.2)
        g = r.uniform(3.2, 4.5)
        zs = np.arange(za + r.uniform(0.5, 1.5), zb - ww - 0.3, step)
        ys = g + 0.9 + np.arange(int((h - g - 1.0) // fh)) * fh
        if len(zs) and len(ys):
            Z0, Y0 = np.meshgrid(zs, ys)
            quads = self.P(X, np.stack([Y0, Y0, Y0 + wh, Y0 + wh], -1), np.stack([Z0, Z0 + ww, Z0 + ww, Z0], -1))
            quads = quads.reshape(-1, 4, 2)
            size = quads[:, 2, 1] - quads[:, 1, 1]
            glass = np.array(_col(r, (55, 62, 75), 10))
            frame = tuple(min(255, int(v * 1.25 + 20)) for v in base)
            for q, sz in zip(quads, size):
                if -sz < 1.2 * self.px or q[:, 0].max() < 0 or q[:, 0].min() > self.w:
                    continue
                if -sz > 6 * self.px:
                    c = q.mean(0)
                    self.paint(c + (q - c) * 1.18, frame)
                self.paint(q, tuple(int(v) for v in np.clip(glass * r.uniform(0.6, 1.5), 0, 255)))
        # ground floor: shop windows and doors
        z = za + r.uniform(0.3, 2)
        while z < zb - 2:
            wdt = r.uniform(1.0, 3.5)
            c = (_col(r, (45, 50, 58), 8) if r.random() < 0.7 else _col(r, (90, 60, 40), 10))
            self.paint(self.wall_quad(X, z, min(z + wdt, zb - 0.3), 0.3, r.uniform(2.2, g - 0.5)), c)
            z += wdt + r.uniform(1.0, 4.0)

    def hedge(self, X, za, zb):
        r = self.rng
        self.fill(self.wall_quad(X, za, zb, 0, r.uniform(0.8, 2.2)), _col(r, (50, 82, 34), 12), VEGETATION)

    def fence(self, s, X, za, zb):
        r = self.rng
        h = r.uniform(0.9, 2.0)
        wood = r.random() < 0.5
        c = _col(r, (120, 90, 60) if wood else (95, 105, 100), 12, self.shade[s])
        self.fill(self.wall_quad(X, za, zb, 0, h), c, FENCE)
        post = tuple(int(v * 0.6) for v in c)
        for z in np.arange(za, zb, r.uniform(0.15, 0.4) if wood else r.uniform(1.5, 2.5)):
            self.paint(self.wall_quad(X, z, z + 0.04 if wood else z + 0.1, 0, h), post)
        if not wood:
            for y in (0.15, h - 0.1):
                self.paint(self.wall_quad(X, za, zb, y, y + 0.06), post)

    # ---- objects ----------------------------------------------------------------------------------
    def tree(self, X, Z):
        r = self.rng
        trunk_h, rad = r.uniform(1.8, 4.0), r.uniform(1.5, 3.8)
        bark = _col(r, (80, 62, 45), 10)
        self.fill(self.bb(X, Z, _seg((0, 0), (0, trunk_h + rad * 0.5), 0.35, 0.22)), bark, VEGETATION)
        leaf = np.array(_col(r, (58, 88, 36), 14))
        cy = trunk_h + rad
        for _ in range(r.integers(3, 7)):
            ox, oy, rr = r.uniform(-0.6, 0.6) * rad, r.uniform(-0.5, 0.5) * rad, rad * r.uniform(0.55, 0.9)
            c = tuple(int(v) for v in np.clip(leaf * r.uniform(0.8, 1.2), 0, 255))
            self.fill(self.bb(X, Z, _circle(ox, cy + oy, rr, rr * 0.9, 12)), c, VEGETATION)
        for _ in range(r.integers(3, 8)):  # light patches inside the canopy
            ox, oy, rr = r.uniform(-0.4, 0.4) * rad, r.uniform(-0.3, 0.3) * rad, rad * r.uniform(0.15, 0.3)
            self.paint(self.bb(X, Z, _circle(ox, cy + oy, rr, rr, 8)),
                       tuple(int(v) for v in np.clip(leaf * 1.35, 0, 255)))

    def pole(self, X, Z, s, height=None, sign=None, light=None, arm=0.0):
        """Pole on the sidewalk; optional traffic light (on top or on an arm over the road) and sign."""
        r = self.rng
        h = height or r.uniform(3.0, 8.5)
        grey = _col(r, (120, 122, 125), 14)
        self.fill(self.bb(X, Z, _seg((0, 0), (0, h), r.uniform(0.12, 0.2))), grey, POLE)
        tip = 0.0
        if arm:
            tip = -s * arm
            self.fill(self.bb(X, Z, _seg((0, h - 0.1), (tip, h - 0.1), 0.12)), grey, POLE)
        if light:
            self.traffic_light(X + tip, Z, h - (0.15 if arm else -0.8))
        if sign:
            self.sign(X, Z, sign)

    def traffic_light(self, X, Z, top):
        r = self.rng
        w, hgt = r.uniform(0.3, 0.42), r.uniform(0.8, 1.05)
        body = _col(r, (38, 40, 42), 8) if r.random() < 0.75 else _col(r, (160, 150, 60), 10)
        box = np.array([(-w / 2, top - hgt), (w / 2, top - hgt), (w / 2, top), (-w / 2, top)])
        self.fill(self.bb(X, Z, box), body, LIGHT)
        if r.random() < 0.8:  # facing the camera: three lamps, one lit
            lit = r.integers(3)
            for i, c in enumerate([(230, 40, 30), (240, 180, 30), (60, 220, 110)]):
                cc = c if i == lit else tuple(v // 4 + 20 for v in c)
                self.paint(self.bb(X, Z, _circle(0, top - hgt * (0.2 + 0.3 * i), w * 0.3, w * 0.3, 10)), cc)

    def sign(self, X, Z, y):
        r = self.rng
        d = r.uniform(0.55, 0.8)
        kind = r.integers(6)
        back = r.random() < 0.2
        if kind in (0, 5):
            outline = _circle(0, y, d / 2, d / 2, 16)
        elif kind == 1:
            outline = np.array([(-d / 2, y + d * 0.35), (d / 2, y + d * 0.35), (0, y - d * 0.5)])
            if r.random() < 0.5:
                outline = np.array([(-d / 2, y - d * 0.35), (d / 2, y - d * 0.35), (0, y + d * 0.5)])
        elif kind == 2:
            outline = np.array([(-d / 2, y - d / 2), (d / 2, y - d / 2), (d / 2, y + d / 2), (-d / 2, y + d / 2)])
        elif kind == 3:
            outline = np.array([(0, y - d / 2), (d / 2, y), (0, y + d / 2), (-d / 2, y)])
        else:
            outline = np.array([(-d, y - d / 4), (d, y - d / 4), (d, y + d / 4), (-d, y + d / 4)])
        outer = [(200, 30, 35), (200, 30, 35), (30, 80, 170), (230, 190, 30), (230, 230, 225), (30, 80, 170)][kind]
        if back:
            outer = (130, 132, 135)
        self.fill(self.bb(X, Z, outline), _col(r, outer, 10), SIGN)
        if not back and kind != 3:
            c = outline.mean(0)
            inner = (240, 240, 236) if kind in (0, 1) else ((30, 30, 30) if kind == 4 else (235, 235, 235))
            self.paint(self.bb(X, Z, c + (outline - c) * (0.68 if kind < 2 else 0.4)), _col(r, inner, 8))
        elif not back:
            self.paint(self.bb(X, Z, outline.mean(0) + (outline - outline.mean(0)) * 0.55), (245, 245, 240))

    def car(self, Xc, Z0, facing_us=False, iid=None):
        """Car box centred at lateral Xc with its near face at depth Z0; side face drawn when visible."""
        r = self.rng
        iid = iid or self.instance(CAR)
        w, L = r.uniform(1.7, 2.0), r.uniform(3.8, 5.0)
        hgt = r.uniform(1.4, 1.55) if r.random() < 0.75 else r.uniform(1.6, 2.1)
        x0, x1, Z1 = Xc - w / 2, Xc + w / 2, Z0 + L
        paint = _col(r, _CAR_COLOURS[r.integers(len(_CAR_COLOURS))], 8)
        dark = tuple(int(v * 0.75) for v in paint)
        glass = _col(r, (40, 46, 56), 8)
        tyre = (22, 22, 24)
        yb, belt = 0.22, hgt * r.uniform(0.5, 0.6)
        # shadow on the road
        self.paint(self.ground(x0 - 0.1, x1 + 0.1, Z0 - 0.2, Z1 + 0.1), (35, 35, 38))
        side_x = x0 if x0 > 0 else (x1 if x1 < 0 else None)
        if side_x is not None:
            self.fill(self.wall_quad(side_x, Z0, Z1, yb, belt), dark, CAR, iid)
            cz0, cz1 = (Z0 + 0.4, Z1 - 1.4) if not facing_us else (Z0 + 1.4, Z1 - 0.4)
            cab = self.P(side_x, [belt, belt, hgt, hgt], [cz0, cz1, cz1 - 0.5, cz0 + 0.6])
            self.fill(cab, dark, CAR, iid)
            c = cab.mean(0)
            self.paint(c + (cab - c) * 0.8, glass)
            for zc in (Z0 + 0.8, Z1 - 0.85):
                circ = _circle(zc, 0.32, 0.32, 0.32, 12)
                self.fill(self.P(side_x, circ[:, 1], circ[:, 0]), tyre, CAR, iid)
                circ = _circle(zc, 0.32, 0.17, 0.17, 8)
                self.paint(self.P(side_x, circ[:, 1], circ[:, 0]), (110, 110, 115))
        # rear (or front) face
        self.fill(self.P([x0 + 0.1, x0 + 0.4, x0 + 0.4, x0 + 0.1], [0, 0, 0.4, 0.4], Z0 + 0.3), tyre, CAR, iid)
        self.fill(self.P([x1 - 0.4, x1 - 0.1, x1 - 0.1, x1 - 0.4], [0, 0, 0.4, 0.4], Z0 + 0.3), tyre, CAR, iid)
        self.fill(self.P([x0, x1, x1, x0], [yb, yb, belt, belt], Z0), paint, CAR, iid)
        zt = Z0 + (0.7 if not facing_us else 1.2)
        cab = np.concatenate([self.P([x1 - 0.05, x0 + 0.05], belt, Z0 + 0.1),
                              self.P([x0 + 0.22, x1 - 0.22], hgt, zt)])
        self.fill(cab, paint, CAR, iid)
        c = cab.mean(0)
        self.paint(c + (cab - c) * np.array([0.85, 0.75]), glass)
        self.paint(self.P([x0, x1, x1, x0], [yb, yb, yb + 0.15, yb + 0.15], Z0 - 0.01), (30, 30, 32))  # bumper
        lamp = (250, 245, 225) if facing_us else (200, 30, 30)
        for a in (x0 + 0.08, x1 - 0.33):
            self.paint(self.P([a, a + 0.25, a + 0.25, a], [belt - 0.22, belt - 0.22, belt - 0.06, belt - 0.06],
                              Z0 - 0.01), lamp)
        self.paint(self.P([Xc - 0.26, Xc + 0.26, Xc + 0.26, Xc - 0.26], [yb + 0.17, yb + 0.17, yb + 0.29, yb + 0.29],
                          Z0 - 0.01), (225, 225, 220))  # licence plate (labelled car, like Cityscapes)

    def _body(self, X, Z, iid, label, h, stride, colours):
        """Person billboard: legs, torso, arms, head (local metres, origin at the feet)."""
        r = self.rng
        skin, shirt, pants, hair = colours
        hip, sh = 0.52 * h, 0.82 * h
        for sgn in (-1, 1):
            self.fill(self.bb(X, Z, _seg((sgn * 0.05 * h, hip), (sgn * stride, 0.0), 0.085 * h, 0.06 * h)),
                      pants, label, iid)
        self.fill(self.bb(X, Z, np.array([(-0.11 * h, hip - 0.03 * h), (0.11 * h, hip - 0.03 * h),
                                          (0.13 * h, sh), (-0.13 * h, sh)])), shirt, label, iid)
        swing = r.uniform(-0.05, 0.05) * h
        for sgn in (-1, 1):
            self.fill(self.bb(X, Z, _seg((sgn * 0.13 * h, sh - 0.02 * h), (sgn * 0.15 * h + swing * sgn, 0.47 * h),
                                         0.055 * h, 0.045 * h)), shirt, label, iid)
        self.fill(self.bb(X, Z, _seg((0, sh - 0.01 * h), (0, sh + 0.04 * h), 0.05 * h)), skin, label, iid)
        head = _circle(0, 0.925 * h, 0.06 * h, 0.075 * h, 12)
        self.fill(self.bb(X, Z, head), skin, label, iid)
        self.paint(self.bb(X, Z, _circle(0, 0.955 * h, 0.062 * h, 0.048 * h, 10)), hair)

    def _colours(self):
        r = self.rng
        return (_col(r, _SKIN[r.integers(len(_SKIN))], 8), _col(r, _CLOTHES[r.integers(len(_CLOTHES))], 14),
                _col(r, _CLOTHES[r.integers(len(_CLOTHES))], 10), _col(r, (40, 30, 25), 10))

    def person(self, X, Z, iid=None):
        r = self.rng
        h = r.uniform(1.55, 1.92) if r.random() < 0.9 else r.uniform(1.0, 1.4)
        self._body(X, Z, iid or self.instance(PERSON), PERSON, h, r.uniform(-0.14, 0.14) * h,
                   colours=self._colours())

    def bicycle(self, X, Z, d, iid, frame_c):
        """Bicycle seen from the side, d = +1 heading right / -1 left (local metres)."""
        r = self.rng
        rad = 0.34
        sx, sy = self.fx / Z, self.fy / Z
        tyre_w = max(1.0, 0.06 * sx)
        for wx in (-0.55, 0.55):
            c = self.bb(X, Z, (wx * d, rad))
            self.ring(c[0], c[1], rad * sx, rad * sy, (25, 25, 27), tyre_w, BICYCLE, iid)
        pts = {"rear": (-0.55, rad), "front": (0.55, rad), "bb": (0.0, 0.3), "seat": (-0.18, 0.88),
               "head": (0.42, 0.9), "bar": (0.38, 1.02)}
        t = 0.045
        for a, b in (("rear", "bb"), ("rear", "seat"), ("bb", "seat"), ("seat", "head"), ("bb", "head"),
                     ("head", "front"), ("head", "bar")):
            p0, p1 = np.array(pts[a]) * (d, 1), np.array(pts[b]) * (d, 1)
            self.fill(self.bb(X, Z, _seg(p0, p1, t)), frame_c, BICYCLE, iid)
        self.fill(self.bb(X, Z, _seg((-0.25 * d, 0.9), (-0.08 * d, 0.9), 0.06)), (20, 20, 20), BICYCLE, iid)

    def rider(self, X, Z, iid_r=None, iid_b=None):
        """Rider (class rider) on a bicycle (class bicycle)."""
        r = self.rng
        d = 1 if r.random() < 0.5 else -1
        iid_b = iid_b or self.instance(BICYCLE)
        iid_r = iid_r or self.instance(RIDER)
        frame_c = _col(r, _CAR_COLOURS[r.integers(len(_CAR_COLOURS))], 12)
        skin, shirt, pants, hair = self._colours()
        h = r.uniform(1.6, 1.9)
        ph = r.uniform(0, 2 * np.pi)
        self.bicycle(X, Z, d, iid_b, frame_c)
        hip, sh = np.array([-0.16 * d, 0.95]), np.array([0.12 * d, 0.95 + 0.3 * h])
        for k, sgn in enumerate((-1, 1)):
            pedal = np.array([0.17 * np.cos(ph + k * np.pi) * d, 0.3 + 0.17 * np.sin(ph + k * np.pi)])
            knee = hip + np.array([0.3 * d, -0.1 + 0.12 * sgn * np.sin(ph)])
            self.fill(self.bb(X, Z, _seg(hip, knee, 0.14, 0.11)), pants, RIDER, iid_r)
            self.fill(self.bb(X, Z, _seg(knee, pedal, 0.11, 0.09)), pants, RIDER, iid_r)
        self.fill(self.bb(X, Z, _seg(hip, sh, 0.26, 0.3)), shirt, RIDER, iid_r)
        self.fill(self.bb(X, Z, _seg(sh, np.array([0.38 * d, 1.02]), 0.09, 0.07)), shirt, RIDER, iid_r)
        head = sh + np.array([0.07 * d, 0.2])
        self.fill(self.bb(X, Z, _circle(head[0], head[1], 0.11, 0.13, 12)), skin, RIDER, iid_r)
        helmet = _col(r, _CLOTHES[r.integers(len(_CLOTHES))], 10) if r.random() < 0.5 else hair
        self.paint(self.bb(X, Z, _circle(head[0], head[1] + 0.05, 0.12, 0.08, 10)), helmet)

    def parked_bicycle(self, X, Z):
        r = self.rng
        self.bicycle(X, Z, 1 if r.random() < 0.5 else -1, self.instance(BICYCLE),
                     _col(r, _CAR_COLOURS[r.integers(len(_CAR_COLOURS))], 12))

    # ---- scene --------------------------------------------------------------------------------------
    def place_objects(self):
        """Objects as [(depth, method, args[, kwargs])] and the guaranteed ones as {labelId: same tuple}."""
        r, objs = self.rng, []
        x0, x1 = self.x_lanes
        # one guaranteed instance of each rare report class, placed in view above the hood
        free = [k for k in (-1, 1) if not self.side[k]["parking"]] or [-1, 1]  # a side without parked cars
        s = free[int(r.integers(len(free)))]
        sd = self.side[s]
        zc, zs = r.uniform(12, 30, size=2)
        zp, zr = r.uniform(11, 22, size=2)
        lane = int(r.integers(self.n_lanes))
        xc, xp, xs, xr = x0 + (lane + 0.5) * self.lane_w, sd["edge"] + s * r.uniform(0.6, 1.5), sd["edge"] + s * 0.5, \
            self.bike_x()
        zc, zp, zs, zr = (self.in_view(x, z) for x, z in ((xc, zc), (xp, zp), (xs, zs), (xr, zr)))
        if abs(xc - xr) < 2.5 and abs(zc - zr) < 7:
            zc = zr + 7.0  # the guaranteed car drives ahead of the guaranteed cyclist
        guaranteed = {
            CAR: (zc, self.car, (xc, zc), dict(facing_us=self.two_way and xc < -self.lane_w / 2,
                                               iid=self.instance(CAR))),
            PERSON: (zp, self.person, (xp, zp), dict(iid=self.instance(PERSON))),
            SIGN: (zs, self.pole, (xs, zs, s), dict(height=r.uniform(2.8, 3.6), sign=r.uniform(2.0, 2.6))),
            RIDER: (zr, self.rider, (xr, zr),
                    dict(iid_r=self.instance(RIDER), iid_b=self.instance(BICYCLE))),
        }
        objs += list(guaranteed.values())
        for s, sd in self.side.items():
            edge, outer = sd["edge"], sd["outer"]
            # trees along the sidewalk or the green strip
            if sd["green"] or r.random() < 0.55:
                x = (outer + sd["facade"]) / 2 if sd["strip"] > 1.5 else outer - s * 0.8
                for z in np.arange(r.uniform(3, 12), 120, r.uniform(7, 16) if not sd["green"] else r.uniform(4, 9)):
                    if r.random() < 0.85:
                        objs.append((z, self.tree, (x + r.uniform(-0.4, 0.4), z)))
            # poles: street lights, traffic lights, signs
            for z in np.arange(r.uniform(4, 20), 120, r.uniform(14, 35)):
                u = r.random()
                sign = r.uniform(2.0, 3.0) if r.random() < 0.35 else None
                x = edge + s * 0.5
                if u < 0.2:
                    objs.append((z, self.pole, (x, z, s), dict(height=r.uniform(5.5, 7), light=True,
                                                               arm=r.uniform(1.5, 4.5), sign=sign)))
                elif u < 0.4:
                    objs.append((z, self.pole, (x, z, s), dict(height=r.uniform(2.8, 3.8), light=True, sign=sign)))
                else:
                    objs.append((z, self.pole, (x, z, s), dict(height=r.uniform(6, 9), arm=r.uniform(0.5, 1.8),
                                                               sign=sign)))
            # pedestrians
            for _ in range(int(r.choice([0, 0, 1, 1, 2, 3, 5]))):
                z = r.uniform(6, 70)
                objs.append((z, self.person, (r.uniform(min(edge, outer), max(edge, outer)), z)))
            if r.random() < 0.25:
                z = r.uniform(6, 50)
                objs.append((z, self.parked_bicycle, (outer - s * 0.5, z)))
            # parked cars at the kerb
            if sd["parking"]:
                z = r.uniform(3, 10)
                while z < 90:
                    if r.random() < 0.55:
                        objs.append((z, self.car, (edge - s * r.uniform(1.05, 1.25), z), dict(facing_us=False)))
                    z += r.uniform(5.2, 12.0)
        # moving cars in the lanes (left lanes oncoming on two-way roads)
        taken = [(xc, zc)]
        for _ in range(int(r.integers(1, 9))):
            lane = int(r.integers(self.n_lanes))
            xc = x0 + (lane + 0.5) * self.lane_w + r.uniform(-0.3, 0.3)
            z = r.uniform(5 if abs(xc) > 2 else 9, 90)
            if any(abs(xc - a) < 2.2 and abs(z - b) < 7 for a, b in taken):
                continue
            if abs(xc - xr) < 2.2 and z < zr + 4:  # keep the guaranteed cyclist in sight
                continue
            taken.append((xc, z))
            oncoming = self.two_way and xc < -self.lane_w / 2
            objs.append((z, self.car, (xc, z), dict(facing_us=oncoming)))
        for _ in range(int(r.choice([0, 0, 0, 1, 1, 2]))):
            z = r.uniform(10, 60)
            objs.append((z, self.rider, (self.bike_x(), z)))
        if getattr(self, "zebra", None) and r.random() < 0.7:
            for _ in range(int(r.integers(1, 4))):
                z = r.uniform(*self.zebra)
                objs.append((z, self.person, (r.uniform(*self.x_road), z)))
        return objs, guaranteed

    def in_view(self, X, Z):
        """Smallest depth >= Z at which lateral position X (+-1 m) projects inside the central 90% of the image."""
        room = (self.cx - 0.05 * self.w) if X < 0 else (0.95 * self.w - self.cx)
        return max(Z, self.fx * (abs(X) + 1.0) / room)

    def bike_x(self):
        """Cyclists ride at the right edge of the right lane."""
        return self.x_lanes[1] - self.rng.uniform(0.6, 1.2)

    def draw_ego_and_border(self):
        r, h, w = self.rng, self.h, self.w
        if r.random() < 0.92:
            yt, ye = h * r.uniform(0.82, 0.9), h * r.uniform(0.04, 0.1)
            xs = np.linspace(0, w, 33)
            xc = w * r.uniform(0.45, 0.55)
            ys = yt + ye * ((xs - xc) / (w / 2)) ** 2
            pts = np.concatenate([np.stack([xs, ys], -1), [(w, h), (0, h)]])
            self.fill(pts, _col(r, (38, 40, 46), 8), EGO)
            star = np.array([xc, yt + h * 0.015])  # bonnet ornament and a reflection band
            self.paint(_circle(star[0], star[1], 4 * self.px, 2 * self.px, 8), (150, 150, 155))
            band = [np.stack([xs, ys + h * 0.01], -1), np.stack([xs[::-1], ys[::-1] + h * 0.03], -1)]
            self.paint(np.concatenate(band), _col(r, (70, 74, 84), 6))
        if r.random() < 0.8:
            b = h * r.uniform(0.005, 0.02)
            self.fill([(0, h - b), (w, h - b), (w, h), (0, h)], (12, 12, 14), OUT_OF_ROI)
        for left in (True, False):
            if r.random() < 0.7:
                a, b = w * r.uniform(0, 0.008), w * r.uniform(0.002, 0.012)
                pts = [(0, 0), (a, 0), (b, h), (0, h)] if left else [(w, 0), (w - a, 0), (w - b, h), (w, h)]
                self.fill(pts, (0, 0, 0), BORDER)

    def render(self):
        self.layout()
        self.draw_ground()
        self.draw_backdrop()
        self.draw_facades()
        objs, guaranteed = self.place_objects()
        objs.sort(key=lambda o: -o[0])
        for o in objs:
            o[1](*o[2], **(o[3] if len(o) > 3 else {}))
        # re-draw a guaranteed object on top if nearer objects hid (nearly) all of its class
        counts = np.bincount(np.asarray(self.lab).ravel(), minlength=256)
        min_px = max(4, int(20 * self.h * self.w / (256 * 512)))
        self.redrawn = []  # guaranteed labels drawn again on top (diagnostics)
        for label, (z, fn, args, kw) in guaranteed.items():
            need = (label, BICYCLE) if label == RIDER else (label,)
            if any(counts[c] < min_px for c in need):
                self.redrawn.append(label)
                fn(*args, **kw)
        self.draw_ego_and_border()
        return self.finish()

    def finish(self):
        r, h, w = self.rng, self.h, self.w
        lab = np.asarray(self.lab)
        coarse, fine = _smooth_noise(r, h, w, 14 * self.px), _smooth_noise(r, h, w, 2.5 * self.px)
        # texture (per-class amplitude) and lighting: global brightness, colour tint, soft vertical falloff
        mod = 1.0 + _COARSE[lab] * coarse + _FINE[lab] * fine  # (H, W)
        gain = (r.uniform(0.65, 1.25) * r.normal(1.0, 0.05, 3)).astype(np.float32)
        falloff = 1.0 - r.uniform(0, 0.2) * np.arange(h, dtype=np.float32) / h
        offset = np.float32(r.uniform(-8, 12))
        img = np.asarray(self.img, dtype=np.float32) * (mod * falloff[:, None])[..., None]
        img *= gain
        veg = lab == VEGETATION  # foliage: hue shifts between yellow-green and blue-green
        img[..., 0] *= 1.0 + (0.15 * coarse) * veg
        img += offset
        np.clip(img, 0, 255, out=img)
        out = Image.fromarray(img.astype(np.uint8))
        out = out.filter(ImageFilter.GaussianBlur(0.45 * self.px))  # optics: soft edges, labels stay sharp
        img = r.standard_normal((h, w, 3), dtype=np.float32)
        img *= np.float32(r.uniform(2.0, 7.0))  # sensor noise
        img += np.asarray(out)
        image = np.clip(img, 0, 255, out=img).astype(np.uint8)
        ins = np.asarray(self.ins)
        instance_ids = np.where(ins > 0, ins, lab).astype(np.uint16)
        return image, lab.copy(), instance_ids


def _smooth_noise(rng, h, w, cell):
    gh, gw = int(np.ceil(h / cell)) + 2, int(np.ceil(w / cell)) + 2
    grid = rng.standard_normal((gh, gw), dtype=np.float32)
    return np.asarray(Image.fromarray(grid, "F").resize((w, h), Image.BICUBIC), dtype=np.float32)


def render_scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one street scene.

    Args:
        rng: the only source of randomness (same state -> same scene).
        height, width: image size in pixels (drawing is in world units, so any size works).
    Returns:
        image uint8 (H, W, 3) RGB, label_ids uint8 (H, W) Cityscapes labelIds 0..33,
        instance_ids uint16 (H, W): labelId * 1000 + k for person/rider/car/bicycle, else the labelId.
    """
    return _Scene(rng, int(height), int(width)).render()


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
    return np.bincount(label_ids.ravel(), minlength=34)


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
    (root / STAMP_NAME).write_text(json.dumps({**_stamp(config), "complete": False}, indent=2) + "\n")
    for sub in ("leftImg8bit", "gtFine"):
        shutil.rmtree(root / sub, ignore_errors=True)
    tasks = _tasks(root, config)
    for t in tasks:
        for sub in ("leftImg8bit", "gtFine"):
            Path(root, sub, t[1], t[4]).mkdir(parents=True, exist_ok=True)
    # disable is only passed to switch the bar off, so that TQDM_DISABLE=1 keeps working otherwise
    bar = tqdm(total=len(tasks), desc="synthetic Cityscapes", unit="img", **({} if progress else {"disable": True}))
    counts = np.zeros(34, np.int64)
    if workers and workers > 1 and len(tasks) > 1:
        with get_context().Pool(min(workers, len(tasks))) as pool:
            for c in pool.imap_unordered(_write_one, tasks, chunksize=4):
                counts += c
                bar.update()
    else:
        for t in tasks:
            counts += _write_one(t)
            bar.update()
    bar.close()
    (root / STAMP_NAME).write_text(json.dumps(_stamp(config), indent=2) + "\n")
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
