"""BackgroundMattingV2's MattingRefine (Lin et al. 2021), with the module names of
PeterL1n/BackgroundMattingV2@a8e82df model/*.py, so that the published pytorch_*.pth load unchanged.

The network takes an image and a clean plate of its background (both [B,3,H,W] RGB in [0,1], H and W
multiples of 4) and works in two stages:
  base     the pair downsampled by `backbone_scale` -> backbone (MobileNetV2 or ResNet-50/101,
           output stride 16) -> ASPP -> decoder -> 37 channels at the coarse size: alpha, foreground
           residual (3), error (1), hidden features (32)
  refiner  4x4 blocks of the full-resolution output, each computed from an 8x8 window at half
           resolution (coarse maps upsampled, the pair downsampled) and one at full resolution.
           Which blocks: every one (`full`), the `sample_pixels // 16` with the largest predicted error
           (`sampling`), or those whose error exceeds `threshold` (`thresholding`); the others keep the
           bilinear upsampling of the coarse output.
The refinement knobs and `backbone_scale` are arguments of `forward` (a `RefineParams`), not of the
constructor: one loaded network serves the HD and 4K presets and every mode, as the published
TorchScript export allows by hoisting them to attributes. The refiner's kernel size is 3, as in every
published checkpoint; the original's kernel size 1 (no published weights) is left out.

Two deliberate differences from the original, both in `sampling`: the blocks are picked with a stable
sort (largest error first, the lower flat index first among equal errors) instead of `topk`, whose
choice among tied errors depends on the device and the thread count (errors clamp at 1.0, where
hundreds of blocks can tie); wherever the k-th and (k+1)-th largest errors differ both select the same
blocks. And an image with fewer blocks than sample_pixels // 16 refines all of them (with an error
above 0) where the original's topk raises "selected index k out of range".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import MobileNetV2
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.models.segmentation.deeplabv3 import ASPP

from models.spec import ByHand, ModelSpec, WeightsSource

RefineMode = Literal["full", "sampling", "thresholding"]
REFINE_MODES: tuple[str, ...] = ("full", "sampling", "thresholding")
PATCH = 4  # the refiner replaces PATCH x PATCH blocks of the full-resolution output
HIDDEN = 32  # hidden channels the decoder hands to the refiner
BASE_OUT = 1 + 3 + 1 + HIDDEN  # alpha, foreground residual, error, hidden


@dataclass(frozen=True)
class RefineParams:
    """Run-time knobs of MattingRefine; the defaults are the original constructor's."""

    backbone_scale: float = 0.25  # the pair is downsampled by this for the base network; at most 1/2
    mode: RefineMode = "sampling"
    sample_pixels: int = 80_000  # sampling: refine sample_pixels // 16 blocks of 4x4 pixels
    threshold: float = 0.1  # thresholding: refine the blocks whose error is > threshold
    prevent_oversampling: bool = True  # sampling: never refine a block whose error is 0

    def __post_init__(self) -> None:
        if not 0 < self.backbone_scale <= 0.5:
            raise ValueError(f"backbone_scale must be in (0, 0.5], got {self.backbone_scale}")
        if self.mode not in REFINE_MODES:
            raise ValueError(f"refine mode must be one of {REFINE_MODES}, got {self.mode!r}")
        if self.sample_pixels < 0:
            raise ValueError(f"sample_pixels must be >= 0, got {self.sample_pixels}")
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1] (the error's range), got {self.threshold}")


class MattingOutput(NamedTuple):
    """MattingRefine's outputs, in the original's order."""

    pha: torch.Tensor  # [B,1,H,W] alpha in [0,1]
    fgr: torch.Tensor  # [B,3,H,W] foreground in [0,1]
    pha_sm: torch.Tensor  # [B,1,Hc,Wc] coarse alpha
    fgr_sm: torch.Tensor  # [B,3,Hc,Wc] coarse foreground
    err_sm: torch.Tensor  # [B,1,Hc,Wc] coarse error prediction in [0,1]
    ref_sm: torch.Tensor  # [B,1,H/4,W/4] 1 where a 4x4 block was refined


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Every bilinear resize of the original: align_corners=False, no antialiasing (also when shrinking)."""
    return F.interpolate(x, size, mode="bilinear", align_corners=False)


class MobileNetV2Encoder(MobileNetV2):
    """torchvision's MobileNetV2 on 6 channels at output stride 16 (model/mobilenet.py).

    The last 1x1 block (features[18]) and the classifier are dropped; block 14 loses its stride and
    blocks 15-17 dilate their depthwise 3x3 by 2. Returns the features at 1/16, 1/8, 1/4, 1/2 and the
    input itself, the decoder's skips.
    """

    def __init__(self, in_channels: int = 6):
        super().__init__()
        self.features[0][0] = nn.Conv2d(in_channels, 32, 3, 2, 1, bias=False)
        self.features = self.features[:-1]
        self.features[14].conv[1][0].stride = (1, 1)
        for block in self.features[15:]:
            block.conv[1][0].dilation = (2, 2)
            block.conv[1][0].padding = (2, 2)
        del self.classifier

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        x0 = x
        x1 = self.features[:2](x0)
        x2 = self.features[2:4](x1)
        x3 = self.features[4:7](x2)
        x4 = self.features[7:](x3)
        return x4, x3, x2, x1, x0


class ResNetEncoder(ResNet):
    """torchvision's ResNet-50/101 (v1.5 Bottleneck) on 6 channels, layer4 dilated (output stride 16),
    without avgpool/fc (model/resnet.py). torchvision's dilation keeps layer4's first block at
    dilation 1, as the original does. Skips: relu(bn1(conv1)) at 1/2, layer1 at 1/4, layer2 at 1/8."""

    LAYERS = {"resnet50": [3, 4, 6, 3], "resnet101": [3, 4, 23, 3]}

    def __init__(self, variant: str, in_channels: int = 6):
        super().__init__(Bottleneck, self.LAYERS[variant], replace_stride_with_dilation=[False, False, True])
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        del self.avgpool, self.fc

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        x0 = x
        x1 = self.relu(self.bn1(self.conv1(x0)))
        x2 = self.layer1(self.maxpool(x1))
        x3 = self.layer2(x2)
        x4 = self.layer4(self.layer3(x3))
        return x4, x3, x2, x1, x0


class Decoder(nn.Module):
    """Four stages, each: bilinear to the next skip's size, concatenate it, 3x3 conv (model/decoder.py).
    The first three have BatchNorm + ReLU; the last has a bias and no activation."""

    def __init__(self, channels: list[int], feature_channels: list[int]):
        super().__init__()
        self.conv1 = nn.Conv2d(feature_channels[0] + channels[0], channels[1], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[1])
        self.conv2 = nn.Conv2d(feature_channels[1] + channels[1], channels[2], 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels[2])
        self.conv3 = nn.Conv2d(feature_channels[2] + channels[2], channels[3], 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels[3])
        self.conv4 = nn.Conv2d(feature_channels[3] + channels[3], channels[4], 3, padding=1)
        self.relu = nn.ReLU(True)

    def forward(self, x4: torch.Tensor, x3: torch.Tensor, x2: torch.Tensor, x1: torch.Tensor,
                x0: torch.Tensor) -> torch.Tensor:
        x = x4
        for skip, conv, bn in ((x3, self.conv1, self.bn1), (x2, self.conv2, self.bn2), (x1, self.conv3, self.bn3)):
            x = self.relu(bn(conv(torch.cat([resize(x, skip.shape[2:]), skip], dim=1))))
        return self.conv4(torch.cat([resize(x, x0.shape[2:]), x0], dim=1))


def select_blocks(err: torch.Tensor, params: RefineParams) -> torch.Tensor:
    """The blocks to refine: [B,1,h,w] error at quarter resolution -> [B,1,h,w] 0/1 map (err's dtype).

    sampling: per batch element the sample_pixels // 16 largest errors (all of them if the image has
    fewer blocks, where the original's topk would fail), times (err > 0) when oversampling is prevented.
    The order is a stable descending sort, so among equal errors the lower flat index (y * w + x) is
    taken first, the same on every device and thread count. thresholding: err > threshold.
    """
    if params.mode == "thresholding":
        return err.gt(params.threshold).to(err.dtype)
    flat = err.flatten(1)
    count = min(params.sample_pixels // (PATCH * PATCH), flat.shape[1])
    chosen = torch.sort(flat, dim=1, descending=True, stable=True).indices[:, :count]
    ref = torch.zeros_like(flat).scatter_(1, chosen, 1.0)
    if params.prevent_oversampling:
        ref = ref * flat.gt(0).to(flat.dtype)
    return ref.reshape(err.shape)


Blocks = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (b, y, x) of the selected blocks


def crop_windows(x: torch.Tensor, blocks: Blocks, stride: int, padding: int) -> torch.Tensor:
    """[B,C,H,W] -> [P,C,s+2p,s+2p]: for each block (b, y, x) the window at (y*s, x*s) of x zero-padded
    by p (the original's 'unfold' crop)."""
    window = stride + 2 * padding
    padded = F.pad(x, (padding,) * 4)
    return padded.permute(0, 2, 3, 1).unfold(1, window, stride).unfold(2, window, stride)[blocks]


def replace_blocks(x: torch.Tensor, patches: torch.Tensor, blocks: Blocks) -> torch.Tensor:
    """x [B,C,H,W] with its 4x4 blocks at `blocks` replaced by patches [P,C,4,4] (the original's
    'scatter_nd' replacement)."""
    b, c, h, w = x.shape
    grid = x.reshape(b, c, h // PATCH, PATCH, w // PATCH, PATCH).permute(0, 2, 4, 1, 3, 5)
    grid[blocks] = patches
    return grid.permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


class Refiner(nn.Module):
    """model/refiner.py with kernel size 3: conv1/conv2 at half resolution on [hid 32, pha 1, fgr 3,
    src 3, bgr 3], nearest 2x, conv3/conv4 at full resolution on [features 16, src 3, bgr 3]; all
    convolutions 'valid', so a 4x4 output block needs an 8x8 window at both resolutions."""

    def __init__(self):
        super().__init__()
        channels = [HIDDEN, 24, 16, 12, 4]
        self.conv1 = nn.Conv2d(channels[0] + 6 + 4, channels[1], 3, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[1])
        self.conv2 = nn.Conv2d(channels[1], channels[2], 3, bias=False)
        self.bn2 = nn.BatchNorm2d(channels[2])
        self.conv3 = nn.Conv2d(channels[2] + 6, channels[3], 3, bias=False)
        self.bn3 = nn.BatchNorm2d(channels[3])
        self.conv4 = nn.Conv2d(channels[3], channels[4], 3, bias=True)
        self.relu = nn.ReLU(True)

    def half_res(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(torch.cat([x, y], dim=1))))
        return self.relu(self.bn2(self.conv2(x)))

    def full_res(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn3(self.conv3(torch.cat([x, y], dim=1))))
        return self.conv4(x)

    def forward(self, src: torch.Tensor, bgr: torch.Tensor, pha: torch.Tensor, fgr: torch.Tensor,
                err: torch.Tensor, hid: torch.Tensor, params: RefineParams) -> tuple[torch.Tensor, torch.Tensor]:
        """Coarse maps -> (full-resolution [pha, fgr residual] [B,4,H,W], ref [B,1,H/4,W/4])."""
        height, width = src.shape[2:]
        half, quarter = (height // 2, width // 2), (height // 4, width // 4)
        src_bgr = torch.cat([src, bgr], dim=1)
        coarse = torch.cat([hid, pha, fgr], dim=1)
        if params.mode == "full":
            x = F.pad(resize(coarse, half), (3, 3, 3, 3))
            y = F.pad(resize(src_bgr, half), (3, 3, 3, 3))
            x = F.interpolate(self.half_res(x, y), (height + 4, width + 4), mode="nearest")
            out = self.full_res(x, F.pad(src_bgr, (2, 2, 2, 2)))
            return out, torch.ones((src.shape[0], 1, *quarter), device=src.device, dtype=src.dtype)

        ref = select_blocks(resize(err, quarter), params)
        out = resize(torch.cat([pha, fgr], dim=1), (height, width))
        blocks = tuple(torch.nonzero(ref.squeeze(1)).unbind(1))  # (b, y, x) in row-major order
        if blocks[0].numel() == 0:
            return out, ref
        x = crop_windows(resize(coarse, half), blocks, 2, 3)
        y = crop_windows(resize(src_bgr, half), blocks, 2, 3)
        x = F.interpolate(self.half_res(x, y), 8, mode="nearest")
        patches = self.full_res(x, crop_windows(src_bgr, blocks, 4, 2))
        return replace_blocks(out, patches, blocks), ref


class MattingRefine(nn.Module):
    """model/model.py MattingRefine: base network (backbone + ASPP + decoder) and refiner."""

    # ResNet's stem and Bottlenecks, the decoder and the refiner; MobileNetV2, ASPP and the downsamples
    # are Sequentials, which models.fold folds by adjacency.
    BATCHNORM_PAIRS = tuple((f"conv{i}", f"bn{i}") for i in range(1, 5))

    def __init__(self, backbone: Literal["mobilenetv2", "resnet50", "resnet101"]):
        super().__init__()
        if backbone == "mobilenetv2":
            self.backbone: nn.Module = MobileNetV2Encoder()
            self.aspp = ASPP(320, [3, 6, 9])
            self.decoder = Decoder([256, 128, 64, 48, BASE_OUT], [32, 24, 16, 6])
        else:
            self.backbone = ResNetEncoder(backbone)
            self.aspp = ASPP(2048, [3, 6, 9])
            self.decoder = Decoder([256, 128, 64, 48, BASE_OUT], [512, 256, 64, 6])
        self.refiner = Refiner()

    def forward(self, src: torch.Tensor, bgr: torch.Tensor, params: RefineParams = RefineParams()) -> MattingOutput:
        """src, bgr [B,3,H,W] RGB in [0,1], H and W multiples of 4 -> MattingOutput."""
        if src.shape != bgr.shape:
            raise ValueError(f"src {tuple(src.shape)} and bgr {tuple(bgr.shape)} must have the same shape")
        if src.shape[2] % PATCH or src.shape[3] % PATCH:
            raise ValueError(f"height and width must be multiples of {PATCH}, got {tuple(src.shape[2:])}")
        # scale_factor with recompute_scale_factor: floor(H * scale) x floor(W * scale), as the original.
        src_sm, bgr_sm = (F.interpolate(t, scale_factor=params.backbone_scale, mode="bilinear",
                                        align_corners=False, recompute_scale_factor=True) for t in (src, bgr))
        x0 = torch.cat([src_sm, bgr_sm], dim=1)
        x4, *skips = self.backbone(x0)
        x = self.decoder(self.aspp(x4), *skips)
        pha_sm = x[:, 0:1].clamp(0.0, 1.0)
        fgr_residual = x[:, 1:4]  # the refiner takes the residual unclamped
        err_sm = x[:, 4:5].clamp(0.0, 1.0)
        hid = x[:, 5:].relu()
        out, ref_sm = self.refiner(src, bgr, pha_sm, fgr_residual, err_sm, hid, params)
        return MattingOutput(
            pha=out[:, :1].clamp(0.0, 1.0),
            fgr=(out[:, 1:] + src).clamp(0.0, 1.0),
            pha_sm=pha_sm,
            fgr_sm=(src_sm + fgr_residual).clamp(0.0, 1.0),
            err_sm=err_sm,
            ref_sm=ref_sm,
        )


RELEASE = "https://github.com/PeterL1n/BackgroundMattingV2/releases/download/v1.0.0/"
_NOTES = (
    "Published as torch.save(model.state_dict()) of MattingRefine (plain state dict, float32, BatchNorm "
    "counters included) in the GitHub release v1.0.0 (extra['published']) and the README's Google Drive "
    "folder; no Hugging Face model repo is known to host them unchanged, so the file is placed by hand. The files hold exactly MattingRefine's keys: export_torchscript.py and "
    "doc/model_usage.md load them with strict=True (the published TorchScript files were made that way), and "
    "other projects load pytorch_mobilenetv2/resnet101.pth with the default strict=True. The inference "
    "scripts' strict=False serves --model-type mattingbase, which loads the same MattingRefine file into "
    "MattingBase (its refiner.* keys are then unexpected); nothing needs dropping for our strict loader."
)
_LICENCE = "MIT (BackgroundMattingV2, code and weights; MIT since 2020-12-21, commercial use permitted)"


def _spec(backbone: str, file_name: str) -> ModelSpec:
    return ModelSpec(
        name=f"bmv2-{backbone}",
        family="bmv2",
        build=lambda: MattingRefine(backbone),
        weights=WeightsSource(file_name, by_hand=ByHand(
            RELEASE + file_name, "no SHA-256 of the release asset is published or known here, and a release "
            "asset can be replaced: builder/ fetches nothing it cannot check")),
        role="background_matting",
        licence=_LICENCE,
        notes=_NOTES,
        extra={"backbone": backbone, "multiple": PATCH, "published": RELEASE + file_name},
    )


CHECKPOINTS = [
    _spec("mobilenetv2", "pytorch_mobilenetv2.pth"),
    _spec("resnet50", "pytorch_resnet50.pth"),
    _spec("resnet101", "pytorch_resnet101.pth"),
]
