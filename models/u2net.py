"""U^2-Net and U^2-NetP (Qin et al. 2020), with the module names of xuebinqin/U-2-Net model/u2net.py.

The residual U-blocks (RSU) are shared with IS-Net (models/isnet.py), which reuses them unchanged.
carvekit's refactored U^2-Net computes the same function (its upsampling targets ceil(h/2^k) are the
sizes `upsample_like` reads off the skip tensors), so one module serves both checkpoints.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.spec import Download, ModelSpec, Preprocess, ReleaseAsset, WeightsSource


def upsample_like(src: torch.Tensor, tar: torch.Tensor) -> torch.Tensor:
    # F.upsample(mode="bilinear") of the original is interpolate with align_corners=False.
    return F.interpolate(src, size=tar.shape[2:], mode="bilinear", align_corners=False)


def min_max_normalise(x: torch.Tensor) -> torch.Tensor:
    """Per-image (x - min) / (max - min), as rembg and carvekit post-process U^2-Net's output."""
    flat = x.flatten(1)
    lo = flat.min(dim=1).values.view(-1, *([1] * (x.dim() - 1)))
    hi = flat.max(dim=1).values.view(-1, *([1] * (x.dim() - 1)))
    return (x - lo) / (hi - lo).clamp_min(torch.finfo(x.dtype).tiny)


class REBNCONV(nn.Module):
    """3x3 conv (dilated) + BatchNorm + ReLU."""

    def __init__(self, in_ch: int = 3, out_ch: int = 3, dirate: int = 1, stride: int = 1):
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_ch, out_ch, 3, padding=dirate, dilation=dirate, stride=stride)
        self.bn_s1 = nn.BatchNorm2d(out_ch)
        self.relu_s1 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu_s1(self.bn_s1(self.conv_s1(x)))


class RSU(nn.Module):
    """Residual U-block of height `height` (RSU7..RSU4 in the paper).

    Encoder: rebnconvin, rebnconv1..rebnconv{height-1} with a 2x max-pool after each of the first
    height-2, then rebnconv{height} dilated by 2; decoder rebnconv{height-1}d..rebnconv1d, each on the
    concatenation of the upsampled deeper map and the skip.
    """

    def __init__(self, height: int, in_ch: int, mid_ch: int, out_ch: int):
        super().__init__()
        self.height = height
        self.rebnconvin = REBNCONV(in_ch, out_ch, dirate=1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, dirate=1)
        for i in range(1, height - 1):
            setattr(self, f"pool{i}", nn.MaxPool2d(2, stride=2, ceil_mode=True))
            setattr(self, f"rebnconv{i + 1}", REBNCONV(mid_ch, mid_ch, dirate=1))
        setattr(self, f"rebnconv{height}", REBNCONV(mid_ch, mid_ch, dirate=2))
        for i in range(height - 1, 1, -1):
            setattr(self, f"rebnconv{i}d", REBNCONV(mid_ch * 2, mid_ch, dirate=1))
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, dirate=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hxin = self.rebnconvin(x)
        skips = [self.rebnconv1(hxin)]
        for i in range(1, self.height - 1):
            pooled = getattr(self, f"pool{i}")(skips[-1])
            skips.append(getattr(self, f"rebnconv{i + 1}")(pooled))
        hx = getattr(self, f"rebnconv{self.height}")(skips[-1])
        for i in range(self.height - 1, 0, -1):
            skip = skips[i - 1]
            if i < self.height - 1:
                hx = upsample_like(hx, skip)
            hx = getattr(self, f"rebnconv{i}d")(torch.cat((hx, skip), 1))
        return hx + hxin


