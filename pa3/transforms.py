"""Joint image + mask transforms for (uint8 image, class-index mask) pairs.

Every preset takes and returns ``(image, mask)``: in, a uint8 image (3, H, W) and a mask (H, W) of class
indices; out, a float32 image normalised with the ImageNet mean/std and an int64 mask where 255 means
ignore. Geometric transforms move image and mask together; masks are always resampled NEAREST and
padded with 255, images bilinear and padded with 0. Resizing to the working resolution happens in the
dataset (and its cache), not here.

``TrainPreset`` is written for speed (benchmarks/README.md compares it with the same augmentations
through ``torchvision.transforms.v2`` on tv_tensors, ``V2TrainPreset``): it crops the visible region
*before* resizing it (work proportional to the output), resizes uint8 with torchvision's SIMD kernels,
folds zoom, padding, flip and rotation into one ``grid_sample`` when a sample is rotated (image bilinear,
mask nearest, on the same sampling grid) and fuses colour jitter into the final uint8 -> float32
normalisation. All randomness comes from torch's global RNG, so
``torch.manual_seed`` (the engine reseeds every epoch) makes augmentation reproducible.
"""
import math

import numpy as np
import torch
import torch.nn.functional as TF
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from pa3.labels import IGNORE_INDEX

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
_MEAN_255 = torch.tensor(MEAN, dtype=torch.float32).mul(255.0).view(3, 1, 1)
_STD_255 = torch.tensor(STD, dtype=torch.float32).mul(255.0).view(3, 1, 1)
_GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights (ColorJitter's saturation/contrast)


def _normalize_255(image):
    """float32 tensor with values in [0, 255], (3, H, W) or (N, 3, H, W): normalise in place and return it."""
    # .to() is a no-op on the CPU; on the GPU inference.to_device normalises uint8 batches there
    return image.sub_(_MEAN_255.to(image.device)).div_(_STD_255.to(image.device))


def normalize(image):
    """uint8 (3, H, W) or (N, 3, H, W) tensor (any device) -> float32 ``(x / 255 - MEAN) / STD``, fused
    as ``(x - 255 MEAN) / (255 STD)``."""
    return _normalize_255(torch.as_tensor(image).to(torch.float32, copy=True))


def denormalize(image):
    """Undo ``normalize``: float (3, H, W) or (N, 3, H, W) -> uint8 numpy (H, W, 3) or (N, H, W, 3)."""
    image = torch.as_tensor(image).detach().to("cpu", torch.float32)
    shape = (3, 1, 1)
    mean = torch.tensor(MEAN).view(shape)
    std = torch.tensor(STD).view(shape)
    out = (image * std + mean).mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return np.ascontiguousarray(out.movedim(-3, -1).numpy())


def _finish(image, mask):
    """uint8 image + mask tensors -> (normalised float32 image, int64 mask) as plain tensors."""
    return normalize(image.as_subclass(torch.Tensor)), mask.as_subclass(torch.Tensor).to(torch.int64)


def _check(image, mask):
    image = torch.as_tensor(image).as_subclass(torch.Tensor)
    mask = torch.as_tensor(mask).as_subclass(torch.Tensor)
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a uint8 image (3, H, W), got {tuple(image.shape)} {image.dtype}")
    if mask.shape != image.shape[1:]:
        raise ValueError(f"mask {tuple(mask.shape)} does not match image {tuple(image.shape)}")
    return image, mask


def _uniform(low, high):
    return float(torch.empty(()).uniform_(low, high))


def _randint(high):
    """Uniform integer in [0, high] from torch's global RNG."""
    return int(torch.randint(0, high + 1, ())) if high > 0 else 0


def _axis_window(size, crop, factor):
    """Random scale + crop (padded) along one axis, as (source start, source length, output length, offset).

    The input axis of ``size`` pixels is zoomed by ``factor`` and cropped to ``crop`` pixels. Only the
    visible source window ``[start, start + length)`` is resized, to ``output length`` pixels, and put at
    ``offset`` in the crop (the rest is padding). Same distribution as resize + ``RandomCrop(pad_if_needed)``:
    a window uniformly placed in the zoomed image, or the whole zoomed axis uniformly placed in the crop.
    """
    window = max(1, round(crop / factor))  # source pixels covering the crop at this zoom
    if window <= size:
        return _randint(size - window), window, crop, 0
    length = max(1, min(crop, round(size * factor)))
    return 0, size, length, _randint(crop - length)


def _windows(image, mask, rows, cols):
    (y0, src_h, _, _), (x0, src_w, _, _) = rows, cols
    return image[:, y0:y0 + src_h, x0:x0 + src_w], mask[y0:y0 + src_h, x0:x0 + src_w]


def _resize(image, mask, size):
    """uint8 image bilinear with antialias (acts only when shrinking), mask NEAREST_EXACT (pixel centres,
    like bilinear, so the two stay aligned; plain NEAREST shifts masks by up to 1 px)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image, mask
    image = F.resize(image.contiguous(), list(size), interpolation=v2.InterpolationMode.BILINEAR, antialias=True)
    mask = F.resize(mask[None], list(size), interpolation=v2.InterpolationMode.NEAREST_EXACT)[0]
    return image, mask


def scale_crop(image, mask, crop, factor=1.0):
    """Zoom uint8 ``image`` (3, H, W) and ``mask`` (H, W) by ``factor`` and take a random ``crop`` (h, w).

    The visible region is cut out first and resized alone (see ``_resize``), then padded with 0 (image) /
    255 (mask) where the zoomed image is smaller than the crop.
    """
    rows = _axis_window(image.shape[-2], crop[0], factor)
    cols = _axis_window(image.shape[-1], crop[1], factor)
    return _scale_crop(image, mask, crop, rows, cols)


def _scale_crop(image, mask, crop, rows, cols):
    (_, _, out_h, oy), (_, _, out_w, ox) = rows, cols
    image, mask = _resize(*_windows(image, mask, rows, cols), (out_h, out_w))
    if (out_h, out_w) != tuple(crop):
        canvas = image.new_zeros((3, *crop))
        canvas[:, oy:oy + out_h, ox:ox + out_w] = image
        mask_canvas = mask.new_full(crop, IGNORE_INDEX)
        mask_canvas[oy:oy + out_h, ox:ox + out_w] = mask
        image, mask = canvas, mask_canvas
    return image, mask


def _warp(image, mask, crop, size, offset, angle, flip=False):
    """Place ``image`` (3, h, w) and ``mask`` (h, w), zoomed to ``size``, at ``offset`` in a ``crop`` canvas,
    mirror it if ``flip``, then rotate it by ``angle`` degrees counter-clockwise about the canvas centre.

    One ``grid_sample`` per tensor on one shared sampling grid (so image and mask stay aligned): the image
    bilinear, padded with 0, returned as float32 in [0, 255] (not rounded: it goes straight to the
    normalisation); the mask nearest, padded with 255, returned as uint8. With ``size == (h, w)``,
    ``offset == (0, 0)`` and ``crop == (h, w)`` this is ``v2.functional.rotate`` (expand=False).
    The zoom uses bilinear sampling without antialias, so shrink with ``_resize`` first.
    """
    (height, width), (out_h, out_w), (oy, ox) = crop, size, offset
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    mirror = -1.0 if flip else 1.0
    # Output pixel centre (u, v), relative to the canvas centre, comes before the rotation from
    # (cos u - sin v, sin u + cos v), and before the mirror from (-(cos u - sin v), sin u + cos v);
    # grid_sample wants that in the normalised coordinates of the source (align_corners=False), in which
    # the source spans `size` at `offset` in the canvas.
    u = torch.arange(width, dtype=torch.float32).sub_((width - 1) / 2)
    v = torch.arange(height, dtype=torch.float32).sub_((height - 1) / 2)
    grid = torch.empty(1, height, width, 2)  # written in place: no stacked temporaries (stack / affine_grid)
    torch.add((u * (mirror * 2 * cos / out_w))[None],
              (v * (-mirror * 2 * sin / out_w) + ((width - 2 * ox) / out_w - 1))[:, None], out=grid[0, :, :, 0])
    torch.add((u * (2 * sin / out_h))[None],
              (v * (2 * cos / out_h) + ((height - 2 * oy) / out_h - 1))[:, None], out=grid[0, :, :, 1])
    image = TF.grid_sample(image[None].float(), grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)[0]
    # zeros padding on (255 - mask) pads the mask with 255; class indices are exact in float32
    inverted = (IGNORE_INDEX - mask.to(torch.float32))[None, None]
    mask = TF.grid_sample(inverted, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0, 0]
    return image, mask.neg_().add_(IGNORE_INDEX).to(torch.uint8)


def rotate(image, mask, angle):
    """Rotate image (3, H, W) and mask (H, W) by ``angle`` degrees counter-clockwise about the centre.

    Same geometry as ``torchvision.transforms.v2.functional.rotate`` (expand=False); the image comes back
    as float32 in [0, 255] (bilinear, padded with 0), the mask as uint8 (nearest, padded with 255).
    """
    shape = tuple(image.shape[-2:])
    return _warp(image, mask, shape, shape, (0, 0), angle)


def _jitter_(image, brightness, contrast, saturation):
    """Colour jitter in place on a float32 (3, H, W) image in [0, 255] (clamped); see ``jitter_normalize``."""
    gray = image[0].mul(_GRAY[0]).add_(image[1], alpha=_GRAY[1]).add_(image[2], alpha=_GRAY[2])
    mean_gray = float(gray.mean())
    b, c, s = brightness, contrast, saturation
    offset = gray.mul_(b * c * (1 - s)).add_(b * (1 - c) * mean_gray)
    return image.mul_(b * c * s).add_(offset).clamp_(0.0, 255.0)


def _to_uint8(image):
    """float32 image with values in [0, 255] -> uint8, rounded (uint8 images pass through)."""
    if image.dtype == torch.uint8:
        return image
    return image.round_().clamp_(0.0, 255.0).to(torch.uint8)


def jitter_normalize(image, brightness=1.0, contrast=1.0, saturation=1.0):
    """Colour jitter fused with normalisation: image uint8 or float32 in [0, 255], (3, H, W) -> float32.

    ``ColorJitter``'s brightness (x * b), contrast (blend with the mean gray level, m) and saturation
    (blend with the per-pixel gray level, g) are all linear and commute, so they collapse into one
    per-pixel affine map ``b c (s x + (1 - s) g) + b (1 - c) m``, clamped to [0, 255] once (torchvision
    clamps and rounds to uint8 after each of the three, in a random order; the difference is that
    intermediate clamping and rounding), then normalised.
    """
    return _normalize_255(_jitter_(image.to(torch.float32, copy=True), brightness, contrast, saturation))


class TrainPreset:
    """Training augmentation: random scale, random crop (pad 255), flip, small rotation, colour jitter.

    Args:
        crop_size: (h, w) of the output crop; None keeps the input size (the mask is padded with 255
            where a zoom-out leaves no pixels).
        scale: (min, max) random zoom factor; None or 0 disables.
        hflip: probability of a horizontal flip; 0 disables.
        rotation: maximum rotation in degrees (uniform in [-rotation, rotation]); 0 disables.
        color_jitter: brightness/contrast/saturation strength (factors uniform in [1 - j, 1 + j], as
            ``v2.ColorJitter(j, j, j)``; no hue), applied after the geometry, fused with the
            normalisation (``jitter_normalize``); 0 disables.
        normalize: True returns what models take (below); False returns the augmented image rounded to
            uint8 and the mask as uint8, for DataLoaders: a fifth of the bytes cross from the worker processes
            (and to the GPU), and ``pa3.engine`` normalises uint8 batches on the device.
    Returns (from ``__call__(image uint8 (3,H,W), mask (H,W))``):
        image float32 (3, h, w) normalised, mask int64 (h, w) with 255 = ignore
        (``normalize=False``: image uint8 (3, h, w), mask uint8 (h, w)).

    Semantics are those of resize -> ``RandomCrop(pad_if_needed)`` -> flip -> rotate -> jitter ->
    normalise; random draws, all from torch's global RNG: zoom, crop offsets, flip, angle, jitter factors.
    The implementation only resizes the visible region of the input (``scale_crop``); when the sample is
    rotated, the zoom (if it enlarges), padding, flip and rotation are one resampling (``_warp``), after
    an antialiased uint8 resize if the zoom shrinks.
    """

    def __init__(self, crop_size=None, scale=(0.75, 1.25), hflip=0.5, rotation=5.0, color_jitter=0.2,
                 normalize=True):
        self.normalize = bool(normalize)
        self.crop_size = None if crop_size is None else tuple(int(s) for s in crop_size)
        self.scale = tuple(float(s) for s in scale) if scale else None
        self.hflip = float(hflip or 0.0)
        self.rotation = float(rotation or 0.0)
        self.color_jitter = float(color_jitter or 0.0)
        self._zoom = self.scale is not None and self.scale != (1.0, 1.0)

    def __call__(self, image, mask):
        # BEGIN SOLUTION task 4
        image, mask = _check(image, mask)
        crop = self.crop_size or tuple(image.shape[-2:])
        factor = _uniform(*self.scale) if self._zoom else 1.0
        rows = _axis_window(image.shape[-2], crop[0], factor)
        cols = _axis_window(image.shape[-1], crop[1], factor)
        flip = self.hflip > 0 and float(torch.rand(())) < self.hflip
        angle = _uniform(-self.rotation, self.rotation) if self.rotation > 0 else 0.0
        if angle == 0.0:
            image, mask = _scale_crop(image, mask, crop, rows, cols)
            if flip:
                image, mask = image.flip(-1), mask.flip(-1)
        else:
            size, offset = (rows[2], cols[2]), (rows[3], cols[3])
            image, mask = _windows(image, mask, rows, cols)
            if size[0] < image.shape[-2] or size[1] < image.shape[-1]:  # shrinking: antialias first
                image, mask = _resize(image, mask, size)
            image, mask = _warp(image, mask, crop, size, offset, angle, flip)
        if self.color_jitter > 0:
            j = self.color_jitter
            b, c, s = torch.empty(3).uniform_(max(0.0, 1 - j), 1 + j).tolist()
            image = _jitter_(image.to(torch.float32), b, c, s)  # a copy if uint8, else in place
        if not self.normalize:
            return _to_uint8(image), mask.to(torch.uint8)
        if image.dtype == torch.uint8:
            image = normalize(image)
        else:  # warped and/or jittered: float32 in [0, 255], ours
            image = _normalize_255(image)
        return image, mask.to(torch.int64)
        # END SOLUTION

    def __repr__(self):
        return (f"TrainPreset(crop_size={self.crop_size}, scale={self.scale}, hflip={self.hflip}, "
                f"rotation={self.rotation}, color_jitter={self.color_jitter}, normalize={self.normalize})")


class V2TrainPreset:
    """``TrainPreset``'s augmentation written the standard way, with ``torchvision.transforms.v2`` on
    ``tv_tensors`` (the image an ``Image``, the mask a ``Mask``, so v2 resamples it NEAREST and pads it
    with its own fill value): random scale, ``RandomCrop(pad_if_needed)``, ``RandomHorizontalFlip``,
    ``RandomRotation``, ``ColorJitter``, ``ToDtype`` + ``Normalize``.

    What course code typically runs (the loader benchmark's naive side) and the readable reference for
    ``TrainPreset``: the tests hold both to the same alignment contract, and check ``TrainPreset``'s
    rotation, zoom and jitter against torchvision's functional ops. Same arguments and output as
    ``TrainPreset`` (``normalize=True``), and slower (benchmarks/README.md).
    """

    def __init__(self, crop_size=None, scale=(0.75, 1.25), hflip=0.5, rotation=5.0, color_jitter=0.2):
        self.crop_size = None if crop_size is None else tuple(int(s) for s in crop_size)
        self.scale = tuple(float(s) for s in scale) if scale else None
        fill = {tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}
        steps = []
        if hflip:
            steps.append(v2.RandomHorizontalFlip(float(hflip)))
        if rotation:
            steps.append(v2.RandomRotation(float(rotation), interpolation=v2.InterpolationMode.BILINEAR, fill=fill))
        if color_jitter:
            steps.append(v2.ColorJitter(color_jitter, color_jitter, color_jitter))
        steps += [v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64, "others": None},
                             scale=True),
                  v2.Normalize(MEAN, STD)]
        self.fill = fill
        self.rest = v2.Compose(steps)

    def __call__(self, image, mask):
        # BEGIN SOLUTION task 4
        image, mask = _check(image, mask)
        image, mask = tv_tensors.Image(image), tv_tensors.Mask(mask)
        height, width = image.shape[-2:]
        if self.scale is not None:
            factor = _uniform(*self.scale)
            size = [max(1, round(height * factor)), max(1, round(width * factor))]
            image = F.resize(image, size, interpolation=v2.InterpolationMode.BILINEAR, antialias=True)
            mask = F.resize(mask, size)  # a Mask: NEAREST
        crop = self.crop_size or (height, width)
        image, mask = v2.RandomCrop(crop, pad_if_needed=True, fill=self.fill)(image, mask)
        image, mask = self.rest(image, mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)
        # END SOLUTION

    def __repr__(self):
        return f"V2TrainPreset(crop_size={self.crop_size}, scale={self.scale}, steps={self.rest})"


class EvalPreset:
    """Evaluation: no augmentation, only uint8 -> normalised float32 image and int64 mask.

    ``normalize=False`` passes the uint8 image and a uint8 mask through, for DataLoaders (see TrainPreset).
    """

    def __init__(self, normalize=True):
        self.normalize = bool(normalize)

    def __call__(self, image, mask):
        image, mask = _check(image, mask)
        if not self.normalize:
            return image, mask.to(torch.uint8)
        return _finish(image, mask)

    def __repr__(self):
        return f"EvalPreset(normalize={self.normalize})"
