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

The resampling steps emulate Pillow's and OpenCV's C code on the tensor's device: Pillow's 8-bit
fixed-point bicubic in int32, OpenCV's Lanczos4 with float32 taps in float64 (so the device must
support float64), OpenCV's float32 bilinear. Tap tables are built on the CPU with Python floats, which
are C doubles, and are cached per size.
"""
from __future__ import annotations

import math
import struct
from functools import lru_cache
from typing import NamedTuple

import torch
from torch import nn

from models.spec import IMAGENET_MEAN, IMAGENET_STD

MASK_SIZE = 2048
NOISE_FLOOR = 0.3
TRIMAP_SCALE = 320  # L in transforms.trimap_transform
TRIMAP_SIGMAS = (0.02, 0.08, 0.16)

_PIL_PRECISION_BITS = 32 - 8 - 2  # Resample.c: 8-bit images use 22-bit fixed-point taps
_PIL_BICUBIC_SUPPORT = 2.0
_PIL_REDUCING_GAP = 2.0


def _f32(value: float) -> float:
    """Round a Python float (a C double) to float32, as a C (float) cast does."""
    return struct.unpack("f", struct.pack("f", value))[0]


def _tap_sum(x: torch.Tensor, dim: int, index: torch.Tensor, weights: torch.Tensor,
             init: torch.Tensor | None = None) -> torch.Tensor:
    """sum_j x.index_select(dim, index[:, j]) * weights[:, j], added tap by tap from j = 0 onto `init`.

    One separate multiply and add per tap (never fused), so float sums round as the C loops do.
    Gathers whole rows (dim -2), which is several times faster than gathering along the last dim on
    the CPU, so a horizontal pass runs on the transposed tensor.
    """
    if dim == -1:
        x = x.transpose(-1, -2)
    x = x.contiguous()
    index, weights = index.to(x.device), weights.to(x.device)
    acc = init
    for j in range(index.shape[1]):
        term = x.index_select(-2, index[:, j]) * weights[:, j].view(-1, 1)
        acc = term if acc is None else acc + term
    return acc.transpose(-1, -2) if dim == -1 else acc


# --------------------------------------------------------------------------------------------------
# Pillow: Image.thumbnail(size, BICUBIC) on 8-bit images.


def thumbnail_size(height: int, width: int, max_size: int) -> tuple[int, int]:
    """The (height, width) Pillow's thumbnail((max_size, max_size)) gives; unchanged if it fits."""
    if max_size >= width and max_size >= height:
        return height, width
    aspect = width / height
    x = y = max_size

    def round_aspect(number: float, key) -> int:
        return max(min(math.floor(number), math.ceil(number), key=key), 1)

    if x / y >= aspect:
        x = round_aspect(y * aspect, key=lambda n: abs(aspect - n / y))
    else:
        y = round_aspect(x / aspect, key=lambda n: 0 if n == 0 else abs(aspect - x / n))
    return y, x


def _bicubic(x: float) -> float:
    # Resample.c bicubic_filter with a = -0.5, same operation order.
    a = -0.5
    if x < 0.0:
        x = -x
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


