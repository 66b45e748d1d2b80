"""Geometry: shape helpers in local metres or pixels (quads around segments, ellipses, scaling about
the centre) and ``_Camera``, the pinhole camera that projects world metres to pixels (ground rectangles,
walls parallel to the road, upright billboards).
"""
from __future__ import annotations

import numpy as np


def _segment_quad(p0, p1, width0, width1=None):
    """Quad (4, 2) around the segment p0-p1 (local metres), width0 wide at p0 and width1 (default width0) at p1."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    along = p1 - p0
    normal = np.array([-along[1], along[0]]) / max(np.hypot(*along), 1e-9)
    width1 = width0 if width1 is None else width1
    return np.array([p0 + normal * width0 / 2, p1 + normal * width1 / 2,
                     p1 - normal * width1 / 2, p0 - normal * width0 / 2])


def _ellipse(cx, cy, rx, ry, n):
    """n points (n, 2) on the ellipse around (cx, cy) with radii rx, ry."""
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], -1)


def _scale_about_centre(points, factor):
    """points (n, 2) scaled by factor (a number or one per axis) about their mean."""
    centre = points.mean(0)
    return centre + (points - centre) * factor


class _Camera:
    """A pinhole camera on a car, looking down the street with a level horizon.

    World points are in metres: X right, Y up from the road surface, Z forward from the camera.
    Image points are in pixels: x right, y down from the top-left corner.
    """

    def __init__(self, rng, height, width):
        self.height, self.width = height, width
        self.cx = width * rng.uniform(0.42, 0.58)  # vanishing point: x ...
        self.cy = height * rng.uniform(0.38, 0.47)  # ... and y, the horizon's row
        self.fx = 1.1 * width * rng.uniform(0.9, 1.1)  # focal length in pixels
        self.fy = self.fx * 2.0 * height / width  # square pixels at the 1:2 Cityscapes aspect ratio
        self.mount_height = rng.uniform(1.15, 1.45)  # metres above the road
        self.pixel_scale = width / 512.0  # pixels per pixel of a 512-wide image, for details sized in pixels

    def project(self, X, Y, Z):
        """World points (broadcastable arrays, metres) -> pixels (..., 2).

        Depths under 0.3 m are clamped, so that ground and wall polygons starting behind the camera stay finite.
        """
        Z = np.maximum(np.asarray(Z, float), 0.3)
        x = self.cx + self.fx * np.asarray(X, float) / Z
        y = self.cy - self.fy * (np.asarray(Y, float) - self.mount_height) / Z
        return np.stack(np.broadcast_arrays(x, y), -1)

    def billboard(self, X, Z, local):
        """An upright plane standing at (X, 0, Z), facing the camera: local metres (..., 2), x right and y up,
        -> pixels (..., 2). Thin things (people, poles, trees, signs) are drawn flat like this, at one depth.
        """
        local = np.asarray(local, float)
        return np.stack([self.cx + self.fx * (X + local[..., 0]) / Z,
                         self.cy - self.fy * (local[..., 1] - self.mount_height) / Z], -1)

    def ground_rect(self, x0, x1, z0, z1):
        """Rectangle on the road surface, x0..x1 across and z0..z1 deep (metres) -> pixels (4, 2)."""
        return self.project([x0, x1, x1, x0], 0.0, [z0, z0, z1, z1])

    def wall_rect(self, X, z0, z1, y0, y1):
        """Rectangle in the vertical plane X (parallel to the road), z0..z1 deep and y0..y1 high -> pixels (4, 2)."""
        return self.project(X, [y0, y0, y1, y1], [z0, z1, z1, z0])

    def nearest_visible_depth(self, X, Z):
        """Smallest depth >= Z at which lateral position X (+-1 m) projects inside the central 90% of the width."""
        room = (self.cx - 0.05 * self.width) if X < 0 else (0.95 * self.width - self.cx)
        return max(Z, self.fx * (abs(X) + 1.0) / room)
