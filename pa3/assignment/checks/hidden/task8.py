"""Task 8 (U-Net + ASPP), the graded checks: each ``check_*`` returns what the pa3 under test computes; the grader
compares it with what the reference pa3 computes from the same inputs (``pa3.assignment.verdicts``,
``pa3.assignment.probe``)."""
import torch
from torch import nn

from pa3.models import ASPP, build_model
from pa3_probe import judge, observe, shape_and_gradients


def check_shape_and_gradients():
    """build_model("unet_aspp", 5) on a (2, 3, 32, 32) batch: the output's shape, a gradient for every parameter"""
    return shape_and_gradients("unet_aspp", 5, (2, 3, 32, 32))


def check_deconv4_and_classifier_are_aspp_blocks():
    """build_model("unet_aspp", 5): is there an ASPP in deconv4, is the classifier an ASPP ending in a Conv2d?"""
    model = build_model("unet_aspp", 5)
    return {"aspp_in_deconv4": any(isinstance(m, ASPP) for m in model.deconv4.modules()),
            "classifier_is_aspp": isinstance(model.classifier, ASPP),
            "classifier_ends_in_a_conv": isinstance(getattr(model.classifier, "project", None), nn.Conv2d)}


def check_logits_can_be_negative():
    """build_model("unet_aspp", 3) in eval mode on a 32x32 input: does any logit fall below 0?"""
    torch.manual_seed(0)
    model = build_model("unet_aspp", 3).eval()
    with torch.no_grad():
        return {"some_logit_below_zero": bool(model(torch.randn(1, 3, 32, 32)).min() < 0)}


def check_block9_still_sees_128_channels():
    """build_model("unet_aspp", 3) in eval mode on a (1, 3, 32, 64) input: the shape of what block9 receives"""
    model = build_model("unet_aspp", 3).eval()
    seen = {}
    model.block9.register_forward_pre_hook(lambda module, args: seen.setdefault("x", args[0]))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 64))
    return {"block9_input": list(seen["x"].shape)}


def check_unet_aspp_computes_tables_2_and_4():
    """the reference's weights loaded by position, a fixed input: every layer's output"""
    return observe("unet_aspp")


def judge_unet_aspp_computes_tables_2_and_4(mine, reference):
    return judge(reference, mine)
