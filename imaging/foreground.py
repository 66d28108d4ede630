"""Foreground colour estimation by blur-fusion (BiRefNet's `refine_foreground`).

Forte et al.'s approximate fast foreground estimation, two passes as in Photoroom's
fast-foreground-estimation: with box blurs, estimate a smooth foreground F and background B from
the alpha-weighted image, then correct F so that a*F + (1-a)*B reproduces the image locally:

    ba = blur(a);  F' = blur(F*a) / (ba + eps);  B' = blur(B*(1-a)) / ((1-ba) + eps)
    F_out = clip(F' + a*(I - a*F' - (1-a)*B'), 0, 1)

Pass 1 uses F = B = I and radius r; pass 2 re-runs it from (F_out, B') with radius 6.

BiRefNet has two code paths whose box blurs differ (their results differ by up to ~0.3):
- "torch" (the GPU path, what the worker uses): replicate border, and for an even kernel k the
  window covers [x - (k/2 - 1), x + k/2];
- "opencv" (cv2.blur): reflect-101 border, window [x - k/2, x + k - 1 - k/2] (anchor at k//2).
Both are the same separable box mean; only the padding differs, so both are supported here.
The "opencv" flavour needs images larger than half the kernel on each side (torch's reflect
padding does not wrap around like OpenCV's); it exists for parity checks.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Flavour = Literal["torch", "opencv"]

EPS = 1e-5
SECOND_PASS_RADIUS = 6


def _padding(kernel: int, flavour: Flavour) -> tuple[int, int, str]:
    """(before, after, torch pad mode) so that a valid box mean reproduces the flavour's window."""
    if flavour == "torch":
        before = kernel // 2 - 1 if kernel % 2 == 0 else kernel // 2
        return before, kernel // 2, "replicate"
    if flavour == "opencv":
        # torch's "reflect" mirrors without repeating the edge: OpenCV's BORDER_REFLECT_101.
        return kernel // 2, kernel - 1 - kernel // 2, "reflect"
    raise ValueError(f"unknown flavour {flavour!r}; expected 'torch' or 'opencv'")


def _box_mean(x: torch.Tensor, kernel: int, dim: int) -> torch.Tensor:
    """Mean over `kernel` consecutive entries along dim (x already padded): len -> len - kernel + 1.

    Differences of a float64 running sum: O(1) per pixel whatever the radius (a direct sum costs
    `kernel` reads per pixel, and avg_pool2d's column pass is slow on CPU), and float64 keeps the
    difference of two large running sums exact to ~1e-12, where float32 would lose ~1e-5.
    """
    total = x.to(torch.float64).cumsum(dim)
    length = total.shape[dim] - kernel + 1
    # window i sums entries [i, i+kernel-1]: total[i+kernel-1] - total[i-1], and total[-1] is 0.
    sums = total.narrow(dim, kernel - 1, length).clone()
    sums.narrow(dim, 1, length - 1).sub_(total.narrow(dim, 0, length - 1))
    return sums.div_(kernel)


def box_blur(x: torch.Tensor, kernel: int, flavour: Flavour = "torch") -> torch.Tensor:
    """Mean over a kernel x kernel window, [B,C,H,W] -> [B,C,H,W] in x's dtype.

    Separable (rows, then columns), and rounded to x's dtype once at the end: the box means
    are the exact ones to float32 rounding, as OpenCV's (which sums in double).
    """
    before, after, mode = _padding(kernel, flavour)
    rows = _box_mean(F.pad(x, (before, after, 0, 0), mode=mode), kernel, dim=-1)
    return _box_mean(F.pad(rows, (0, 0, before, after), mode=mode), kernel, dim=-2).to(x.dtype)


def blur_fusion(
    image: torch.Tensor,
    fg: torch.Tensor,
    bg: torch.Tensor,
    alpha: torch.Tensor,
    radius: int,
    flavour: Flavour = "torch",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One blur-fusion pass: (corrected foreground, blurred background estimate), both [B,3,H,W]."""
    # One blur over alpha, F*a and B*(1-a) stacked on channels: fewer, larger GPU kernels.
    stacked = torch.cat([alpha, fg * alpha, bg * (1 - alpha)], dim=1)
    blurred = box_blur(stacked, radius, flavour)
    blurred_alpha, blurred_fga, blurred_b1a = blurred[:, :1], blurred[:, 1:4], blurred[:, 4:]
    blurred_fg = blurred_fga / (blurred_alpha + EPS)
    blurred_bg = blurred_b1a / ((1 - blurred_alpha) + EPS)
    out = blurred_fg + alpha * (image - alpha * blurred_fg - (1 - alpha) * blurred_bg)
    return out.clamp(0, 1), blurred_bg


def estimate_foreground(
    image: torch.Tensor, alpha: torch.Tensor, radius: int = 90, flavour: Flavour = "torch"
) -> torch.Tensor:
    """Foreground colours [B,3,H,W] in [0,1] from image [B,3,H,W] and alpha [B,1,H,W], both in [0,1].

    Computed in float32 whatever the input dtype (as the original: half precision would lose
    the small blurred-alpha denominators), returned in the image's dtype.
    """
    dtype = image.dtype
    image = image.float()
    alpha = alpha.float()
    fg, bg = blur_fusion(image, image, image, alpha, radius, flavour)
    fg, _ = blur_fusion(image, fg, bg, alpha, SECOND_PASS_RADIUS, flavour)
    return fg.to(dtype)


def estimate_foreground_u8(
    image: torch.Tensor, alpha: torch.Tensor, radius: int = 90, flavour: Flavour = "torch"
) -> torch.Tensor:
    """BiRefNet's `refine_foreground` on uint8 [B,3,H,W] image and [B,1,H,W] mask -> uint8 [B,3,H,W].

    Inputs are divided by 255; the output is x*255 TRUNCATED to uint8, as the original does
    (both of its paths), not rounded.
    """
    fg = estimate_foreground(image.float() / 255, alpha.float() / 255, radius, flavour)
    return (fg * 255).to(torch.uint8)
