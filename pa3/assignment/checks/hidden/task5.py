"""Task 5 (modified U-Net, report Table 2), the graded checks: each ``check_*`` returns what the pa3 under test
computes (shapes, counts, and every layer's output with the reference's weights); the grader compares it with what
the reference pa3 computes from the same inputs (``pa3.assignment.verdicts``, ``pa3.assignment.probe``)."""
import torch
from torch import nn

from pa3.models import build_model, count_parameters
from pa3_probe import judge, observe, shape_and_gradients


def check_shape_and_gradients():
    """build_model("unet", 5) on a (2, 3, 32, 64) batch: the output's shape, and a gradient for every parameter"""
    return shape_and_gradients("unet", 5, (2, 3, 32, 64))


def check_parameter_count_of_table_2():
    """count_parameters(build_model("unet", 19))"""
    return {"parameters": count_parameters(build_model("unet", 19))}


def check_other_sizes_and_eval_determinism():
    """build_model("unet", 3) in eval mode on a (1, 3, 64, 96) input, twice: the shape, and the same output"""
    model = build_model("unet", 3).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        a, b = model(x), model(x)
    return {"shape": list(a.shape), "same_output_twice": bool(torch.equal(a, b))}


def check_skip_connections_carry_the_encoder():
    """build_model("unet", 2): the first and last conv, and the shape of what block9 receives on a 32x32 input"""
    torch.manual_seed(0)
    model = build_model("unet", 2).eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    inputs = {}
    hook = model.block9.register_forward_pre_hook(lambda module, args: inputs.setdefault("x", args[0]))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    hook.remove()
    return {"first_conv": [convs[0].in_channels, convs[0].out_channels],
            "last_conv": [list(convs[-1].kernel_size), convs[-1].out_channels],
            "block9_input": list(inputs["x"].shape)}


def check_unet_computes_table_2():
    """the reference's weights loaded by position, a fixed input: every layer's output"""
    return observe("unet")


def judge_unet_computes_table_2(mine, reference):
    return judge(reference, mine)
