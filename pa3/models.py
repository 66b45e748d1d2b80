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
and says where to put the file when offline; a path loads a local state dict.
"""
import contextlib
import functools
import math
import os
import urllib.parse

import torch
import torch.nn.functional as F
import torchvision
import torch.utils.checkpoint
from torch import nn
from torchvision.models import ResNet50_Weights, ResNet101_Weights
from torchvision.models.segmentation import DeepLabV3_ResNet50_Weights, DeepLabV3_ResNet101_Weights

from pa3.files import BadFileError, load_torch

SIZE_MULTIPLE = 32  # every model's total down-sampling factor (five stride-2 stages)


# ----------------------------------------------------------------------------- shared pieces
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
    :func:`set_checkpointing` runs under activation checkpointing.
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


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling, report Table 4 (shared by ``resnet101_aspp`` and ``unet_aspp``).

    Rows: 1 a bare 1x1 conv; 2-4 3x3 atrous convs (rates 6, 12, 18) + BN + ReLU (+ optional dropout);
    5-6 image pooling (AdaptiveAvgPool 1x1, 1x1 conv, BN, ReLU) bilinearly upsampled to the feature
    size; 7 concatenation of the five 128-channel branches; 8 a 1x1 projection conv + BN + ReLU.

    Args:
        in_channels: channels of the input features.
        out_channels: channels of the projection (row 8).
        branch_channels: channels of each branch (128 in the table).
        rates: dilation rates of rows 2-4.
        dropout: probability of the optional dropout after each atrous branch (0 = none).
        activation: False turns row 8 into a plain 1x1 conv (no BN/ReLU), for an ASPP used as the
            final classifier (``unet_aspp``): logits must be able to go negative.

    Shapes: (N, in_channels, h, w) -> (N, out_channels, h, w). In training mode the pooling branch
    normalises a 1x1 map, so BatchNorm needs a batch of at least 2 (as in torchvision's DeepLabv3).
    """

    def __init__(self, in_channels, out_channels, branch_channels=128, rates=(6, 12, 18), dropout=0.0,
                 activation=True):
        super().__init__()
        c = branch_channels
        self.conv1x1 = nn.Conv2d(in_channels, c, 1)  # row 1
        self.atrous = nn.ModuleList(
            nn.Sequential(*conv_bn_relu(in_channels, c, 3, padding=r, dilation=r),
                          *([nn.Dropout(dropout)] if dropout > 0 else []))
            for r in rates)  # rows 2-4
        self.pooling = nn.Sequential(nn.AdaptiveAvgPool2d(1), *conv_bn_relu(in_channels, c, 1))  # row 5
        n = (2 + len(rates)) * c
        self.project = conv_bn_relu(n, out_channels, 1) if activation else nn.Conv2d(n, out_channels, 1)  # row 8

    def forward(self, x):
        if self.training and x.shape[0] == 1:
            raise ValueError("ASPP's image-pooling branch applies BatchNorm to a 1x1 map: training needs a "
                             "batch size of at least 2 (or call model.eval() for inference)")
        size = x.shape[-2:]
        pooled = F.interpolate(self.pooling(x), size=size, mode="bilinear", align_corners=True)  # row 6
        branches = [self.conv1x1(x), *(a(x) for a in self.atrous), pooled]  # 5 x (N, 128, h, w)
        return self.project(torch.cat(branches, dim=1))  # row 7-8: (N, out_channels, h, w)


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


# ----------------------------------------------------------------------------- pretrained weights
def _checkpoint_path(weights):
    filename = os.path.basename(urllib.parse.urlparse(weights.url).path)
    return os.path.join(torch.hub.get_dir(), "checkpoints", filename)


class WeightsUnavailable(RuntimeError):
    """torchvision's pretrained weights cannot be downloaded (offline) and are not in torch.hub's cache."""


def _download(weights):
    """State dict of a torchvision weights enum; offline -> RuntimeError saying where to put the file."""
    cached = _checkpoint_path(weights)
    if os.path.exists(cached):  # torch.hub's copy of an earlier download: checked like any weights file
        return load_torch(cached, "pretrained weights file", f"It is torch.hub's copy of {weights.url}: delete it "
                          f"and run again to download it again, or put an intact copy of that file there")
    try:
        # torch.hub (looked up at call time) caches into torch.hub.get_dir()/checkpoints and reuses the file
        return torch.hub.load_state_dict_from_url(weights.url, map_location="cpu", progress=True, check_hash=True,
                                                  weights_only=True)
    except OSError as err:  # URLError, HTTPError, timeouts, no route to host
        path = _checkpoint_path(weights)
        raise WeightsUnavailable(
            f"could not download pretrained weights {weights} from {weights.url} ({err}). Offline? Download "
            f"that file elsewhere and put it at {path}, or pass pretrained='path/to/{os.path.basename(path)}' "
            f"(a local state dict), or pretrained=False to train from scratch") from err


