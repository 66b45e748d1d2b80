"""The modified U-Net of the report's Table 2 (section 3.2): a 64-1024 channel encoder, a bilinear-upsampling
decoder with skip connections, a 1x1 classifier."""
import torch
from torch import nn

from pa3.models.layers import SegmentationModel, conv_bn_relu, xavier_init_


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
        # BEGIN SOLUTION task 5
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
        # END SOLUTION

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
        # BEGIN SOLUTION task 5
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
        # END SOLUTION

    def checkpoint_blocks(self):
        return [self.block1, self.block2, self.block3, self.block4, self.block5, self.deconv1, self.block6,
                self.deconv2, self.block7, self.deconv3, self.block8, self.deconv4, self.block9]
