"""Task 8 (U-Net + ASPP), public checks."""
import torch

from pa3.models import ASPP, build_model


def test_shape_and_gradients():
    model = build_model("unet_aspp", 5)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 5, 32, 32)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_deconv4_and_classifier_are_aspp_blocks():
    model = build_model("unet_aspp", 5)
    assert any(isinstance(m, ASPP) for m in model.deconv4.modules())
    assert isinstance(model.classifier, ASPP)
