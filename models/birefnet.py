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
CHECKPOINTS below.

Inputs must have H and W divisible by 32, so the tiles of every stage cover the image exactly.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from models.spec import Download, ModelSpec, Preprocess, WeightsSource
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


def _spec(
    name: str,
    backbone: Backbone,
    legacy_patch_order: bool,
    size: tuple[int, int],
    notes: str,
    filename: str | None = None,
    hf_repo: str | None = None,
    revision: str | None = None,
    licence: str = "",
) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="birefnet",
        build=lambda: BiRefNet(backbone, legacy_patch_order),
        weights=WeightsSource(
            filename or f"{name}/{CHECKPOINT_FILE}",
            Download(hf_repo, CHECKPOINT_FILE, revision=revision) if hf_repo else None,
            file_format="safetensors",
        ),
        preprocess=Preprocess(size=size, resample="bilinear", backend="torch"),
        to_matte=birefnet_matte,
        default_foreground="blur_fusion",  # the model cards' refine_foreground
        licence=licence,
        notes=notes,
        extra={"backbone": backbone, "legacy_patch_order": legacy_patch_order},
    )


def _hub(name: str, backbone: Backbone, legacy_patch_order: bool, size: tuple[int, int], notes: str) -> ModelSpec:
    licence = "CC BY-NC 4.0 (BRIA; commercial use needs BRIA's licence)" if name.startswith("briaai/") else "MIT"
    return _spec(name, backbone, legacy_patch_order, size, notes, hf_repo=name, licence=licence)


# Patch order per checkpoint. RMBG-2.0: its published birefnet.py (Decoder.get_patches_batch) is legacy.
# ZhengPeng7's Hugging Face repos now all ship the einops image2patches code, but a checkpoint keeps the
# order of the code it was trained with, and the GitHub history dates the switch to 2024-11-05 (commit
# 5198d3f): weights uploaded before it (general 2024-07, lite 2024-08, lite-2K 2024-09, matting 2024-10,
# portrait 2024-05) are legacy; BiRefNet_HR (trained in January 2025, released 2025-02-01) uses the
# current order.
CHECKPOINTS = [
    _hub("briaai/RMBG-2.0", "swin_v1_l", True, (1024, 1024),
         "BRIA RMBG-2.0 (non-commercial licence): bilinear 1024x1024, /255, ImageNet mean/std; "
         "matte = sigmoid(logits)"),
    _hub("ZhengPeng7/BiRefNet", "swin_v1_l", True, (1024, 1024),
         "BiRefNet general use (Swin-L, weights of 2024-07): 1024x1024; matte = sigmoid(logits)"),
    _hub("ZhengPeng7/BiRefNet_lite", "swin_v1_t", True, (1024, 1024),
         "BiRefNet lite (Swin-T, weights of 2024-08-02): 1024x1024; matte = sigmoid(logits)"),
    _hub("ZhengPeng7/BiRefNet-matting", "swin_v1_l", True, (1024, 1024),
         "BiRefNet general matting (Swin-L, weights of 2024-10): 1024x1024; matte = sigmoid(logits)"),
    _hub("ZhengPeng7/BiRefNet-portrait", "swin_v1_l", True, (1024, 1024),
         "BiRefNet portrait matting (Swin-L, weights of 2024-05): 1024x1024; matte = sigmoid(logits)"),
    _hub("ZhengPeng7/BiRefNet_HR", "swin_v1_l", False, (2048, 2048),
         "BiRefNet HR (Swin-L, trained at 2048x2048, released 2025-02): current patch order; matte = sigmoid(logits)"),
    _hub("ZhengPeng7/BiRefNet_lite-2K", "swin_v1_t", True, (1440, 2560),
         "BiRefNet lite 2K (Swin-T, weights of 2024-09): trained at 2560 wide x 1440 high; matte = sigmoid(logits)"),
]


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


def spec_from_folder(folder: Path, legacy_patch_order: bool = False, name: str | None = None) -> ModelSpec:
    """A spec for a local folder holding a BiRefNet `model.safetensors` (and optionally its configs).

    The backbone comes from the tensor shapes. The published config.json files (RMBG-2.0 and all
    ZhengPeng7 repos) record only `_name_or_path`, `architectures`, `auto_map`, `custom_pipelines` and
    `bb_pretrained`, no input size; so the size is taken from an `image_size`/`size` entry of
    config.json or preprocessor_config.json (RMBG-2.0 publishes one with size 1024x1024) when present,
    else 1024x1024. The patch order cannot be read from the weights: it defaults to the current
    (einops) order of ZhengPeng7's code, pass `legacy_patch_order=True` for weights trained with the
    pre-2024-11-05 code or RMBG-2.0's.
    """
    from safetensors import safe_open

    folder = Path(folder).expanduser().resolve()
    weights = folder / CHECKPOINT_FILE
    with safe_open(str(weights), framework="pt") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
    size = None
    for config_name in ("config.json", "preprocessor_config.json"):
        path = folder / config_name
        if size is None and path.is_file():
            size = _size_from(json.loads(path.read_text()))
    size = size or (1024, 1024)
    backbone = _backbone_of(shapes)
    return _spec(
        name or f"local:{folder}",
        backbone,
        legacy_patch_order,
        size,
        f"local BiRefNet folder {folder} ({backbone}, {size[1]}x{size[0]})",
        # An absolute path: the registry joins it under WEIGHTS_DIR, which leaves it unchanged.
        filename=str(weights),
    )
