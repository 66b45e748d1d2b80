"""What the models share: the input-size check and base class, Xavier initialisation, the Conv/Deconv + BN +
ReLU rows of the report's tables, and the ResNet trunk (torchvision's ResNet without its classifier) under
Tables 3 and 4."""
import math

from torch import nn

SIZE_MULTIPLE = 32  # every model's total down-sampling factor (five stride-2 stages)

def xavier_init_(module):
    """Xavier-uniform conv weights, zero biases, BatchNorm weight 1 / bias 0 — in place, recursively."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module


def check_input_size(name, x):
    """Raise ValueError unless ``x`` is (N, C, H, W) with H and W divisible by 32; names the nearest valid size."""
    if x.ndim != 4:
        raise ValueError(f"{name} expects a batch of images (N, 3, H, W); got a tensor of shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
        nh, nw = (max(SIZE_MULTIPLE, SIZE_MULTIPLE * math.floor(s / SIZE_MULTIPLE + 0.5)) for s in (h, w))
        raise ValueError(f"{name} needs H and W divisible by {SIZE_MULTIPLE}; got {h}x{w}, "
                         f"nearest valid size is {nh}x{nw} (resize or crop to it)")


class SegmentationModel(nn.Module):
    """Base class: checks the input before every forward (one pre-hook), then runs ``forward``.

    ``min_train_batch = 2`` marks models with an image-pooling branch (ASPP): BatchNorm over a 1x1
    map cannot train on a single image. ``checkpoint_blocks()`` lists the blocks that
    :func:`set_activation_checkpointing` runs under activation checkpointing.
    """

    name = "model"  # the registry name (MODELS, TrainConfig.model)
    display = "Model"  # the row name in the report's tables
    report_table = ""  # where the report specifies it
    pretrainable = False  # has ImageNet/COCO weights (build_model(..., pretrained=True))
    min_train_batch = 1

    def __init__(self):
        super().__init__()
        self.register_forward_pre_hook(_input_check_hook)

    def checkpoint_blocks(self):
        return []


def _input_check_hook(module, args):
    x = args[0]
    check_input_size(module.name, x)
    if module.training and x.shape[0] < module.min_train_batch:
        raise ValueError(f"{module.name} needs a batch of at least {module.min_train_batch} images in training "
                         f"mode (its ASPP image-pooling branch applies BatchNorm to a 1x1 map); got {x.shape[0]}. "
                         f"Use batch_size >= 2 with drop_last=True, or call model.eval() for inference")


def conv_bn_relu(cin, cout, kernel_size=3, **kw):
    """Conv2d + BatchNorm2d + ReLU (the rows of Tables 1-4); padding k//2 unless given."""
    kw.setdefault("padding", kernel_size // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size, **kw), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def deconv_bn_relu(cin, cout):
    """ConvTranspose2d(k3, s2, p1, output_padding 1) + BN + ReLU: doubles H and W (Tables 1 and 3)."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResNetTrunk(nn.Module):
    """A torchvision ResNet without ``avgpool`` and ``fc``: (N, 3, H, W) -> (N, 2048, H/os, W/os).

    Parameter names match torchvision's (``conv1``, ``bn1``, ``layer1``...), so an ImageNet state dict
    loads into it once its ``fc.*`` entries are dropped.
    """

    def __init__(self, resnet):
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, 64, H/4, W/4)
        x = self.layer2(self.layer1(x))  # (N, 512, H/8, W/8)
        return self.layer4(self.layer3(x))  # (N, 2048, H/os, W/os)


def _bottlenecks(resnet):
    """The 16 (ResNet-50) or 33 (ResNet-101) bottleneck blocks of a torchvision ResNet, in order."""
    return [*resnet.layer1, *resnet.layer2, *resnet.layer3, *resnet.layer4]
