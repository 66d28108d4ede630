"""carvekit's trimap from a predicted mask (TrimapGenerator; its defaults are carvekit/params.py's).

Values: 0 background, 128 unknown, 255 foreground. Steps, as carvekit (all on uint8 masks):
1. certain foreground f = mask > prob_threshold;
2. unknown = f dilated by a (2*dilation+1)^2 square, minus f;
3. every pixel with 0 < mask <= prob_threshold becomes unknown (soft values are never certain);
4. foreground pixels within `erosion` pixels (3x3 erosion iterated) of a non-foreground pixel
   become unknown.
Morphology follows OpenCV's defaults: outside the image never dilates and never erodes, so
foreground touching the image border is not eroded from that side.
"""
from __future__ import annotations

import torch

from imaging.filters import dilate, erode
from pipeline.carvekit.params import DEFAULTS

BACKGROUND, UNKNOWN, FOREGROUND = 0, 128, 255


def _to_uint8(mask: torch.Tensor) -> torch.Tensor:
    """uint8 masks pass through; float masks in [0,1] are x*255 truncated, as carvekit converts
    its networks' outputs to 'L' images."""
    if mask.dtype == torch.uint8:
        return mask
    if not mask.is_floating_point():
        raise TypeError(f"mask must be uint8 or float in [0,1], got {mask.dtype}")
    return (mask.clamp(0, 1) * 255).to(torch.uint8)


def make_trimap(
    mask: torch.Tensor,
    prob_threshold: int = DEFAULTS.trimap_prob_threshold,
    dilation: int = DEFAULTS.trimap_dilation,
    erosion: int = DEFAULTS.trimap_erosion,
) -> torch.Tensor:
    """carvekit trimap of mask [B,1,H,W] (uint8, or float in [0,1]) -> uint8 [B,1,H,W] in {0,128,255}."""
    mask = _to_uint8(mask)
    certain = mask > prob_threshold
    # float16 holds 0/1 exactly and halves the memory of the pooling passes on the GPU; CPU half
    # kernels are slow, so float32 there.
    work = torch.float16 if mask.is_cuda else torch.float32
    grown = dilate(certain.to(work), 2 * dilation + 1) > 0

    # masked_fill, not boolean indexing: no host sync on the GPU.
    trimap = torch.full_like(mask, BACKGROUND).masked_fill_(grown, UNKNOWN).masked_fill_(certain, FOREGROUND)
    trimap.masked_fill_((mask > 0) & (mask <= prob_threshold), UNKNOWN)

    solid = trimap == FOREGROUND
    # `erosion` iterations of a 3x3 erosion equal one erosion by a (2 erosion + 1) square: the image
    # is a box, so every in-image point of the big window is reachable through in-image 3x3 steps.
    kept = erode(solid.to(work), 2 * erosion + 1) > 0
    return trimap.masked_fill_(solid & ~kept, UNKNOWN)
