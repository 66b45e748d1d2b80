"""Where things go: the guaranteed car, person, traffic sign and cyclist of every scene, the
roadside objects of each side (trees, poles, pedestrians, parked bicycles and cars), the moving traffic,
and repainting a guaranteed object that nearer ones hid. Each returns ``_Placed`` items, painted later far
to near by ``render_scene``.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from .classes import BICYCLE, CAR, PERSON, RIDER, SIGN
from .paint_cars import _paint_car
from .paint_people import _paint_parked_bicycle, _paint_person, _paint_rider
from .paint_roadside import _paint_pole, _paint_tree
from .street import _Placed


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
