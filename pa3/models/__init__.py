"""The report's six segmentation models, built by name from one registry.

Each class sits next to the report table it implements (section 3 of the report):

=================  ===========  ==========================================================
name               display      what
=================  ===========  ==========================================================
``fcn``            Baseline     Table 1: 5 strided convs + 5 transposed convs + 1x1 clf
``unet``           UNet         Table 2: modified U-Net (bilinear upsampling decoder)
``resnet50_deconv`` Resnet50    Table 3: ResNet-50 trunk + 5 transposed convs + 1x1 clf
``deeplabv3``      Deeplab      torchvision's DeepLabv3 (ResNet-101 backbone by default)
``resnet101_aspp`` Ours         ResNet-101 (output stride 8) + the ASPP block of Table 4
``unet_aspp``      UNet+ASPP    Table 2 U-Net, deconv4 and classifier -> two Table 4 ASPPs
=================  ===========  ==========================================================

Every model maps ``(N, 3, H, W)`` images to ``(N, num_classes, H, W)`` logits; H and W must be
divisible by 32 (checked once, in :class:`SegmentationModel`). Layers that are not loaded from
pretrained weights get Xavier initialisation, as in the report ("in all of our models, we ...
initialized the weights with Xavier initialization").

Pretrained backbones (``pretrained=``): ``False`` never touches the network; ``True`` downloads
torchvision's ImageNet (or, for ``deeplabv3``, COCO) weights into ``torch.hub.get_dir()/checkpoints``

The package, one file per architecture next to its table: ``fcn`` (Table 1), ``unet`` (Table 2),
``resnet50_deconv`` (Table 3), ``aspp`` (Table 4: the ASPP block, ResNet-101 + ASPP, U-Net + ASPP), ``deeplabv3``;
``layers`` (what they share), ``weights`` (pretrained weights), ``registry`` (``MODELS``, ``build_model``),
``counting`` (parameters, FLOPs, layer table), ``activation_checkpointing`` (recomputing blocks in backward).
"""
from pa3.models.aspp import ASPP, ResNet101ASPP, UNetASPP
from pa3.models.activation_checkpointing import checkpoint_blocks, set_activation_checkpointing
from pa3.models.counting import count_flops, count_parameters, summary
from pa3.models.deeplabv3 import DeepLabV3
from pa3.models.fcn import FCN
from pa3.models.layers import (SIZE_MULTIPLE, ResNetTrunk, SegmentationModel, check_input_size, conv_bn_relu,
                               deconv_bn_relu, xavier_init_)
from pa3.models.registry import MODELS, build_model, pretrained_source
from pa3.models.resnet50_deconv import ResNet50Deconv
from pa3.models.unet import UNet
from pa3.models.weights import WeightsUnavailable

__all__ = ["ASPP", "DeepLabV3", "FCN", "MODELS", "ResNet101ASPP", "ResNet50Deconv", "ResNetTrunk", "SIZE_MULTIPLE",
           "SegmentationModel", "UNet", "UNetASPP", "WeightsUnavailable", "build_model", "check_input_size",
           "checkpoint_blocks", "conv_bn_relu", "count_flops", "count_parameters", "deconv_bn_relu",
           "pretrained_source", "set_activation_checkpointing", "summary", "xavier_init_"]
