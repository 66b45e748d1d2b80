"""Painter of cars: ``_CarBox`` (a car's box and paint), its shadow, the side face the camera can
see and the near face (rear, or front when oncoming) with cabin, windows, bumper, lamps and plate.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .camera import _ellipse, _scale_about_centre
from .classes import CAR
from .colours import _CAR_COLOURS, _TYRE, _jittered, _pick, _scaled


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
