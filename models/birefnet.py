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
its entry in models/birefnet_zoo.py, with the evidence for each; for a local folder the weights
themselves are read (models/birefnet_folder.py).

Inputs must have H and W divisible by 32, so the tiles of every stage cover the image exactly.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from models.swin import swin

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

