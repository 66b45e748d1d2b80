"""Painters of the ground: terrain and pavement beyond the facades, green strips, sidewalks with
paving joints and kerb stones, the road with asphalt patches, and the lane markings (edge lines, dashes,
centre lines, zebra crossings; paint only, labelled road).
"""
from __future__ import annotations

import numpy as np

from .classes import ROAD, SIDEWALK, TERRAIN
from .colours import _PAVING, _jittered, _pick, _scaled


_GROUND_START = 0.5  # metres in front of the camera where the ground polygons begin


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
