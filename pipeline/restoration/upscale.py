"""Real-ESRGAN's upscaling procedure: RealESRGANer.enhance (xinntao/Real-ESRGAN@a4abfb29,
realesrgan/utils.py), reproduced step for step, in RGB(A) order.

  1. x / max_range (255, or 65535 when the image's maximum exceeds 256), float32.
  2. pre_pad: reflect-pad right and bottom only; mod pad (x2 nets: to even sizes, x1: to multiples
     of 4), reflect, right and bottom. (Where a pad is not smaller than the image, which fails in
     the original, the reflection is repeated, or the pixel replicated: see `_reflect_pad`.)
  3. The network on the whole padded image (tile 0), or tile by tile: tiles of `tile` pixels over
     the padded image, each grown by `tile_pad` context clamped to the image (edge tiles get less,
     never padding), one forward each, the output cropped back into a canvas of the padded size.
  4. Remove the mod pad, then pre_pad * scale, from bottom and right; clamp to [0, 1].
  5. Grey images go through as GRAY2RGB and come back with OpenCV's float BGR2GRAY. RGBA: the alpha
     goes through the same network as a 3-channel grey image and back through BGR2GRAY
     (alpha_upsampler "realesrgan"), or is resized with cv2 INTER_LINEAR (any other value: the
     original's CLI calls that option "bicubic" but runs INTER_LINEAR; here it is "linear").
  6. (x * 255).round() to uint8, or (x * 65535).round() to uint16 for 16-bit input.
  7. outscale other than the net scale: cv2.resize INTER_LANCZOS4 of that integer image to
     (int(w * outscale), int(h * outscale)).

Unlike the original, the image stays in host memory and only one tile (plus its context) is on the
model's device at a time, from pinned memory on CUDA, so device memory is bounded by the tile; the
canvas and every step after the network are on the host. The numbers are the original's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from imaging.colour import cv2_gray_float32
from imaging.errors import CallerValueError
from imaging.resample import cv2_resize_lanczos4, cv2_resize_linear
from imaging.tensors import in_model_format

AlphaUpsampler = Literal["realesrgan", "linear"]
ALPHA_UPSAMPLERS: tuple[str, ...] = ("realesrgan", "linear")
Progress = Callable[[int, int], None]  # (forward passes done, forward passes in all)

_MOD_SCALE = {2: 2, 1: 4}  # RealESRGANer.pre_process: the x2 / x1 nets pixel-unshuffle their input
_SIXTEEN_BIT_ABOVE = 256  # enhance(): np.max(img) > 256 means a 16-bit image


@dataclass(frozen=True)
class UpscaleParams:
    """The knobs of inference_realesrgan.py, with its defaults (what a user of the original CLI gets).

    pre_pad is the CLI's 0; RealESRGANer's own constructor default is 10. The CLI runs half precision
    unless --fp32: here precision is the model's dtype, chosen where the model is loaded.
    """

    tile: int = 0  # --tile: tile size in input pixels, 0 = whole image in one forward
    tile_pad: int = 10  # --tile_pad: context around each tile, clamped to the image
    pre_pad: int = 0  # --pre_pad: reflect padding at the right and bottom, removed afterwards
    outscale: float | None = 4.0  # --outscale: final scale; None = the network's own scale
    alpha_upsampler: AlphaUpsampler = "realesrgan"  # --alpha_upsampler

    def __post_init__(self) -> None:
        if self.tile < 0 or self.tile_pad < 0 or self.pre_pad < 0:
            raise ValueError("tile, tile_pad and pre_pad must be >= 0")
        if self.outscale is not None and not (math.isfinite(self.outscale) and self.outscale > 0):
            raise ValueError(f"outscale must be a positive number, not {self.outscale}")
        if self.alpha_upsampler not in ALPHA_UPSAMPLERS:
            raise ValueError(f"alpha_upsampler must be one of {ALPHA_UPSAMPLERS}, not {self.alpha_upsampler!r}")


def _resizes(net_scale: int, params: UpscaleParams) -> bool:
    return params.outscale is not None and params.outscale != float(net_scale)


def output_size(height: int, width: int, net_scale: int, params: UpscaleParams = UpscaleParams()) -> tuple[int, int]:
    """(height, width) of `upscale`'s result for an input of that size, without running anything.

    The network's own output, height * net_scale x width * net_scale, is made first (on the host)
    when the final size differs."""
    if not _resizes(net_scale, params):
        return height * net_scale, width * net_scale
    size = int(height * params.outscale), int(width * params.outscale)
    if min(size) < 1:
        raise ValueError(f"outscale {params.outscale} makes a {height}x{width} image empty")
    return size


def _padded_size(size: int, net_scale: int, pre_pad: int) -> int:
    size += pre_pad
    mod = _MOD_SCALE.get(net_scale)
    return size + (-size % mod if mod else 0)


def _tiles(height: int, width: int, tile: int) -> int:
    return 1 if tile == 0 else math.ceil(height / tile) * math.ceil(width / tile)


def forward_passes(height: int, width: int, channels: int, net_scale: int,
                   params: UpscaleParams = UpscaleParams()) -> int:
    """How many network forwards `upscale` runs (the `total` its progress callback reports)."""
    per_image = _tiles(_padded_size(height, net_scale, params.pre_pad),
                       _padded_size(width, net_scale, params.pre_pad), params.tile)
    alpha_too = channels == 4 and params.alpha_upsampler == "realesrgan"
    return per_image * (2 if alpha_too else 1)


class _Counter:
    """Reports each forward pass to the caller's progress callback, and asks the caller's `check`
    whether to go on (it raises to stop the work between forwards)."""

    def __init__(self, total: int, progress: Progress | None, check: Callable[[], None] | None = None):
        self.done, self.total, self.progress, self.check = 0, total, progress, check

    def step(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)
        if self.check is not None:
            self.check()


def _reflect_pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """F.pad's reflect at the right and bottom, for pads of any size. One F.pad where it can (the
    original's only case: a pad smaller than the side); a wider pad reflects the padded image again
    until it is done (numpy's "reflect" for wide pads), and a side of one pixel, which has nothing to
    mirror, is replicated. The padding is cut off the output: it only gives the border context."""
    height, width = x.shape[-2:]
    single_h, single_w = (pad_h if height == 1 else 0), (pad_w if width == 1 else 0)
    if single_h or single_w:
        x = F.pad(x, (0, single_w, 0, single_h), mode="replicate")
        pad_h, pad_w = pad_h - single_h, pad_w - single_w
    while pad_h or pad_w:
        step_h, step_w = min(pad_h, x.shape[-2] - 1), min(pad_w, x.shape[-1] - 1)
        x = F.pad(x, (0, step_w, 0, step_h), mode="reflect")
        pad_h, pad_w = pad_h - step_h, pad_w - step_w
    return x


def _pad(x: torch.Tensor, net_scale: int, pre_pad: int) -> torch.Tensor:
    """RealESRGANer.pre_process: reflect pre_pad, then the mod pad, both right and bottom only."""
    height, width = x.shape[-2:]
    pad_h = _padded_size(height, net_scale, pre_pad) - height
    pad_w = _padded_size(width, net_scale, pre_pad) - width
    x = _reflect_pad(x, pre_pad, pre_pad)
    return _reflect_pad(x, pad_h - pre_pad, pad_w - pre_pad)


def check_tiling(net_scale: int, tile: int, tile_pad: int) -> None:
    """The x2 / x1 networks pixel-unshuffle their input, so their tiles (and the context around them)
    must be multiples of 2 / 4, or some tile has a side they cannot take (the original fails there
    with an AssertionError in basicsr's pixel_unshuffle): refused naming the knob, before any work."""
    mod = _MOD_SCALE.get(net_scale, 1)
    if not tile:
        return
    for key, value in (("tile", tile), ("tile_pad", tile_pad)):
        if value % mod:
            raise CallerValueError(key, f"{value} is not a multiple of {mod}, which the x{net_scale} network "
                                        f"needs; use {value + mod - value % mod}")


def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One network pass of a host tensor on the model's device; the float32 result back on the host."""
    param = next(model.parameters())
    if param.device.type == "cuda":
        x = x.contiguous().pin_memory()
    x = in_model_format(x.to(param.device, param.dtype, non_blocking=True), model)
    return model(x).float().cpu()


def _tiled(model: nn.Module, x: torch.Tensor, net_scale: int, tile: int, tile_pad: int,
           counter: _Counter) -> torch.Tensor:
    """RealESRGANer.tile_process: every tile a separate forward, cropped into a zero canvas."""
    check_tiling(net_scale, tile, tile_pad)
    batch, channels, height, width = x.shape
    out = x.new_zeros(batch, channels, height * net_scale, width * net_scale)
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            py0, px0 = max(y0 - tile_pad, 0), max(x0 - tile_pad, 0)
            py1, px1 = min(y1 + tile_pad, height), min(x1 + tile_pad, width)
            result = _forward(model, x[:, :, py0:py1, px0:px1])
            cy, cx = (y0 - py0) * net_scale, (x0 - px0) * net_scale
            out[:, :, y0 * net_scale:y1 * net_scale, x0 * net_scale:x1 * net_scale] = \
                result[:, :, cy:cy + (y1 - y0) * net_scale, cx:cx + (x1 - x0) * net_scale]
            counter.step()
    return out


def upscale_float(model: nn.Module, image: torch.Tensor, net_scale: int, tile: int, tile_pad: int,
                  pre_pad: int, counter: _Counter | None = None) -> torch.Tensor:
    """Steps 2-4 before the clamp: [1, 3, H, W] float32 in [0, 1] on the host -> the network's
    [1, 3, H * net_scale, W * net_scale] float32 output on the host, padding removed, unclamped."""
    counter = counter or _Counter(0, None)
    height, width = image.shape[-2:]
    x = _pad(image, net_scale, pre_pad)
    if tile > 0:
        out = _tiled(model, x, net_scale, tile, tile_pad, counter)
    else:
        out = _forward(model, x)
        counter.step()
    return out[:, :, :height * net_scale, :width * net_scale]


def _planes(image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """Steps 1 and 5 in: [3, H, W] float32 RGB (grey replicated), the alpha plane or None, max_range."""
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(f"expected an HxW, HxWx3 or HxWx4 image, not shape {image.shape}")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected a uint8 or uint16 image, not {image.dtype}")
    max_range = 65535 if int(image.max()) > _SIXTEEN_BIT_ABOVE else 255
    x = torch.from_numpy(image.astype(np.float32)) / max_range
    if x.dim() == 2:
        return x.expand(3, *x.shape).contiguous(), None, max_range
    x = x.permute(2, 0, 1)
    alpha = x[3].contiguous() if x.shape[0] == 4 else None
    return x[:3].contiguous(), alpha, max_range


def quantise(x: torch.Tensor, max_range: int) -> torch.Tensor:
    """Step 6: clamped float32 planes -> (x * 255.0).round() as uint8, or (x * 65535.0).round() as
    uint16 when max_range is 65535 (float32 arithmetic, half to even, as numpy)."""
    rounded = (x * float(max_range)).round_()
    return rounded.to(torch.uint8) if max_range == 255 else rounded.to(torch.int32).to(torch.uint16)


@dataclass
class Forwards:
    """What the network made of an image (steps 1-5 up to the planes' recombination), on the host."""

    rgb: torch.Tensor  # [3, H * s, W * s] float32 in [0, 1]: the colour (or the grey replicated)
    alpha: torch.Tensor | None  # the alpha as the network made it ([3, H * s, W * s]), or the input plane
    max_range: int
    channels: int  # the input's: 1 (grey), 3 or 4
    params: UpscaleParams
    net_scale: int
    final_size: tuple[int, int]


def upscale_forwards(model: nn.Module, image: np.ndarray, net_scale: int, params: UpscaleParams = UpscaleParams(),
                     progress: Progress | None = None, check: Callable[[], None] | None = None) -> Forwards:
    """The device part of `upscale`: every network forward, tile by tile (for the device lane)."""
    height, width = image.shape[:2]
    rgb, alpha, max_range = _planes(image)
    channels = 1 if image.ndim == 2 else image.shape[2]
    counter = _Counter(forward_passes(height, width, channels, net_scale, params), progress, check)
    run = lambda planes: upscale_float(model, planes[None], net_scale, params.tile, params.tile_pad,
                                       params.pre_pad, counter)[0].clamp_(0, 1)
    with torch.inference_mode():
        out = run(rgb)
        if alpha is not None and params.alpha_upsampler == "realesrgan":
            alpha = run(alpha.expand(3, height, width))
    return Forwards(out, alpha, max_range, channels, params, net_scale, output_size(height, width, net_scale, params))


def finish_upscale(forwards: Forwards) -> np.ndarray:
    """The host part of `upscale`: the planes put back together (grey, alpha), quantised, resized to
    outscale (Lanczos-4), in the input's layout."""
    out, alpha, net_scale = forwards.rgb, forwards.alpha, forwards.net_scale
    with torch.inference_mode():
        if forwards.channels == 1:
            out = cv2_gray_float32(out)[None]
        elif alpha is not None:
            if forwards.params.alpha_upsampler == "realesrgan":
                out_alpha = cv2_gray_float32(alpha)
            else:
                out_alpha = cv2_resize_linear(alpha, tuple(out.shape[-2:]))
            out = torch.cat((out, out_alpha[None]))
        result = quantise(out, forwards.max_range)
        if _resizes(net_scale, forwards.params):
            result = cv2_resize_lanczos4(result, forwards.final_size)
    result = result[0] if forwards.channels == 1 else result.permute(1, 2, 0)
    return np.ascontiguousarray(result.numpy())


def upscale(model: nn.Module, image: np.ndarray, net_scale: int, params: UpscaleParams = UpscaleParams(),
            progress: Progress | None = None, check: Callable[[], None] | None = None) -> np.ndarray:
    """RealESRGANer.enhance(image, outscale, alpha_upsampler) with RealESRGANer(tile, tile_pad, pre_pad).

    `image`: HxW grey, HxWx3 RGB or HxWx4 RGBA, uint8 or uint16 (as the original decides by value: a
    maximum above 256 means 16-bit, otherwise the values are taken as 8-bit and the result is uint8).
    Returns the same layout, uint8 or uint16, of `output_size(H, W, net_scale, params)`. `progress`
    is called after each network forward with (done, total), then `check`, which raises to stop.
    """
    return finish_upscale(upscale_forwards(model, image, net_scale, params, progress, check))
