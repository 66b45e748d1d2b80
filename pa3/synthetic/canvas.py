"""``_Canvas``: the three images of a scene (photo, labelIds, instance ids), painted with the same
polygons, so that what the image shows is what the label says.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .classes import SKY


class _Canvas:
    """The three images of a scene, painted with the same polygons: the photo (RGB), the labelIds and the instance ids.

    `fill` paints all three; `paint` only the photo, for details (windows, lamps, lane markings) that belong to the
    class they are painted on, as in Cityscapes.
    """

    def __init__(self, background):
        height, width = background.shape[:2]  # background: uint8 (H, W, 3), the sky
        self.photo = Image.fromarray(background)
        self.labels = Image.new("L", (width, height), SKY)
        self.instances = Image.new("I", (width, height), 0)  # 0: no instance
        self._photo_pen, self._label_pen, self._instance_pen = (
            ImageDraw.Draw(self.photo), ImageDraw.Draw(self.labels), ImageDraw.Draw(self.instances))
        self._instances_of = {}  # labelId -> instances made so far

    def new_instance(self, label):
        """A new instance id of class label: labelId * 1000 + k, k = 0, 1, ... as in Cityscapes."""
        k = self._instances_of.get(label, 0)
        self._instances_of[label] = k + 1
        return label * 1000 + k

    def fill(self, points, colour, label, instance_id=0):
        """Polygon points (n, 2) in pixels."""
        xy = np.asarray(points, float).ravel().tolist()
        self._photo_pen.polygon(xy, fill=colour)
        self._label_pen.polygon(xy, fill=label)
        self._instance_pen.polygon(xy, fill=instance_id)

    def paint(self, points, colour):
        self._photo_pen.polygon(np.asarray(points, float).ravel().tolist(), fill=colour)

    def ring(self, cx, cy, rx, ry, colour, width, label, instance_id):
        """Ellipse outline width pixels thick around (cx, cy), radii rx, ry (pixels)."""
        box = [cx - rx, cy - ry, cx + rx, cy + ry]
        width = max(1, int(round(width)))
        self._photo_pen.ellipse(box, outline=colour, width=width)
        self._label_pen.ellipse(box, outline=label, width=width)
        self._instance_pen.ellipse(box, outline=instance_id, width=width)

    def label_ids(self):
        return np.asarray(self.labels)  # uint8 (H, W), read-only, not changed by later painting
