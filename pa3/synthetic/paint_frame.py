"""Painters of what the camera rig itself puts in the frame, painted last over the scene: the
ego vehicle's bonnet and the rectification artefacts (out-of-roi strip, border wedges).
"""
from __future__ import annotations

import numpy as np

from .camera import _ellipse
from .classes import BORDER, EGO, OUT_OF_ROI
from .colours import _jittered


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