_WEIGHTS_FIX = ("Pass the path of a state dict saved with torch.save(model.state_dict(), path), "
                "pretrained=True to download torchvision's weights, or pretrained=False")


def _read_state_dict(path):
    state = load_torch(path, "pretrained weights file", _WEIGHTS_FIX)
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise BadFileError(path, "holds no state dict (a dict of parameter name -> tensor)", _WEIGHTS_FIX,
                           "pretrained weights file")
    return state


def _pretrained_state(pretrained, weights):
    """``True`` -> download ``weights``; a path -> read it; False/None -> None (never touches the network)."""
    if pretrained is None or pretrained is False:
        return None
    if pretrained is True or pretrained == "imagenet":
        return _download(weights)
    return _read_state_dict(os.fspath(pretrained))


def _load_exact(module, state, source, ignore=()):
    """load_state_dict that drops keys starting with ``ignore`` and names any missing/unexpected key."""
    state = {k: v for k, v in state.items() if not k.startswith(tuple(ignore))}
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(f"pretrained weights from {source} do not fit {type(module).__name__}: "
                           f"missing keys {result.missing_keys[:10]}{'...' if len(result.missing_keys) > 10 else ''}, "
                           f"unexpected keys {result.unexpected_keys[:10]}"
                           f"{'...' if len(result.unexpected_keys) > 10 else ''}")


def _load_resnet_backbone(trunk, pretrained, weights):
    """Load ImageNet ResNet weights (enum or file) into a ResNetTrunk; the classifier ``fc.*`` is dropped."""
    state = _pretrained_state(pretrained, weights)
    if state is not None:
        if any(k.startswith("backbone.") for k in state):  # a segmentation checkpoint: take its backbone
            state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        _load_exact(trunk, state, weights if pretrained is True else pretrained, ignore=("fc.",))


# ----------------------------------------------------------------------------- the models
class FCN(SegmentationModel):
    """Baseline fully convolutional network — report Table 1, layer for layer."""

    name = "fcn"
    display = "Baseline"
    report_table = "report Table 1 (section 3.1)"

    def __init__(self, num_classes):
        super().__init__()
        enc, dec = (3, 32, 64, 128, 256, 512), (512, 512, 256, 128, 64, 32)
        # rows 1-5: Conv2d(k3, s2, p1) + BN + ReLU, each halves H and W
        self.encoder = nn.Sequential(*(conv_bn_relu(a, b, 3, stride=2, padding=1) for a, b in zip(enc, enc[1:])))
        # rows 6-10: ConvTranspose2d(k3, s2, p1, output_padding 1) + BN + ReLU, each doubles H and W
        self.decoder = nn.Sequential(*(deconv_bn_relu(a, b) for a, b in zip(dec, dec[1:])))
        self.classifier = nn.Conv2d(32, num_classes, 1)  # row 11
        xavier_init_(self)

    def forward(self, x):  # (N, 3, H, W)
        x = self.encoder(x)  # (N, 512, H/32, W/32)
        x = self.decoder(x)  # (N, 32, H, W)
        return self.classifier(x)  # (N, num_classes, H, W)

    def checkpoint_blocks(self):
        return [*self.encoder, *self.decoder]


