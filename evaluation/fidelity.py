"""Fidelity to a reference image: PSNR and SSIM as BasicSR computes them (basicsr/metrics/psnr_ssim.py,
XPixelGroup/BasicSR@8d56e3a0, calculate_psnr and calculate_ssim), on uint8 images on their device.

Images are uint8 tensors [C, H, W] (or [H, W]) of one shape; everything is computed in float64.

- crop_border: the `crop_border` pixels at every edge are left out first (BasicSR's super-resolution
  configurations crop the scale factor: 4 for x4).
- y_channel: measure the Y channel of ITU-R BT.601 (MATLAB's rgb2ycbcr, BasicSR's test_y_channel) instead
  of the colour channels: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 for R, G, B in 0..255, computed
  as BasicSR's to_y_channel does (from float32 R/255..., rounded to float32 twice), unrounded.
- PSNR = 10 log10(max_value^2 / MSE), the MSE over every pixel of every channel; inf for identical images.
- SSIM (Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to structural
  similarity", IEEE TIP 2004) with the paper's settings: an 11x11 Gaussian window of sigma 1.5
  (cv2.getGaussianKernel(11, 1.5), outer product), K1 = 0.01, K2 = 0.03, L = 255:
      SSIM(x, y) = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)),
  C1 = (K1 L)^2, C2 = (K2 L)^2, the local statistics being window-weighted means (sigma^2 = E[x^2] - mu^2).
  Only windows that lie wholly inside the image count ('valid' filtering: BasicSR filters with OpenCV and
  keeps [5:-5, 5:-5]); the SSIM map is averaged per channel, then the channels are averaged. The image
  (after crop_border) must be at least 11x11.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from imaging.filters import gaussian_kernel

PEAK = 255.0  # L: the dynamic range of 8-bit images
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
# BT.601 luma for 8-bit studio range (MATLAB rgb2ycbcr), in BasicSR's bgr2ycbcr order: B, G, R.
_Y_WEIGHTS_BGR = (24.966, 128.553, 65.481)
_Y_OFFSET = 16.0


def luma(image: torch.Tensor) -> torch.Tensor:
    """uint8 RGB [3, H, W] -> float64 [1, H, W]: the BT.601 Y channel on the 0..255 scale, as BasicSR's
    to_y_channel gives it (x.astype(float32) / 255, bgr2ycbcr(y_only=True) in float64 returned as float32,
    times 255 in float32)."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"the Y channel needs an RGB [3, H, W] image, not {tuple(image.shape)}")
    unit = (image.to(torch.float32) / 255).to(torch.float64)
    blue, green, red = unit[2], unit[1], unit[0]
    w_b, w_g, w_r = _Y_WEIGHTS_BGR
    y = (blue * w_b + green * w_g + red * w_r + _Y_OFFSET) / 255
    return (y.to(torch.float32) * 255).to(torch.float64)[None]


def _prepare(a: torch.Tensor, b: torch.Tensor, crop_border: int, use_y: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images as float64 [C, H, W]: checked, cropped, optionally reduced to Y."""
    if a.shape != b.shape:
        raise ValueError(f"images must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dtype != torch.uint8 or b.dtype != torch.uint8:
        raise TypeError(f"images must be uint8, got {a.dtype} and {b.dtype}")
    if a.dim() not in (2, 3):
        raise ValueError(f"images must be [C, H, W] or [H, W], not {tuple(a.shape)}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, not {crop_border}")
    if a.dim() == 2:
        a, b = a[None], b[None]
    if crop_border:
        if min(a.shape[-2:]) <= 2 * crop_border:
            raise ValueError(f"crop_border {crop_border} leaves nothing of a {a.shape[-2]}x{a.shape[-1]} image")
        a = a[:, crop_border:-crop_border, crop_border:-crop_border]
        b = b[:, crop_border:-crop_border, crop_border:-crop_border]
    if use_y:
        return luma(a), luma(b)
    return a.to(torch.float64), b.to(torch.float64)


def psnr(a: torch.Tensor, b: torch.Tensor, max_value: float = PEAK, crop_border: int = 0,
         y_channel: bool = False) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images: 10 log10(max_value^2 / MSE) over all pixels
    and channels (or the Y channel); inf when they are identical."""
    x, y = _prepare(a, b, crop_border, y_channel)
    mse = float((x - y).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(max_value * max_value / mse)


def _window(device: torch.device) -> torch.Tensor:
    """The 1-D Gaussian taps (cv2.getGaussianKernel(11, 1.5)) as a float64 [11] tensor."""
    return torch.tensor(gaussian_kernel(SSIM_WINDOW, SSIM_SIGMA), dtype=torch.float64, device=device)


def _local_mean(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Window-weighted means over every window inside [C, H, W] ('valid'): [C, H - 10, W - 10]. The 2-D
    window is the outer product of `taps`, so it is applied as two 1-D passes."""
    size = taps.numel()
    x = x[:, None]
    x = F.conv2d(x, taps.view(1, 1, size, 1))
    x = F.conv2d(x, taps.view(1, 1, 1, size))
    return x[:, 0]


def ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The SSIM of every valid window of two float64 [C, H, W] images on the 0..255 scale: [C, H-10, W-10]."""
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, not "
                         f"{x.shape[-2]}x{x.shape[-1]}")
    taps = _window(x.device)
    c1, c2 = (SSIM_K1 * PEAK) ** 2, (SSIM_K2 * PEAK) ** 2
    mu_x, mu_y = _local_mean(x, taps), _local_mean(y, taps)
    var_x = _local_mean(x * x, taps) - mu_x.square()
    var_y = _local_mean(y * y, taps) - mu_y.square()
    cov = _local_mean(x * y, taps) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2))


def ssim(a: torch.Tensor, b: torch.Tensor, crop_border: int = 0, y_channel: bool = False) -> float:
    """Structural similarity of two uint8 images (Wang et al. 2004, as BasicSR's calculate_ssim): the mean
    SSIM of the valid 11x11 windows of each channel (or of the Y channel), averaged over the channels."""
    x, y = _prepare(a, b, crop_border, y_channel)
    return float(ssim_map(x, y).mean(dim=(-2, -1)).mean())
