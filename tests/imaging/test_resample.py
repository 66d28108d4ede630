"""Pillow- and OpenCV-exact resizing (imaging/resample.py) against Pillow 13 and reference formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from imaging.resample import cv2_resize_lanczos4, cv2_resize_linear, pil_reduce, pil_resize, pil_thumbnail


def _u8(shape, seed):
    return torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def _pil(t: torch.Tensor) -> Image.Image:
    return Image.fromarray(t.permute(1, 2, 0).numpy() if t.dim() == 3 else t.numpy())


@pytest.mark.parametrize(
    "src, dst, box",
    [
        ((37, 53), (20, 31), None),  # shrink
        ((20, 30), (41, 77), None),  # enlarge
        ((60, 20), (12, 18), None),  # height shrinks much more: Pillow 13 resamples vertically first
        ((40, 40), (10, 39), None),
        ((30, 50), (25, 40), (3.25, 1.5, 47.75, 29.0)),  # fractional source box
    ],
)
def test_pil_resize_matches_pillow_bicubic(src, dst, box):
    image = _u8((3, *src), 0)
    expected = np.array(_pil(image).resize(dst[::-1], Image.BICUBIC, box=box))
    assert np.array_equal(pil_resize(image, dst, box).permute(1, 2, 0).numpy(), expected)


@pytest.mark.parametrize("src, limit", [((300, 200), 224), ((97, 410), 40), ((333, 20), 50), ((64, 64), 100)])
def test_pil_thumbnail_matches_pillow(src, limit):
    """(97, 410) -> 40 and (333, 20) -> 50 take Pillow's reducing_gap path (Image.reduce first)."""
    image = _u8((3, *src), 1)
    expected = _pil(image)
    expected.thumbnail((limit, limit))
    assert np.array_equal(pil_thumbnail(image, limit).permute(1, 2, 0).numpy(), np.array(expected))


@pytest.mark.parametrize("factor", [(2, 2), (3, 1), (1, 5), (4, 3)])
def test_pil_reduce_matches_pillow(factor):
    image = _u8((1, 23, 31), 2)
    assert np.array_equal(pil_reduce(image, factor)[0].numpy(), np.array(_pil(image[0]).reduce(factor)))


