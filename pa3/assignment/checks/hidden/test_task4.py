"""Task 4 (data augmentation), hidden checks."""
import torch

from pa3.transforms import MEAN, STD, TrainPreset, V2TrainPreset, normalize


def _blocks(h=64, w=96):
    """An image whose red channel encodes the label of large constant blocks: geometry can be checked."""
    mask = torch.zeros(h, w, dtype=torch.uint8)
    mask[:, w // 3:2 * w // 3] = 1
    mask[h // 2:, 2 * w // 3:] = 2
    image = torch.stack([mask * 100, torch.full_like(mask, 50), torch.full_like(mask, 50)]).to(torch.uint8)
    return image, mask


def test_everything_off_is_the_identity():
    image, mask = _blocks()
    out_image, out_mask = TrainPreset(scale=None, hflip=0, rotation=0, color_jitter=0)(image, mask)
    torch.testing.assert_close(out_image, normalize(image))
    assert torch.equal(out_mask, mask.long())


def test_image_and_mask_share_the_geometry():
    image, mask = _blocks()
    red_of_label = (torch.tensor([0.0, 100.0, 200.0]) / 255 - MEAN[0]) / STD[0]  # normalised red of labels 0-2
    for seed in range(6):
        torch.manual_seed(seed)
        out_image, out_mask = TrainPreset(crop_size=(48, 64), rotation=10, color_jitter=0)(image, mask)
        values = sorted(set(out_mask.unique().tolist()) - {0, 1, 2, 255})
        assert not values, (f"seed {seed}: the augmented mask holds values {values[:5]} that are no label of the input "
                            f"(0, 1, 2) nor 255: labels were blended; resize, rotate and crop masks with NEAREST "
                            f"interpolation and pad them with 255")
        valid = out_mask != 255
        assert valid.float().mean() > 0.5, f"seed {seed}: only {valid.float().mean():.0%} of the mask is labelled"
        expected = red_of_label[out_mask[valid]]
        agree = (out_image[0][valid] - expected).abs() < 0.3
        assert agree.float().mean() > 0.9, f"seed {seed}: image and mask moved apart"


def test_normalize_false_returns_uint8():
    image, mask = _blocks()
    torch.manual_seed(0)
    out_image, out_mask = TrainPreset(crop_size=(32, 32), normalize=False)(image, mask)
    assert out_image.dtype == torch.uint8 and out_mask.dtype == torch.uint8
    assert out_image.shape == (3, 32, 32) and out_mask.shape == (32, 32)


def test_the_torchvision_v2_version_has_the_same_contract():
    image, mask = _blocks()
    torch.manual_seed(0)
    out_image, out_mask = V2TrainPreset(crop_size=(32, 40))(image, mask)
    assert out_image.shape == (3, 32, 40) and out_image.dtype == torch.float32
    assert out_mask.shape == (32, 40) and out_mask.dtype == torch.int64
    assert set(out_mask.unique().tolist()) <= {0, 1, 2, 255}
