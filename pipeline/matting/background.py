"""The `matte` task: BackgroundMattingV2 on one image and a clean plate of its background.

The procedure follows the published inference_images.py around MattingRefine: both pictures as RGB,
torchvision's ToTensor (uint8 / 255 in float32), one pair per forward pass; the cut-out it writes for
`--output-types com` is the RGBA PNG cat([fgr * (pha != 0), pha]), converted to uint8 by
torchvision's to_pil_image, i.e. x.mul(255).byte(): truncation, not rounding (torchvision 0.8.1, the
repo's pinned version). Its alpha (`pha`) goes through the same conversion.

Two things the scripts do not do: they require H and W to be multiples of 4 (the model asserts); here
both pictures are padded on the right and bottom by replicating their last row/column (the same in the
image and the plate, so the padding looks like background) and the outputs are cropped back; the same
padding brings an image too small for the coarse pass (a side under 1 / backbone_scale, where the
original fails) up to a size that has one. And the preset: HD (backbone_scale 0.25, 80,000 refined
pixels) or 4K (0.125, 320,000), as the authors recommend (doc/model_usage.md), chosen by the image's
size unless the caller names one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from imaging.tensors import in_model_format
from models.bmv2 import PATCH, RefineMode, RefineParams

Preset = Literal["auto", "hd", "4k"]
HD_PIXELS = 1920 * 1080


@dataclass(frozen=True)
class PresetKnobs:
    backbone_scale: float
    sample_pixels: int


PRESETS: dict[str, PresetKnobs] = {
    "hd": PresetKnobs(backbone_scale=0.25, sample_pixels=80_000),
    "4k": PresetKnobs(backbone_scale=0.125, sample_pixels=320_000),
}


@dataclass(frozen=True)
class MatteParams:
    """The knobs of one `matte` job; None means "the preset's"."""

    preset: Preset = "auto"
    refine_mode: RefineMode = RefineParams.mode  # the model's default, sampling (as the scripts')
    backbone_scale: float | None = None
    sample_pixels: int | None = None
    # thresholding only: the model's default (doc/model_usage.md); the scripts' CLI default is 0.7.
    threshold: float = RefineParams.threshold
    # "auto" takes the 4K preset above this many pixels: twice HD, the geometric mean of the HD
    # (2.07 MP) and 4K (8.29 MP) pixel counts, so each preset serves the sizes nearer to its own.
    four_k_above_pixels: int = 2 * HD_PIXELS

    def __post_init__(self) -> None:
        if self.preset not in ("auto", *PRESETS):
            raise ValueError(f"preset must be one of {('auto', *PRESETS)}, got {self.preset!r}")


class PlateSizeMismatch(ValueError):
    """The background plate and the image differ in size (the message is for the caller)."""

    def __init__(self, image_size: tuple[int, int], plate_size: tuple[int, int]):
        self.image_size, self.plate_size = image_size, plate_size
        super().__init__(f"the background plate is {plate_size[0]}x{plate_size[1]} but the image is "
                         f"{image_size[0]}x{image_size[1]} (width x height); they must be the same size")


@dataclass
class Matte:
    rgba: np.ndarray  # HxWx4 uint8: inference_images.py's `com`, [fgr * (pha != 0), pha]
    alpha: np.ndarray  # HxW uint8: its `pha`
    preset: str  # the preset the knobs started from ("hd" or "4k")
    refine: RefineParams  # what the network ran with


def choose_preset(params: MatteParams, height: int, width: int) -> str:
    if params.preset != "auto":
        return params.preset
    return "4k" if height * width > params.four_k_above_pixels else "hd"


def refine_params(params: MatteParams, height: int, width: int) -> tuple[str, RefineParams]:
    """The preset for an image of this size, and the network's knobs: the preset's, then the job's."""
    preset = choose_preset(params, height, width)
    knobs = PRESETS[preset]
    return preset, RefineParams(
        backbone_scale=knobs.backbone_scale if params.backbone_scale is None else params.backbone_scale,
        mode=params.refine_mode,
        sample_pixels=knobs.sample_pixels if params.sample_pixels is None else params.sample_pixels,
        threshold=params.threshold,
    )


