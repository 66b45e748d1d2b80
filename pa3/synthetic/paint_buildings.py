"""Painters of what lines the street: the backdrop where the street ends, facades with roofs,
windows and shop fronts, gaps with hedges, low walls and fences (wooden or metal).
"""
from __future__ import annotations

import numpy as np

from .camera import _ellipse, _scale_about_centre
from .classes import BUILDING, FENCE, VEGETATION, WALL
from .colours import _BUILDING_COLOURS, _jittered, _pick, _scaled, _to_rgb


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
