"""Task 7 (ASPP and ResNet-101 + ASPP), the graded checks: each ``check_*`` returns what the pa3 under test
computes; the grader compares it with what the reference pa3 computes from the same inputs
(``pa3.assignment.verdicts``, ``pa3.assignment.probe``)."""
import torch
from torch import nn

from pa3.models import ASPP, build_model, count_parameters
from pa3_probe import judge, observe, shape_and_gradients


def check_aspp_keeps_the_size_and_counts_table_4():
    """ASPP(64, 32) on a (2, 64, 9, 11) input: the output's shape and the number of parameters"""
    aspp = ASPP(64, 32)
    return {"shape": list(aspp(torch.randn(2, 64, 9, 11)).shape), "parameters": count_parameters(aspp)}


def check_atrous_rates_and_padding():
    """the dilations and paddings of ASPP(16, 8)'s 3x3 convolutions"""
    convs = [m for m in ASPP(16, 8).modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    return {"dilations": sorted(m.dilation[0] for m in convs),
            "padding_equals_dilation": all(m.padding == m.dilation for m in convs)}


def check_pooling_branch_sees_the_whole_map():
    """ASPP(4, 3) in eval mode: does a change in one corner of a 40x40 input reach the opposite corner?"""
    torch.manual_seed(0)
    aspp = ASPP(4, 3).eval()
    x = torch.randn(1, 4, 40, 40)
    y = x.clone()
    y[..., 0, 0] += 10
    with torch.no_grad():
        return {"reaches_the_far_corner": bool(((aspp(x) - aspp(y)).abs()[..., -1, -1] > 0).any())}


def check_aspp_refuses_a_batch_of_one_in_training():
    """ASPP(8, 4) in training mode on a batch of one: the error raised"""
    try:
        ASPP(8, 4).train()(torch.randn(1, 8, 5, 5))
    except ValueError as error:
        return {"raises": "ValueError", "names_the_batch": "batch" in str(error)}
    return {"raises": None, "names_the_batch": False}


def check_ours_shape_and_gradients():
    """build_model("resnet101_aspp", 4) on a (2, 3, 64, 64) batch: the output's shape, a gradient for every parameter"""
    return shape_and_gradients("resnet101_aspp", 4, (2, 3, 64, 64))


def check_ours_runs_the_aspp_at_output_stride_8():
    """build_model("resnet101_aspp", 3) in eval mode on a (1, 3, 64, 96) input: the output's shape and the ASPP's input"""
    model = build_model("resnet101_aspp", 3).eval()
    seen = {}
    model.aspp.register_forward_pre_hook(lambda module, args: seen.setdefault("x", args[0]))
    with torch.no_grad():
        shape = list(model(torch.randn(1, 3, 64, 96)).shape)
    return {"shape": shape, "aspp_input": list(seen["x"].shape)}


def check_aspp_computes_table_4():
    """ASPP(in_channels=8, out_channels=8), the reference's weights loaded by position, a 24x24 input (wider than
    rate 18): every layer's output"""
    return observe("aspp")


def judge_aspp_computes_table_4(mine, reference):
    return judge(reference, mine)


def check_resnet101_aspp_computes_its_aspp():
    """the reference's weights loaded by position, a fixed input: every layer's output"""
    return observe("resnet101_aspp")


def judge_resnet101_aspp_computes_its_aspp(mine, reference):
    return judge(reference, mine)
