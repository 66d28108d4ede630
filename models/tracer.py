"""TRACER (Lee et al. 2022) with an EfficientNet-B7 encoder, as carvekit ships it (tracer_b7.pth).

Module names are those of carvekit's carvekit/ml/arch/tracerb7 (TracerDecoder + EfficientEncoderB7),
so the published state dict loads unchanged.

The encoder is written here rather than taken from timm: carvekit's EfficientNet pads every conv
with TensorFlow-"SAME" padding computed ONCE for a 600x600 design size, so a stride-2 conv pads
the same fixed, sometimes asymmetric, amount whatever the real input size is. timm only offers
padding recomputed from the actual input, which differs (e.g. the third stride-2 stage pads
(1,1) at 600 but would pad (0,1) for a 960 input).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.spec import Download, ModelSpec, Preprocess, StateDict, WeightsSource

# --- EfficientNet-B7 encoder ------------------------------------------------------------------

# EfficientNet-B0 stages: (repeats, kernel, stride, expand ratio, in filters, out filters);
# every block has squeeze-excitation with ratio 0.25.
_B0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_SE_RATIO = 0.25
_ENCODER_BN_EPS = 1e-3  # EfficientNet's global batch_norm_epsilon; the TRACER decoder uses 1e-5


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Channel count scaled by `width`, rounded to a multiple of `divisor` (never down by >10%)."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(depth * repeats))


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) of one axis of length `size`."""
    out = math.ceil(size / stride)
    pad = max((out - 1) * stride + kernel - size, 0)
    return pad // 2, pad - pad // 2


class StaticSameConv2d(nn.Conv2d):
    """Conv2d with "SAME" padding fixed at construction for a design input size.

    Symmetric padding goes into the convolution itself; only asymmetric padding needs an F.pad.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
                 bias: bool = False, design_size: int = 1):
        # design_size only matters for k > 1: 1x1 stride-1 convs never pad.
        super().__init__(in_ch, out_ch, kernel, stride=stride, groups=groups, bias=bias)
        top, bottom = same_padding(design_size, kernel, stride)
        if top == bottom:
            self.padding = (top, top)
            self.pre_pad = None
        else:
            self.pre_pad = (top, bottom, top, bottom)  # design size is square: same for W and H

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_pad is not None:
            x = F.pad(x, self.pre_pad)
        return super().forward(x)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck: 1x1 expand, depthwise kxk, squeeze-excitation, 1x1 project."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int, design_size: int):
        super().__init__()
        mid = in_ch * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = StaticSameConv2d(in_ch, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=_ENCODER_BN_EPS)
        self._depthwise_conv = StaticSameConv2d(mid, mid, kernel, stride, groups=mid, design_size=design_size)
        self._bn1 = nn.BatchNorm2d(mid, eps=_ENCODER_BN_EPS)
        squeezed = max(1, int(in_ch * _SE_RATIO))
        self._se_reduce = nn.Conv2d(mid, squeezed, 1)
        self._se_expand = nn.Conv2d(squeezed, mid, 1)
        self._project_conv = StaticSameConv2d(mid, out_ch, 1)
        self._bn2 = nn.BatchNorm2d(out_ch, eps=_ENCODER_BN_EPS)
        # Drop-connect only acts in training; this module is for inference.
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand:
            x = F.silu(self._bn0(self._expand_conv(x)))
        x = F.silu(self._bn1(self._depthwise_conv(x)))
        squeezed = self._se_expand(F.silu(self._se_reduce(F.adaptive_avg_pool2d(x, 1))))
        x = torch.sigmoid(squeezed) * x
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.residual else x


class EfficientNetEncoder(nn.Module):
    """EfficientNet trunk (stem + MBConv blocks, no head) returning the outputs of `feature_blocks`."""

    def __init__(self, width: float = 2.0, depth: float = 3.1, design_size: int = 600,
                 feature_blocks: tuple[int, ...] = (10, 17, 37, 54)):
        super().__init__()
        stem_ch = round_filters(32, width)
        self._conv_stem = StaticSameConv2d(3, stem_ch, 3, 2, design_size=design_size)
        self._bn0 = nn.BatchNorm2d(stem_ch, eps=_ENCODER_BN_EPS)
        size = math.ceil(design_size / 2)
        blocks = []
        for repeats, kernel, stride, expand, in_f, out_f in _B0_STAGES:
            in_ch, out_ch = round_filters(in_f, width), round_filters(out_f, width)
            for i in range(round_repeats(repeats, depth)):
                first = i == 0
                blocks.append(MBConvBlock(in_ch if first else out_ch, out_ch, kernel,
                                          stride if first else 1, expand, size))
                if first:
                    size = math.ceil(size / stride)
        self._blocks = nn.ModuleList(blocks)
        self.feature_blocks = feature_blocks

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.silu(self._bn0(self._conv_stem(x)))
        features = []
        for idx, block in enumerate(self._blocks):
            x = block(x)
            if idx in self.feature_blocks:
                features.append(x)
        return features


# --- TRACER decoder -----------------------------------------------------------------------------


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm + SELU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int | tuple[int, int],
                 padding: int | tuple[int, int] = 0, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, padding=padding, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.selu(self.bn(self.conv(x)))


class DWConv(nn.Module):
    """Depthwise conv + BatchNorm + SELU."""

    def __init__(self, channels: int, kernel: int, padding: int, dilation: int = 1):
        super().__init__()
        self.DWConv = nn.Conv2d(channels, channels, kernel, padding=padding, dilation=dilation,
                                groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.selu(self.bn(self.DWConv(x)))


class DWSConv(nn.Module):
    """Depthwise-separable conv: depthwise + BN + SELU, then pointwise + BN + SELU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, padding: int):
        super().__init__()
        self.DWConv = nn.Conv2d(in_ch, in_ch, kernel, padding=padding, groups=in_ch, bias=False)
        self.bn = nn.BatchNorm2d(in_ch)
        self.PWConv = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.selu(self.bn(self.DWConv(x)))
        return F.selu(self.bn2(self.PWConv(x)))


