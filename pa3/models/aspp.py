"""The ASPP block of the report's Table 4 and its two models: ResNet-101 + ASPP ("Ours", section 3.4) and the
U-Net whose deconv4 and classifier become two ASPPs ("UNet+ASPP")."""
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models import ResNet101_Weights

from pa3.models.layers import ResNetTrunk, SegmentationModel, _bottlenecks, conv_bn_relu, xavier_init_
from pa3.models.unet import UNet
from pa3.models.weights import _load_resnet_backbone


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
        # BEGIN SOLUTION task 7
        c = branch_channels
        self.conv1x1 = nn.Conv2d(in_channels, c, 1)  # row 1
        self.atrous = nn.ModuleList(
            nn.Sequential(*conv_bn_relu(in_channels, c, 3, padding=r, dilation=r),
                          *([nn.Dropout(dropout)] if dropout > 0 else []))
            for r in rates)  # rows 2-4
        self.pooling = nn.Sequential(nn.AdaptiveAvgPool2d(1), *conv_bn_relu(in_channels, c, 1))  # row 5
        n = (2 + len(rates)) * c
        self.project = conv_bn_relu(n, out_channels, 1) if activation else nn.Conv2d(n, out_channels, 1)  # row 8
        # END SOLUTION

    def forward(self, x):
        # BEGIN SOLUTION task 7
        if self.training and x.shape[0] == 1:
            raise ValueError("ASPP's image-pooling branch applies BatchNorm to a 1x1 map: training needs a "
                             "batch size of at least 2 (or call model.eval() for inference)")
        size = x.shape[-2:]
        pooled = F.interpolate(self.pooling(x), size=size, mode="bilinear", align_corners=True)  # row 6
        branches = [self.conv1x1(x), *(a(x) for a in self.atrous), pooled]  # 5 x (N, 128, h, w)
        return self.project(torch.cat(branches, dim=1))  # row 7-8: (N, out_channels, h, w)
        # END SOLUTION


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
        # BEGIN SOLUTION task 7
        dilate = {8: [False, True, True], 16: [False, False, True], 32: [False, False, False]}
        if output_stride not in dilate:
            raise ValueError(f"output_stride must be one of {sorted(dilate)}; got {output_stride!r}")
        resnet = torchvision.models.resnet101(weights=None, replace_stride_with_dilation=dilate[output_stride])
        self.backbone = ResNetTrunk(resnet)
        self.aspp = ASPP(2048, 128, dropout=dropout)
        self.classifier = nn.Conv2d(128, num_classes, 1)
        xavier_init_(self)
        _load_resnet_backbone(self.backbone, pretrained, self.weights)
        # END SOLUTION

    def forward(self, x):  # (N, 3, H, W)
        # BEGIN SOLUTION task 7
        f = self.backbone(x)  # (N, 2048, H/8, W/8)
        f = self.aspp(f)  # (N, 128, H/8, W/8)
        logits = self.classifier(f)  # (N, num_classes, H/8, W/8)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)  # (N, C, H, W)
        # END SOLUTION

    def checkpoint_blocks(self):
        return [*_bottlenecks(self.backbone), self.aspp]


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
        # BEGIN SOLUTION task 8
        self.deconv4 = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                                     ASPP(128, 64, dropout=dropout))  # (N, 128, H/2, W/2) -> (N, 64, H, W)
        self.classifier = ASPP(64, num_classes, dropout=dropout, activation=False)  # -> (N, num_classes, H, W)
        xavier_init_(self.deconv4)
        xavier_init_(self.classifier)
        # END SOLUTION

    def checkpoint_blocks(self):
        return [*super().checkpoint_blocks(), self.classifier]  # deconv4 and the classifier: full-size ASPPs
