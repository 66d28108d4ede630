"""carvekit's final compositing: `apply_mask` (RGBA cut-out) and `extract_alpha_channel`.

carvekit does not premultiply or keep the original colours under a soft mask: it composites
the image over a grey (130,130,130) background with the mask, and stores the mask as alpha.
So semi-transparent pixels carry colour blended toward grey, fully transparent ones are grey.
"""
from __future__ import annotations

from functools import lru_cache

import torch

GREY = 130


@lru_cache(maxsize=1)
def _apply_mask_table() -> torch.Tensor:
    """uint8 [256 * 256]: carvekit's composite value for every (mask, colour) pair, computed once on
    the CPU, where float32 division is IEEE division."""
    a = torch.arange(256, dtype=torch.float32).div(255).view(256, 1)  # a = mask / 255
    fg = torch.arange(256, dtype=torch.float32).view(1, 256)
    return (a * fg + (1 - a) * GREY).to(torch.uint8).flatten()


@lru_cache(maxsize=8)
def _table_on(device: torch.device) -> torch.Tensor:
    return _apply_mask_table().to(device)


def carvekit_apply_mask(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """image uint8 [B,3,H,W], mask uint8 [B,1,H,W] -> uint8 RGBA [B,4,H,W] as carvekit's apply_mask.

    RGB = trunc(a*fg + (1-a)*130) with a = mask/255 in float32, evaluated in that order: carvekit
    writes the float32 result into a uint8 tensor, which truncates toward zero (not rounding).
    Where mask == 255 the result is exactly fg. A = mask.

    The arithmetic is a lookup in a table computed on the CPU, not done on the device: CUDA divides
    a tensor by a Python scalar as a multiplication by its reciprocal, one bit off for some masks,
    which the truncation turns into values off by one. A gather is exact on every device.
    """
    index = mask.to(torch.int32) * 256 + image.to(torch.int32)  # [B,3,H,W] by broadcasting
    rgb = _table_on(image.device).take(index.long())
    return torch.cat([rgb, mask], dim=1)


def carvekit_extract_alpha(rgba: torch.Tensor) -> torch.Tensor:
    """uint8 RGBA [B,4,H,W] -> uint8 RGBA [B,4,H,W] as carvekit's extract_alpha_channel.

    carvekit pastes the alpha channel, masked by itself, onto opaque black: Pillow's integer
    blend gives RGB = a*a/255 rounded to nearest (its exact shift formula below), A = 255.
    """
    a = rgba[:, 3:4].to(torch.int32)
    t = a * a + 128
    grey = ((t + (t >> 8)) >> 8).to(torch.uint8)
    return torch.cat([grey.expand(-1, 3, -1, -1), torch.full_like(grey, 255)], dim=1)