class UNet(SegmentationModel):
    """Modified U-Net — report Table 2, exactly as tabulated.

    Block 1 is Conv, ReLU, Conv, BN, ReLU (as in the table); blocks 2-9 are (Conv, BN, ReLU) x 2, with
    MaxPool2d(2) in front of blocks 2-5. ``deconvK`` = bilinear Upsample x2 (align_corners=True) + 3x3
    conv halving the channels + BN + ReLU; its output is concatenated with the encoder features of the
    same size (skip first) and fed to block 5+K. A 1x1 classifier maps 64 channels to the classes.
    """

    name = "unet"
    display = "UNet"
    report_table = "report Table 2 (section 3.2)"

    def __init__(self, num_classes):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(inplace=True), *conv_bn_relu(64, 64))
        self.block2 = self._down(64, 128)
        self.block3 = self._down(128, 256)
        self.block4 = self._down(256, 512)
        self.block5 = self._down(512, 1024)
        self.deconv1, self.block6 = self._up(1024), self._double(1024, 512)
        self.deconv2, self.block7 = self._up(512), self._double(512, 256)
        self.deconv3, self.block8 = self._up(256), self._double(256, 128)
        self.deconv4, self.block9 = self._up(128), self._double(128, 64)
        self.classifier = nn.Conv2d(64, num_classes, 1)
        xavier_init_(self)

    @staticmethod
    def _double(cin, cout):
        return nn.Sequential(*conv_bn_relu(cin, cout), *conv_bn_relu(cout, cout))

    @classmethod
    def _down(cls, cin, cout):
        return nn.Sequential(nn.MaxPool2d(2), *cls._double(cin, cout))

    @staticmethod
    def _up(cin):
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                             *conv_bn_relu(cin, cin // 2))

    def forward(self, x):  # (N, 3, H, W)
        x1 = self.block1(x)  # (N, 64, H, W)
        x2 = self.block2(x1)  # (N, 128, H/2, W/2)
        x3 = self.block3(x2)  # (N, 256, H/4, W/4)
        x4 = self.block4(x3)  # (N, 512, H/8, W/8)
        x5 = self.block5(x4)  # (N, 1024, H/16, W/16)
        x = self.block6(torch.cat([x4, self.deconv1(x5)], 1))  # (N, 512, H/8, W/8)
        x = self.block7(torch.cat([x3, self.deconv2(x)], 1))  # (N, 256, H/4, W/4)
        x = self.block8(torch.cat([x2, self.deconv3(x)], 1))  # (N, 128, H/2, W/2)
        x = self.block9(torch.cat([x1, self.deconv4(x)], 1))  # (N, 64, H, W)
        return self.classifier(x)  # (N, num_classes, H, W)

    def checkpoint_blocks(self):
        return [self.block1, self.block2, self.block3, self.block4, self.block5, self.deconv1, self.block6,
                self.deconv2, self.block7, self.deconv3, self.block8, self.deconv4, self.block9]


class UNetASPP(UNet):
    """U-Net + ASPP — report section 3.4: Table 2's U-Net whose "deconv4 layer and the final classifier
    ... was replaced by two ASPP elements" (Table 4).

    Reading taken (the most literal one; everything else of Table 2 stays, block 9 included):

    - ``deconv4`` (Upsample x2 + 3x3 conv 128->64 + BN + ReLU) becomes Upsample x2 + ASPP(128 -> 64):
      the ASPP's projection conv + BN + ReLU takes the place of deconv4's conv + BN + ReLU, so block 9
      still sees cat(block1 features, 64 channels) = 128 channels at full resolution;
    - the 1x1 classifier (64 -> n) becomes ASPP(64 -> n) whose projection (row 8) is a plain 1x1 conv
      with bias, without BN and ReLU: a ReLU would clip the logits at 0.

    Both ASPPs run at full resolution (H, W), the costliest choice but the one that keeps deconv4's
    place in the network. ``dropout`` is the ASPP's optional dropout.
    """

    name = "unet_aspp"
    display = "UNet+ASPP"
    report_table = "report Tables 2 + 4 (section 3.4)"
    min_train_batch = 2

    def __init__(self, num_classes, dropout=0.0):
        super().__init__(num_classes)
        self.deconv4 = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                                     ASPP(128, 64, dropout=dropout))  # (N, 128, H/2, W/2) -> (N, 64, H, W)
        self.classifier = ASPP(64, num_classes, dropout=dropout, activation=False)  # -> (N, num_classes, H, W)
        xavier_init_(self.deconv4)
        xavier_init_(self.classifier)

    def checkpoint_blocks(self):
        return [*super().checkpoint_blocks(), self.classifier]  # deconv4 and the classifier: full-size ASPPs


class ResNet50Deconv(SegmentationModel):
    """Modified ResNet-50 — report Table 3: ResNet-50 without avgpool/fc (output stride 32, 2048
    channels), five ConvTranspose2d + BN + ReLU (2048->512->256->128->64->32), a 1x1 classifier."""

    name = "resnet50_deconv"
    display = "Resnet50"
    report_table = "report Table 3 (section 3.3)"
    pretrainable = True
    weights = ResNet50_Weights.IMAGENET1K_V1  # what pretrained=True loads into the backbone

    def __init__(self, num_classes, pretrained=False):
        super().__init__()
        self.backbone = ResNetTrunk(torchvision.models.resnet50(weights=None))
        chans = (2048, 512, 256, 128, 64, 32)
        self.decoder = nn.Sequential(*(deconv_bn_relu(a, b) for a, b in zip(chans, chans[1:])))  # deconv1-5
        self.classifier = nn.Conv2d(32, num_classes, 1)
        xavier_init_(self)  # then the backbone is overwritten when pretrained
        _load_resnet_backbone(self.backbone, pretrained, self.weights)

    def forward(self, x):  # (N, 3, H, W)
        x = self.backbone(x)  # (N, 2048, H/32, W/32)
        x = self.decoder(x)  # (N, 32, H, W)
        return self.classifier(x)  # (N, num_classes, H, W)

    def checkpoint_blocks(self):
        return [*_bottlenecks(self.backbone), *self.decoder]


