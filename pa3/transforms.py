"""Joint image + mask transforms (torchvision.transforms.v2 on tv_tensors.Image / tv_tensors.Mask).

Every preset takes and returns ``(image, mask)``: in, a uint8 image (3, H, W) and a mask (H, W) of class
indices; out, a float32 image normalised with the ImageNet mean/std and an int64 mask where 255 means
ignore. Geometric transforms move image and mask together; masks are always resampled NEAREST and
padded with 255, images bilinear and padded with 0. Resizing to the working resolution happens in the
dataset (and its cache), not here.
"""
import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from pa3.labels import IGNORE_INDEX

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# Padding value per tv_tensor type: ignore for masks, black for images.
FILL = {tv_tensors.Mask: IGNORE_INDEX, "others": 0}


def normalize(image):
    """uint8 (3, H, W) or (N, 3, H, W) tensor -> float32 in [0, 1], normalised with MEAN/STD."""
    image = torch.as_tensor(image).to(torch.float32).div_(255.0)
    shape = (3, 1, 1)
    mean = torch.tensor(MEAN, dtype=torch.float32).view(shape)
    std = torch.tensor(STD, dtype=torch.float32).view(shape)
    return image.sub_(mean).div_(std)


def denormalize(image):
    """Undo ``normalize``: float (3, H, W) or (N, 3, H, W) -> uint8 numpy (H, W, 3) or (N, H, W, 3)."""
    image = torch.as_tensor(image).detach().to("cpu", torch.float32)
    shape = (3, 1, 1)
    mean = torch.tensor(MEAN).view(shape)
    std = torch.tensor(STD).view(shape)
    out = (image * std + mean).mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return np.ascontiguousarray(out.movedim(-3, -1).numpy())


class RandomScale(v2.Transform):
    """Resize image and mask together by one random factor drawn uniformly from ``scale``."""

    def __init__(self, scale=(0.75, 1.25)):
        super().__init__()
        self.scale = tuple(float(s) for s in scale)

    def make_params(self, flat_inputs):
        height, width = v2.query_size(flat_inputs)
        factor = float(torch.empty(()).uniform_(*self.scale))
        return {"size": [max(1, round(height * factor)), max(1, round(width * factor))]}

    def transform(self, inpt, params):
        # NEAREST_EXACT samples pixel centres like bilinear does (plain NEAREST shifts masks by up to 1 px).
        if isinstance(inpt, tv_tensors.Mask):
            return F.resize(inpt, params["size"], interpolation=v2.InterpolationMode.NEAREST_EXACT)
        return F.resize(inpt, params["size"], interpolation=v2.InterpolationMode.BILINEAR, antialias=True)


def _finish(image, mask):
    """uint8 tv_tensors -> (normalised float32 image, int64 mask) as plain tensors."""
    return normalize(image.as_subclass(torch.Tensor)), mask.as_subclass(torch.Tensor).to(torch.int64)


def _wrap(image, mask):
    image = torch.as_tensor(image)
    mask = torch.as_tensor(mask)
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a uint8 image (3, H, W), got {tuple(image.shape)} {image.dtype}")
    if mask.shape != image.shape[1:]:
        raise ValueError(f"mask {tuple(mask.shape)} does not match image {tuple(image.shape)}")
    return tv_tensors.Image(image), tv_tensors.Mask(mask)


class TrainPreset:
    """Training augmentation: random scale, random crop (pad 255), flip, small rotation, colour jitter.

    Args:
        crop_size: (h, w) of the output crop; None keeps the input size (the mask is padded with 255
            where a zoom-out leaves no pixels).
        scale: (min, max) random zoom factor; None or 0 disables.
        hflip: probability of a horizontal flip; 0 disables.
        rotation: maximum rotation in degrees (uniform in [-rotation, rotation]); 0 disables.
        color_jitter: brightness/contrast/saturation strength, applied on uint8 after cropping; 0 disables.
    Returns (from ``__call__(image uint8 (3,H,W), mask (H,W))``):
        image float32 (3, h, w) normalised, mask int64 (h, w) with 255 = ignore.
    """

    def __init__(self, crop_size=None, scale=(0.75, 1.25), hflip=0.5, rotation=5.0, color_jitter=0.2):
        self.crop_size = None if crop_size is None else tuple(int(s) for s in crop_size)
        self.scale = tuple(scale) if scale else None
        self.hflip = float(hflip or 0.0)
        self.rotation = float(rotation or 0.0)
        self.color_jitter = float(color_jitter or 0.0)
        self.rescale = RandomScale(self.scale) if self.scale and tuple(self.scale) != (1, 1) else None
        self.geometric = []  # applied after the crop, on the small output
        if self.hflip > 0:
            self.geometric.append(v2.RandomHorizontalFlip(self.hflip))
        if self.rotation > 0:
            self.geometric.append(
                v2.RandomRotation(self.rotation, interpolation=v2.InterpolationMode.BILINEAR, fill=FILL)
            )
        jitter = self.color_jitter
        self.photometric = (
            v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter) if jitter > 0 else None
        )

    def __call__(self, image, mask):
        image, mask = _wrap(image, mask)
        crop = self.crop_size or tuple(image.shape[-2:])
        if self.rescale is not None:
            image, mask = self.rescale(image, mask)
        # Crop right after scaling so that flip, rotation and jitter work on the small output.
        image, mask = v2.RandomCrop(crop, pad_if_needed=True, fill=FILL)(image, mask)
        for op in self.geometric:
            image, mask = op(image, mask)
        if self.photometric is not None:
            image = self.photometric(image)
        return _finish(image, mask)

    def __repr__(self):
        return (f"TrainPreset(crop_size={self.crop_size}, scale={self.scale}, hflip={self.hflip}, "
                f"rotation={self.rotation}, color_jitter={self.color_jitter})")


class EvalPreset:
    """Evaluation: no augmentation, only uint8 -> normalised float32 image and int64 mask."""

    def __call__(self, image, mask):
        return _finish(*_wrap(image, mask))

    def __repr__(self):
        return "EvalPreset()"
