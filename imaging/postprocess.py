"""Mattes at network size to the pixels of the answer, on the matte's device.

The matte is resized to the original resolution on the device (bilinear), quantised to 8 bits, and
multiplied by the image's own alpha when it had one, so that what was transparent stays transparent.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from imaging.compose import carvekit_apply_mask
from imaging.decode import DecodedImage
from imaging.foreground import estimate_foreground


def full_size_alpha(matte: torch.Tensor, image: DecodedImage) -> torch.Tensor:
    """[H,W] uint8 alpha on the matte's device from a [1,1,h,w] matte in [0,1]."""
    width, height = image.size
    if matte.shape[-2:] != (height, width):
        # In place from here on: at 12 MP each float temporary is 48 MB of memory traffic.
        alpha = F.interpolate(matte, size=(height, width), mode="bilinear", align_corners=False)[0, 0]
        alpha.mul_(255)
    else:
        alpha = matte[0, 0].mul(255)
    return alpha.round_().clamp_(0, 255).to(torch.uint8)


def keep_own_alpha(alpha: torch.Tensor, image: DecodedImage) -> torch.Tensor:
    """What the uploaded image had transparent stays transparent: alpha * own alpha."""
    if image.alpha is None:
        return alpha
    own = torch.from_numpy(image.alpha).to(alpha.device, non_blocking=True).float()
    return (alpha.float() * own / 255).round_().to(torch.uint8)


def foreground_colour(rgb: torch.Tensor, alpha: torch.Tensor, method: str) -> torch.Tensor:
    """[3,H,W] colour of the cut-out: the photo's own pixels (none), carvekit's blend toward grey under
    the matte (carvekit), or a float estimate of the foreground's colour free of the old background's
    tint at the edges (blur_fusion)."""
    if method == "none":
        return rgb
    if method == "carvekit":
        return carvekit_apply_mask(rgb[None], alpha[None, None])[0, :3]
    image = rgb[None].float() / 255
    return estimate_foreground(image, alpha[None, None].float() / 255)[0]


def parse_color(value: str) -> tuple[int, int, int, int]:
    """#RRGGBB or #RRGGBBAA to an RGBA tuple."""
    digits = value.lstrip("#")
    rgba = [int(digits[i:i + 2], 16) for i in range(0, len(digits), 2)]
    return (*rgba, 255)[:4] if len(rgba) == 3 else tuple(rgba)


def cutout(rgb: torch.Tensor, alpha: torch.Tensor, bg_color: str | None) -> np.ndarray:
    """HxWx4 RGBA (or HxWx3 RGB on an opaque background colour) uint8 from [3,H,W] colour and [H,W] alpha.

    `rgb` is uint8 or float in [0,1] (a decontaminated foreground).
    """
    if bg_color is None and rgb.dtype == torch.uint8:  # the common case: no arithmetic on 12 MP
        # Joined along the last dim of the HxWxC views: one pass writes the HxWx4 array the encoder
        # takes as it is (a CHW concatenation would need a second, transposing copy).
        return torch.cat([rgb.permute(1, 2, 0), alpha[..., None]], 2).cpu().numpy()
    colour = rgb.float() / 255 if rgb.dtype == torch.uint8 else rgb.float()
    if bg_color is None:
        pixels = torch.cat([colour.mul(255).round_().to(torch.uint8), alpha[None]], 0)
    else:
        r, g, b, a = parse_color(bg_color)
        weight = alpha[None].float() / 255
        background = torch.tensor([r, g, b], device=rgb.device, dtype=torch.float32).view(3, 1, 1) / 255
        under = (a / 255) * (1 - weight)  # how much of the background shows
        out_alpha = weight + under
        mixed = (colour * weight + background * under) / out_alpha.clamp_min(1e-6)
        pixels = mixed.mul(255).round_().clamp_(0, 255).to(torch.uint8)
        if a != 255:
            pixels = torch.cat([pixels, out_alpha.mul(255).round_().to(torch.uint8)], 0)
    return pixels.permute(1, 2, 0).contiguous().cpu().numpy()
