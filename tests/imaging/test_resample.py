"""Pillow- and OpenCV-exact resizing (imaging/resample.py) against Pillow 13 and reference formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from imaging.resample import (
    cv2_resize_lanczos4,
    cv2_resize_linear,
    matlab_resize,
    pil_reduce,
    pil_bicubic_resize,
    pil_thumbnail,
    to_uint8_matlab,
)


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
    assert np.array_equal(pil_bicubic_resize(image, dst, box).permute(1, 2, 0).numpy(), expected)


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


# -- MATLAB imresize(bicubic) ----------------------------------------------------------------------
# Pillow's BICUBIC is the same Keys kernel (a = -0.5), widened by the ratio when shrinking, with the same
# pixel centres; it cuts the kernel at the image's edges where MATLAB mirrors the image. So away from the
# edges (2 taps per unit of ratio) the two agree: exactly in float, within Pillow's rounding in uint8.


def _pillow_float_resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.array(Image.fromarray(x.astype(np.float32), mode="F").resize(size[::-1], Image.Resampling.BICUBIC))


@pytest.mark.parametrize("shape,scale", [((48, 64), 0.5), ((40, 36), 0.25), ((20, 28), 2.0), ((21, 27), 4.0),
                                         ((30, 45), 1 / 3)])
def test_matlab_bicubic_matches_pillows_bicubic_away_from_the_edges(shape, scale):
    x = _u8(shape, 3)
    ours = matlab_resize(x.double(), scale).numpy()
    assert ours.shape == (math.ceil(shape[0] * scale), math.ceil(shape[1] * scale))
    pillow = _pillow_float_resize(x.numpy(), ours.shape)
    # output pixels whose kernel (2 input pixels each side, 2 / scale when shrinking) reaches past the edge
    edge = 3 if scale < 1 else math.ceil(2 * scale) + 1
    inner = (slice(edge, -edge), slice(edge, -edge))
    assert np.abs(ours[inner] - pillow[inner]).max() < 2e-3
    assert np.abs(ours - pillow).max() > 0.01  # the mirrored edges differ: the test sees the edge rule
    # uint8: Pillow rounds and clips between its two passes, so compare on a smooth image (no overshoot)
    rows, cols = torch.meshgrid(torch.arange(shape[0]), torch.arange(shape[1]), indexing="ij")
    smooth = (128 + 90 * torch.sin(rows / 5.0) * torch.cos(cols / 7.0)).round().to(torch.uint8)
    rounded = matlab_resize(smooth, scale).numpy().astype(int)
    pillow_u8 = np.array(_pil(smooth).resize(ours.shape[::-1], Image.Resampling.BICUBIC)).astype(int)
    assert np.abs(rounded[inner] - pillow_u8[inner]).max() <= 1


def test_matlab_edges_mirror_the_image():
    # a constant image stays constant (weights sum to one, mirrored taps are real pixels)...
    flat = torch.full((1, 13, 17), 77, dtype=torch.uint8)
    assert torch.equal(matlab_resize(flat, 0.5), torch.full((1, 7, 9), 77, dtype=torch.uint8))
    # ...and a linear ramp enlarged stays a ramp inside, flattening at the edges as a mirror does
    ramp = torch.arange(8, dtype=torch.float64).repeat(1, 1)
    up = matlab_resize(ramp, 2.0)[0]
    centres = (torch.arange(16, dtype=torch.float64) + 0.5) / 2 - 0.5
    assert torch.allclose(up[5:-5], centres[5:-5], atol=1e-12)  # cubic convolution keeps linear functions
    assert up[0] > centres[0] and up[-1] < centres[-1]


def test_matlab_rounding_is_half_away_from_zero_and_saturates():
    x = torch.tensor([-3.0, 0.5, 1.5, 2.4999, 254.5, 300.0], dtype=torch.float64)
    assert to_uint8_matlab(x).tolist() == [0, 1, 2, 2, 255, 255]


@pytest.mark.parametrize("x,scale,error", [(torch.zeros(4, 4), 0.5, TypeError),
                                           (torch.zeros(4, 4, dtype=torch.uint8), 0.0, ValueError),
                                           (torch.zeros(4, 4, dtype=torch.uint8), float("nan"), ValueError)])
def test_matlab_resize_refuses_bad_arguments(x, scale, error):
    with pytest.raises(error):
        matlab_resize(x, scale)
