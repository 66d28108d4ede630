"""Post-processing of uint8 alpha mattes on their device: threshold, grow/shrink, feather, crop, resize.

Mattes are uint8 tensors [..., H, W] (one matte, or the frames of an animation). `apply_matte_knobs` applies
the matte knobs in one documented order:

1. threshold: alpha >= t becomes 255, the rest 0 (cleans a soft network answer into a hard one);
2. grow / shrink by N pixels: greyscale dilation / erosion by a disc of radius N (Euclidean, so
   corners round off instead of turning square), computed exactly as a union of horizontal chords:
   2N+1 running maxima along rows, then one vertical shift per chord (O(N) passes, O(1) extra memory,
   where an unfolded (2N+1)^2 window would need (2N+1)^2 bytes per pixel);
3. feather: Gaussian blur of sigma N (kornia.filters.gaussian_blur2d, kernel 2*ceil(3 sigma)+1).

Outside the image: nothing. The disc is clipped at the border (outside pixels neither add to nor
take from the subject) and the blur replicates the edge, so a subject cut off by the frame stays
opaque up to the frame instead of shrinking or fading away from it.

Crop follows remove.bg: the box of the pixels with alpha > crop_threshold over every frame, plus a
margin that may reach beyond the image (that part is transparent). An empty matte has no box: it is
not cropped (`crop_box` returns the whole frame), and `subject_box` returns None so the caller can
say that no subject was found.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import kornia
import torch
import torch.nn.functional as F

from imaging.options import Margin, OutputOptions


def threshold_matte(alpha: torch.Tensor, level: int) -> torch.Tensor:
    """alpha >= level -> 255, else 0."""
    return (alpha >= level).to(torch.uint8).mul_(255)


def _disc_dilate(alpha: torch.Tensor, radius: int) -> torch.Tensor:
    """Max over a disc of `radius` (clipped at the border), by horizontal chords."""
    chord = {dy: math.isqrt(radius * radius - dy * dy) for dy in range(radius + 1)}  # half-width per row
    rows = alpha.clone()  # running max over [x - w, x + w] along each row
    out = torch.zeros_like(alpha)
    width = alpha.shape[-1]
    for w in range(radius + 1):
        if 0 < w < width:
            # in place: each element is read and written at the same position, so `out=` is safe
            torch.maximum(rows[..., w:], alpha[..., :-w], out=rows[..., w:])
            torch.maximum(rows[..., :-w], alpha[..., w:], out=rows[..., :-w])
        for dy in (dy for dy, half in chord.items() if half == w):
            if dy == 0:
                torch.maximum(out, rows, out=out)
            elif dy < alpha.shape[-2]:
                torch.maximum(out[..., dy:, :], rows[..., :-dy, :], out=out[..., dy:, :])
                torch.maximum(out[..., :-dy, :], rows[..., dy:, :], out=out[..., :-dy, :])
    return out


def grow_matte(alpha: torch.Tensor, pixels: int) -> torch.Tensor:
    """Dilate (pixels > 0) or erode (pixels < 0) by a disc of |pixels| radius."""
    if pixels == 0:
        return alpha
    if pixels > 0:
        return _disc_dilate(alpha, pixels)
    return 255 - _disc_dilate(255 - alpha, -pixels)  # erosion is the dual: the border still adds nothing


def feather_matte(alpha: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of `sigma` pixels, edges replicated, rounded back to uint8."""
    if sigma <= 0:
        return alpha
    kernel = 2 * math.ceil(3 * sigma) + 1
    shape = alpha.shape
    x = alpha.reshape(-1, 1, *shape[-2:]).float()
    blurred = kornia.filters.gaussian_blur2d(x, (kernel, kernel), (sigma, sigma), border_type="replicate")
    return blurred.round_().clamp_(0, 255).to(torch.uint8).reshape(shape)


def apply_matte_knobs(alpha: torch.Tensor, options: OutputOptions) -> torch.Tensor:
    """threshold, then grow/shrink, then feather (the order in this module's docstring)."""
    if options.threshold is not None:
        alpha = threshold_matte(alpha, options.threshold)
    alpha = grow_matte(alpha, options.grow)
    return feather_matte(alpha, options.feather)


