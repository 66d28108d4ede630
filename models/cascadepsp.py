"""CascadePSP's RefinementModule (Cheng et al. 2020) as carvekit ships it, with carvekit's module names.

The network refines a segmentation in three passes of one shared backbone + PSP head:
  1. cat(image, seg, seg, seg)                         -> coarse logits at 1/8 (skipped when given)
  2. cat(image, seg, tanh(up8(s8)), tanh(up8(s8)))     -> logits at 1/8 and 1/4
  3. cat(image, seg, tanh(up8(s8_2)), tanh(up4(s4)))   -> logits at 1/8, 1/4 and full resolution
Only the third pass runs the whole upsampling path (up_1 -> up_2 -> up_3 -> final_11/final_21).

The refinement procedure around it (global step, local crops, padding to multiples of 8, carvekit's
pre- and post-processing) is pipeline/carvekit/cascadepsp.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from models.spec import Download, ModelSpec, Preprocess, WeightsSource


class DilatedResNet50(ResNet):
    """ResNet-50 at output stride 8 on 6 input channels, returning (layer4, conv1 raw, layer1).

    torchvision's ResNet has carvekit's parameter names and Bottleneck (stride on the 3x3 conv).
    Two differences from torchvision's dilated variant: carvekit builds the first block of every
    dilated layer undilated, whereas torchvision dilates layer4's first block by 2 (the dilation
    layer3 reached); and there is no classifier (avgpool/fc), which the checkpoint lacks.
    """

    def __init__(self) -> None:
        super().__init__(Bottleneck, [3, 4, 6, 3], replace_stride_with_dilation=[False, True, True])
        self.conv1 = nn.Conv2d(6, 64, kernel_size=7, stride=2, padding=3, bias=False)
        first = self.layer4[0].conv2
        first.dilation, first.padding = (1, 1), (1, 1)
        del self.avgpool, self.fc

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x_1 = self.conv1(x)  # the up_2 skip is taken before bn1/relu
        x = self.maxpool(self.relu(self.bn1(x_1)))
        x_2 = self.layer1(x)
        return self.layer4(self.layer3(self.layer2(x_2))), x_1, x_2


class PSPModule(nn.Module):
    """Pyramid pooling: average pools at 1, 2, 3, 6 -> 1x1 conv -> bilinear back, concat, 1x1 conv, ReLU."""

    def __init__(self, features: int = 2048, out_features: int = 1024, sizes: tuple[int, ...] = (1, 2, 3, 6)):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(size), nn.Conv2d(features, features, 1, bias=False)) for size in sizes
        )
        self.bottleneck = nn.Conv2d(features * (len(sizes) + 1), out_features, 1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        size = feats.shape[2:]
        priors = [F.interpolate(stage(feats), size=size, mode="bilinear", align_corners=False) for stage in self.stages]
        return F.relu(self.bottleneck(torch.cat([*priors, feats], 1)))


def _preact_double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 (pre-activation), indices as in the checkpoint (0, 2, 3, 5)."""
    return nn.Sequential(
        nn.BatchNorm2d(in_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
    )


class PSPUpsample(nn.Module):
    """x2 bilinear upsampling, fused with a skip, as two residual pre-activation blocks."""

    def __init__(self, x_channels: int, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = _preact_double_conv(in_channels, out_channels)
        self.conv2 = _preact_double_conv(out_channels, out_channels)
        self.shortcut = nn.Conv2d(x_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        p = self.conv(torch.cat([x, skip], 1)) + self.shortcut(x)
        return p + self.conv2(p)


def _head(in_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, 32, 1), nn.ReLU(inplace=True), nn.Conv2d(32, 1, 1))


def _up(x: torch.Tensor, factor: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class RefinementModule(nn.Module):
    """carvekit's RefinementModule; input sides must be multiples of 8 (pipeline/carvekit/cascadepsp.py pads).

    forward(x, seg, inter_s8) takes the ImageNet-normalised image [B,3,H,W], the segmentation in
    [-1,1] [B,1,H,W] and, optionally, a previous estimate in [-1,1] that replaces the first pass (it
    enters the second pass as given, without tanh: carvekit's local step passes its upsampled global
    s4 prediction there). It returns the logits of every pass, all at [B,1,H,W]: out_28 (first pass,
    only without inter_s8), out_28_2/out_56 (second), out_28_3/out_56_2/out_224 (third); sigmoid of
    out_224 is the refined mask. carvekit's unused inter_s4 argument (which skips the second pass)
    is left out.
    """

    def __init__(self) -> None:
        super().__init__()
        self.feats = DilatedResNet50()
        self.psp = PSPModule(2048, 1024, (1, 2, 3, 6))
        self.up_1 = PSPUpsample(1024, 1024 + 256, 512)
        self.up_2 = PSPUpsample(512, 512 + 64, 256)
        self.up_3 = PSPUpsample(256, 256 + 3, 32)
        self.final_28 = _head(1024)
        self.final_56 = _head(512)
        self.final_11 = nn.Conv2d(32 + 3, 32, 1)
        self.final_21 = nn.Conv2d(32, 1, 1)

    def forward(
        self, x: torch.Tensor, seg: torch.Tensor, inter_s8: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if inter_s8 is None:
            f, _, _ = self.feats(torch.cat((x, seg, seg, seg), 1))
            out["out_28"] = _up(self.final_28(self.psp(f)), 8)
            inter_s8 = torch.tanh(out["out_28"])

        f, _, f_2 = self.feats(torch.cat((x, seg, inter_s8, inter_s8), 1))
        p = self.psp(f)
        out["out_28_2"] = _up(self.final_28(p), 8)
        out["out_56"] = _up(self.final_56(self.up_1(p, f_2)), 4)

        f, f_1, f_2 = self.feats(torch.cat((x, seg, torch.tanh(out["out_28_2"]), torch.tanh(out["out_56"])), 1))
        p = self.psp(f)
        out["out_28_3"] = _up(self.final_28(p), 8)
        p = self.up_1(p, f_2)
        out["out_56_2"] = _up(self.final_56(p), 4)
        p = self.up_3(self.up_2(p, f_1), x)
        out["out_224"] = self.final_21(F.relu(self.final_11(torch.cat([p, x], 1))))
        return out


def refined_matte(outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.sigmoid(outputs["out_224"])


# carvekit runs cascadepsp.pth on the CPU and the CarveSet fine-tune on CUDA (its CPU warning says the
# fine-tune is extremely slow there). Both are refiners, not segmenters: `preprocess` records the image
# normalisation and carvekit's input_tensor_size (900) as the square size; the real recipe (thumbnail
# to 2048, binarised mask in [-1,1], global + local steps) is pipeline/carvekit/cascadepsp.py. Half precision is
# unmeasured and the procedure thresholds predictions at 0.5, so float32 only.
_PREPROCESS = Preprocess(size=(900, 900), resample="bicubic", backend="pil", scale="255")

CHECKPOINTS = [
    ModelSpec(
        name="cascadepsp",
        family="cascadepsp",
        build=RefinementModule,
        weights=WeightsSource("cascadepsp.pth", Download(
            "Carve/cascadepsp", "cascadepsp.pth", revision="3ca1e5e432344b1277bc88d1c6d4265c46cff62f",
            sha512="3f895f5126d80d6f73186f045557ea7c8eab4dfa3d69a995815bb2c03d564573f36c474f04d7bf00"
                   "22a27829f583a1a793b036adf801cb423e41a4831b830122")),
        preprocess=_PREPROCESS,
        to_matte=refined_matte,
        half_ok=False,
        role="refinement",
        licence="MIT (CascadePSP)",
        notes="carvekit CascadePSP (pretrained on MSRA-10K, DUT-OMRON, ECSSD, FSS-1000); "
        "run it with pipeline.carvekit.cascadepsp.refine",
    ),
    ModelSpec(
        name="cascadepsp-carveset",
        family="cascadepsp",
        build=RefinementModule,
        weights=WeightsSource("cascadepsp_finetuned_carveset.pth", Download(
            "Carve/cascadepsp", "cascadepsp_finetuned_carveset.pth",
            revision="575728e071af43aa4500fc52005d3e29eb2571b4")),
        preprocess=_PREPROCESS,
        to_matte=refined_matte,
        half_ok=False,
        role="refinement",
        licence="MIT (CascadePSP); fine-tune Apache-2.0 (carvekit)",
        notes="carvekit's CUDA default: CascadePSP fine-tuned on CarveSet, DUTS-HD, DIS; "
        "run it with pipeline.carvekit.cascadepsp.refine",
    ),
]
