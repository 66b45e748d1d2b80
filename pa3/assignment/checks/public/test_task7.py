"""Task 7 (ASPP, report Table 4, and ResNet-101 + ASPP, "Ours"), public checks."""
import pytest
import torch

from pa3.models import ASPP, build_model, count_parameters


def conv(k, cin, cout):
    return k * k * cin * cout + cout


def bn(c):
    return 2 * c


def test_aspp_keeps_the_size_and_counts_table_4():
    aspp = ASPP(64, 32)
    assert aspp(torch.randn(2, 64, 9, 11)).shape == (2, 32, 9, 11)
    expected = (conv(1, 64, 128) + 3 * (conv(3, 64, 128) + bn(128)) + conv(1, 64, 128) + bn(128)
                + conv(1, 5 * 128, 32) + bn(32))
    assert count_parameters(aspp) == expected


def test_ours_shape_and_gradients():
    model = build_model("resnet101_aspp", 4)
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 4, 64, 64)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_aspp_refuses_a_batch_of_one_in_training():
    with pytest.raises(ValueError, match="batch"):
        ASPP(8, 4).train()(torch.randn(1, 8, 5, 5))
