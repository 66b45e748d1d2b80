"""DeepLabv3, torchvision's (the report's "Deeplab", section 2)."""
import torchvision
from torchvision.models.segmentation import DeepLabV3_ResNet50_Weights, DeepLabV3_ResNet101_Weights

from pa3.models.layers import SegmentationModel, _bottlenecks, xavier_init_
from pa3.models.weights import _load_exact, _pretrained_state


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