class RFBBlock(nn.Module):
    """Receptive field block: 1x1 branch and three (1xk, kx1, 3x3 dilated k) branches, residual."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.branch0 = nn.Sequential(BasicConv2d(in_ch, out_ch, 1))
        for i, k in enumerate((3, 5, 7), start=1):
            setattr(self, f"branch{i}", nn.Sequential(
                BasicConv2d(in_ch, out_ch, 1),
                BasicConv2d(out_ch, out_ch, (1, k), padding=(0, k // 2)),
                BasicConv2d(out_ch, out_ch, (k, 1), padding=(k // 2, 0)),
                BasicConv2d(out_ch, out_ch, 3, padding=k, dilation=k),
            ))
        self.conv_cat = BasicConv2d(4 * out_ch, out_ch, 3, padding=1)
        self.conv_res = BasicConv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)
        return F.relu(self.conv_cat(branches) + self.conv_res(x))


class UnionAttention(nn.Module):
    """Union attention module: channel attention, then spatial attention on the surviving channels."""

    confidence_ratio = 0.1  # channels whose attention is in the lowest 10% are zeroed

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        # Dropout3d is inactive in eval; kept so the module is the original in training mode too.
        self.norm = nn.Sequential(nn.BatchNorm2d(channels), nn.Dropout3d(self.confidence_ratio))
        for name in ("channel_q", "channel_k", "channel_v", "fc"):
            setattr(self, name, nn.Conv2d(channels, channels, 1, bias=False))
        for name in ("spatial_q", "spatial_k", "spatial_v"):
            setattr(self, name, nn.Conv2d(channels, 1, 1, bias=False))

    def channel_tracer(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.norm(x.mean(dim=(2, 3), keepdim=True))
        q = self.channel_q(pooled).squeeze(-1)  # [B, C, 1]
        k = self.channel_k(pooled).squeeze(-1)
        v = self.channel_v(pooled).squeeze(-1)
        alpha = torch.softmax(q @ k.transpose(1, 2), dim=-1)  # [B, C, C]
        att = torch.sigmoid(self.fc((alpha @ v).unsqueeze(-1)))  # [B, C, 1, 1]
        return x * att + x, att

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_c, att = self.channel_tracer(x)
        x_c = self.bn(x_c)
        mask = att.flatten(1)
        threshold = torch.quantile(mask.float(), self.confidence_ratio, dim=-1, keepdim=True)
        mask = torch.where(mask <= threshold, torch.zeros_like(mask), mask)
        x_drop = x_c * mask[:, :, None, None]
        q = self.spatial_q(x_drop).squeeze(1)  # [B, H, W]
        k = self.spatial_k(x_drop).squeeze(1)
        v = self.spatial_v(x_drop).squeeze(1)
        alpha = torch.softmax(q @ k.transpose(1, 2), dim=-1)  # [B, H, H]
        return (alpha @ v + v).unsqueeze(1)


def _up2(x: torch.Tensor) -> torch.Tensor:
    # nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True) of the original.
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class Aggregation(nn.Module):
    """Multi-level aggregation of the three RFB outputs (strides 32, 16, 8) into one stride-8 map."""

    def __init__(self, channel: tuple[int, int, int]):
        super().__init__()
        c0, c1, c2 = channel
        self.conv_upsample1 = BasicConv2d(c2, c1, 3, padding=1)
        self.conv_upsample2 = BasicConv2d(c2, c0, 3, padding=1)
        self.conv_upsample3 = BasicConv2d(c1, c0, 3, padding=1)
        self.conv_upsample4 = BasicConv2d(c2, c2, 3, padding=1)
        self.conv_upsample5 = BasicConv2d(c2 + c1, c2 + c1, 3, padding=1)
        self.conv_concat2 = BasicConv2d(c2 + c1, c2 + c1, 3, padding=1)
        self.conv_concat3 = BasicConv2d(c0 + c1 + c2, c0 + c1 + c2, 3, padding=1)
        self.UAM = UnionAttention(c0 + c1 + c2)

    def forward(self, e4: torch.Tensor, e3: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
        e4_up = _up2(e4)
        e3_1 = self.conv_upsample1(e4_up) * e3
        e2_1 = self.conv_upsample2(_up2(e4_up)) * self.conv_upsample3(_up2(e3)) * e2
        e3_2 = self.conv_concat2(torch.cat((e3_1, self.conv_upsample4(e4_up)), 1))
        e2_2 = torch.cat((e2_1, self.conv_upsample5(_up2(e3_2))), 1)
        return self.UAM(self.conv_concat3(e2_2))


class ObjectAttention(nn.Module):
    """Refines a 1-channel decoder map with an encoder feature map, weighted by object and edge."""

    denoise = 0.93  # background-probability above which a pixel is not treated as edge

    def __init__(self, channel: int):
        super().__init__()
        half, eighth = channel // 2, channel // 8
        self.DWSConv = DWSConv(channel, half, kernel=3, padding=1)
        for i, dilation in enumerate((None, 1, 3, 5), start=1):
            dw = DWConv(half, 1, 0) if dilation is None else DWConv(half, 3, dilation, dilation)
            setattr(self, f"DWConv{i}", nn.Sequential(dw, BasicConv2d(half, eighth, 1)))
        self.conv1 = BasicConv2d(half, 1, 1)

    def forward(self, decoder_map: torch.Tensor, encoder_map: torch.Tensor) -> torch.Tensor:
        mask_ob = torch.sigmoid(decoder_map)
        mask_bg = 1 - mask_ob
        edge = torch.where(mask_bg > self.denoise, torch.zeros_like(mask_bg), mask_bg)
        x = self.DWSConv(mask_ob * encoder_map + edge * encoder_map)
        x = torch.cat([self.DWConv1(x), self.DWConv2(x), self.DWConv3(x), self.DWConv4(x)], 1) + x
        return F.relu(self.conv1(x)) + decoder_map


class TracerB7(nn.Module):
    """TRACER on EfficientNet-B7 (carvekit's TracerDecoder(EfficientEncoderB7())).

    forward returns the fused logits [B,1,H,W] (H, W multiples of 32); carvekit's network returns
    their sigmoid, which `tracer_matte` applies.
    """

    def __init__(self, features_channels: tuple[int, ...] = (48, 80, 224, 640),
                 rfb_channel: tuple[int, int, int] = (32, 64, 128)):
        super().__init__()
        self.encoder = EfficientNetEncoder()
        self.rfb2 = RFBBlock(features_channels[1], rfb_channel[0])
        self.rfb3 = RFBBlock(features_channels[2], rfb_channel[1])
        self.rfb4 = RFBBlock(features_channels[3], rfb_channel[2])
        self.agg = Aggregation(rfb_channel)
        self.ObjectAttention2 = ObjectAttention(features_channels[1])
        self.ObjectAttention1 = ObjectAttention(features_channels[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1, f2, f3, f4 = self.encoder(x)  # strides 4, 8, 16, 32
        d0 = self.agg(self.rfb4(f4), self.rfb3(f3), self.rfb2(f2))  # stride 8
        d1 = self.ObjectAttention2(d0, f2)
        d2 = self.ObjectAttention1(F.interpolate(d1, scale_factor=2, mode="bilinear"), f1)
        ds_map0 = F.interpolate(d0, scale_factor=8, mode="bilinear")
        ds_map1 = F.interpolate(d1, scale_factor=8, mode="bilinear")
        ds_map2 = F.interpolate(d2, scale_factor=4, mode="bilinear")
        return (ds_map2 + ds_map1 + ds_map0) / 3


def tracer_matte(logits: torch.Tensor) -> torch.Tensor:
    """carvekit's mask: the sigmoid of the fused map, no min-max normalisation."""
    return torch.sigmoid(logits.float())


def drop_foreign_keys(state: StateDict, model: nn.Module) -> StateDict:
    """Keep only TracerB7's keys.

    carvekit loads tracer_b7.pth with strict=False because the file also holds weights of an edge
    detector the network does not use (carvekit's own TODO); those are dropped here. A key the
    network needs but the file lacks is still reported by the strict loader.
    """
    keys = model.state_dict().keys()
    return {k: v for k, v in state.items() if k in keys}


# carvekit's default TracerUniversalB7 (freezed_carvekit_2023 wrap/tracer_b7.py): the CarveSet-finetuned
# weights at 960x960. ToTensor (x/255) -> torchvision Resize on the float tensor, bilinear, without
# antialiasing (carvekit pins torchvision ~0.15, whose tensor resize does not antialias) -> ImageNet
# Normalize. Output: sigmoid, then (x*255).astype(uint8) (truncation) and a PIL BILINEAR resize back.
# The other published file, tracer_b7.pth ("pretrained", carvekit runs it at 640), has the same keys.
# half_ok=False: the union attention zeroes the channels at or below the 10% quantile of their
# attention, a hard threshold; float16 rounding moved one channel across it on an oracle case and
# the matte changed by 0.025 on average (0.087 at most), bfloat16 likewise.
CHECKPOINTS = [
    ModelSpec(
        name="tracer_b7",
        family="tracer",
        build=TracerB7,
        weights=WeightsSource("tracer-b7-carveset-finetuned.pth", Download(
            "Carve/tracer_b7", "tracer-b7-carveset-finetuned.pth", revision="d84434bc214d7b23cb58d247e67c6ec3fe991ac8")),
        preprocess=Preprocess(size=(960, 960), resample="bilinear", backend="torch", scale="255",
                              antialias=False),
        to_matte=tracer_matte,
        remap_keys=drop_foreign_keys,
        half_ok=False,
        notes="carvekit recipe: x/255, torch bilinear resize to 960x960 (no antialias), ImageNet mean/std; "
              "matte = sigmoid of the fused map (carvekit then truncates x*255 to uint8)",
        licence="Apache-2.0 (carvekit)",
    ),
]
