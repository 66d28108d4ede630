"""DeepLabV3-ResNet101 as carvekit runs it: torchvision's network, whose state dict carvekit publishes.

carvekit builds torchvision's deeplabv3_resnet101(pretrained=False, pretrained_backbone=False,
aux_loss=True) and loads Carve/deeplabv3-resnet101 deeplab.pth strictly. The network here is that
torchvision model with a forward that returns only the 21 VOC class logits of the main head.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.segmentation import deeplabv3_resnet101
from torchvision.models.segmentation.deeplabv3 import DeepLabV3 as TorchvisionDeepLabV3

from models.spec import Download, ModelSpec, Preprocess, WeightsSource


class DeepLabV3(TorchvisionDeepLabV3):
    """torchvision's DeepLabV3-ResNet101 (output stride 8, ASPP rates 12/24/36, 21 classes).

    aux_classifier (an FCN head on layer3) only served the training loss: the file holds it, so it is
    built (strict loading), but forward skips it, as carvekit ignores its output.
    """

    def __init__(self) -> None:
        reference = deeplabv3_resnet101(weights=None, weights_backbone=None, aux_loss=True)
        super().__init__(reference.backbone, reference.classifier, reference.aux_classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """[B,21,H,W] class logits at the input size."""
        logits = self.classifier(self.backbone(x)["out"])
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def deeplab_matte(logits: torch.Tensor) -> torch.Tensor:
    """carvekit's mask: Image.fromarray(argmax.byte().numpy() * 255), i.e. class c -> (255*c) mod 256.

    The uint8 product wraps, so background (0) stays 0 and every object class becomes a bright grey
    (person 15 -> 241, the 20 classes span 236..255); carvekit's trimap threshold (231) then treats them
    all as foreground. Reproduced as is.
    """
    classes = logits.argmax(dim=1, keepdim=True)
    return ((classes * 255) % 256).float() / 255.0


# half_ok: carvekit runs it under fp16 autocast; matte vs float32 on oracle case 0, mean abs (max):
# float16 2.5e-6 (3.5e-2: a few pixels change class), bfloat16 1.1e-4 (5.5e-2).
CHECKPOINTS = [
    ModelSpec(
        name="deeplabv3",
        family="deeplabv3",
        build=DeepLabV3,
        weights=WeightsSource("deeplab.pth", Download(
            "Carve/deeplabv3-resnet101", "deeplab.pth", revision="d504005392fc877565afdf58aad0cd524682d2b0",
            sha512="9c5a1795bc8baa267200a44b49ac544a1ba2687d210f63777e4bd715387324469a59b072f8a28"
                   "9cc471c637b367932177e5b312e8ea6351c1763d9ff44b4857c")),
        preprocess=Preprocess(size=(1024, 1024), resample="bicubic", backend="pil", scale="255", fit="thumbnail"),
        to_matte=deeplab_matte,
        notes="carvekit recipe: PIL thumbnail((1024, 1024), BICUBIC, reducing_gap=2.0) -- keeps the aspect "
        "ratio and only shrinks, so the input is NOT 1024x1024 -- then x/255 and ImageNet mean/std; "
        "matte = ((argmax class * 255) mod 256) / 255",
        licence="Apache-2.0 (carvekit)",
    ),
]
