"""RetinaFace ResNet-50 (Deng et al. 2019) as facexlib ships it (detection_Resnet50_Final.pth).

Module names follow facexlib/detection/retinaface.py and retinaface_net.py at 260620ae: `body` is
torchvision's ResNet-50 cut by IntermediateLayerGetter at layer2/3/4 (strides 8/16/32, 512/1024/2048
channels), `fpn` merges the three levels top-down, `ssh1..3` are the context modules, and the three
heads predict, per level and per anchor (2 per position), a box regression (4), two class logits
and five landmark regressions (10), flattened position-major over levels 8, 16, 32.

The network only computes the raw regressions; priors, decoding, thresholds and NMS (facexlib's
detect_faces) are pipeline/restoration/detection.py. The input is facexlib's: a BGR image in 0..255 minus the
per-channel mean (104, 117, 123), without scaling.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet50
from torchvision.models._utils import IntermediateLayerGetter

from models.spec import ModelSpec, ReleaseAsset, StateDict, WeightsSource

BGR_MEAN = (104.0, 117.0, 123.0)


@dataclass(frozen=True)
class PriorConfig:
    """facexlib's cfg_re50: the anchors the checkpoint was trained with and its box encoding."""

    min_sizes: tuple[tuple[int, ...], ...] = ((16, 32), (64, 128), (256, 512))  # per level, in pixels
    steps: tuple[int, ...] = (8, 16, 32)  # the levels' strides
    variance: tuple[float, float] = (0.1, 0.2)  # centre and size variances of the box encoding


PRIORS = PriorConfig()
ANCHORS_PER_POSITION = len(PRIORS.min_sizes[0])
# With 256 output channels facexlib's FPN/SSH use LeakyReLU(negative_slope=0), i.e. a plain ReLU.
OUT_CHANNELS = 256


class RetinaFaceOutput(NamedTuple):
    loc: torch.Tensor  # [B, N, 4] box regressions
    logits: torch.Tensor  # [B, N, 2] class logits (background, face); softmax(-1)[..., 1] is the score
    landmarks: torch.Tensor  # [B, N, 10] landmark regressions


class ConvBN(nn.Sequential):
    """Conv (no bias) + BatchNorm (+ ReLU): facexlib's conv_bn / conv_bn1X1 / conv_bn_no_relu, keys 0 and 1."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, relu: bool):
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, 1, kernel_size // 2, bias=False),
                  nn.BatchNorm2d(out_channels)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class FPN(nn.Module):
    """1x1 lateral convs, nearest upsampling to the finer level's size, add, 3x3 merge conv."""

    def __init__(self, in_channels: tuple[int, int, int], out_channels: int):
        super().__init__()
        self.output1 = ConvBN(in_channels[0], out_channels, 1, relu=True)
        self.output2 = ConvBN(in_channels[1], out_channels, 1, relu=True)
        self.output3 = ConvBN(in_channels[2], out_channels, 1, relu=True)
        self.merge1 = ConvBN(out_channels, out_channels, 3, relu=True)
        self.merge2 = ConvBN(out_channels, out_channels, 3, relu=True)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        output1 = self.output1(features[0])
        output2 = self.output2(features[1])
        output3 = self.output3(features[2])
        output2 = self.merge2(output2 + F.interpolate(output3, size=output2.shape[2:], mode="nearest"))
        output1 = self.merge1(output1 + F.interpolate(output2, size=output1.shape[2:], mode="nearest"))
        return [output1, output2, output3]


