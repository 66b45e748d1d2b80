"""The photograph: the painted scene as the camera records it, with per-class texture (coarse
blotches and fine grain), lighting, lens blur and sensor noise; the labels stay sharp.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from .classes import BORDER, BUILDING, CAR, EGO, FENCE, OUT_OF_ROI, ROAD, SIDEWALK, SKY, TERRAIN, VEGETATION, WALL


# Multiplicative texture amplitude per labelId: coarse blotches and fine grain.
_COARSE_TEXTURE = np.full(256, 0.05, np.float32)
_FINE_TEXTURE = np.full(256, 0.04, np.float32)
for _ids, _coarse, _fine in [((ROAD,), 0.07, 0.06), ((SIDEWALK,), 0.07, 0.07), ((BUILDING,), 0.08, 0.05),
                             ((WALL,), 0.10, 0.08), ((FENCE,), 0.06, 0.08), ((VEGETATION,), 0.28, 0.28),
                             ((TERRAIN,), 0.20, 0.16), ((SKY,), 0.03, 0.01), ((CAR,), 0.04, 0.03),
                             ((EGO, BORDER, OUT_OF_ROI), 0.03, 0.02)]:
    _COARSE_TEXTURE[list(_ids)], _FINE_TEXTURE[list(_ids)] = _coarse, _fine


def _photograph(scene):
    """The painted scene as the camera records it; the labels stay sharp.

    Returns image uint8 (H, W, 3), label_ids uint8 (H, W) and instance_ids uint16 (H, W).
    """
    rng, camera = scene.rng, scene.camera
    label_ids = scene.canvas.label_ids()
    lit = _light_and_texture(scene, label_ids)
    lens = Image.fromarray(lit.astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.45 * camera.pixel_scale))
    image = rng.standard_normal((camera.height, camera.width, 3), dtype=np.float32)
    image *= np.float32(rng.uniform(2.0, 7.0))  # sensor noise
    image += np.asarray(lens)
    image = np.clip(image, 0, 255, out=image).astype(np.uint8)
    instances = np.asarray(scene.canvas.instances)
    instance_ids = np.where(instances > 0, instances, label_ids).astype(np.uint16)
    return image, label_ids.copy(), instance_ids


def _light_and_texture(scene, label_ids):
    """Texture with a per-class amplitude (coarse blotches and fine grain), then lighting: overall brightness, a
    colour tint, a soft vertical falloff. Returns float32 (H, W, 3) clipped to 0..255."""
    rng, camera = scene.rng, scene.camera
    height, width = camera.height, camera.width
    coarse = _smooth_noise(rng, height, width, 14 * camera.pixel_scale)  # (H, W)
    fine = _smooth_noise(rng, height, width, 2.5 * camera.pixel_scale)
    texture = 1.0 + _COARSE_TEXTURE[label_ids] * coarse + _FINE_TEXTURE[label_ids] * fine  # (H, W)
    gain = (rng.uniform(0.65, 1.25) * rng.normal(1.0, 0.05, 3)).astype(np.float32)  # (3,)
    falloff = 1.0 - rng.uniform(0, 0.2) * np.arange(height, dtype=np.float32) / height  # (H,)
    offset = np.float32(rng.uniform(-8, 12))
    image = np.asarray(scene.canvas.photo, dtype=np.float32) * (texture * falloff[:, None])[..., None]
    image *= gain
    foliage = label_ids == VEGETATION  # its hue varies between yellow-green and blue-green
    image[..., 0] *= 1.0 + (0.15 * coarse) * foliage
    image += offset
    return np.clip(image, 0, 255, out=image)


def _smooth_noise(rng, height, width, cell):
    """Gaussian noise on a grid of cell-pixel squares, bicubically upsampled: float32 (H, W)."""
    grid_h, grid_w = int(np.ceil(height / cell)) + 2, int(np.ceil(width / cell)) + 2
    grid = rng.standard_normal((grid_h, grid_w), dtype=np.float32)
    return np.asarray(Image.fromarray(grid, "F").resize((width, height), Image.BICUBIC), dtype=np.float32)
