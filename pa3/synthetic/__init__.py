"""Embedded synthetic street scenes, written in the exact Cityscapes folder layout.

Real Cityscapes needs a login and ~11 GB, so pa3 ships a generator of small, deterministic street scenes
that the real dataset class reads unchanged: ``leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png``
beside ``gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_{labelIds,instanceIds,color,polygons}``.

One difference from the real dataset is deliberate: real Cityscapes' ``test`` split has placeholder
labels (the ground truth is withheld), whereas the synthetic ``test`` split has real labels, so the
figures the report labels "test" can be reproduced on it.

Output is a pure function of ``SyntheticConfig``: image ``i`` of a split is drawn from a generator seeded
with ``(seed, split, i)``, whatever the number of worker processes.

The files, by concept; each imports only from those above it:

- ``classes.py``: the labelIds the scenes paint (ROAD, ..., BICYCLE; EGO, BORDER, OUT_OF_ROI).
- ``colours.py``: palettes and colour helpers.
- ``camera.py``: shape helpers and the pinhole camera (world metres -> pixels).
- ``canvas.py``: the canvas painting photo, labelIds and instance ids with the same polygons.
- ``street.py``: the street layout, the sky, and the scene every painter shares.
- ``paint_ground.py``, ``paint_buildings.py``, ``paint_roadside.py``, ``paint_cars.py``,
  ``paint_people.py``, ``paint_frame.py``: the painters (ground and markings; backdrop, facades, walls and
  fences; trees, poles, lights and signs; cars; people and bicycles; ego vehicle and border).
- ``placement.py``: where cars, people, cyclists, trees and poles go.
- ``photograph.py``: texture, lighting, blur and sensor noise.
- ``scene.py``: ``render_scene``, the list of painting steps.
- ``dataset.py``: ``SyntheticConfig``, ``generate``, ``ensure_synthetic``, ``default_synthetic_root``, the stamp.
- ``manifest.py``: ``MANIFEST``, ``checksums``, ``write_manifest``, ``read_manifest``.
"""
from __future__ import annotations

from .classes import (BICYCLE, BORDER, BUILDING, CAR, EGO, FENCE, LIGHT, OUT_OF_ROI, PERSON, POLE, RIDER, ROAD,
                      SIDEWALK, SIGN, SKY, TERRAIN, VEGETATION, WALL)
from .dataset import (CITIES, FRAME, GENERATOR_VERSION, SYNTHETIC_STAMP, SyntheticConfig, default_synthetic_root,
                      ensure_synthetic, generate)
from .manifest import MANIFEST, checksums, read_manifest, write_manifest
from .scene import render_scene

__all__ = [
    "GENERATOR_VERSION", "SYNTHETIC_STAMP", "FRAME", "CITIES",
    "EGO", "BORDER", "OUT_OF_ROI", "ROAD", "SIDEWALK", "BUILDING", "WALL", "FENCE", "POLE", "LIGHT", "SIGN",
    "VEGETATION", "TERRAIN", "SKY", "PERSON", "RIDER", "CAR", "BICYCLE",
    "SyntheticConfig", "render_scene", "default_synthetic_root", "generate", "ensure_synthetic",
    "MANIFEST", "checksums", "write_manifest", "read_manifest",
]
