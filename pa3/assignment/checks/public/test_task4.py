"""Task 4 (data augmentation), public checks."""
import torch

from pa3.transforms import TrainPreset, normalize


def _pair(h=32, w=48):
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8)
    mask = torch.randint(0, 5, (h, w), dtype=torch.uint8)
    return image, mask


def test_a_sure_flip_alone_flips_image_and_mask():
    image, mask = _pair()
    out_image, out_mask = TrainPreset(scale=None, hflip=1.0, rotation=0, color_jitter=0)(image, mask)
    torch.testing.assert_close(out_image, normalize(image.flip(-1)))
    assert torch.equal(out_mask, mask.flip(-1).long())


def test_crop_size_types_and_label_values():
    image, mask = _pair()
    torch.manual_seed(1)
    out_image, out_mask = TrainPreset(crop_size=(16, 24))(image, mask)
    assert out_image.shape == (3, 16, 24) and out_image.dtype == torch.float32
    assert out_mask.shape == (16, 24) and out_mask.dtype == torch.int64
    blended = sorted(set(out_mask.unique().tolist()) - set(mask.unique().tolist()) - {255})
    assert not blended, (f"the augmented mask holds values {blended[:8]} that are no label of the input "
                         f"(0-4) nor 255: labels were blended; resize, rotate and crop masks with NEAREST "
                         f"interpolation and pad them with 255")