class SSH(nn.Module):
    """Single-stage headless context module: 3x3 | two 3x3 (a 5x5) | three 3x3 (a 7x7), concat, ReLU.

    The 7x7 branch starts from the 5x5 branch's first conv (facexlib's conv7X7_2 takes conv5X5_1).
    The mixed-case names (conv7X7_2 next to conv7x7_3) are the checkpoint's.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv3X3 = ConvBN(in_channels, out_channels // 2, 3, relu=False)
        self.conv5X5_1 = ConvBN(in_channels, out_channels // 4, 3, relu=True)
        self.conv5X5_2 = ConvBN(out_channels // 4, out_channels // 4, 3, relu=False)
        self.conv7X7_2 = ConvBN(out_channels // 4, out_channels // 4, 3, relu=True)
        self.conv7x7_3 = ConvBN(out_channels // 4, out_channels // 4, 3, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv5x5_1 = self.conv5X5_1(x)
        branches = (self.conv3X3(x), self.conv5X5_2(conv5x5_1), self.conv7x7_3(self.conv7X7_2(conv5x5_1)))
        return F.relu(torch.cat(branches, dim=1))


class Head(nn.Module):
    """A 1x1 conv predicting `values` numbers per anchor, flattened to [B, H*W*anchors, values]."""

    def __init__(self, in_channels: int, values: int):
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(in_channels, ANCHORS_PER_POSITION * values, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # permute(0, 2, 3, 1): position-major, then anchor, then value (reshape: x may be channels_last)
        return self.conv1x1(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.values)


def _heads(values: int) -> nn.ModuleList:
    return nn.ModuleList(Head(OUT_CHANNELS, values) for _ in range(3))


class RetinaFace(nn.Module):
    """forward(x [B,3,H,W] BGR minus BGR_MEAN) -> RetinaFaceOutput over every prior of the image."""

    # The ResNet stem's and Bottlenecks' pairs; ConvBN and the downsamples are Sequentials, which
    # models.fold folds by adjacency.
    BATCHNORM_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def __init__(self) -> None:
        super().__init__()
        self.body = IntermediateLayerGetter(resnet50(weights=None), {"layer2": "1", "layer3": "2", "layer4": "3"})
        self.fpn = FPN((512, 1024, 2048), OUT_CHANNELS)
        self.ssh1 = SSH(OUT_CHANNELS, OUT_CHANNELS)
        self.ssh2 = SSH(OUT_CHANNELS, OUT_CHANNELS)
        self.ssh3 = SSH(OUT_CHANNELS, OUT_CHANNELS)
        self.ClassHead = _heads(2)
        self.BboxHead = _heads(4)
        self.LandmarkHead = _heads(10)

    def forward(self, x: torch.Tensor) -> RetinaFaceOutput:
        levels = self.fpn(list(self.body(x).values()))
        features = [self.ssh1(levels[0]), self.ssh2(levels[1]), self.ssh3(levels[2])]

        def predict(heads: nn.ModuleList) -> torch.Tensor:
            return torch.cat([head(feature) for head, feature in zip(heads, features)], dim=1)

        return RetinaFaceOutput(predict(self.BboxHead), predict(self.ClassHead), predict(self.LandmarkHead))


def face_scores(logits: torch.Tensor) -> torch.Tensor:
    """The face probability of every prior: softmax over (background, face), as facexlib's phase 'test'."""
    return F.softmax(logits, dim=-1)[..., 1]


def strip_data_parallel_prefix(state: StateDict, _model: nn.Module) -> StateDict:
    """The published file was saved from nn.DataParallel: every key starts with 'module.'
    (facexlib's init_detection_model strips it the same way before its strict load)."""
    return {k.removeprefix("module."): v for k, v in state.items()}


CHECKPOINTS = [
    ModelSpec(
        name="retinaface-resnet50",
        family="retinaface",
        build=RetinaFace,
        # facexlib's own release asset (the URL facexlib/detection/__init__.py downloads), 109,497,761
        # bytes; SHA-256 as independent pinning projects list it.
        weights=WeightsSource("detection_Resnet50_Final.pth", ReleaseAsset(
            "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth",
            sha256="6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d")),
        remap_keys=strip_data_parallel_prefix,
        role="face_detector",
        licence="MIT (facexlib; biubug6/Pytorch_Retinaface); trained on WIDER FACE",
        notes="facexlib's RetinaFace ResNet-50 as GFPGAN uses it; run it with restoration.detection.detect_faces",
        extra={"bgr_mean": BGR_MEAN, "priors": PRIORS},
    ),
]
