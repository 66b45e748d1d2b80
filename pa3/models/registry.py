"""The registry: every model by name (built from the classes, each carrying its report name), and
``build_model``."""
from pa3.models.aspp import ResNet101ASPP, UNetASPP
from pa3.models.deeplabv3 import DeepLabV3
from pa3.models.fcn import FCN
from pa3.models.resnet50_deconv import ResNet50Deconv
from pa3.models.unet import UNet

MODELS = {cls.name: cls for cls in (FCN, UNet, ResNet50Deconv, DeepLabV3, ResNet101ASPP, UNetASPP)}


def pretrained_source(name, pretrained, **kwargs):
    """What ``build_model(name, ..., pretrained)`` starts from, in words (one line for a run's log)."""
    model_class = MODELS[name]
    if not pretrained or not model_class.pretrainable:
        return "random initialisation (Xavier), trained from scratch"
    if pretrained is True or pretrained == "imagenet":
        weights = model_class.weights
        if name == "deeplabv3" and kwargs.get("backbone", "resnet101") != "resnet101":
            weights = DeepLabV3._BUILDERS[kwargs["backbone"]][1].DEFAULT
        return f"torchvision's pretrained weights {weights} ({weights.url})"
    return f"the local weights file {pretrained}"


def build_model(name, num_classes, pretrained=False, **kwargs):
    """Build a registered model by name.

    Args:
        name: one of ``MODELS`` (fcn, unet, resnet50_deconv, deeplabv3, resnet101_aspp, unet_aspp).
        num_classes: number of output channels (19 for trainId, 34 for labelId).
        pretrained: False (no network access), True (torchvision's weights; downloaded once into
            ``torch.hub.get_dir()/checkpoints``) or a path to a local backbone state dict.
        **kwargs: model options, e.g. ``backbone="resnet50"`` (deeplabv3), ``output_stride=16`` and
            ``dropout=0.1`` (resnet101_aspp), ``dropout`` (unet_aspp).

    Returns:
        nn.Module mapping (N, 3, H, W) to logits (N, num_classes, H, W); H, W divisible by 32.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    model_class = MODELS[name]
    if not model_class.pretrainable:
        if pretrained:
            raise ValueError(f"{name} has no pretrained weights (the report trains it from scratch); "
                             f"use pretrained=False")
        return model_class(num_classes, **kwargs)
    return model_class(num_classes, pretrained=pretrained, **kwargs)
