"""Task 7 (ASPP and ResNet-101 + ASPP), hidden checks."""
import torch
from torch import nn

from pa3.models import ASPP, build_model


def test_atrous_rates_and_padding():
    aspp = ASPP(16, 8)
    dilations = sorted(m.dilation[0] for m in aspp.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    assert dilations == [6, 12, 18]
    assert all(m.padding == m.dilation for m in aspp.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))


def test_pooling_branch_sees_the_whole_map():
    """A change in one corner reaches every output pixel through the image-pooling branch."""
    torch.manual_seed(0)
    aspp = ASPP(4, 3).eval()
    x = torch.randn(1, 4, 40, 40)
    y = x.clone()
    y[..., 0, 0] += 10
    with torch.no_grad():
        diff = (aspp(x) - aspp(y)).abs()
    assert (diff[..., -1, -1] > 0).any()


def test_ours_runs_the_aspp_at_output_stride_8():
    model = build_model("resnet101_aspp", 3).eval()
    seen = {}
    model.aspp.register_forward_pre_hook(lambda module, args: seen.setdefault("x", args[0]))
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 96)).shape == (1, 3, 64, 96)
    assert seen["x"].shape == (1, 2048, 8, 12)


def test_aspp_computes_table_4():
    """ASPP(in_channels=8, out_channels=8), reference weights loaded by position, a 24x24 input (wider than
    rate 18): every layer's output as the reference's."""
    from pa3_probe import check_against_reference, reference_path
    check_against_reference(reference_path("aspp"))


def test_resnet101_aspp_computes_its_aspp():
    """Reference weights loaded by position, fixed input: every layer's output as the reference's."""
    from pa3_probe import check_against_reference, reference_path
    check_against_reference(reference_path("resnet101_aspp"))
