"""carvekit's FBAMatting wrapper (batch_size=1 path) on batched tensors: image + trimap -> uint8 alpha.

The recipe (carvekit/ml/wrap/fba_matting.py, transforms.py), reproduced bit for bit where it is
integer or float64 arithmetic:

PRE, for image and trimap alike:
  1. Pillow `thumbnail((mask_size, mask_size), BICUBIC)`: shrink only, keep the aspect ratio; with
     Pillow's reducing_gap=2.0 an integer box reduction first when shrinking >= 4x (`pil_thumbnail`).
  2. /255 in float64; the image is flipped RGB -> BGR, the trimap becomes two channels
     (bg = value exactly 0, fg = value exactly 255 after the bicubic thumbnail).
  3. OpenCV INTER_LANCZOS4 stretch to the next multiples of 8 (`cv2_resize_lanczos4`), on the float64
     two-channel trimap too, so its known regions ring.
  4. Network inputs: image (BGR float32), two-channel trimap (float32, ringing included), the image
     normalised with ImageNet mean/std in BGR channel order, and six Gaussians exp(-d^2 / (2 (s*320)^2)),
     s in (0.02, 0.08, 0.16), of the Euclidean distance d to each known region (`trimap_transform`).
NET: models/fba.py -> [B,7,h8,w8] = alpha, F, B.
POST (`fba_compose`): OpenCV resize of the alpha back to the input size -- carvekit passes
INTER_LANCZOS4 as cv2.resize's 3rd positional argument, which is `dst`, so it is INTER_LINEAR --
then alpha = 0 where the input trimap is 0, alpha = 0 where alpha < 0.3 (noise filter), and
uint8(alpha * 255) truncated as Pillow converts mode F to L. The known foreground is NOT forced to 255.

The resampling steps (imaging/resample.py) emulate Pillow's and OpenCV's C code on the tensor's
device: Pillow's 8-bit fixed-point bicubic in int32, OpenCV's Lanczos4 with float32 taps in float64
(so the device must support float64), OpenCV's float32 bilinear.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from imaging.resample import cv2_resize_lanczos4, cv2_resize_linear, pil_thumbnail, thumbnail_size
from imaging.tensors import constant
from models.spec import IMAGENET_MEAN, IMAGENET_STD
from pipeline.carvekit.params import DEFAULTS

MASK_SIZE = DEFAULTS.matting_mask_size
NOISE_FLOOR = 0.3
TRIMAP_SCALE = 320  # L in transforms.trimap_transform
TRIMAP_SIGMAS = (0.02, 0.08, 0.16)


# --------------------------------------------------------------------------------------------------
# Exact Euclidean distance transform (cv2.distanceTransform(src, DIST_L2, DIST_MASK_PRECISE)).


def _line_distance_sq(sites: torch.Tensor, far: int) -> torch.Tensor:
    """Squared distance to the nearest site along the last dim of bool [..., n], int64; `far` if none."""
    n = sites.shape[-1]
    idx = torch.arange(n, device=sites.device)
    before = torch.where(sites, idx, -2 * n).cummax(dim=-1).values
    after = torch.where(sites, idx, 3 * n).flip(-1).cummin(dim=-1).values.flip(-1)
    dist = torch.minimum(idx - before, after - idx)  # >= 2n where the line has no site
    return torch.where(dist < n, dist * dist, far)


def _parabola_envelope(f: torch.Tensor) -> torch.Tensor:
    """min_p ((q - p)^2 + f[r, p]) for every row r and every q of int64 [R, n].

    Divide and conquer over q: the leftmost minimising p is non-decreasing in q (the cost is
    Monge), so once it is known at q - s and q + s it bounds the search at q. Levels of strides
    n', n'/2, ..., 1 are each one batch of gathers and one scatter-min over all rows, about
    R * (n + n / s) candidates a level, log2(n) + 1 levels: exact integer arithmetic, no sequential
    loop over pixels, so it runs as a handful of kernels on a GPU. The candidate count of a level is
    data-dependent but bounded by R * (n + #q) (the monotone search intervals of one row overlap only
    at their ends), so each level works on that many slots and masks the unused ones: no
    repeat_interleave, whose output size would make the host wait for the device at every level.
    """
    rows, n = f.shape
    device = f.device
    bits = max(n - 1, 1).bit_length()
    f_flat = f.reshape(-1)
    argmin = torch.empty(rows, n, dtype=torch.long, device=device)
    best = torch.empty(rows, n, dtype=torch.long, device=device)
    row_base = (torch.arange(rows, device=device) * n).view(rows, 1)
    stride = 1 << bits
    while stride >= 1:
        if stride == 1 << bits:
            q = torch.zeros(1, dtype=torch.long, device=device)
            lo = torch.zeros(rows, 1, dtype=torch.long, device=device)
            hi = torch.full((rows, 1), n - 1, dtype=torch.long, device=device)
        else:
            q = torch.arange(stride, n, 2 * stride, device=device)
            if stride >= n:  # no query at this level (short lines)
                stride //= 2
                continue
            right = q + stride
            lo = argmin[:, q - stride]
            hi = torch.where(right < n, argmin[:, right.clamp(max=n - 1)], n - 1)
        count = hi - lo + 1  # candidates p = lo..hi of each (row, q)
        ends = count.flatten().cumsum(0)
        start = (ends.view_as(count) - count)
        pos = torch.arange(rows * (n + q.numel()), device=device)  # the level's slots (an upper bound)
        used = pos < ends[-1]
        seg = torch.searchsorted(ends, pos, right=True).clamp_(max=count.numel() - 1)  # slot -> (row, q)
        p = (lo - start).flatten().index_select(0, seg) + pos
        offset = (q - lo + start).flatten().index_select(0, seg) - pos  # q - p
        at = ((row_base + lo - start).flatten().index_select(0, seg) + pos).clamp_(0, f_flat.numel() - 1)
        cost = offset * offset + f_flat.index_select(0, at)  # f[r, p]
        # One int64 min gives the least cost and, among equal costs, the leftmost p.
        never = torch.iinfo(torch.long).max
        key = torch.full((count.numel(),), never, device=device)
        candidates = torch.where(used, (cost << bits) | p, never)
        key = key.scatter_reduce_(0, seg, candidates, "amin").view_as(count)
        best[:, q] = key >> bits
        argmin[:, q] = key & ((1 << bits) - 1)
        stride //= 2
    return best


def distance_transform(sites: torch.Tensor) -> torch.Tensor:
    """Exact Euclidean distance of every pixel of bool [N,H,W] to the nearest True pixel, float32.

    Separable: squared 1-D distances along the longer side, then the lower envelope of parabolas
    along the shorter side. Equals OpenCV's DIST_MASK_PRECISE result (Felzenszwalb): the square
    root of an integer squared distance, rounded once to float32. +inf where an image has no site
    (OpenCV gives ~3e7 there; both vanish in trimap_transform).
    """
    tall = sites.shape[-2] > sites.shape[-1]
    lines = sites.transpose(-1, -2) if tall else sites  # [N, short, long]: 1-D pass along the long side
    n_img, short, long = lines.shape
    far = (short + long) ** 2  # any real squared distance is smaller
    f = _line_distance_sq(lines.contiguous(), far).transpose(-1, -2).reshape(n_img * long, short)
    dist_sq = _parabola_envelope(f).view(n_img, long, short)
    dist = torch.where(dist_sq >= far, math.inf, dist_sq.float().sqrt())
    return dist if tall else dist.transpose(-1, -2)


def trimap_transform(two_chan: torch.Tensor) -> torch.Tensor:
    """transforms.trimap_transform of float64 [B,2,H,W] (bg, fg) -> float32 [B,6,H,W].

    Sites are the pixels where uint8((1 - t) * 255) is 0, with numpy's C cast on x86 (truncate, keep
    the low byte): t in (1 - 1/255, 1 + 1/255), and also Lanczos undershoot t in (-2/255, -1/255].
    Channels 3k..3k+2 are exp(-d^2 / (2 (s L)^2)) in float32; all zero for a channel with no
    nonzero value.
    """
    b, _, h, w = two_chan.shape
    code = torch.trunc((1 - two_chan) * 255).long().remainder(256)
    dist = distance_transform((code == 0).view(b * 2, h, w)).view(b, 2, 1, h, w)
    present = (two_chan != 0).flatten(2).any(dim=2).view(b, 2, 1, 1, 1)
    neg_sq = -(dist * dist)
    divisors = constant(tuple(2 * ((s * TRIMAP_SCALE) ** 2) for s in TRIMAP_SIGMAS), two_chan.device,
                        shape=(1, 1, 3, 1, 1))
    clicks = torch.where(present, torch.exp(neg_sq / divisors), 0.0)
    return clicks.view(b, 6, h, w)


# --------------------------------------------------------------------------------------------------
# The wrapper.


class FBAInputs(NamedTuple):
    image: torch.Tensor  # [B,3,h8,w8] float32, BGR in [0,1] (plus Lanczos ringing)
    two_chan_trimap: torch.Tensor  # [B,2,h8,w8] float32
    image_n: torch.Tensor  # [B,3,h8,w8] float32
    trimap_transformed: torch.Tensor  # [B,6,h8,w8] float32


def fba_input_size(height: int, width: int, mask_size: int = MASK_SIZE) -> tuple[int, int]:
    """(h8, w8): the thumbnail size rounded up to multiples of 8 (a stretch, not padding)."""
    h, w = thumbnail_size(height, width, mask_size)
    return -(-h // 8) * 8, -(-w // 8) * 8


def fba_inputs(image: torch.Tensor, trimap: torch.Tensor, mask_size: int = MASK_SIZE) -> FBAInputs:
    """The four network inputs from uint8 RGB [B,3,H,W] and uint8 trimap [B,1,H,W] (0 bg, 255 fg)."""
    if image.dtype != torch.uint8 or trimap.dtype != torch.uint8:
        raise TypeError("fba_inputs takes uint8 image and trimap tensors")
    size = fba_input_size(*image.shape[-2:], mask_size)
    rgb = pil_thumbnail(image, mask_size).double() / 255.0
    bgr = cv2_resize_lanczos4(rgb.flip(1), size).float()
    small = pil_thumbnail(trimap, mask_size)
    two_chan = cv2_resize_lanczos4(torch.cat((small == 0, small == 255), 1).double(), size)
    mean = constant(IMAGENET_MEAN, bgr.device, shape=(1, 3, 1, 1))
    std = constant(IMAGENET_STD, bgr.device, shape=(1, 3, 1, 1))
    # carvekit normalises channel i of the BGR tensor with the RGB statistics' entry i.
    image_n = (bgr - mean) / std
    return FBAInputs(bgr, two_chan.float(), image_n, trimap_transform(two_chan))


def known_alpha(net_out: torch.Tensor, trimap: torch.Tensor) -> torch.Tensor:
    """The float32 alpha [B,1,H,W] before the noise filter: resized to the trimap, 0 where it is 0."""
    alpha = cv2_resize_linear(net_out[:, 0:1].float(), tuple(trimap.shape[-2:]))
    return torch.where(trimap == 0, 0.0, alpha)


def fba_compose(net_out: torch.Tensor, trimap: torch.Tensor, noise_filter: bool = True) -> torch.Tensor:
    """data_postprocessing: alpha of net_out [B,7,h8,w8] -> uint8 [B,1,H,W] at the trimap's size."""
    alpha = known_alpha(net_out, trimap)
    if noise_filter:
        # numpy compares the float32 array with 0.3 rounded to float32.
        alpha = torch.where(alpha < torch.tensor(NOISE_FLOOR, dtype=torch.float32), 0.0, alpha)
    # Pillow's F -> L conversion truncates toward zero and clips to 0..255.
    return torch.trunc(alpha * 255).clamp_(0, 255).to(torch.uint8)


def fba_alpha(model: nn.Module, image: torch.Tensor, trimap: torch.Tensor, mask_size: int = MASK_SIZE,
              noise_filter: bool = True) -> torch.Tensor:
    """carvekit FBAMatting(input_tensor_size=mask_size, batch_size=1) on uint8 RGB [B,3,H,W] and a
    uint8 trimap [B,1,H,W] (0 background, 255 foreground, anything else unknown, e.g. 128)
    -> uint8 alpha [B,1,H,W]. Runs on the model's device and dtype."""
    param = next(model.parameters())
    inputs = fba_inputs(image.to(param.device), trimap.to(param.device), mask_size)
    with torch.inference_mode():
        net_out = model(*(t.to(param.dtype) for t in inputs))
    return fba_compose(net_out, trimap.to(param.device), noise_filter)