def _textured(h: int, w: int, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (h // 4 + 2, w // 4 + 2, channels), dtype=np.uint8)
    smooth = np.array(Image.fromarray(coarse.squeeze(-1) if channels == 1 else coarse).resize((w, h), Image.BICUBIC))
    smooth = smooth.reshape(h, w, channels)
    return np.clip(smooth.astype(int) + rng.integers(-20, 21, smooth.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("h, w, max_size", [
    (300, 200, 256),  # one bicubic step
    (300, 130, 64),  # reduce by 2, then vertical pass first (Pillow 13 order)
    (130, 300, 40),  # reduce by 3
    (1000, 37, 60),  # very tall, uneven reduce factors
    (257, 256, 256),  # one axis unchanged: its pass is skipped
    (77, 91, 100),  # fits: unchanged
])
@pytest.mark.parametrize("channels", [3, 1])
def test_thumbnail_matches_pillow(h, w, max_size, channels):
    array = _textured(h, w, channels, seed=h * w)
    reference = Image.fromarray(array.squeeze(-1) if channels == 1 else array)
    reference.thumbnail((max_size, max_size), resample=Image.BICUBIC)
    ours = pil_thumbnail(torch.from_numpy(array).permute(2, 0, 1)[None], max_size)[0].permute(1, 2, 0)
    assert ours.squeeze(-1).numpy().tolist() == np.array(reference).tolist()


@pytest.mark.parametrize("fx, fy", [(2, 2), (3, 3), (1, 3), (4, 4), (3, 2), (6, 7)])
def test_reduce_matches_pillow(fx, fy):
    array = _textured(53, 47, 3, seed=fx * 10 + fy)
    reference = np.array(Image.fromarray(array).reduce((fx, fy)))
    ours = pil_reduce(torch.from_numpy(array).permute(2, 0, 1)[None], (fx, fy))[0].permute(1, 2, 0)
    assert ours.numpy().tolist() == reference.tolist()


def _lanczos4(t: float) -> float:
    if t == 0:
        return 1.0
    return 4 * math.sin(math.pi * t) * math.sin(math.pi * t / 4) / (math.pi * t) ** 2 if abs(t) < 4 else 0.0


def test_lanczos4_is_normalised_lanczos_with_replicated_edges():
    x = torch.rand(1, 1, 7, 13, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = cv2_resize_lanczos4(x, (16, 8))
    expected = torch.empty(16, 8, dtype=torch.float64)
    for dy in range(16):
        for dx in range(8):
            total = weight_sum = 0.0
            sy = (dy + 0.5) * 7 / 16 - 0.5
            sx = (dx + 0.5) * 13 / 8 - 0.5
            for iy in range(math.floor(sy) - 3, math.floor(sy) + 5):
                for ix in range(math.floor(sx) - 3, math.floor(sx) + 5):
                    w = _lanczos4(sy - iy) * _lanczos4(sx - ix)
                    total += w * float(x[0, 0, min(max(iy, 0), 6), min(max(ix, 0), 12)])
                    weight_sum += w
            expected[dy, dx] = total / weight_sum
    assert (out[0, 0] - expected).abs().max() < 1e-6  # OpenCV's taps are float32


def test_lanczos4_same_size_is_a_copy_and_an_unscaled_axis_is_kept():
    x = torch.rand(1, 2, 9, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert torch.equal(cv2_resize_lanczos4(x, (9, 12)), x)
    # Height unchanged but resampled (only equal sizes copy): its taps are ~(0,0,0,1,0,0,0,0).
    column = cv2_resize_lanczos4(x[..., :1].expand(1, 2, 9, 12).contiguous(), (9, 16))
    assert torch.allclose(column, x[..., :1].expand(1, 2, 9, 16), atol=1e-6)


@pytest.mark.parametrize("size", [(37, 29), (9, 7), (16, 24)])
def test_linear_resize_is_half_pixel_bilinear(size):
    x = torch.rand(2, 1, 16, 12, generator=torch.Generator().manual_seed(3))
    expected = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
    assert (cv2_resize_linear(x, size) - expected).abs().max() < 1e-5


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("shape,size", [((1, 3, 20, 20000), (16, 100)), ((2, 1, 9000, 30), (45, 30)),
                                        ((1, 2, 700, 7000), (10, 70))])
def test_staged_antialiased_resize_equals_torchs_single_resize(mode, shape, size):
    """Past MAX_NATIVE_SHRINK an axis is resized by our tap sum (CUDA's kernel refuses ~190x); where
    torch's own kernel works (the CPU always does) both give the same result to float32 rounding."""
    from imaging.resample import MAX_NATIVE_SHRINK, antialiased_resize

    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 255
    assert max(shape[-2] / size[0], shape[-1] / size[1]) > MAX_NATIVE_SHRINK
    ours = antialiased_resize(x, size, mode)
    single = torch.nn.functional.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True)
    assert ours.shape == single.shape
    assert (ours - single).abs().max() < 2e-3  # values up to 255: float32 rounding of long sums


@pytest.mark.parametrize("dtype, top", [(torch.uint8, 255), (torch.uint16, 65535)])
@pytest.mark.parametrize("size", [(23, 30), (6, 4), (9, 40)])
def test_integer_lanczos4_rounds_the_float_resize(dtype, top, size):
    """uint8: OpenCV's 11-bit fixed-point taps and one rounding shift; uint16: float32 sums rounded.
    Both stay within 1 of the float64 resize rounded and saturated (checked bit for bit against
    opencv-python 5.0.0 offline: benchmarks/compare_opencv.py)."""
    x = (torch.rand(2, 9, 13, generator=torch.Generator().manual_seed(4)) * top).round()
    x[0, :3] = top  # saturated areas: the negative lobes overshoot
    exact = cv2_resize_lanczos4(x.double(), size).round().clamp(0, top)
    ours = cv2_resize_lanczos4(x.to(torch.int32).to(dtype), size)
    assert ours.dtype == dtype and ours.shape == (2, *size)
    diff = (ours.to(torch.int32) - exact.to(torch.int32)).abs()
    assert diff.max() <= 1
    if dtype == torch.uint16:
        assert (diff == 0).double().mean() > 0.99  # float32 sums: off only next to a .5