class ResNet101ASPP(SegmentationModel):
    """"Ours" — report section 3.4: a ResNet-101 with the ASPP block of Table 4 appended.

    Output stride: the report does not say; we follow DeepLabv3 (and torchvision's deeplabv3) and
    replace the strides of layer3 and layer4 by dilation (``replace_stride_with_dilation=[False, True,
    True]``), so the ASPP sees 2048 channels at H/8 x W/8 — at output stride 32 a 256x512 crop gives an
    8x16 map, smaller than the atrous rates 6/12/18 can use. ``output_stride=16`` or ``32`` trades
    resolution for speed. The ASPP projects to 128 channels; a 1x1 classifier gives the class scores,
    bilinearly upsampled to the input size.
    """

    name = "resnet101_aspp"
    display = "Ours"
    report_table = "report Table 4 on ResNet-101 (section 3.4)"
    pretrainable = True
    weights = ResNet101_Weights.IMAGENET1K_V1  # what pretrained=True loads into the backbone
    min_train_batch = 2

    def __init__(self, num_classes, pretrained=False, output_stride=8, dropout=0.0):
        super().__init__()
        dilate = {8: [False, True, True], 16: [False, False, True], 32: [False, False, False]}
        if output_stride not in dilate:
            raise ValueError(f"output_stride must be one of {sorted(dilate)}; got {output_stride!r}")
        resnet = torchvision.models.resnet101(weights=None, replace_stride_with_dilation=dilate[output_stride])
        self.backbone = ResNetTrunk(resnet)
        self.aspp = ASPP(2048, 128, dropout=dropout)
        self.classifier = nn.Conv2d(128, num_classes, 1)
        xavier_init_(self)
        _load_resnet_backbone(self.backbone, pretrained, self.weights)

    def forward(self, x):  # (N, 3, H, W)
        f = self.backbone(x)  # (N, 2048, H/8, W/8)
        f = self.aspp(f)  # (N, 128, H/8, W/8)
        logits = self.classifier(f)  # (N, num_classes, H/8, W/8)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)  # (N, C, H, W)

    def checkpoint_blocks(self):
        return [*_bottlenecks(self.backbone), self.aspp]