class RSU4F(nn.Module):
    """RSU-4F: dilations 1, 2, 4, 8 instead of pooling, so the resolution never changes."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int):
        super().__init__()
        self.rebnconvin = REBNCONV(in_ch, out_ch, dirate=1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, dirate=1)
        self.rebnconv2 = REBNCONV(mid_ch, mid_ch, dirate=2)
        self.rebnconv3 = REBNCONV(mid_ch, mid_ch, dirate=4)
        self.rebnconv4 = REBNCONV(mid_ch, mid_ch, dirate=8)
        self.rebnconv3d = REBNCONV(mid_ch * 2, mid_ch, dirate=4)
        self.rebnconv2d = REBNCONV(mid_ch * 2, mid_ch, dirate=2)
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, dirate=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hxin = self.rebnconvin(x)
        hx1 = self.rebnconv1(hxin)
        hx2 = self.rebnconv2(hx1)
        hx3 = self.rebnconv3(hx2)
        hx4 = self.rebnconv4(hx3)
        hx3d = self.rebnconv3d(torch.cat((hx4, hx3), 1))
        hx2d = self.rebnconv2d(torch.cat((hx3d, hx2), 1))
        hx1d = self.rebnconv1d(torch.cat((hx2d, hx1), 1))
        return hx1d + hxin


def make_rsu(height: int, in_ch: int, mid_ch: int, out_ch: int) -> nn.Module:
    """RSU of the given height; height 0 means RSU-4F."""
    return RSU4F(in_ch, mid_ch, out_ch) if height == 0 else RSU(height, in_ch, mid_ch, out_ch)


# (height, in, mid, out) of the six encoder and five decoder stages; height 0 is RSU-4F.
_U2NET_STAGES = {
    "full": (
        [(7, 3, 32, 64), (6, 64, 32, 128), (5, 128, 64, 256), (4, 256, 128, 512), (0, 512, 256, 512), (0, 512, 256, 512)],
        [(0, 1024, 256, 512), (4, 1024, 128, 256), (5, 512, 64, 128), (6, 256, 32, 64), (7, 128, 16, 64)],
    ),
    "lite": (
        [(7, 3, 16, 64), (6, 64, 16, 64), (5, 64, 16, 64), (4, 64, 16, 64), (0, 64, 16, 64), (0, 64, 16, 64)],
        [(0, 128, 16, 64), (4, 128, 16, 64), (5, 128, 16, 64), (6, 128, 16, 64), (7, 128, 16, 64)],
    ),
}


class RSUNet(nn.Module):
    """The six-stage encoder and five-stage decoder of residual U-blocks, with side heads, that U^2-Net
    and IS-Net share (attribute names stage1..6, pool12..56, stage5d..1d, side1..6 as published)."""

    BATCHNORM_PAIRS = (("conv_s1", "bn_s1"),)  # each REBNCONV's; folded by models.fold after loading

    def build_stages(self, encoder: list, decoder: list, side_in: list[int], out_ch: int) -> None:
        for i, stage in enumerate(encoder, start=1):
            setattr(self, f"stage{i}", make_rsu(*stage))
            if i < 6:
                setattr(self, f"pool{i}{i + 1}", nn.MaxPool2d(2, stride=2, ceil_mode=True))
        for i, stage in zip(range(5, 0, -1), decoder):
            setattr(self, f"stage{i}d", make_rsu(*stage))
        for i, ch in enumerate(side_in, start=1):
            setattr(self, f"side{i}", nn.Conv2d(ch, out_ch, 3, padding=1))

    def encode_decode(self, hx: torch.Tensor) -> list[torch.Tensor]:
        """[hx6, hx5d, hx4d, ..., hx1d]: the deepest map, then each decoder stage's output."""
        skips = []
        for i in range(1, 6):
            skips.append(getattr(self, f"stage{i}")(hx))
            hx = getattr(self, f"pool{i}{i + 1}")(skips[-1])
        decoded = [self.stage6(hx)]
        for i in range(5, 0, -1):
            skip = skips[i - 1]
            decoded.append(getattr(self, f"stage{i}d")(torch.cat((upsample_like(decoded[-1], skip), skip), 1)))
        return decoded


