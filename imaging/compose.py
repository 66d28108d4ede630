"""carvekit's final compositing: `apply_mask` (RGBA cut-out) and `extract_alpha_channel`.

carvekit does not premultiply or keep the original colours under a soft mask: it composites
the image over a grey (130,130,130) background with the mask, and stores the mask as alpha.
So semi-transparent pixels carry colour blended toward grey, fully transparent ones are grey.
"""
from __future__ import annotations

import torch

GREY = 130


def carvekit_apply_mask(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """image uint8 [B,3,H,W], mask uint8 [B,1,H,W] -> uint8 RGBA [B,4,H,W] as carvekit's apply_mask.

    RGB = trunc(a*fg + (1-a)*130) with a = mask/255 in float32, evaluated in that order: carvekit
    writes the float32 result into a uint8 tensor, which truncates toward zero (not rounding).
    Where mask == 255 the result is exactly fg. A = mask (a*255 truncated gives back every
    uint8 value in float32).
    """
    a = mask.float() / 255
    rgb = a * image.float() + (1 - a) * GREY
    return torch.cat([rgb.to(torch.uint8), mask], dim=1)


def carvekit_extract_alpha(rgba: torch.Tensor) -> torch.Tensor:
    """uint8 RGBA [B,4,H,W] -> uint8 RGBA [B,4,H,W] as carvekit's extract_alpha_channel.

    carvekit pastes the alpha channel, masked by itself, onto opaque black: Pillow's integer
    blend gives RGB = a*a/255 rounded to nearest (its exact shift formula below), A = 255.
    """
    a = rgba[:, 3:4].to(torch.int32)
    t = a * a + 128
    grey = ((t + (t >> 8)) >> 8).to(torch.uint8)
    return torch.cat([grey.expand(-1, 3, -1, -1), torch.full_like(grey, 255)], dim=1)