class DeepLabV3(SegmentationModel):
    """DeepLabv3 — torchvision's ``deeplabv3_resnet101`` (the report's "Deeplab"); ``backbone="resnet50"``
    selects ``deeplabv3_resnet50``. No auxiliary classifier; returns the ``"out"`` logits only.

    ``pretrained=True`` loads torchvision's COCO-trained DeepLabv3 (``DeepLabV3_ResNet101_Weights.DEFAULT``)
    except its 21-class output conv (``classifier.4``), which is re-created for ``num_classes`` and
    Xavier-initialised. ``pretrained="file.pth"`` takes either such a DeepLabv3 state dict (keys
    ``backbone.*``) or an ImageNet ResNet state dict, loaded into the backbone only.
    """

    name = "deeplabv3"
    display = "Deeplab"
    report_table = "torchvision deeplabv3_resnet101 (section 2, DeepLabv3 [1])"
    pretrainable = True
    weights = DeepLabV3_ResNet101_Weights.DEFAULT  # pretrained=True with the default backbone (COCO)
    min_train_batch = 2
    _BUILDERS = {"resnet101": (torchvision.models.segmentation.deeplabv3_resnet101, DeepLabV3_ResNet101_Weights),
                 "resnet50": (torchvision.models.segmentation.deeplabv3_resnet50, DeepLabV3_ResNet50_Weights)}

    def __init__(self, num_classes, pretrained=False, backbone="resnet101"):
        super().__init__()
        if backbone not in self._BUILDERS:
            raise ValueError(f"unknown deeplabv3 backbone {backbone!r}; choose one of {', '.join(self._BUILDERS)}")
        builder, weights = self._BUILDERS[backbone]
        # weights=None AND weights_backbone=None: torchvision's default would download ImageNet weights
        self.net = builder(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
        xavier_init_(self)
        state = _pretrained_state(pretrained, weights.DEFAULT)
        if state is None:
            return
        source = weights.DEFAULT if pretrained is True else pretrained
        if any(k.startswith("backbone.") for k in state):  # a whole DeepLabv3: keep all but the class conv
            missing = [k for k in self.net.state_dict() if k.startswith("classifier.4.")]
            state = {k: v for k, v in state.items() if not k.startswith(("aux_classifier.", "classifier.4."))}
            state.update({k: self.net.state_dict()[k] for k in missing})  # keep their Xavier init
            _load_exact(self.net, state, source)
        else:  # an ImageNet ResNet state dict
            _load_exact(self.net.backbone, state, source, ignore=("fc.",))

    def forward(self, x):  # (N, 3, H, W)
        return self.net(x)["out"]  # (N, num_classes, H, W)

    def checkpoint_blocks(self):
        return [*_bottlenecks(self.net.backbone), self.net.classifier[0]]  # torchvision's ResNet + ASPP


# ----------------------------------------------------------------------------- registry
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


def count_parameters(model):
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(name, num_classes=19, size=(512, 1024), batch=1):
    """Forward FLOPs of model ``name`` on a (batch, 3, *size) input.

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` on the meta device: shapes only, no arithmetic
    and no memory, so even ResNet-101 at full resolution is counted instantly (and exactly).
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build_model(name, num_classes).eval()
        x = torch.empty(batch, 3, *size)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


# ----------------------------------------------------------------------------- activation checkpointing
def checkpoint_blocks(model):
    """The blocks of a pa3 model that ``set_checkpointing`` checkpoints: U-Net blocks (and U-Net+ASPP's
    two full-size ASPPs), ResNet bottlenecks, ASPP heads, FCN layers."""
    blocks = model.checkpoint_blocks() if isinstance(model, SegmentationModel) else []
    if not blocks:
        raise ValueError(f"{type(model).__name__} names no blocks to checkpoint: activation checkpointing is "
                         f"available for pa3's registered models ({', '.join(MODELS)}); use checkpointing=False")
    return blocks


def set_checkpointing(model, enabled=True):
    """Run the model's ``checkpoint_blocks`` under activation checkpointing (or back to normal).

    A checkpointed block keeps only its input for backward and recomputes its activations there
    (``torch.utils.checkpoint``, ``use_reentrant=False``; dropout replays the same masks): less memory for
    about one more forward pass of those blocks. Gradients are unchanged. BatchNorm running statistics are
    restored after the recomputation, so they are updated once per step, as without checkpointing.
    Only training with gradients is affected; evaluation and ``no_grad`` run the blocks as usual. The
    state dict is unchanged (the blocks' ``forward`` is wrapped in place, no module is added).

    Returns:
        model.
    """
    for block in checkpoint_blocks(model):
        if enabled:
            block.forward = functools.partial(_checkpointed_forward, block, type(block).forward)
        else:
            block.__dict__.pop("forward", None)
    return model


def _checkpointed_forward(block, forward, *args):
    if not (block.training and torch.is_grad_enabled()):
        return forward(block, *args)
    return torch.utils.checkpoint.checkpoint(
        forward, block, *args, use_reentrant=False,
        context_fn=lambda: (contextlib.nullcontext(), _batchnorm_stats_restored(block)))


@contextlib.contextmanager
def _batchnorm_stats_restored(module):
    """Recomputation runs the block's BatchNorms in training mode again: put their running stats back."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [[b.clone() for b in (m.running_mean, m.running_var, m.num_batches_tracked)] for m in norms]
    try:
        yield
    finally:
        for m, (mean, var, count) in zip(norms, saved):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)


def summary(model, input_size=(256, 512), depth=2):
    """Layer table of ``model``: the output shape and parameter count of each module ``depth`` levels down.

    Args:
        model: a pa3 model.
        input_size: (H, W) of the dummy input (batch 1; must be divisible by 32).
        depth: how far down the module tree to report (1 = the model's direct children).
    Returns:
        list of dicts {"layer", "type", "output", "params"} in execution order.
    """
    rows, hooks = [], []
    for name, module in model.named_modules():
        level = name.count(".") + 1 if name else 0
        if level == depth or (0 < level < depth and not any(module.children())):
            def hook(mod, args, out, name=name):
                rows.append({"layer": name, "type": type(mod).__name__,
                             "output": tuple(out.shape) if torch.is_tensor(out) else type(out).__name__,
                             "params": sum(p.numel() for p in mod.parameters())})
            hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model.eval()(torch.zeros(1, 3, *input_size, device=device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return rows
