"""``render_scene``: one street scene, read as its list of painting steps.

Each scene is drawn in perspective from a random camera (horizon, vanishing point, focal length): sky,
a road with lane markings, sidewalks, building facades with windows, walls and fences, trees, terrain,
poles with traffic lights and signs, cars, pedestrians, cyclists (rider on a bicycle), the ego-vehicle
hood and the rectification border. Image and label are drawn from the *same* polygons, far to near
(painter's algorithm), so what the image shows is what the label says; texture, lighting and sensor noise
then make the classes distinguishable but not trivially. Class frequencies are skewed like Cityscapes
(road, building, vegetation, sky, car, sidewalk common; traffic sign, person, bicycle rare), and every
image holds at least one car, person, traffic sign and rider on a bicycle, so every split contains the
report's five classes (building, traffic sign, person, car, bicycle).
"""
from __future__ import annotations

import numpy as np

from .paint_buildings import _paint_backdrop, _paint_facades, _paint_walls_and_fences
from .paint_frame import _paint_border, _paint_ego_vehicle
from .paint_ground import _paint_ground, _paint_markings
from .photograph import _photograph
from .placement import _place_guaranteed, _place_roadside, _place_traffic, _repaint_hidden
from .street import _Scene


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
