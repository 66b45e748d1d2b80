"""ResNet-50 with a transposed-convolution decoder, the report's Table 3 (section 3.3)."""
import torchvision
from torch import nn
from torchvision.models import ResNet50_Weights

from pa3.models.layers import ResNetTrunk, SegmentationModel, _bottlenecks, deconv_bn_relu, xavier_init_
from pa3.models.weights import _load_resnet_backbone


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
        # BEGIN SOLUTION task 6
        self.backbone = ResNetTrunk(torchvision.models.resnet50(weights=None))
        chans = (2048, 512, 256, 128, 64, 32)
        self.decoder = nn.Sequential(*(deconv_bn_relu(a, b) for a, b in zip(chans, chans[1:])))  # deconv1-5
        self.classifier = nn.Conv2d(32, num_classes, 1)
        xavier_init_(self)  # then the backbone is overwritten when pretrained
        _load_resnet_backbone(self.backbone, pretrained, self.weights)
        # END SOLUTION

    def forward(self, x):  # (N, 3, H, W)
        # BEGIN SOLUTION task 6
        x = self.backbone(x)  # (N, 2048, H/32, W/32)
        x = self.decoder(x)  # (N, 32, H, W)
        return self.classifier(x)  # (N, num_classes, H, W)
        # END SOLUTION

    def checkpoint_blocks(self):
        return [*_bottlenecks(self.backbone), *self.decoder]
