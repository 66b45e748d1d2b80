"""Task 6 (ResNet-50 + transposed convolutions, report Table 3), public checks."""
import torch
from torch import nn

from pa3.models import build_model


def test_shape_and_gradients():
    model = build_model("resnet50_deconv", 4)
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 4, 64, 64)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_five_transposed_convolutions_of_table_3():
    model = build_model("resnet50_deconv", 4)
    deconvs = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(d.in_channels, d.out_channels) for d in deconvs] == [(2048, 512), (512, 256), (256, 128), (128, 64),
                                                                   (64, 32)]
