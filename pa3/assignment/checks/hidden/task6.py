"""Task 6 (ResNet-50 + transposed convolutions, report Table 3), the graded checks: each ``check_*`` returns what the
pa3 under test computes; the grader compares it with what the reference pa3 computes from the same inputs
(``pa3.assignment.verdicts``, ``pa3.assignment.probe``)."""
import torch
from torch import nn

from pa3.models import build_model, count_parameters
from pa3_probe import judge, observe, shape_and_gradients


def check_shape_and_gradients():
    """build_model("resnet50_deconv", 4) on a (2, 3, 64, 64) batch: the output's shape, a gradient for every parameter"""
    return shape_and_gradients("resnet50_deconv", 4, (2, 3, 64, 64))


def check_five_transposed_convolutions_of_table_3():
    """the (in, out) channels of every ConvTranspose2d of build_model("resnet50_deconv", 4), and its BatchNorms"""
    model = build_model("resnet50_deconv", 4)
    return {"deconvs": [[m.in_channels, m.out_channels] for m in model.modules() if isinstance(m, nn.ConvTranspose2d)],
            "batchnorms": sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())}


def check_parameter_count():
    """count_parameters(build_model("resnet50_deconv", 19))"""
    return {"parameters": count_parameters(build_model("resnet50_deconv", 19))}


def check_non_square_input():
    """build_model("resnet50_deconv", 3) in eval mode on a (1, 3, 64, 128) input: the output's shape"""
    model = build_model("resnet50_deconv", 3).eval()
    with torch.no_grad():
        return {"shape": list(model(torch.randn(1, 3, 64, 128)).shape)}


def check_resnet50_deconv_computes_table_3():
    """the reference's weights loaded by position, a fixed input: every layer's output"""
    return observe("resnet50_deconv")


def judge_resnet50_deconv_computes_table_3(mine, reference):
    return judge(reference, mine)
