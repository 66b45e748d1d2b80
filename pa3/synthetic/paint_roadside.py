"""Painters of the things beside the road: trees, poles (with arms), traffic lights and traffic
signs (six kinds, seen from the front or the back).

These and the road users (paint_cars.py, paint_people.py) are billboards standing at (x, 0, z), drawn in
local metres: x right, y up.
"""
from __future__ import annotations

import numpy as np

from .camera import _ellipse, _scale_about_centre, _segment_quad
from .classes import LIGHT, POLE, SIGN, VEGETATION
from .colours import _jittered, _to_rgb


# Traffic signs by kind: (face colour, colour of the inner field, size of the inner field relative to the face)
_SIGN_STYLES = [((200, 30, 35), (240, 240, 236), 0.68),  # 0 round, red ring (prohibition)
                ((200, 30, 35), (240, 240, 236), 0.68),  # 1 triangle, red rim (warning, give way)
                ((30, 80, 170), (235, 235, 235), 0.4),  # 2 square, blue (information)
                ((230, 190, 30), (245, 245, 240), 0.55),  # 3 diamond, yellow (priority road)
                ((230, 230, 225), (30, 30, 30), 0.4),  # 4 wide plate, white (street name)
                ((30, 80, 170), (235, 235, 235), 0.4)]  # 5 round, blue (mandatory direction)


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
