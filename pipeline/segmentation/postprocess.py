"""Mattes at network size to the pixels of the answer, on the matte's device.

The matte is resized to the original resolution on the device (bilinear), quantised to 8 bits, and
multiplied by the image's own alpha when it had one, so that what was transparent stays transparent.
"""
from __future__ import annotations

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
