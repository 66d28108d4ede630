"""BASNet (Qin et al. 2019, "Boundary-Aware Salient Object Detection"), module names of carvekit's
carvekit/ml/arch/basnet/basnet.py (from NathanUA/BASNet).

The encoder is a ResNet-34 whose stem is a stride-1 3x3 convolution without max-pool; its residual
blocks are torchvision's BasicBlock, as in the original, which takes encoder1..4 from torchvision's
resnet34. The decoder upsamples by fixed factors, so H and W must be multiples of 32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from models.spec import Download, ModelSpec, Preprocess, WeightsSource
from models.u2net import min_max_matte


def resnet_layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """torchvision's ResNet._make_layer for BasicBlock: a 1x1 conv + BN shortcut where the shape changes."""
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
    return nn.Sequential(
        BasicBlock(inplanes, planes, stride, downsample), *(BasicBlock(planes, planes) for _ in range(blocks - 1))
    )


def upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    # nn.Upsample(scale_factor=factor, mode="bilinear", align_corners=False) of the original.
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class _FlatConvs(nn.Module):
    """The checkpoint names each 3x3 conv/BN/ReLU triple flat, conv<tag>, bn<tag>, relu<tag>."""

    def add_cbr(self, tag: str, in_ch: int, out_ch: int, dilation: int = 1) -> None:
        setattr(self, f"conv{tag}", nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation))
        setattr(self, f"bn{tag}", nn.BatchNorm2d(out_ch))
        setattr(self, f"relu{tag}", nn.ReLU(inplace=True))

    def cbr(self, tag: str, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, f"relu{tag}")(getattr(self, f"bn{tag}")(getattr(self, f"conv{tag}")(x)))


class RefUnet(_FlatConvs):
    """Residual refinement module: a 4-level U-Net on the coarse logits; returns logits + residual."""

    def __init__(self, in_ch: int = 1, inc_ch: int = 64):
        super().__init__()
        self.conv0 = nn.Conv2d(in_ch, inc_ch, 3, padding=1)
        self.add_cbr("1", inc_ch, 64)
        for i in range(2, 6):
            setattr(self, f"pool{i - 1}", nn.MaxPool2d(2, 2, ceil_mode=True))
            self.add_cbr(str(i), 64, 64)
        for i in range(4, 0, -1):
            self.add_cbr(f"_d{i}", 128, 64)
        self.conv_d0 = nn.Conv2d(64, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.cbr("1", self.conv0(x))]
        for i in range(2, 5):
            skips.append(self.cbr(str(i), getattr(self, f"pool{i - 1}")(skips[-1])))
        hx = self.cbr("5", self.pool4(skips[-1]))
        for i in range(4, 0, -1):
            hx = self.cbr(f"_d{i}", torch.cat((upsample(hx, 2), skips[i - 1]), 1))
        return x + self.conv_d0(hx)


# Decoder stage -> ((in, out, dilation) of its _1, _m, _2 convs); stage 6d is dilated like the bridge.
_DECODER = {
    6: ((1024, 512, 1), (512, 512, 2), (512, 512, 2)),
    5: ((1024, 512, 1), (512, 512, 1), (512, 512, 1)),
    4: ((1024, 512, 1), (512, 512, 1), (512, 256, 1)),
    3: ((512, 256, 1), (256, 256, 1), (256, 128, 1)),
    2: ((256, 128, 1), (128, 128, 1), (128, 64, 1)),
    1: ((128, 64, 1), (64, 64, 1), (64, 64, 1)),
}


class BASNet(_FlatConvs):
    """BASNet; forward returns sigmoid of the refined output (index 0 of the original's 8 outputs).

    outconv2..6 and outconvb are deep-supervision heads of training: the published file holds them,
    so they are built (strict loading), but inference never runs them.
    """

    def __init__(self, n_channels: int = 3, n_classes: int = 1):
        super().__init__()
        self.inconv = nn.Conv2d(n_channels, 64, 3, padding=1)
        self.inbn = nn.BatchNorm2d(64)
        self.inrelu = nn.ReLU(inplace=True)
        # resnet34's layer1..layer4
        self.encoder1 = resnet_layer(64, 64, 3, 1)
        self.encoder2 = resnet_layer(64, 128, 4, 2)
        self.encoder3 = resnet_layer(128, 256, 6, 2)
        self.encoder4 = resnet_layer(256, 512, 3, 2)
        for stage in (5, 6):
            setattr(self, f"pool{stage - 1}", nn.MaxPool2d(2, 2, ceil_mode=True))
            for j in (1, 2, 3):
                setattr(self, f"resb{stage}_{j}", BasicBlock(512, 512))
        for part in ("_1", "_m", "_2"):
            self.add_cbr(f"bg{part}", 512, 512, dilation=2)
        for stage, convs in _DECODER.items():
            for part, (cin, cout, dilation) in zip(("_1", "_m", "_2"), convs):
                self.add_cbr(f"{stage}d{part}", cin, cout, dilation)
        self.outconvb = nn.Conv2d(512, n_classes, 3, padding=1)
        for stage, convs in _DECODER.items():
            setattr(self, f"outconv{stage}", nn.Conv2d(convs[2][1], n_classes, 3, padding=1))
        self.refunet = RefUnet(n_classes, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hx = self.inrelu(self.inbn(self.inconv(x)))
        h1 = self.encoder1(hx)
        h2 = self.encoder2(h1)
        h3 = self.encoder3(h2)
        h4 = self.encoder4(h3)
        h5 = self.resb5_3(self.resb5_2(self.resb5_1(self.pool4(h4))))
        h6 = self.resb6_3(self.resb6_2(self.resb6_1(self.pool5(h5))))
        hx = h6
        for part in ("_1", "_m", "_2"):
            hx = self.cbr(f"bg{part}", hx)
        skips = {6: h6, 5: h5, 4: h4, 3: h3, 2: h2, 1: h1}
        for stage in range(6, 0, -1):
            if stage < 6:
                hx = upsample(hx, 2)
            hx = self.cbr(f"{stage}d_1", torch.cat((hx, skips[stage]), 1))
            hx = self.cbr(f"{stage}d_m", hx)
            hx = self.cbr(f"{stage}d_2", hx)
        return torch.sigmoid(self.refunet(self.outconv1(hx)))


# half_ok: matte vs float32 on oracle case 0, mean abs (max): float16 5.7e-4 (3.4e-3), bfloat16 4.6e-3
# (3.1e-2). carvekit's wrapper ignores its fp16 flag ("not supported at this moment"); we measured it.
CHECKPOINTS = [
    ModelSpec(
        name="basnet",
        family="basnet",
        build=BASNet,
        weights=WeightsSource("basnet.pth", Download(
            "Carve/basnet-universal", "basnet.pth", revision="870becbdb364fda6d8fdb2c10b072542f8d08701",
            sha512="e409cb709f4abca87cb11bd44a9ad3f909044a917977ab65244b4c94dd33"
                   "8b1a37755c4253d7cb54526b7763622a094d7b676d34b5e6886689256754e5a5e6ad")),
        # carvekit calls resize() without a filter: Pillow's default for RGB is BICUBIC.
        preprocess=Preprocess(size=(320, 320), resample="bicubic", backend="pil", scale="max"),
        to_matte=min_max_matte,  # carvekit: min-max of the refined sigmoid output
        notes="carvekit recipe: BICUBIC to 320x320, x/max(x), ImageNet mean/std; "
        "matte = min-max of sigmoid(refunet output)",
        licence="Apache-2.0 (carvekit)",
    ),
]
