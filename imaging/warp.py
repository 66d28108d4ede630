"""cv2.warpAffine (INTER_LINEAR, BORDER_CONSTANT) and cv2.invertAffineTransform in torch, bit for bit.

OpenCV 4.11+/5.x warps uint8 and float32 images with float32 invokers (imgproc/src/warp_kernels.simd.hpp,
warp_common.*.hpp) and other depths with the older fixed-point path (imgwarp.cpp WarpAffineInvoker +
remapBilinear); both were checked against opencv-python 5.0.0 on an AVX2 machine, the build the
face-align oracle was made with (0 differing values on random images and matrices):

float32 path (uint8, float32): M is inverted in double and cast to float. In the SIMD loop, which
  takes 16 pixels a step on AVX2, sx = fma(M0, x, float(float(y*M1) + M2)); the last width % 16
  pixels of a row take the scalar loop, sx = fma(x, M0, y*M1) + M2 (the compiler's contraction).
  ix = floor(sx), a = sx - ix; v0 = fma(a, p01 - p00, p00), v1 likewise, v = fma(b, v1 - v0, v0);
  uint8 rounds to nearest even and saturates.
fixed-point path (float64): source coordinates in 1/32 pixel, X = (round((M1*y + M2)*1024) + 16 +
  round(M0*x*1024)) >> 5; float32 weights (1 - t, t) of t = k/32, multiplied in float32; the four
  products summed in double, left to right.
Both: a neighbour outside the image takes the border value, and a pixel whose 2x2 neighbourhood lies
entirely outside is the border value.
"""
from __future__ import annotations

import torch

from imaging.exact import fma

SIMD_PIXELS = 16  # pixels per step of the AVX2 float32 warp loop; the rest of a row is scalar
_AB_BITS, _INTER_BITS = 10, 5  # imgwarp.cpp: coordinates in 1/1024, then 1/32 pixel


def invert_affine_transform(matrix: torch.Tensor) -> torch.Tensor:
    """cv2.invertAffineTransform of a float64 [2, 3] matrix, in its order of operations."""
    m = [float(v) for v in matrix.reshape(-1).tolist()]
    det = m[0] * m[4] - m[1] * m[3]
    det = 1.0 / det if det != 0 else 0.0
    a11, a22, a12, a21 = m[4] * det, m[0] * det, -m[1] * det, -m[3] * det
    b1 = -a11 * m[2] - a12 * m[5]
    b2 = -a21 * m[2] - a22 * m[5]
    return torch.tensor([[a11, a12, b1], [a21, a22, b2]], dtype=torch.float64)


def _border(value: float | tuple[float, ...], channels: int, like: torch.Tensor) -> torch.Tensor:
    values = value if isinstance(value, tuple) else (value,) * channels
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(channels, 1, 1)


