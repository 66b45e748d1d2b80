"""Task 8 (U-Net + ASPP), hidden checks."""
import torch
from torch import nn

from pa3.models import build_model


def test_logits_can_be_negative():
    """The classifier ASPP ends in a plain conv: no ReLU clips the logits at 0."""
    torch.manual_seed(0)
    model = build_model("unet_aspp", 3).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32))
    assert out.min() < 0
    assert isinstance(model.classifier.project, nn.Conv2d)


def test_block9_still_sees_128_channels():
    model = build_model("unet_aspp", 3).eval()
    seen = {}
    model.block9.register_forward_pre_hook(lambda module, args: seen.setdefault("x", args[0]))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 64))
    assert seen["x"].shape == (1, 128, 32, 64)


def test_unet_aspp_computes_tables_2_and_4():
    """Reference weights loaded by position, fixed input: every layer's output as the reference's."""
    from pa3_probe import check_against_reference, reference_path
    check_against_reference(reference_path("unet_aspp"))