def coarse_min_side(backbone_scale: float) -> int:
    """The shortest side whose coarse pass (floor(side * backbone_scale), as the model computes it)
    keeps at least one pixel: a shorter image has nothing for the backbone (the original fails)."""
    side = math.ceil(1 / backbone_scale)
    while math.floor(side * backbone_scale) < 1:
        side += 1
    return side


def pad_to_multiple(x: torch.Tensor, multiple: int = PATCH, min_side: int = 1) -> torch.Tensor:
    """[B,C,H,W] float, replicated on the right and bottom up to multiples of `multiple`, and to at
    least `min_side` (a tiny image is matted as if its last row and column went on; cropped back after)."""
    height, width = x.shape[2:]
    pad_h, pad_w = (max(side, min_side) - side for side in (height, width))
    pad_h, pad_w = pad_h + -(height + pad_h) % multiple, pad_w + -(width + pad_w) % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


def to_u8(x: torch.Tensor) -> torch.Tensor:
    """to_pil_image's float -> uint8 of torchvision 0.8.1: x.mul(255).byte(), in float32 (truncates)."""
    return x.float().mul(255).to(torch.uint8)


def compose_cutout(pha: torch.Tensor, fgr: torch.Tensor) -> torch.Tensor:
    """[B,1,H,W] alpha and [B,3,H,W] foreground in [0,1] -> uint8 RGBA [B,4,H,W] as the published
    `com`: the predicted foreground where alpha != 0, black where it is 0; alpha as the 4th channel."""
    pha, fgr = pha.float(), fgr.float()
    return to_u8(torch.cat([fgr * pha.ne(0), pha], dim=1))


def image_tensor(pixels: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """HxWx3 uint8 -> [1,3,H,W] in [0,1] (ToTensor: /255 in float32, then the model's dtype)."""
    # np.require copies read-only arrays (decoded images often are), which torch cannot wrap safely.
    x = torch.from_numpy(np.require(pixels, requirements=("C", "W"))).to(device).permute(2, 0, 1)[None]
    return x.float().div(255).to(dtype)


def check_pair(image: np.ndarray, plate: np.ndarray) -> None:
    for name, pixels in (("image", image), ("plate", plate)):
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"the {name} must be HxWx3 uint8 RGB, got {pixels.dtype} {pixels.shape}")
    if image.shape != plate.shape:
        raise PlateSizeMismatch((image.shape[1], image.shape[0]), (plate.shape[1], plate.shape[0]))


def predict(model: nn.Module, image: np.ndarray, plate: np.ndarray,
            refine: RefineParams) -> tuple[torch.Tensor, torch.Tensor]:
    """(pha [1,1,H,W], fgr [1,3,H,W]) on the model's device for HxWx3 uint8 image and plate."""
    param = next(model.parameters())
    height, width = image.shape[:2]
    min_side = coarse_min_side(refine.backbone_scale)
    src, bgr = (pad_to_multiple(image_tensor(p, param.device, param.dtype), PATCH, min_side) for p in (image, plate))
    src, bgr = in_model_format(src, model), in_model_format(bgr, model)
    with torch.inference_mode():
        out = model(src, bgr, refine)
    return out.pha[..., :height, :width], out.fgr[..., :height, :width]


@dataclass
class DeviceMatte:
    rgba: torch.Tensor  # [4,H,W] uint8 on the model's device: `com` as a tensor
    preset: str
    refine: RefineParams


def device_matte(model: nn.Module, image: np.ndarray, plate: np.ndarray,
                 params: MatteParams = MatteParams()) -> DeviceMatte:
    """The RGBA cut-out of one HxWx3 uint8 RGB image and its plate (same size, else
    PlateSizeMismatch), left on the model's device."""
    check_pair(image, plate)
    preset, refine = refine_params(params, *image.shape[:2])
    pha, fgr = predict(model, image, plate, refine)
    return DeviceMatte(compose_cutout(pha, fgr)[0], preset, refine)


def matte(model: nn.Module, image: np.ndarray, plate: np.ndarray, params: MatteParams = MatteParams()) -> Matte:
    """The `matte` procedure as inference_images.py writes it: the RGBA cut-out and the alpha, both
    uint8 at the image's size, in host memory."""
    result = device_matte(model, image, plate, params)
    rgba = result.rgba.permute(1, 2, 0).cpu().numpy()
    return Matte(rgba=rgba, alpha=rgba[..., 3].copy(), preset=result.preset, refine=result.refine)