class U2Net(RSUNet):
    """U^2-Net ("full") or U^2-NetP ("lite").

    forward returns (sigmoid(d0), sigmoid(d1), ..., sigmoid(d6)) like the original; d0 is the fused
    output of `outconv` and is the matte.
    """

    def __init__(self, cfg: str = "full", in_ch: int = 3, out_ch: int = 1):
        super().__init__()
        encoder, decoder = _U2NET_STAGES[cfg]
        encoder = [(encoder[0][0], in_ch, *encoder[0][2:])] + encoder[1:]
        side_in = [decoder[-1][3]] + [d[3] for d in reversed(decoder[:-1])] + [encoder[-1][3]]
        self.build_stages(encoder, decoder, side_in, out_ch)
        self.outconv = nn.Conv2d(6 * out_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        decoded = self.encode_decode(x)
        d1 = self.side1(decoded[-1])
        sides = [d1]
        for i in range(2, 7):
            sides.append(upsample_like(getattr(self, f"side{i}")(decoded[6 - i]), d1))
        d0 = self.outconv(torch.cat(sides, 1))
        return tuple(torch.sigmoid(d) for d in [d0, *sides])


def min_max_matte(mask: torch.Tensor) -> torch.Tensor:
    """The matte rembg and carvekit take from the U^2-Net family (BASNet, IS-Net too): the network's
    sigmoid output, min-max normalised per image, in float32."""
    return min_max_normalise(mask.float())


def u2net_matte(outputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """U^2-Net returns (d0, d1, ..., d6); the matte is taken from the fused d0."""
    return min_max_matte(outputs[0])


# u2netp follows rembg (its real weights and reference outputs are rembg's; carvekit has no U2NETP);
# u2net follows carvekit (its weights are carvekit's Carve/u2net-universal full_weights.pth).
# carvekit's README says U^2-Net does not take fp16: half_ok=False until measured otherwise.
CHECKPOINTS = [
    ModelSpec(
        name="u2netp",
        family="u2net",
        build=lambda: U2Net("lite"),
        # U^2-Net's own u2netp.pth is on Google Drive only (no pinned HTTPS copy, no published SHA-256;
        # rembg 1.x checked its MD5 e4f636406ca4e2af789941e7f139ee2e). rembg publishes u2netp.onnx as a
        # release asset; builder/convert_u2netp.py turns it into this state dict (the BatchNorm-folded
        # convolutions, BN as identity: equal to the original in eval mode, and tensor for tensor the
        # file parity/u2netp-real was made with). 4,574,861 bytes; SHA-256 as listed by independent
        # projects that pin this asset, whose MD5 is rembg's own (rembg/sessions/u2netp.py, 8e83ca70...).
        weights=WeightsSource("u2netp.pth", ReleaseAsset(
            "https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2netp.onnx",
            sha256="309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8"),
            converter="builder.convert_u2netp"),
        preprocess=Preprocess(size=(320, 320), resample="lanczos", backend="pil", scale="max"),
        to_matte=u2net_matte,
        half_ok=False,
        licence="Apache-2.0 (U^2-Net)",
        notes="rembg recipe: LANCZOS to 320x320, x/max(x), ImageNet mean/std; matte = min-max of sigmoid(d0)",
    ),
    ModelSpec(
        name="u2net",
        family="u2net",
        build=lambda: U2Net("full"),
        weights=WeightsSource("u2net.pth", Download(
            "Carve/u2net-universal", "full_weights.pth", revision="10305d785481cf4b2eee1d447c39cd6e5f43d74b",
            sha512="16f8125e2fedd8c85db0e001ee15338b4aa2fda77bab8ba70c25e"
                   "bea1533fda5ee70a909b934a9bd495b432cef89d629f00a07858a517742476fa8b346de24f7")),
        preprocess=Preprocess(size=(320, 320), resample="bicubic", backend="pil", scale="max"),
        to_matte=u2net_matte,
        half_ok=False,
        licence="Apache-2.0 (U^2-Net; carvekit's file)",
        notes="carvekit recipe: BICUBIC to 320x320, x/max(x), ImageNet mean/std; matte = min-max of sigmoid(d0)",
    ),
]
