"""The baseline FCN of the report's Table 1 (section 3.1): five strided convolutions, five transposed
convolutions, a 1x1 classifier."""
from torch import nn

from pa3.models.layers import SegmentationModel, conv_bn_relu, deconv_bn_relu, xavier_init_


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
