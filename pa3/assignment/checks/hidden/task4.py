"""Task 4 (data augmentation), the graded checks: each ``check_*`` returns what the pa3 under test computes; the
grader compares it with what the reference pa3 computes from the same inputs, or, for random augmentations, judges
the returned images and masks with the ``judge_*`` of the same name (``pa3.assignment.verdicts``)."""
import torch

from pa3.transforms import MEAN, STD, TrainPreset, V2TrainPreset

BLENDED = ("labels were blended; resize, rotate and crop masks with NEAREST interpolation and pad them with 255")


def _pair(h=32, w=48):
    torch.manual_seed(0)
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8), torch.randint(0, 5, (h, w), dtype=torch.uint8)


def _blocks(h=64, w=96):
    """An image whose red channel encodes the label of large constant blocks: geometry can be checked."""
    mask = torch.zeros(h, w, dtype=torch.uint8)
    mask[:, w // 3:2 * w // 3] = 1
    mask[h // 2:, 2 * w // 3:] = 2
    image = torch.stack([mask * 100, torch.full_like(mask, 50), torch.full_like(mask, 50)]).to(torch.uint8)
    return image, mask


def _dtypes_and_shapes(out_image, out_mask):
    return {"image": [str(out_image.dtype), list(out_image.shape)], "mask": [str(out_mask.dtype), list(out_mask.shape)]}


def check_everything_off_is_the_identity():
    """TrainPreset(scale=None, hflip=0, rotation=0, color_jitter=0) on a 64x96 image and mask"""
    out_image, out_mask = TrainPreset(scale=None, hflip=0, rotation=0, color_jitter=0)(*_blocks())
    return {"image": out_image, "mask": out_mask}


def check_a_sure_flip_alone():
    """TrainPreset(scale=None, hflip=1.0, rotation=0, color_jitter=0): flips image and mask"""
    out_image, out_mask = TrainPreset(scale=None, hflip=1.0, rotation=0, color_jitter=0)(*_pair())
    return {"image": out_image, "mask": out_mask}


def check_normalize_false_returns_uint8():
    """TrainPreset(crop_size=(32, 32), normalize=False): dtypes and shapes"""
    image, mask = _blocks()
    torch.manual_seed(0)
    return _dtypes_and_shapes(*TrainPreset(crop_size=(32, 32), normalize=False)(image, mask))


def check_crop_size_types_and_label_values():
    """TrainPreset(crop_size=(16, 24)) on random labels 0-4: dtypes, shapes and the mask's values"""
    image, mask = _pair()
    torch.manual_seed(1)
    out_image, out_mask = TrainPreset(crop_size=(16, 24))(image, mask)
    return {**_dtypes_and_shapes(out_image, out_mask), "labels": sorted(out_mask.unique().tolist())}


def judge_crop_size_types_and_label_values(mine, reference):
    return _judge_dtypes_shapes_and_labels("TrainPreset(crop_size=(16, 24))", mine, reference, {0, 1, 2, 3, 4})


def _judge_dtypes_shapes_and_labels(what, mine, reference, labels):
    """The dtypes and shapes as the reference's, and no mask value other than ``labels`` and 255."""
    if [mine["image"], mine["mask"]] != [reference["image"], reference["mask"]]:
        return (f"{what} returned an image {mine['image']} and a mask {mine['mask']} (dtype, shape); the reference "
                f"returns {reference['image']} and {reference['mask']}")
    blended = sorted(set(mine["labels"]) - labels - {255})
    return (f"{what}: the augmented mask holds values {blended[:8]} that are no label of the input "
            f"({', '.join(map(str, sorted(labels)))}) nor 255: {BLENDED}") if blended else None


def check_image_and_mask_share_the_geometry():
    """TrainPreset(crop_size=(48, 64), rotation=10, color_jitter=0) with seeds 0-5: red channel and mask"""
    image, mask = _blocks()
    outputs = []
    for seed in range(6):
        torch.manual_seed(seed)
        out_image, out_mask = TrainPreset(crop_size=(48, 64), rotation=10, color_jitter=0)(image, mask)
        outputs.append({"red": out_image[0], "mask": out_mask})
    return {"outputs": outputs}


def judge_image_and_mask_share_the_geometry(mine, reference):
    red_of_label = (torch.tensor([0.0, 100.0, 200.0]) / 255 - MEAN[0]) / STD[0]  # normalised red of labels 0-2
    for seed, (out, ref) in enumerate(zip(mine["outputs"], reference["outputs"])):
        what = f"TrainPreset(crop_size=(48, 64), rotation=10, color_jitter=0), seed {seed}"
        red, mask = torch.as_tensor(out["red"]), torch.as_tensor(out["mask"])
        if red.shape != ref["red"].shape or mask.shape != ref["mask"].shape:
            return f"{what}: an image of shape {tuple(red.shape)} and a mask of shape {tuple(mask.shape)}, not (48, 64)"
        values = sorted(set(mask.unique().tolist()) - {0, 1, 2, 255})
        if values:
            return f"{what}: the augmented mask holds values {values[:5]} that are no label of the input (0, 1, 2) nor 255: {BLENDED}"
        valid = mask != 255
        if valid.float().mean() <= 0.5:
            return f"{what}: only {valid.float().mean():.0%} of the mask is labelled"
        agree = (red[valid] - red_of_label[mask[valid].long()]).abs() < 0.3
        if agree.float().mean() <= 0.9:
            return f"{what}: image and mask moved apart (only {agree.float().mean():.0%} of the labelled pixels agree)"
    if len(mine["outputs"]) != len(reference["outputs"]):
        return f"returned {len(mine['outputs'])} augmented pairs where 6 were asked for"
    return None


def check_the_torchvision_v2_version():
    """V2TrainPreset(crop_size=(32, 40)): dtypes, shapes and the mask's values"""
    image, mask = _blocks()
    torch.manual_seed(0)
    out_image, out_mask = V2TrainPreset(crop_size=(32, 40))(image, mask)
    return {**_dtypes_and_shapes(out_image, out_mask), "labels": sorted(out_mask.unique().tolist())}


def judge_the_torchvision_v2_version(mine, reference):
    return _judge_dtypes_shapes_and_labels("V2TrainPreset(crop_size=(32, 40))", mine, reference, {0, 1, 2})
