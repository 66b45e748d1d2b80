"""Painters of people and bicycles: pedestrians (adults and children, standing or mid-stride),
bicycles seen from the side, cyclists (a rider class person on a bicycle) and parked bicycles.
"""
from __future__ import annotations

import numpy as np

from .camera import _ellipse, _segment_quad
from .classes import BICYCLE, PERSON, RIDER
from .colours import _CAR_COLOURS, _CLOTHES, _SKIN, _jittered, _pick


# Bicycle seen from the side, heading right: joints (local metres, origin on the ground below the crank)
# and the frame tubes between them.
_BICYCLE_JOINTS = {"rear hub": (-0.55, 0.34), "front hub": (0.55, 0.34), "crank": (0.0, 0.3),
                   "saddle": (-0.18, 0.88), "head tube": (0.42, 0.9), "handlebar": (0.38, 1.02)}
_BICYCLE_TUBES = [("rear hub", "crank"), ("rear hub", "saddle"), ("crank", "saddle"), ("saddle", "head tube"),
                  ("crank", "head tube"), ("head tube", "front hub"), ("head tube", "handlebar")]


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