def _gather(image: torch.Tensor, iy: torch.Tensor, ix: torch.Tensor, border: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The 2x2 neighbours (00, 01, 10, 11) of every (iy, ix), border value outside the image."""
    channels, height, width = image.shape
    flat = image.reshape(channels, -1)
    out = []
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        y, x = iy + dy, ix + dx
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        index = (y.clamp(0, height - 1) * width + x.clamp(0, width - 1)).reshape(-1)
        values = flat[:, index].reshape(channels, *iy.shape)
        out.append(torch.where(inside, values, border))
    return tuple(out)


def _float_path(image: torch.Tensor, matrix: torch.Tensor, full_width: int,
                rows: torch.Tensor, cols: torch.Tensor, border: torch.Tensor) -> torch.Tensor:
    m = invert_affine_transform(matrix).float().reshape(-1).tolist()  # the invoker's float M[6]
    x = cols.float()[None, :].expand(rows.numel(), -1)
    y = rows.float()[:, None].expand(-1, cols.numel())
    scalar_tail = (cols >= full_width - full_width % SIMD_PIXELS)[None, :]

    def source(m0: float, m1: float, m2: float) -> torch.Tensor:
        c0, c1, c2 = (torch.tensor(v, dtype=torch.float32, device=x.device).expand_as(x) for v in (m0, m1, m2))
        row = y * c1
        simd = fma(c0, x, row + c2)
        scalar = fma(x, c0, row) + c2
        return torch.where(scalar_tail, scalar, simd)

    height, width = image.shape[-2:]
    sx = source(*m[0:3]).clamp(-2, width + 1)  # beyond one pixel outside, only the border value remains
    sy = source(*m[3:6]).clamp(-2, height + 1)
    fx, fy = torch.floor(sx), torch.floor(sy)
    ax, ay = (sx - fx)[None], (sy - fy)[None]
    p00, p01, p10, p11 = (p.float() for p in _gather(image, fy.long(), fx.long(), border))
    v0 = fma(ax.expand_as(p00), p01 - p00, p00)
    v1 = fma(ax.expand_as(p10), p11 - p10, p10)
    v = fma(ay.expand_as(v0), v1 - v0, v0)
    if image.dtype == torch.uint8:
        return torch.round(v).clamp_(0, 255).to(torch.uint8)
    return v


def _fixed_point_path(image: torch.Tensor, matrix: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                      border: torch.Tensor) -> torch.Tensor:
    m = invert_affine_transform(matrix).to(image.device)
    scale = float(1 << _AB_BITS)
    round_delta = (1 << _AB_BITS) // (1 << _INTER_BITS) // 2
    shift = _AB_BITS - _INTER_BITS
    cols_d, rows_d = cols.double(), rows.double()
    # saturate_cast<int>(double) is cvRound: halves to even, as torch.round
    x_delta = (torch.round(m[0, 0] * cols_d * scale).long(), torch.round(m[1, 0] * cols_d * scale).long())
    y_start = (torch.round((m[0, 1] * rows_d + m[0, 2]) * scale).long() + round_delta,
               torch.round((m[1, 1] * rows_d + m[1, 2]) * scale).long() + round_delta)
    sx = (y_start[0][:, None] + x_delta[0][None, :]) >> shift
    sy = (y_start[1][:, None] + x_delta[1][None, :]) >> shift
    mask = (1 << _INTER_BITS) - 1
    step = torch.tensor(1.0 / (1 << _INTER_BITS), dtype=torch.float32)
    tx = (sx & mask).float() * step.to(image.device)
    ty = (sy & mask).float() * step.to(image.device)
    one = torch.ones((), dtype=torch.float32, device=image.device)
    weights = ((one - ty) * (one - tx), (one - ty) * tx, ty * (one - tx), ty * tx)  # BilinearTab_f, float32
    p00, p01, p10, p11 = _gather(image, sy >> _INTER_BITS, sx >> _INTER_BITS, border)
    w00, w01, w10, w11 = (w.to(image.dtype)[None] for w in weights)
    return p00 * w00 + p01 * w01 + p10 * w10 + p11 * w11


def warp_affine(image: torch.Tensor, matrix: torch.Tensor, size: tuple[int, int],
                border_value: float | tuple[float, ...] = 0.0,
                region: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """cv2.warpAffine(image, matrix, (w, h), INTER_LINEAR, BORDER_CONSTANT, border_value) of [C, H, W].

    `matrix` maps source to destination pixels (float64 [2, 3], OpenCV's convention); `size` is the
    destination (height, width). `region` = (top, bottom, left, right) computes only that window of the
    destination (the column rule above needs the full width, hence `size`). uint8 and float32 images
    take OpenCV's float32 invoker, float64 images its fixed-point path.
    """
    top, bottom, left, right = region or (0, size[0], 0, size[1])
    rows = torch.arange(top, bottom, device=image.device)
    cols = torch.arange(left, right, device=image.device)
    border = _border(border_value, image.shape[0], image if image.dtype != torch.uint8 else image.float())
    if image.dtype in (torch.uint8, torch.float32):
        return _float_path(image, matrix, size[1], rows, cols, border)
    if image.dtype == torch.float64:
        return _fixed_point_path(image, matrix, rows, cols, border)
    raise TypeError(f"warp_affine: unsupported dtype {image.dtype}")
