"""GFPGAN v1.3 / v1.4 (Wang et al. 2021), the "clean" architecture, with the published module names.

TencentARC/GFPGAN@7552a779 gfpgan/archs/gfpganv1_clean_arch.py (GFPGANv1Clean) and its decoder,
StyleGAN2GeneratorCSFT on stylegan2_clean_arch.py, in the configuration GFPGANer builds for v1.3 and
v1.4: out_size 512, channel_multiplier 2, narrow 1, different_w (one latent per decoder layer, 16),
input_is_latent (the StyleGAN2 mapping network is skipped), sft_half.

    x [B,3,512,512] RGB in [-1,1]
      -> U-Net encoder (ResBlocks with bilinear 0.5x) -> final_linear -> 16 latents of 512
      -> U-Net decoder (ResBlocks with bilinear 2x, plus the encoder skips): at each of the 7 levels
         (8..512 px) two conv heads give the SFT scale and shift
      -> StyleGAN2 decoder: constant 4x4 -> style_conv1 -> to_rgb1, then per level an upsampling
         modulated conv, SFT on the second half of its channels, a second modulated conv, to_rgb
    -> [B,3,512,512] RGB, nominally [-1,1], not clamped.

Noise: every StyleConv adds `weight * noise`. By default the checkpoint's stored noise maps are added
(randomize_noise=False in the original), so the network is deterministic; GFPGANer itself calls the
network with fresh unseeded torch.randn noise at every layer. `noise_seed` gives fresh noise that is
reproducible: each face's 15 maps are drawn from a CPU generator seeded with that face's seed, so a
face's result depends only on the face and its seed, not on the device, the call or its batch.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.spec import ModelSpec, ReleaseAsset, WeightsSource

NEGATIVE_SLOPE = 0.2
DEMODULATION_EPS = 1e-8


def bilinear(x: torch.Tensor, scale: float) -> torch.Tensor:
    # Every up- and down-sampling in the clean architecture is this (downsampling too: not avgpool).
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


def leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, NEGATIVE_SLOPE)


def channels_per_size(channel_multiplier: int, narrow: float) -> dict[int, int]:
    """StyleGAN2's channels per resolution, scaled by `narrow` (GFPGAN's U-Net uses narrow / 2)."""
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier, 128: 128 * channel_multiplier,
            256: 64 * channel_multiplier, 512: 32 * channel_multiplier, 1024: 16 * channel_multiplier}
    return {size: int(c * narrow) for size, c in base.items()}


class ResBlock(nn.Module):
    """conv3x3 -> leaky -> bilinear resample -> conv3x3 -> leaky, plus resampled x through a 1x1 skip."""

    def __init__(self, in_channels: int, out_channels: int, scale: float):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = leaky(self.conv2(bilinear(leaky(self.conv1(x)), self.scale)))
        return out + self.skip(bilinear(x, self.scale))


def _weight_to_file_shape(module: nn.Module, state: dict, prefix: str, _metadata) -> None:
    state[prefix + "weight"] = state[prefix + "weight"][None]


def _weight_from_file_shape(module: nn.Module, state: dict, prefix: str, *_args) -> None:
    weight = state.get(prefix + "weight")
    if weight is not None and weight.dim() == 5:
        state[prefix + "weight"] = weight[0]


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated convolution: the weight scaled per input channel by a style, optionally
    demodulated (unit norm per output channel), applied as one grouped convolution over the batch.

    The file stores the weight as [1, out, in, k, k] (the original broadcasts it over the batch); the
    module holds it as an ordinary 4-D [out, in, k, k] conv weight so that the whole network converts
    to channels_last (torch refuses that for a 5-D tensor). Two state-dict hooks keep the published
    shape on both sides: state_dict() writes [1, out, in, k, k], load_state_dict() accepts it.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_style_feat: int,
                 demodulate: bool, upsample: bool = False):
        super().__init__()
        self.modulation = nn.Linear(num_style_feat, in_channels)
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels, kernel_size, kernel_size))
        self.demodulate = demodulate
        self.upsample = upsample
        self.register_state_dict_post_hook(_weight_to_file_shape)
        self.register_load_state_dict_pre_hook(_weight_from_file_shape)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        out_channels, _, k, _ = self.weight.shape
        # The per-face weight is made in float32 whatever the network's dtype (a no-op in float32):
        # in float16 the squares of small weights fall below the normal range and the demodulation
        # loses precision, and the eps 1e-8 would round to 0.
        weight = self.weight[None].float() * self.modulation(style).float().reshape(b, 1, c, 1, 1)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4], keepdim=True) + DEMODULATION_EPS)
        weight = weight.to(x.dtype)
        if self.upsample:
            x = bilinear(x, 2)
        h, w = x.shape[2:]
        out = F.conv2d(x.reshape(1, b * c, h, w), weight.reshape(b * out_channels, c, k, k), padding=k // 2, groups=b)
        return out.reshape(b, out_channels, *out.shape[2:])


class StyleConv(nn.Module):
    """Modulated 3x3 conv * sqrt(2), + weight * noise, + bias, leaky ReLU (the original's order)."""

    def __init__(self, in_channels: int, out_channels: int, num_style_feat: int, upsample: bool):
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_channels, out_channels, 3, num_style_feat, True, upsample)
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        out = self.modulated_conv(x, style) * 2**0.5
        return leaky(out + self.weight * noise + self.bias)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB (not demodulated) + bias, plus the previous level's RGB upsampled."""

    def __init__(self, in_channels: int, num_style_feat: int):
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_channels, 3, 1, num_style_feat, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        return out if skip is None else out + bilinear(skip, 2)


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.weight.expand(batch, -1, -1, -1)


