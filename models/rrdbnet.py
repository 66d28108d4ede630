"""BasicSR's RRDBNet (ESRGAN's generator), the network of the Real-ESRGAN RRDB checkpoints.

Module names are BasicSR's (basicsr/archs/rrdbnet_arch.py @8d56e3a0), so the published
`{'params_ema': state_dict}` files load unchanged:

  conv_first -> body (num_block x RRDB) -> conv_body, + conv_first's features
  -> 2 x (nearest x2 -> conv_up{1,2} -> LeakyReLU 0.2) -> conv_hr -> LeakyReLU -> conv_last

An RRDB is three ResidualDenseBlocks (five 3x3 convolutions densely connected, LeakyReLU 0.2 after
the first four, out = x5 * 0.2 + x) with out = rdb3 * 0.2 + x around them. The trunk always
upsamples x4; the x2 and x1 variants first pixel-unshuffle their input by 2 and 4 (BasicSR's
pixel_unshuffle has torch's channel order c * s^2 + dy * s + dx), so conv_first sees 12 or 48
channels. The raw output is not clamped (RealESRGANer clamps after the network).

The tiling procedure around it (RealESRGANer.enhance) is pipeline/restoration/upscale.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.spec import ModelSpec, ReleaseAsset, WeightsSource

_SLOPE = 0.2  # LeakyReLU negative slope throughout
_RESIDUAL_SCALE = 0.2  # "Empirically, we use 0.2 to scale the residual" (BasicSR)


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, 1, 1)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    # In place, as BasicSR's nn.LeakyReLU(inplace=True): x is always a fresh convolution output.
    return F.leaky_relu_(x, _SLOPE)


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convolutions, each fed the block input and every earlier output (dense concat)."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        self.conv1 = _conv(num_feat, num_grow_ch)
        self.conv2 = _conv(num_feat + num_grow_ch, num_grow_ch)
        self.conv3 = _conv(num_feat + 2 * num_grow_ch, num_grow_ch)
        self.conv4 = _conv(num_feat + 3 * num_grow_ch, num_grow_ch)
        self.conv5 = _conv(num_feat + 4 * num_grow_ch, num_feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = _lrelu(self.conv1(x))
        x2 = _lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = _lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = _lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * _RESIDUAL_SCALE + x


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks inside one scaled residual."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * _RESIDUAL_SCALE + x


# Net scale -> pixel-unshuffle factor in front of the x4 trunk.
_UNSHUFFLE = {4: 1, 2: 2, 1: 4}


class RRDBNet(nn.Module):
    """ESRGAN's generator, x4, x2 or x1 (BasicSR RRDBNet, same constructor arguments)."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32):
        super().__init__()
        if scale not in _UNSHUFFLE:
            raise ValueError(f"RRDBNet scale must be one of {sorted(_UNSHUFFLE)}, not {scale}")
        self.scale = scale
        self.unshuffle = _UNSHUFFLE[scale]
        self.conv_first = _conv(num_in_ch * self.unshuffle**2, num_feat)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = _conv(num_feat, num_feat)
        self.conv_up1 = _conv(num_feat, num_feat)
        self.conv_up2 = _conv(num_feat, num_feat)
        self.conv_hr = _conv(num_feat, num_feat)
        self.conv_last = _conv(num_feat, num_out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] in [0, 1] -> [B, C, H * scale, W * scale], unclamped. H and W must be
        multiples of the unshuffle factor (2 for x2, 4 for x1)."""
        feat = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = _lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = _lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(_lrelu(self.conv_hr(feat)))


# Real-ESRGAN's own release assets (the URLs of its inference_realesrgan.py); SHA-256s as independent
# pinning projects list them (the same files as the HF mirror LykosAI/Upscalers@28a279e).
_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"
_LICENCE = "BSD-3-Clause (Real-ESRGAN, xinntao)"


def _spec(name: str, release: str, filename: str, sha256: str, scale: int, num_block: int, notes: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="rrdbnet",
        build=lambda: RRDBNet(3, 3, scale=scale, num_feat=64, num_block=num_block, num_grow_ch=32),
        weights=WeightsSource(
            filename,
            ReleaseAsset(f"{_RELEASES}/{release}/{filename}", sha256=sha256),
            wrap=("params_ema", "params"),  # RealESRGANer prefers params_ema, falls back to params
        ),
        role="upscaler",
        licence=_LICENCE,
        notes=notes + "; run it with restoration.upscale.upscale",
        extra={"scale": scale},
    )


CHECKPOINTS = [
    _spec("realesrgan-x4plus", "v0.1.0", "RealESRGAN_x4plus.pth",
          "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1", scale=4, num_block=23,
          notes="Real-ESRGAN x4plus (v0.1.0): general photographs, x4, 23 RRDB blocks"),
    _spec("realesrgan-x2plus", "v0.2.1", "RealESRGAN_x2plus.pth",
          "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb", scale=2, num_block=23,
          notes="Real-ESRGAN x2plus (v0.2.1): general photographs, x2 (pixel-unshuffle 2 + x4 trunk)"),
    _spec("realesrgan-x4plus-anime", "v0.2.2.4", "RealESRGAN_x4plus_anime_6B.pth",
          "f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da", scale=4, num_block=6,
          notes="Real-ESRGAN x4plus anime 6B (v0.2.2.4): illustrations and anime, x4, 6 RRDB blocks"),
]