@dataclass(frozen=True)
class Box:
    """Rows [top, bottom) and columns [left, right); may reach beyond the image."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    def as_dict(self) -> dict[str, int]:
        return {"left": self.left, "top": self.top, "width": self.width, "height": self.height}


def subject_box(alpha: torch.Tensor, threshold: int = 0) -> Box | None:
    """The bounding box of alpha > threshold over all frames, or None when no pixel is above it."""
    subject = (alpha > threshold).reshape(-1, *alpha.shape[-2:]).any(0)
    rows, cols = subject.any(1).nonzero(), subject.any(0).nonzero()
    if rows.numel() == 0:
        return None
    (top, bottom), (left, right) = rows[[0, -1], 0].tolist(), cols[[0, -1], 0].tolist()
    return Box(top, left, bottom + 1, right + 1)


def crop_box(alpha: torch.Tensor, margin: Margin, threshold: int = 0) -> Box:
    """The subject's box grown by the margin (percentages of the subject's height for top/bottom and of
    its width for left/right); the whole frame when the matte is empty."""
    box = subject_box(alpha, threshold)
    if box is None:
        return Box(0, 0, *alpha.shape[-2:])
    return Box(box.top - margin.top.pixels(box.height), box.left - margin.left.pixels(box.width),
               box.bottom + margin.bottom.pixels(box.height), box.right + margin.right.pixels(box.width))


def crop(x: torch.Tensor, box: Box) -> torch.Tensor:
    """x[..., box] with zeros (transparent, black) where the box reaches beyond the image."""
    height, width = x.shape[-2:]
    inside = x[..., max(box.top, 0):min(box.bottom, height), max(box.left, 0):min(box.right, width)]
    pad = (max(-box.left, 0), max(box.right - width, 0), max(-box.top, 0), max(box.bottom - height, 0))
    if not any(pad):
        return inside
    out = x.new_zeros((*x.shape[:-2], box.height, box.width))
    out[..., pad[2]:pad[2] + inside.shape[-2], pad[0]:pad[0] + inside.shape[-1]] = inside
    return out


def fit_within(height: int, width: int, max_pixels: int | None) -> tuple[int, int]:
    """(height, width) scaled down by one factor so that height * width <= max_pixels; never enlarged."""
    if max_pixels is None or height * width <= max_pixels:
        return height, width
    scale = math.sqrt(max_pixels / (height * width))
    new_height, new_width = max(1, math.floor(height * scale)), max(1, math.floor(width * scale))
    # a side clamped up to 1 pixel leaves the other the whole budget, no more
    if new_height == 1:
        new_width = min(new_width, max_pixels)
    if new_width == 1:
        new_height = min(new_height, max_pixels)
    return new_height, new_width


def resize_cutout(colour: torch.Tensor, alpha: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Antialiased (bicubic) downscale of colour [..., 3, H, W] and alpha [..., H, W] to `size` (h, w).

    The colour is resized premultiplied by alpha and divided back, so transparent pixels lend the
    edges none of their (invisible) colour. Returns float colour in [0, 1] and uint8 alpha.
    """
    if tuple(alpha.shape[-2:]) == tuple(size):
        return colour, alpha
    lead = alpha.shape[:-2]
    a = alpha.reshape(-1, 1, *alpha.shape[-2:]).float() / 255
    c = colour.reshape(-1, 3, *colour.shape[-2:]).float()
    if colour.dtype == torch.uint8:
        c = c / 255
    stacked = torch.cat([c * a, a], 1)
    small = F.interpolate(stacked, size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)
    small_a = small[:, 3:]
    small_c = (small[:, :3] / small_a.clamp_min(1e-6)).clamp_(0, 1)
    out_alpha = small_a.mul(255).round_().to(torch.uint8)
    return small_c.reshape(*lead, 3, *size), out_alpha.reshape(*lead, *size)