def noise_resolutions(log_size: int) -> list[int]:
    """Size of each StyleConv's noise map: 4 for style_conv1, then two per level (8, 8, 16, 16, ...)."""
    return [2 ** ((layer + 5) // 2) for layer in range((log_size - 2) * 2 + 1)]


class StyleGAN2GeneratorCSFT(nn.Module):
    """StyleGAN2's synthesis network with spatial feature transforms after each level's first conv.

    `style_mlp` holds the mapping network's eight linear layers at their published indices (1, 3, ...,
    15): GFPGAN feeds latents directly (input_is_latent=True), so they are never run.
    """

    def __init__(self, out_size: int, num_style_feat: int, num_mlp: int, channel_multiplier: int, narrow: float):
        super().__init__()
        channels = channels_per_size(channel_multiplier, narrow)
        self.log_size = int(math.log2(out_size))
        self.style_mlp = nn.ModuleDict(
            {str(2 * i + 1): nn.Linear(num_style_feat, num_style_feat) for i in range(num_mlp)})
        self.constant_input = ConstantInput(channels[4], 4)
        self.style_conv1 = StyleConv(channels[4], channels[4], num_style_feat, upsample=False)
        self.to_rgb1 = ToRGB(channels[4], num_style_feat)
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_channels = channels[4]
        for level in range(3, self.log_size + 1):
            out_channels = channels[2**level]
            self.style_convs.append(StyleConv(in_channels, out_channels, num_style_feat, upsample=True))
            self.style_convs.append(StyleConv(out_channels, out_channels, num_style_feat, upsample=False))
            self.to_rgbs.append(ToRGB(out_channels, num_style_feat))
            in_channels = out_channels
        self.noises = nn.Module()
        for layer, size in enumerate(noise_resolutions(self.log_size)):
            self.noises.register_buffer(f"noise{layer}", torch.zeros(1, 1, size, size))

    def stored_noise(self) -> list[torch.Tensor]:
        return [getattr(self.noises, f"noise{layer}") for layer in range(len(noise_resolutions(self.log_size)))]

    def forward(self, latent: torch.Tensor, conditions: list[tuple[torch.Tensor, torch.Tensor]],
                noise: list[torch.Tensor]) -> torch.Tensor:
        """latent [B, 2*log_size-2, S]: latent[:,0] -> style_conv1, [:,1] -> to_rgb1, then per level
        (i = 1, 3, ...) [:,i] -> first conv, [:,i+1] -> second conv, [:,i+2] -> to_rgb. noise[0] ->
        style_conv1, noise[i] / noise[i+1] -> the level's two convs."""
        out = self.style_conv1(self.constant_input(latent.shape[0]), latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        for level, (scale, shift) in enumerate(conditions):
            i = 2 * level + 1
            out = self.style_convs[i - 1](out, latent[:, i], noise[i])
            # SFT on the second half of the channels; the first half passes unchanged (sft_half).
            same, transformed = out.split(out.shape[1] // 2, dim=1)
            out = torch.cat([same, transformed * scale + shift], dim=1)
            out = self.style_convs[i](out, latent[:, i + 1], noise[i + 1])
            skip = self.to_rgbs[level](out, latent[:, i + 2], skip)
        return skip


def _sft_head(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), nn.LeakyReLU(NEGATIVE_SLOPE),
                         nn.Conv2d(channels, channels, 3, 1, 1))


class GFPGANv1Clean(nn.Module):
    """The GFPGAN face restorer: a U-Net whose features steer a StyleGAN2 decoder.

    forward(x [B,3,S,S] in [-1,1], noise_seed=None) -> [B,3,S,S] restored face in [-1,1], unclamped.
    noise_seed None: the stored noise maps (deterministic); an int: fresh noise from that seed for
    every face; a sequence: one seed per face. `toRGB` holds the U-Net's intermediate RGB heads, which
    the original runs only for its training losses (return_rgb=True); they are in the file, never run.
    `narrow` scales every width as in the original (the published files: 1).
    """

    def __init__(self, out_size: int = 512, num_style_feat: int = 512, channel_multiplier: int = 2,
                 num_mlp: int = 8, narrow: float = 1):
        super().__init__()
        unet = channels_per_size(channel_multiplier, narrow * 0.5)
        self.log_size = int(math.log2(out_size))
        self.num_style_feat = num_style_feat
        self.conv_body_first = nn.Conv2d(3, unet[out_size], 1)
        down_sizes = [2**i for i in range(self.log_size, 2, -1)]  # 512, 256, ..., 8
        self.conv_body_down = nn.ModuleList(ResBlock(unet[size], unet[size // 2], 0.5) for size in down_sizes)
        self.final_conv = nn.Conv2d(unet[4], unet[4], 3, 1, 1)
        up_sizes = [2**i for i in range(3, self.log_size + 1)]  # 8, 16, ..., 512
        self.conv_body_up = nn.ModuleList(ResBlock(unet[size // 2], unet[size], 2) for size in up_sizes)
        self.toRGB = nn.ModuleList(nn.Conv2d(unet[size], 3, 1) for size in up_sizes)
        num_latent = self.log_size * 2 - 2
        self.final_linear = nn.Linear(unet[4] * 4 * 4, num_latent * num_style_feat)
        self.stylegan_decoder = StyleGAN2GeneratorCSFT(out_size, num_style_feat, num_mlp, channel_multiplier, narrow)
        self.condition_scale = nn.ModuleList(_sft_head(unet[size]) for size in up_sizes)
        self.condition_shift = nn.ModuleList(_sft_head(unet[size]) for size in up_sizes)

    def forward(self, x: torch.Tensor, noise_seed: int | Sequence[int] | None = None) -> torch.Tensor:
        feat = leaky(self.conv_body_first(x))
        unet_skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            unet_skips.append(feat)
        feat = leaky(self.final_conv(feat))
        latent = self.final_linear(feat.flatten(1)).reshape(x.shape[0], -1, self.num_style_feat)
        conditions = []
        for block, scale, shift, skip in zip(self.conv_body_up, self.condition_scale, self.condition_shift,
                                             reversed(unet_skips)):
            feat = block(feat + skip)
            conditions.append((scale(feat), shift(feat)))
        return self.stylegan_decoder(latent, conditions, self.noise(x, noise_seed))

    def noise(self, x: torch.Tensor, noise_seed: int | Sequence[int] | None) -> list[torch.Tensor]:
        """The 15 noise maps for the batch x: the stored ones, or seeded fresh ones ([B,1,r,r])."""
        if noise_seed is None:
            return self.stylegan_decoder.stored_noise()
        seeds = [noise_seed] * x.shape[0] if isinstance(noise_seed, int) else list(noise_seed)
        if len(seeds) != x.shape[0]:
            raise ValueError(f"{len(seeds)} noise seeds for a batch of {x.shape[0]}")
        sizes = noise_resolutions(self.log_size)
        per_face = [seeded_noise(seed, sizes) for seed in seeds]
        return [torch.stack([face[layer] for face in per_face]).to(x.device, x.dtype) for layer in range(len(sizes))]


def seeded_noise(seed: int, sizes: list[int]) -> list[torch.Tensor]:
    """One face's noise maps [1,r,r], standard normal, drawn in layer order from a CPU generator
    (CPU, float32: the same numbers on every device and in every dtype the model runs in)."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(1, size, size, generator=generator) for size in sizes]


_NOTES = ("GFPGANer's network (arch 'clean', channel_multiplier 2): an aligned 512x512 RGB face in [-1,1] "
          "(x/255, then (x-0.5)/0.5) -> restored face in [-1,1], unclamped; the stored noise maps by "
          "default, `noise_seed` for reproducible fresh noise")
_EXTRA = {"face_size": 512, "input_mean": 0.5, "input_std": 0.5, "output_range": (-1.0, 1.0)}
_LICENCE = "Apache-2.0 (TencentARC GFPGAN, code and released weights)"

CHECKPOINTS = [
    ModelSpec(
        name="gfpgan-v1.4",
        family="gfpgan",
        build=GFPGANv1Clean,
        # TencentARC's release asset (the URL GFPGAN's inference_gfpgan.py downloads for v1.4),
        # 348,632,874 bytes; SHA-256 as independent pinning projects list it (also the LFS hash of the
        # HF mirror hacksider/deep-live-cam@880944c).
        weights=WeightsSource("GFPGANv1.4.pth", ReleaseAsset(
            "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",
            sha256="e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad"),
            wrap=("params_ema", "params")),
        half_ok=True,  # bfloat16: uint8 face within 7 of float32, mean 0.8 (benchmarks/bench_gfpgan.py)
        role="face_restorer",
        licence=_LICENCE,
        notes="GFPGAN v1.4 (more detail, more identity change than v1.3); " + _NOTES,
        extra=_EXTRA,
    ),
    ModelSpec(
        name="gfpgan-v1.3",
        family="gfpgan",
        build=GFPGANv1Clean,
        # TencentARC's release asset (inference_gfpgan.py's URL for v1.3), 348,632,874 bytes; SHA-256 as
        # independent pinning projects list it (also the HF mirror alexgenovese/facerestore@d26afe9's).
        weights=WeightsSource("GFPGANv1.3.pth", ReleaseAsset(
            "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.3.pth",
            sha256="c953a88f2727c85c3d9ae72e2bd4846bbaf59fe6972ad94130e23e7017524a70"),
            wrap=("params_ema", "params")),
        half_ok=True,
        role="face_restorer",
        licence=_LICENCE,
        notes="GFPGAN v1.3 (more natural, closer to the input than v1.4); " + _NOTES,
        extra=_EXTRA,
    ),
]
