"""BiRefNet (Zheng et al. 2024) and BRIA RMBG-2.0, with the module names of ZhengPeng7/BiRefNet.

One network serves every published checkpoint of the family: a Swin v1 backbone (models/swin.py) run on
the image and on its half-size copy (`mul_scl_ipt='cat'`), the encoder features resized to the deepest
one and squeezed by one BasicDecBlk (`cxt`, `squeeze_module`), and a decoder whose four stages each
take, besides the upsampled deeper stage and a lateral skip, the normalised image cut into a grid of
tiles of the stage's size and stacked on channels (`dec_ipt_split`). Stages use deformable-ASPP
decoder blocks and gradient attention (`out_ref`). The settings are those of the checkpoints' config.py.

The tile stacking order is the one thing the checkpoints disagree on. The code RMBG-2.0 ships and
ZhengPeng7's code before 2024-11-05 (`Decoder.get_patches_batch`) stack tiles column-major with the
colour innermost, channel (wg * HG + hg) * 3 + c; the einops `image2patches` that replaced it uses
c * HG * WG + hg * WG + wg. A checkpoint only works with the order it was trained with, recorded in
CHECKPOINTS below, with the evidence for each; for a local folder the weights themselves are read
(`guess_patch_order`).

Inputs must have H and W divisible by 32, so the tiles of every stage cover the image exactly.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from models.spec import Download, ModelSpec, Preprocess, SizeRange, StateDict, WeightsSource
from models.swin import SWIN_CONFIGS, swin

Backbone = Literal["swin_v1_l", "swin_v1_t"]


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    # Every resize in BiRefNet is bilinear with align_corners=True.
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


def image_tiles(image: torch.Tensor, size: tuple[int, int] | torch.Size, legacy_order: bool) -> torch.Tensor:
    """Cut `image` (B, C, H, W) into a grid of tiles of `size` and stack them on channels.

    Current order ('b c (hg h) (wg w) -> b (c hg wg) h w'), or with `legacy_order` the order of
    get_patches_batch ('b (wg hg c) h w'): for each column of tiles, each tile top to bottom.
    """
    b, c, height, width = image.shape
    h, w = size
    hg, wg = height // h, width // w
    tiles = image.view(b, c, hg, h, wg, w)
    tiles = tiles.permute(0, 4, 2, 1, 3, 5) if legacy_order else tiles.permute(0, 1, 2, 4, 3, 5)
    return tiles.reshape(b, c * hg * wg, h, w)


class DeformableConv2d(nn.Module):
    """Modulated deformable conv (DCNv2): offsets and a 2*sigmoid modulation predicted from the input."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int):
        super().__init__()
        self.padding = padding
        taps = kernel_size * kernel_size
        self.offset_conv = nn.Conv2d(in_channels, 2 * taps, kernel_size, padding=padding)
        self.modulator_conv = nn.Conv2d(in_channels, taps, kernel_size, padding=padding)
        self.regular_conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = self.offset_conv(x)
        mask = 2.0 * torch.sigmoid(self.modulator_conv(x))
        # torchvision's kernel has no bfloat16 implementation, and in float16 it computes the sampling
        # coordinates in float16, quantised to 1/8-1/2 pixel on the 256-512 px maps of the last
        # decoder stage: sample in float32 whatever the model's dtype.
        out = deform_conv2d(
            x.float(),
            offset.float(),
            self.regular_conv.weight.float(),
            padding=(self.padding, self.padding),
            mask=mask.float(),
        )
        return out.to(x.dtype)


class DeformableASPPBranch(nn.Module):
    """_ASPPModuleDeformable: deformable conv -> BN -> ReLU."""

    def __init__(self, in_channels: int, planes: int, kernel_size: int, padding: int):
        super().__init__()
        self.atrous_conv = DeformableConv2d(in_channels, planes, kernel_size, padding)
        self.bn = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.atrous_conv(x)))


