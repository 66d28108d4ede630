"""facexlib's ParseNet (from PSFR-GAN, Chen et al. 2021): 19-class face parsing, with the published
module names (xinntao/facexlib@260620ae facexlib/parsing/parsenet.py, as init_parsing_model('parsenet')
builds it: in_size 512, out_size 512, parsing_ch 19).

    x [B,3,512,512] RGB in [-1,1] ((x/255 - 0.5) / 0.5)
      -> encoder: conv 3->64, 4 residual blocks down (64->128->256->256->256, 512 -> 32 px)
      -> feat + body(feat), body = 10 residual blocks at 256 channels
      -> decoder: 4 residual blocks up (256->256->256->128->64, nearest 2x)
    -> (mask_logits [B,19,512,512], image [B,3,512,512]); GFPGAN's paste-back uses the logits' argmax.

Every convolution is 3x3 after its own ReflectionPad2d(1), with BatchNorm (and no bias) inside the
residual branches, plain with bias elsewhere. The registry folds the BatchNorms at load.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from models.spec import ModelSpec, ReleaseAsset, WeightsSource

Scale = Literal["none", "down", "up"]
NEGATIVE_SLOPE = 0.2


class NormLayer(nn.Module):
    """Holds the BatchNorm under `.norm`, where the published keys put it (`norm.norm.weight`)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class ConvLayer(nn.Module):
    """[nearest 2x] -> reflection pad 1 -> conv3x3 (stride 2 for "down") -> [BatchNorm] -> [leaky ReLU]."""

    def __init__(self, in_channels: int, out_channels: int, scale: Scale = "none", norm: bool = False,
                 act: bool = False):
        super().__init__()
        self.upsample = scale == "up"
        self.conv2d = nn.Conv2d(in_channels, out_channels, 3, stride=2 if scale == "down" else 1, bias=not norm)
        self.norm = NormLayer(out_channels) if norm else nn.Identity()
        self.relu = nn.LeakyReLU(NEGATIVE_SLOPE) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.relu(self.norm(self.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"))))


class ResidualBlock(nn.Module):
    """shortcut + conv2(conv1(x)); conv1 has BN + leaky ReLU, conv2 BN only.

    "down": the stride is on conv2 (conv1 keeps the size); "up": conv1 upsamples. The shortcut is the
    identity when neither the size nor the width changes, else a plain ConvLayer with the same scale.
    """

    def __init__(self, in_channels: int, out_channels: int, scale: Scale = "none"):
        super().__init__()
        if scale == "none" and in_channels == out_channels:
            self.shortcut_func = nn.Identity()
        else:
            self.shortcut_func = ConvLayer(in_channels, out_channels, scale)
        self.conv1 = ConvLayer(in_channels, out_channels, "up" if scale == "up" else "none", norm=True, act=True)
        self.conv2 = ConvLayer(out_channels, out_channels, "down" if scale == "down" else "none", norm=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut_func(x) + self.conv2(self.conv1(x))


class ParseNet(nn.Module):
    """forward(x) -> (mask_logits [B,parsing_ch,out,out], image [B,3,out,out]), the original's order."""

    BATCHNORM_PAIRS = (("conv2d", "norm.norm"),)  # each ConvLayer's; folded by models.fold after loading

    def __init__(self, in_size: int = 512, out_size: int = 512, parsing_ch: int = 19, min_feat_size: int = 32,
                 base_ch: int = 64, res_depth: int = 10, ch_range: tuple[int, int] = (32, 256)):
        super().__init__()

        def clip(channels: int) -> int:
            return max(ch_range[0], min(channels, ch_range[1]))

        min_feat_size = min(in_size, min_feat_size)
        down_steps = (in_size // min_feat_size).bit_length() - 1
        up_steps = (out_size // min_feat_size).bit_length() - 1
        head = base_ch
        encoder: list[nn.Module] = [ConvLayer(3, base_ch)]
        for _ in range(down_steps):
            encoder.append(ResidualBlock(clip(head), clip(head * 2), "down"))
            head *= 2
        self.encoder = nn.Sequential(*encoder)
        self.body = nn.Sequential(*(ResidualBlock(clip(head), clip(head)) for _ in range(res_depth)))
        decoder = []
        for _ in range(up_steps):
            decoder.append(ResidualBlock(clip(head), clip(head // 2), "up"))
            head //= 2
        self.decoder = nn.Sequential(*decoder)
        self.out_img_conv = ConvLayer(clip(head), 3)
        self.out_mask_conv = ConvLayer(clip(head), parsing_ch)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.encoder(x)
        x = self.decoder(feat + self.body(feat))
        return self.out_mask_conv(x), self.out_img_conv(x)


CHECKPOINTS = [
    ModelSpec(
        name="parsenet",
        family="parsenet",
        build=ParseNet,
        # facexlib's own release asset (the URL facexlib/parsing/__init__.py downloads), 85,331,193
        # bytes; SHA-256 as independent pinning projects list it (the same file the HF mirror
        # yutaakiyama/inswapper_128.onnx@40bd523 holds).
        weights=WeightsSource("parsing_parsenet.pth", ReleaseAsset(
            "https://github.com/xinntao/facexlib/releases/download/v0.2.2/parsing_parsenet.pth",
            sha256="3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2")),
        # Its argmax decides the paste-back mask. On the parity case bfloat16 changes the class of 1.4 %
        # of the pixels (float16 0.18 %), which moves the blurred paste mask by at
        # most 0.015 (float16 0.0044) of its [0,1] range: invisible after blending
        # (benchmarks/bench_gfpgan.py precision).
        half_ok=True,
        role="face_parser",
        licence="code MIT (facexlib), modified from PSFR-GAN, which is CC BY-NC-SA 4.0; the weights "
                "carry no separate licence (treat as non-commercial)",
        notes="facexlib ParseNet as GFPGAN's FaceRestoreHelper uses it (use_parse=True): a 512x512 RGB face "
              "in [-1,1] (x/255 in float32, then (x-0.5)/0.5) -> (19-class logits, image); "
              "the paste-back mask is built from logits.argmax(1)",
        extra={"face_size": 512, "input_mean": 0.5, "input_std": 0.5, "classes": 19},
    ),
]