@lru_cache(maxsize=64)
def _pil_bicubic_taps(in_size: int, extent: float, out_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample.c precompute_coeffs + normalize_coeffs_8bpc for a box (0, extent): indices and int taps."""
    scale = extent / out_size
    filterscale = max(scale, 1.0)
    support = _PIL_BICUBIC_SUPPORT * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    inv_filterscale = 1.0 / filterscale
    index = torch.zeros(out_size, ksize, dtype=torch.long)
    taps = torch.zeros(out_size, ksize, dtype=torch.int32)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        count = min(int(center + support + 0.5), in_size) - xmin
        weights = [_bicubic((x + xmin - center + 0.5) * inv_filterscale) for x in range(count)]
        total = 0.0
        for w in weights:
            total += w
        if total != 0.0:
            weights = [w / total for w in weights]
        one = 1 << _PIL_PRECISION_BITS
        taps[xx, :count] = torch.tensor(
            [int(-0.5 + w * one) if w < 0 else int(0.5 + w * one) for w in weights], dtype=torch.int32
        )
        # Taps past `count` are zero; their index only has to be valid.
        index[xx] = torch.arange(xmin, xmin + ksize).clamp_(max=in_size - 1)
    return index, taps


def _pil_resample_axis(x: torch.Tensor, dim: int, extent: float, out_size: int) -> torch.Tensor:
    """One 8-bit bicubic pass along `dim` of an int32 tensor: fixed-point sum, >> 22, clip to 0..255."""
    index, taps = _pil_bicubic_taps(x.shape[dim], extent, out_size)
    half = torch.full((), 1 << (_PIL_PRECISION_BITS - 1), dtype=torch.int32, device=x.device)
    return (_tap_sum(x, dim, index, taps, half) >> _PIL_PRECISION_BITS).clamp_(0, 255)


def pil_reduce(x: torch.Tensor, factor_y: int, factor_x: int) -> torch.Tensor:
    """Image.reduce((factor_x, factor_y)) of uint8 [..., H, W]: block means, partial blocks at the edges.

    Reduce.c rounds every block of n pixels as ((sum + n // 2) * m) >> 24 with
    m = uint32(float32(2^32) / float32(256 n)) (its shift forms for n = 2, 4, 16 are the same).
    """
    h, w = x.shape[-2:]
    out_h, out_w = -(-h // factor_y), -(-w // factor_x)
    padded = torch.zeros(*x.shape[:-2], out_h * factor_y, out_w * factor_x, dtype=torch.int64, device=x.device)
    padded[..., :h, :w] = x
    sums = padded.unflatten(-1, (out_w, factor_x)).unflatten(-3, (out_h, factor_y)).sum(dim=(-1, -3))
    rows = torch.full((out_h,), factor_y, device=x.device)
    rows[-1] = h - (out_h - 1) * factor_y
    cols = torch.full((out_w,), factor_x, device=x.device)
    cols[-1] = w - (out_w - 1) * factor_x
    count = rows.view(-1, 1) * cols.view(1, -1)
    two32 = torch.tensor(4294967296.0, dtype=torch.float32, device=x.device)
    multiplier = (two32 / (256 * count).to(torch.float32)).to(torch.int64)
    return (((sums + count // 2) * multiplier) >> 24).to(torch.uint8)


def pil_resize_bicubic(x: torch.Tensor, size: tuple[int, int], extent: tuple[float, float]) -> torch.Tensor:
    """Image.resize(size, BICUBIC, box=(0, 0, extent_w, extent_h)) of uint8 [..., H, W].

    Two passes, each rounded to 8 bits, a pass skipped when it is the identity. Horizontal first,
    unless the height shrinks by more than twice as many pixels as the width (Pillow 13, PR #9549;
    found by comparison with Pillow 13.0.0, whose source was not at hand).
    """
    (out_h, out_w), (extent_h, extent_w) = size, extent
    in_h, in_w = x.shape[-2:]
    passes = []
    if out_w != in_w or extent_w != out_w:
        passes.append((-1, extent_w, out_w))
    if out_h != in_h or extent_h != out_h:
        passes.append((-2, extent_h, out_h))
    if out_h < in_h and in_h - out_h > 2 * (in_w - out_w):
        passes.reverse()
    y = x.to(torch.int32)
    for dim, ext, out in passes:
        y = _pil_resample_axis(y, dim, ext, out)
    return y.to(torch.uint8).contiguous()


def pil_thumbnail(x: torch.Tensor, max_size: int) -> torch.Tensor:
    """Image.thumbnail((max_size, max_size), BICUBIC) of uint8 [..., H, W] (reducing_gap 2.0)."""
    h, w = x.shape[-2:]
    out_h, out_w = thumbnail_size(h, w, max_size)
    if (out_h, out_w) == (h, w):
        return x
    factor_x = int(w / out_w / _PIL_REDUCING_GAP) or 1
    factor_y = int(h / out_h / _PIL_REDUCING_GAP) or 1
    extent = (float(h), float(w))
    if factor_x > 1 or factor_y > 1:
        x = pil_reduce(x, factor_y, factor_x)
        # The new box reaches Resample.c as C floats.
        extent = (_f32(h / factor_y), _f32(w / factor_x))
    return pil_resize_bicubic(x, (out_h, out_w), extent)


# --------------------------------------------------------------------------------------------------
# OpenCV: cv2.resize for float64 INTER_LANCZOS4 and float32 INTER_LINEAR (resizeGeneric_ path).

_S45 = 0.70710678118654752440084436210485
_LANCZOS_CS = ((1, 0), (-_S45, -_S45), (0, 1), (_S45, -_S45), (-1, 0), (_S45, _S45), (0, -1), (-_S45, _S45))


def _cv2_source_position(dst: int, scale: float) -> tuple[int, float]:
    # fx = (float)((dx + 0.5) * scale - 0.5); sx = cvFloor(fx); fx -= sx
    fx = _f32((dst + 0.5) * scale - 0.5)
    sx = math.floor(fx)
    return sx, _f32(fx - sx)


def _lanczos4_coeffs(x: float) -> list[float]:
    """imgproc interpolateLanczos4: float32 taps of the 8 source pixels sx-3..sx+4."""
    y0 = -_f32(x + 3) * math.pi * 0.25
    s0, c0 = math.sin(y0), math.cos(y0)
    coeffs = []
    total = 0.0
    for i in range(8):
        t = _f32(_f32(x + 3) - i)
        if abs(t) >= _f32(1e-6):
            y = -t * math.pi * 0.25
            coeffs.append(_f32((_LANCZOS_CS[i][0] * s0 + _LANCZOS_CS[i][1] * c0) / (y * y)))
        else:
            coeffs.append(_f32(1e30))  # x ~ 0 or ~1: normalisation makes it the only tap
        total = _f32(total + coeffs[-1])
    inv = _f32(1.0 / total)
    return [_f32(c * inv) for c in coeffs]


@lru_cache(maxsize=64)
def _cv2_lanczos4_taps(in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    scale = 1.0 / (out_size / in_size)
    index = torch.empty(out_size, 8, dtype=torch.long)
    coeffs = torch.empty(out_size, 8, dtype=torch.float32)
    for dx in range(out_size):
        sx, fx = _cv2_source_position(dx, scale)
        # Pixels outside the source replicate the edge pixel.
        index[dx] = torch.arange(sx - 3, sx + 5).clamp_(0, in_size - 1)
        coeffs[dx] = torch.tensor(_lanczos4_coeffs(fx), dtype=torch.float32)
    return index, coeffs


def cv2_resize_lanczos4(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """cv2.resize(x, (w, h), interpolation=INTER_LANCZOS4) of float64 [..., H, W].

    Same size is a copy; otherwise a horizontal then a vertical 8-tap pass, each summed tap by tap in
    float64 in OpenCV's order (float32 taps promoted to double).
    """
    if tuple(size) == tuple(x.shape[-2:]):
        return x.clone()
    for dim, out in ((-1, size[1]), (-2, size[0])):
        index, coeffs = _cv2_lanczos4_taps(x.shape[dim], out)
        x = _tap_sum(x, dim, index, coeffs.double())
    return x


@lru_cache(maxsize=64)
def _cv2_linear_taps(in_size: int, out_size: int, clamp_weights: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Source rows/columns and float32 weights (1 - f, f) of OpenCV's INTER_LINEAR.

    Horizontally OpenCV moves positions left of the first pixel or right of the last onto that pixel
    with weights (1, 0) (`clamp_weights`); vertically it only clamps the row indices and keeps f.
    """
    scale = 1.0 / (out_size / in_size)
    index = torch.empty(out_size, 2, dtype=torch.long)
    weights = torch.empty(out_size, 2, dtype=torch.float32)
    for d in range(out_size):
        s, f = _cv2_source_position(d, scale)
        if clamp_weights and s < 0:
            s, f = 0, 0.0
        if clamp_weights and s >= in_size - 1:
            s, f = in_size - 1, 0.0
        index[d] = torch.tensor([s, s + 1]).clamp_(0, in_size - 1)
        weights[d] = torch.tensor([_f32(1.0 - f), f])
    return index, weights


def cv2_resize_linear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """cv2.resize(x, (w, h)) (INTER_LINEAR) of float32 [..., H, W]: float32 arithmetic, OpenCV's order."""
    if tuple(size) == tuple(x.shape[-2:]):
        return x.clone()
    for dim, out, clamp_weights in ((-1, size[1], True), (-2, size[0], False)):
        x = _tap_sum(x, dim, *_cv2_linear_taps(x.shape[dim], out, clamp_weights))
    return x


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
    loop over pixels, so it runs as a handful of kernels on a GPU.
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
            right = q + stride
            lo = argmin[:, q - stride]
            hi = torch.where(right < n, argmin[:, right.clamp(max=n - 1)], n - 1)
        count = hi - lo + 1  # candidates p = lo..hi of each (row, q)
        start = count.flatten().cumsum(0).view_as(count) - count
        seg = torch.repeat_interleave(torch.arange(count.numel(), device=device), count.flatten())
        pos = torch.arange(seg.numel(), device=device)
        p = (lo - start).flatten().index_select(0, seg) + pos
        offset = (q - lo + start).flatten().index_select(0, seg) - pos  # q - p
        at = (row_base + lo - start).flatten().index_select(0, seg) + pos  # flat index of f[r, p]
        cost = offset * offset + f_flat.index_select(0, at)
        # One int64 min gives the least cost and, among equal costs, the leftmost p.
        key = torch.full((count.numel(),), torch.iinfo(torch.long).max, device=device)
        key = key.scatter_reduce_(0, seg, (cost << bits) | p, "amin").view_as(count)
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
    divisors = torch.tensor([2 * ((s * TRIMAP_SCALE) ** 2) for s in TRIMAP_SIGMAS], dtype=torch.float32,
                            device=two_chan.device).view(1, 1, 3, 1, 1)
    clicks = torch.where(present, torch.exp(neg_sq / divisors), 0.0)
    return clicks.view(b, 6, h, w)


# --------------------------------------------------------------------------------------------------
# The wrapper.


class FBAInputs(NamedTuple):
    image: torch.Tensor  # [B,3,h8,w8] float32, BGR in [0,1] (plus Lanczos ringing)
    two_chan_trimap: torch.Tensor  # [B,2,h8,w8] float32
    image_n: torch.Tensor  # [B,3,h8,w8] float32
    trimap_transformed: torch.Tensor  # [B,6,h8,w8] float32


def network_size(height: int, width: int, mask_size: int = MASK_SIZE) -> tuple[int, int]:
    """(h8, w8): the thumbnail size rounded up to multiples of 8 (a stretch, not padding)."""
    h, w = thumbnail_size(height, width, mask_size)
    return -(-h // 8) * 8, -(-w // 8) * 8


def fba_inputs(image: torch.Tensor, trimap: torch.Tensor, mask_size: int = MASK_SIZE) -> FBAInputs:
    """The four network inputs from uint8 RGB [B,3,H,W] and uint8 trimap [B,1,H,W] (0 bg, 255 fg)."""
    if image.dtype != torch.uint8 or trimap.dtype != torch.uint8:
        raise TypeError("fba_inputs takes uint8 image and trimap tensors")
    size = network_size(*image.shape[-2:], mask_size)
    rgb = pil_thumbnail(image, mask_size).double() / 255.0
    bgr = cv2_resize_lanczos4(rgb.flip(1), size).float()
    small = pil_thumbnail(trimap, mask_size)
    two_chan = cv2_resize_lanczos4(torch.cat((small == 0, small == 255), 1).double(), size)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=bgr.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=bgr.device).view(1, 3, 1, 1)
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