class ASPPDeformable(nn.Module):
    """Deformable ASPP: a 1x1 branch, deformable 1/3/7 branches and an image-pooling branch, fused by 1x1."""

    def __init__(self, in_channels: int, out_channels: int | None = None, kernel_sizes: tuple[int, ...] = (1, 3, 7)):
        super().__init__()
        out_channels = out_channels or in_channels
        planes = 256
        self.aspp1 = DeformableASPPBranch(in_channels, planes, 1, padding=0)
        self.aspp_deforms = nn.ModuleList(
            DeformableASPPBranch(in_channels, planes, k, padding=k // 2) for k in kernel_sizes
        )
        self.global_avg_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Conv2d(in_channels, planes, 1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
        )
        self.conv1 = nn.Conv2d(planes * (2 + len(kernel_sizes)), out_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.aspp1(x), *(branch(x) for branch in self.aspp_deforms)]
        # Bilinear resize of a 1x1 map with align_corners=True copies the value: a broadcast is exact.
        pooled = self.global_avg_pool(x).expand(-1, -1, *branches[0].shape[2:])
        return self.relu(self.bn1(self.conv1(torch.cat([*branches, pooled], dim=1))))


class BasicDecBlk(nn.Module):
    """conv3x3 -> BN -> ReLU -> deformable ASPP -> conv3x3 -> BN, through 64 inner channels."""

    def __init__(self, in_channels: int, out_channels: int, inter_channels: int = 64):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, inter_channels, 3, padding=1)
        self.bn_in = nn.BatchNorm2d(inter_channels)
        self.relu_in = nn.ReLU(inplace=True)
        self.dec_att = ASPPDeformable(inter_channels)
        self.conv_out = nn.Conv2d(inter_channels, out_channels, 3, padding=1)
        self.bn_out = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dec_att(self.relu_in(self.bn_in(self.conv_in(x))))
        return self.bn_out(self.conv_out(x))


class BasicLatBlk(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SimpleConvs(nn.Module):
    """The image-tile encoder of each decoder stage: two 3x3 convs, no activation."""

    def __init__(self, in_channels: int, out_channels: int, inter_channels: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, inter_channels, 3, padding=1)
        self.conv_out = nn.Conv2d(inter_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv1(x))


def gradient_convs(in_channels: int, inner: int = 16) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, inner, 3, padding=1), nn.BatchNorm2d(inner), nn.ReLU(inplace=True))


def head(in_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, 1, 1))


class Decoder(nn.Module):
    def __init__(self, channels: list[int], legacy_patch_order: bool = False):
        super().__init__()
        self.legacy_patch_order = legacy_patch_order
        # Tiles of the image at 1/32, 1/16, 1/8, 1/4 and full size: 32^2, 16^2, 8^2, 4^2, 1 tiles of 3 channels.
        ipt_in = [3 * 4**k for k in (5, 4, 3, 2, 0)]
        ipt_out = [c // 8 for c in channels]
        self.ipt_blk5 = SimpleConvs(ipt_in[0], ipt_out[0])
        self.ipt_blk4 = SimpleConvs(ipt_in[1], ipt_out[0])
        self.ipt_blk3 = SimpleConvs(ipt_in[2], ipt_out[1])
        self.ipt_blk2 = SimpleConvs(ipt_in[3], ipt_out[2])
        self.ipt_blk1 = SimpleConvs(ipt_in[4], ipt_out[3])

        dec_out = [*channels[1:], channels[-1] // 2]
        self.decoder_block4 = BasicDecBlk(channels[0] + ipt_out[0], dec_out[0])
        self.decoder_block3 = BasicDecBlk(channels[1] + ipt_out[0], dec_out[1])
        self.decoder_block2 = BasicDecBlk(channels[2] + ipt_out[1], dec_out[2])
        self.decoder_block1 = BasicDecBlk(channels[3] + ipt_out[2], dec_out[3])
        self.conv_out1 = head(dec_out[3] + ipt_out[3])

        self.lateral_block4 = BasicLatBlk(channels[1], dec_out[0])
        self.lateral_block3 = BasicLatBlk(channels[2], dec_out[1])
        self.lateral_block2 = BasicLatBlk(channels[3], dec_out[2])

        # Multi-scale supervision heads: RMBG-2.0 returns them in eval too (its aux outputs).
        self.conv_ms_spvn_4 = nn.Conv2d(dec_out[0], 1, 1)
        self.conv_ms_spvn_3 = nn.Conv2d(dec_out[1], 1, 1)
        self.conv_ms_spvn_2 = nn.Conv2d(dec_out[2], 1, 1)

        self.gdt_convs_4 = gradient_convs(dec_out[0])
        self.gdt_convs_3 = gradient_convs(dec_out[1])
        self.gdt_convs_2 = gradient_convs(dec_out[2])
        # Gradient-map predictors: trained with the gradient loss only, never used at inference, but
        # part of every published checkpoint.
        self.gdt_convs_pred_4 = head(16)
        self.gdt_convs_pred_3 = head(16)
        self.gdt_convs_pred_2 = head(16)
        self.gdt_convs_attn_4 = head(16)
        self.gdt_convs_attn_3 = head(16)
        self.gdt_convs_attn_2 = head(16)

    def with_tiles(self, p: torch.Tensor, image: torch.Tensor, ipt_blk: nn.Module) -> torch.Tensor:
        tiles = image_tiles(image, p.shape[2:], self.legacy_patch_order)
        return torch.cat([p, ipt_blk(tiles)], dim=1)

    def forward(
        self, features: tuple[torch.Tensor, ...], aux: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        x, x1, x2, x3, x4 = features
        aux_outs = []

        p4 = self.decoder_block4(self.with_tiles(x4, x, self.ipt_blk5))
        if aux:
            aux_outs.append(self.conv_ms_spvn_4(p4))
        p4 = p4 * self.gdt_convs_attn_4(self.gdt_convs_4(p4)).sigmoid()

        p3 = resize(p4, x3.shape[2:]) + self.lateral_block4(x3)
        p3 = self.decoder_block3(self.with_tiles(p3, x, self.ipt_blk4))
        if aux:
            aux_outs.append(self.conv_ms_spvn_3(p3))
        p3 = p3 * self.gdt_convs_attn_3(self.gdt_convs_3(p3)).sigmoid()

        p2 = resize(p3, x2.shape[2:]) + self.lateral_block3(x2)
        p2 = self.decoder_block2(self.with_tiles(p2, x, self.ipt_blk3))
        if aux:
            aux_outs.append(self.conv_ms_spvn_2(p2))
        p2 = p2 * self.gdt_convs_attn_2(self.gdt_convs_2(p2)).sigmoid()

        p1 = resize(p2, x1.shape[2:]) + self.lateral_block2(x1)
        p1 = self.decoder_block1(self.with_tiles(p1, x, self.ipt_blk2))
        p1 = resize(p1, x.shape[2:])
        logits = self.conv_out1(self.with_tiles(p1, x, self.ipt_blk1))
        return (logits, aux_outs) if aux else logits


class BiRefNet(nn.Module):
    """forward(x) -> logits (B, 1, H, W) of the final prediction; x ImageNet-normalised, H, W % 32 == 0."""

    def __init__(self, backbone: Backbone = "swin_v1_l", legacy_patch_order: bool = False):
        super().__init__()
        self.bb = swin(backbone)
        # 'cat' multi-scale input doubles the channels of every stage; deepest first.
        channels = [2 * c for c in reversed(self.bb.num_features)]
        cxt = channels[1:][::-1]  # x1, x2, x3 concatenated before x4
        self.squeeze_module = nn.Sequential(BasicDecBlk(channels[0] + sum(cxt), channels[0]))
        self.decoder = Decoder(channels, legacy_patch_order)

    @property
    def legacy_patch_order(self) -> bool:
        return self.decoder.legacy_patch_order

    @legacy_patch_order.setter
    def legacy_patch_order(self, value: bool) -> None:
        self.decoder.legacy_patch_order = value

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h, w = x.shape[2:]
        if h % 32 or w % 32:
            raise ValueError(f"BiRefNet needs H and W divisible by 32, got {h}x{w}")
        full = self.bb(x)
        half = self.bb(resize(x, (h // 2, w // 2)))
        x1, x2, x3, x4 = (torch.cat([f, resize(g, f.shape[2:])], dim=1) for f, g in zip(full, half))
        size = x4.shape[2:]
        x4 = torch.cat([resize(x1, size), resize(x2, size), resize(x3, size), x4], dim=1)
        return x1, x2, x3, self.squeeze_module(x4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder((x, *self.encode(x)))

    @staticmethod
    def workspace_bytes(batch: int, height: int, width: int) -> int:
        """Scratch memory of one forward beyond the weights, dominated by the float32 column buffer of
        the 7x7 deformable convolution at 1/4 scale (64 channels x 49 taps per output pixel): about
        13 GB per image at 4096 x 4096."""
        return 4 * 64 * 49 * batch * (height // 4) * (width // 4)

    def forward_with_aux(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[m4, m3, m2, logits]: what RMBG-2.0's code returns in eval (the 1/32, 1/16, 1/8 heads, then final)."""
        logits, aux = self.decoder((x, *self.encode(x)), aux=True)
        return [*aux, logits]


def birefnet_matte(logits: torch.Tensor) -> torch.Tensor:
    return logits.float().sigmoid()


CHECKPOINT_FILE = "model.safetensors"
MIT = "MIT"
BRIA_LICENCE = "CC BY-NC 4.0 (BRIA; commercial use needs BRIA's licence)"
# BiRefNet_dynamic(-matting): trained on square-ish inputs from 256 to 2304 px (config.py dynamic_size
# ((512-256, 2048+256), ...) since GitHub f1dd163, 2025-03-10); any multiple of 32 in that range works.
DYNAMIC_SIZES = SizeRange(minimum=256, maximum=2304, multiple=32)
# Wrappers BiRefNet's train.py saves keys under (DDP's "module.", torch.compile's "_orig_mod.");
# its utils.check_state_dict strips them before loading.
TRAINING_PREFIXES = ("module.", "_orig_mod.")


def bare_key(key: str) -> str:
    """The key without DDP / torch.compile prefixes ('module._orig_mod.bb.…' -> 'bb.…')."""
    while key.startswith(TRAINING_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def strip_training_prefixes(state: StateDict, _model: nn.Module) -> StateDict:
    return {bare_key(key): value for key, value in state.items()}


@dataclass(frozen=True)
class Release:
    """One published checkpoint: where it is, what it was trained with, and why we believe so."""

    repo: str  # Hugging Face repo, also the registry name
    backbone: Backbone
    size: tuple[int, int]  # (height, width) it was trained at; the default input size
    legacy_patch_order: bool
    evidence: str  # why this patch order (dates against GitHub 5198d3f of 2024-11-05, code, file dtype)
    revision: str | None  # pinned commit of `repo` holding the file; None: none found yet (not fetchable)
    summary: str
    licence: str = MIT
    sha256: str | None = None  # of the file at `revision`, where a source states it
    filename: str = CHECKPOINT_FILE
    file_format: Literal["torch", "safetensors"] = "safetensors"
    size_range: SizeRange | None = None
    gated: bool = False  # the repo asks users to accept its licence before downloading (HF_TOKEN)


def _spec(
    name: str,
    backbone: Backbone,
    legacy_patch_order: bool,
    preprocess: Preprocess,
    weights: WeightsSource,
    notes: str,
    evidence: str,
    licence: str = MIT,
) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="birefnet",
        build=lambda: BiRefNet(backbone, legacy_patch_order),
        weights=weights,
        preprocess=preprocess,
        to_matte=birefnet_matte,
        remap_keys=strip_training_prefixes,
        default_foreground="blur_fusion",  # the model cards' refine_foreground
        licence=licence,
        notes=notes,
        extra={"backbone": backbone, "legacy_patch_order": legacy_patch_order, "patch_order_evidence": evidence},
    )


def _hub(release: Release) -> ModelSpec:
    order = "legacy (get_patches_batch)" if release.legacy_patch_order else "current (einops image2patches)"
    height, width = release.size
    sizes = (f"any multiple of {release.size_range.multiple} from {release.size_range.minimum} to "
             f"{release.size_range.maximum}, default {width}x{height}" if release.size_range else f"{width}x{height}")
    return _spec(
        release.repo,
        release.backbone,
        release.legacy_patch_order,
        Preprocess(size=release.size, resample="bilinear", backend="torch", size_range=release.size_range),
        WeightsSource(
            f"{release.repo}/{release.filename}",
            Download(release.repo, release.filename, revision=release.revision, sha256=release.sha256,
                     gated=release.gated),
            file_format=release.file_format,
        ),
        f"{release.summary} ({release.backbone}, input {sizes}); patch order {order}: {release.evidence}; "
        f"matte = sigmoid(logits)",
        release.evidence,
        release.licence,
    )


# The zoo: every checkpoint the BiRefNet authors publish on the Hugging Face hub in this architecture, RMBG-2.0,
# and the best-known fine-tunes in the same format. The patch order of each is the order of the code its
# weights were trained (or fine-tuned) with: ZhengPeng7's HF repos all ship the einops code today, but that
# says nothing about weights uploaded before GitHub commit 5198d3f (2024-11-05) switched the order.
# Dates are HF commit dates of model.safetensors unless said otherwise. Files stored in float16 are all of
# 2025 or later: the training code saves half-precision weights only since GitHub 8d5560d (2025-02-01).
ZOO = (
    Release("briaai/RMBG-2.0", "swin_v1_l", (1024, 1024), True,
            "the birefnet.py BRIA publishes with the weights, and loads them with, stacks tiles with "
            "Decoder.get_patches_batch",
            "94cba2d85601297da7332f9882f313bd339d1a1d",
            "BRIA RMBG-2.0 background removal (gated repo: needs HF_TOKEN)", licence=BRIA_LICENCE, gated=True),
    Release("ZhengPeng7/BiRefNet", "swin_v1_l", (1024, 1024), True,
            "model.safetensors of 2024-07 (HF bb4456a, BiRefNet-general-epoch_244, the general model whose "
            "training data includes portrait segmentation), before 2024-11-05",
            "d6b8eb4b58177931680caa666db6bd851001b6b7", "BiRefNet general use"),
    Release("ZhengPeng7/BiRefNet_lite", "swin_v1_t", (1024, 1024), True,
            "weights uploaded 2024-08-02 together with a birefnet.py (HF 224e902) that uses get_patches_batch",
            "aa62cd87eafb9cc43056d08ef3615a14628b831d", "BiRefNet lite, general use",
            sha256="4417d89795250e698c3cb0ae8df15743810065f646f48a694fdfa7ca052d0815"),
    Release("ZhengPeng7/BiRefNet_lite-2K", "swin_v1_t", (1440, 2560), True,
            "uploaded 2024-09-24 (HF 3007575; README news of that day), before 2024-11-05",
            "580b1256cd48294d77201a7b18c7dd81964969ab", "BiRefNet lite for 2560x1440 inputs"),
    Release("ZhengPeng7/BiRefNet-matting", "swin_v1_l", (1024, 1024), True,
            "uploaded 2024-10-06 (HF cd93244, float32), before 2024-11-05",
            "eccde0a8cbdce7ac5fecfeb06340fe7b949e85d9", "BiRefNet general trimap-free matting",
            sha256="a9875de5b1e6c8eb5fdaa8c727a82927ce442cdc87ba3abee6a77e6fa46c25bb"),
    Release("ZhengPeng7/BiRefNet-portrait", "swin_v1_l", (1024, 1024), True,
            "the pinned file was uploaded 2024-07-20 (HF 29b773a); main now holds its 'added mae loss' "
            "update (HF 47a0812, sha256 4a4eb3a5…), which HF's dates also place between 2024-07 and 2024-10: "
            "both before 2024-11-05",
            "29b773a2d23c0a17d3aee75216ccaa84b6315604", "BiRefNet portrait matting"),
    Release("ZhengPeng7/BiRefNet_HR", "swin_v1_l", (2048, 2048), False,
            "trained at 2048 in January 2025 and released 2025-02-01 (GitHub 8d5560d), after 2024-11-05; "
            "stored in float16",
            "a7a562f6fd16021180f2f4348f4de003a2d3d1e1", "BiRefNet HR, general use at high resolution",
            sha256="9d678bafec0b0019fbb073b7fd02f05ede25dc4b15254f23b2fb0be333200c0d"),
    Release("ZhengPeng7/BiRefNet_HR-matting", "swin_v1_l", (2048, 2048), False,
            "released 2025-02-12 (GitHub 52cc3ff), after 2024-11-05; stored in float16",
            "5d6b6f8adcb5b417c871b1d84ceaae9871355b7f", "BiRefNet HR matting",
            sha256="a5a4de698739ea5e0e8bbab28e1b293dde95092b87a442d566cbc585c53cef55"),
    Release("ZhengPeng7/BiRefNet_dynamic", "swin_v1_l", (1024, 1024), False,
            "released 2025-03-31 after dynamic-size training entered the code (GitHub f1dd163, 2025-03-10); "
            "stored in float16",
            "280306042f57b7a33854319da62fd86aaa89ec4c", "BiRefNet dynamic resolution, general use",
            sha256="e3d2e4884e51ff30f0cd630edc6b1e41b06b7f23a0a2a5169f7b7cb33a711c2d", size_range=DYNAMIC_SIZES),
    Release("ZhengPeng7/BiRefNet_dynamic-matting", "swin_v1_l", (1024, 1024), False,
            "uploaded 2025 (months after BiRefNet_dynamic; the official demo added it last); stored in float16",
            None, "BiRefNet dynamic resolution matting", size_range=DYNAMIC_SIZES),
    Release("ZhengPeng7/BiRefNet_512x512", "swin_v1_l", (512, 512), False,
            "uploaded 2025, after BiRefNet_HR (its model card compares with BiRefNet_HR-general-epoch_130); "
            "stored in float16",
            None, "BiRefNet trained at 512x512"),
    Release("ZhengPeng7/BiRefNet_lite-matting", "swin_v1_t", (1024, 1024), False,
            "weak: no upload date found; stored in float16 (about 85 MiB), which the training code writes only "
            "since 2025-02-01",
            "99c33412e3f58e1f33187abdc8c435c645243690", "BiRefNet lite matting"),
    Release("ZhengPeng7/BiRefNet-DIS5K", "swin_v1_l", (1024, 1024), True,
            "uploaded 2024-08-01 (HF 8584085), before 2024-11-05",
            "032e837020877028d8f4210dc1bd7371abdc7f98", "BiRefNet for dichotomous image segmentation (DIS5K)"),
    Release("ZhengPeng7/BiRefNet-HRSOD", "swin_v1_l", (1024, 1024), True,
            "uploaded 2024-08-01 (HF 9c64804), before 2024-11-05",
            "9c64804471c4266336c4b7638626e0301e04250d", "BiRefNet for high-resolution salient object detection"),
    Release("ZhengPeng7/BiRefNet-COD", "swin_v1_l", (1024, 1024), True,
            "on the hub by 2024-08-30 (named in GitHub ce28416's inference notebook), float32, before 2024-11-05",
            None, "BiRefNet for camouflaged object detection"),
    Release("ZhengPeng7/BiRefNet-DIS5K-TR_TEs", "swin_v1_l", (1024, 1024), True,
            "on the hub by 2024-08-30 (named in GitHub ce28416's inference notebook), float32, before 2024-11-05",
            None, "BiRefNet trained on DIS5K train and test sets ('massive')"),
    Release("ZhengPeng7/BiRefNet-legacy", "swin_v1_l", (1024, 1024), True,
            "BiRefNet-massive-epoch_240 uploaded 2024-05-13, converted to safetensors 2024-08-24 (HF 62fffc4); "
            "'legacy' names its training set (no portrait data), not the patch order",
            "fa9100bbce3b12638657facc624dcbcc33f236d8", "BiRefNet general use, without portrait data"),
    Release("joelseytre/toonout", "swin_v1_l", (1024, 1024), False,
            "fine-tuned for 100 epochs from BiRefNet-general-epoch_244 with MatteoKartoon/BiRefNet, a fork of "
            "ZhengPeng7's code of 2025-03-10 whose decoder uses image2patches; the authors' demo runs it in "
            "ZhengPeng7/BiRefNet's current HF code",
            "cbf720eca394edcde66b861a8a8c20fbabe9c748",
            "ToonOut: BiRefNet fine-tuned for anime and illustrations (torch.save file, keys under "
            "'module._orig_mod.')", licence="MIT (weights); training data CC BY 4.0",
            filename="birefnet_finetuned_toonout.pth", file_format="torch"),
    Release("egeorcun/lucida", "swin_v1_l", (1024, 1024), False,
            "fine-tuned from BiRefNet_HR-matting (current order) with a 2026 clone of ZhengPeng7/BiRefNet, "
            "whose decoder uses image2patches",
            "6cbedc9722652dc9a3df91dd871f0c4f3334e922",
            "Lucida: BiRefNet_HR fine-tune for glass, camouflage, text, glow and illustrations, trained at "
            "1024x1024", licence="MIT (weights); training data under mixed licences, see its README"),
)
CHECKPOINTS = [_hub(release) for release in ZOO]


# -- Patch order from the weights -------------------------------------------------------------------------
# The first conv of ipt_blk5..ipt_blk2 sees the image as a grid of tiles stacked on channels; each input
# channel is one colour of one tile, so every channel has a place (colour, tile row, tile column). Natural
# images are stationary: how two pixels co-vary depends on their colours and their offset, not on where
# they are. Training imprints that on the weights: the correlation between the weights of two input
# channels is then largely a function of (colour pair, row offset, column offset) under the true layout,
# and less so under the other one. The share of the channel-correlation variance explained by that
# function (R^2) is the statistic; benchmarks/patch_order_detector.py measures it on ipt_blk weights
# trained here in both orders. (Colour coherence, the correlation of a tile's R, G and B weights, does not
# separate the orders: it favours the legacy grouping whatever the true order, 0.59 vs 0.41 on weights
# trained in the current order; BENCHMARKS.md, "The BiRefNet zoo".)
DETECTOR_BLOCKS = ("ipt_blk5", "ipt_blk4", "ipt_blk3")  # ipt_blk2 has 48 channels: R^2 near its chance level
MIN_SIGNAL = 0.05  # R^2 above chance that a block must show before it counts as evidence
MIN_GAP = 0.2  # relative R^2 gap between the layouts that every block must show to decide


@dataclass(frozen=True)
class PatchOrderGuess:
    """What the ipt_blk weights say. `legacy_patch_order` None: undecided (random or untrained weights)."""

    legacy_patch_order: bool | None
    gap: float  # mean over DETECTOR_BLOCKS of (R2_current - R2_legacy) / (best R2 - chance): > 0 current
    r2: dict[str, tuple[float, float, float]]  # block -> (R2 current layout, R2 legacy layout, chance level)

    def describe(self) -> str:
        figures = ", ".join(f"{b} R2 {c:.3f}/{leg:.3f}" for b, (c, leg, _) in self.r2.items())
        verdict = {None: "undecided", True: "legacy", False: "current"}[self.legacy_patch_order]
        return f"{verdict} from the weights (gap {self.gap:+.2f}; current/legacy {figures})"


def channel_places(channels: int, legacy_order: bool) -> torch.Tensor:
    """(channels, 3): colour, tile row, tile column of each ipt_blk input channel, as image_tiles lays them."""
    tiles = channels // 3
    grid = math.isqrt(tiles)
    index = torch.arange(channels, dtype=torch.float64).reshape(1, 3, grid, grid)
    source = image_tiles(index, (1, 1), legacy_order).flatten().long()  # channel -> c * tiles + row * grid + col
    return torch.stack([source // tiles, source % tiles // grid, source % grid], dim=1)


def stationarity(weight: torch.Tensor, legacy_order: bool) -> tuple[float, float]:
    """(R^2, chance R^2) of the input-channel weight correlations explained by (colours, row and column offset)."""
    vectors = weight.detach().double().transpose(0, 1).flatten(1)
    vectors = vectors - vectors.mean(1, keepdim=True)
    vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
    correlation = vectors @ vectors.T
    places = channel_places(weight.shape[1], legacy_order)
    grid = int(places[:, 1].max()) + 1
    span = 2 * grid - 1
    colours = places[:, None, 0] * 3 + places[None, :, 0]
    rows = places[None, :, 1] - places[:, None, 1] + grid - 1
    cols = places[None, :, 2] - places[:, None, 2] + grid - 1
    off_diagonal = ~torch.eye(len(places), dtype=torch.bool)
    key = ((colours * span + rows) * span + cols)[off_diagonal]
    values = correlation[off_diagonal]
    counts = torch.bincount(key, minlength=9 * span * span).double()
    means = torch.bincount(key, weights=values, minlength=9 * span * span) / counts.clamp_min(1)
    residual = ((values - means[key]) ** 2).sum()
    total = ((values - values.mean()) ** 2).sum()
    chance = float((counts > 0).sum() - 1) / len(values)  # what group means explain in pure noise
    return float(1 - residual / total) if total > 0 else 0.0, chance


def guess_patch_order(ipt_weights: dict[str, torch.Tensor]) -> PatchOrderGuess:
    """The patch order that `{block: decoder.<block>.conv1.weight}` of DETECTOR_BLOCKS was trained with."""
    r2, gaps, decisive = {}, [], True
    for block in DETECTOR_BLOCKS:
        (current, chance), (legacy, _) = (stationarity(ipt_weights[block], order) for order in (False, True))
        r2[block] = (current, legacy, chance)
        signal = max(current, legacy) - chance
        gaps.append((current - legacy) / max(signal, MIN_SIGNAL))
        decisive &= signal >= MIN_SIGNAL and abs(gaps[-1]) >= MIN_GAP
    same_sign = all(g > 0 for g in gaps) or all(g < 0 for g in gaps)
    gap = sum(gaps) / len(gaps)
    return PatchOrderGuess(gap < 0 if decisive and same_sign else None, gap, r2)


# -- Local folders --------------------------------------------------------------------------------------------
def _backbone_of(shapes: dict[str, list[int]]) -> Backbone:
    """The Swin variant whose embedding width and stage-3 depth the checkpoint's tensors have."""
    embed = shapes["bb.patch_embed.proj.weight"][0]
    depth3 = len({k.split(".")[4] for k in shapes if k.startswith("bb.layers.2.blocks.")})
    for name, cfg in SWIN_CONFIGS.items():
        if cfg["embed_dim"] == embed and cfg["depths"][2] == depth3:
            return name  # type: ignore[return-value]
    raise ValueError(f"no supported Swin backbone with embed_dim={embed} and {depth3} blocks in stage 3")


def _size_from(config: dict) -> tuple[int, int] | None:
    """(height, width) from an `image_size` / `size` entry: an int, [h, w], or {"height", "width"}."""
    for key in ("image_size", "size"):
        value = config.get(key)
        if isinstance(value, int):
            return value, value
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return int(value[0]), int(value[1])
        if isinstance(value, dict) and {"height", "width"} <= value.keys():
            return int(value["height"]), int(value["width"])
    return None


# Cached per file version: registry.resolve() builds a folder's spec for every job that names it.
@lru_cache(maxsize=32)
def _backbone_in(weights: Path, mtime_ns: int) -> Backbone:
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        return _backbone_of({bare_key(key): f.get_slice(key).get_shape() for key in f.keys()})


@lru_cache(maxsize=32)
def _patch_order_in(weights: Path, mtime_ns: int) -> PatchOrderGuess:
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        stored = {bare_key(key): key for key in f.keys()}
        return guess_patch_order({block: f.get_tensor(stored[f"decoder.{block}.conv1.weight"])
                                  for block in DETECTOR_BLOCKS})


def read_patch_order(weights: Path) -> PatchOrderGuess:
    """What the ipt_blk weights of a BiRefNet model.safetensors say about its patch order."""
    weights = Path(weights)
    return _patch_order_in(weights, weights.stat().st_mtime_ns)


def spec_from_folder(folder: Path, legacy_patch_order: bool | None = None, name: str | None = None) -> ModelSpec:
    """A spec for a local folder holding a BiRefNet `model.safetensors` (and optionally its configs).

    The backbone comes from the tensor shapes. The published config.json files (RMBG-2.0 and all
    ZhengPeng7 repos) record only `_name_or_path`, `architectures`, `auto_map`, `custom_pipelines` and
    `bb_pretrained`, no input size; so the size is taken from an `image_size`/`size` entry of
    config.json or preprocessor_config.json (RMBG-2.0 publishes one with size 1024x1024) when present,
    else 1024x1024. The patch order, unless given, is read from the weights (`guess_patch_order`); where
    they do not tell, the current (einops) order of ZhengPeng7's code is taken, with a warning.
    """
    folder = Path(folder).expanduser().resolve()
    weights = folder / CHECKPOINT_FILE
    backbone = _backbone_in(weights, weights.stat().st_mtime_ns)
    if legacy_patch_order is not None:
        evidence = "given by the caller"
    elif (guess := read_patch_order(weights)).legacy_patch_order is not None:
        legacy_patch_order, evidence = guess.legacy_patch_order, guess.describe()
    else:
        legacy_patch_order, evidence = False, guess.describe() + "; current order assumed"
        warnings.warn(f"{folder}: the weights do not tell their patch order ({guess.describe()}); assuming the "
                      f"current order; name the folder's order explicitly if its matte looks wrong", stacklevel=2)
    size = None
    for config_name in ("config.json", "preprocessor_config.json"):
        path = folder / config_name
        if size is None and path.is_file():
            size = _size_from(json.loads(path.read_text()))
    size = size or (1024, 1024)
    return _spec(
        name or f"local:{folder}",
        backbone,
        legacy_patch_order,
        Preprocess(size=size, resample="bilinear", backend="torch"),
        # An absolute path: the registry joins it under WEIGHTS_DIR, which leaves it unchanged.
        WeightsSource(str(weights), file_format="safetensors"),
        f"local BiRefNet folder {folder} ({backbone}, {size[1]}x{size[0]})",
        evidence,
        licence="",
    )
