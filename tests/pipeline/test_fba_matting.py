"""carvekit's FBAMatting wrapper: the oracle cases, and each emulated step against its reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from models import parity
from pipeline import fba_matting as fm


@pytest.fixture(scope="module")
def wrapper_cases():
    return parity.oracle_module().cases("fba-wrapper")


def test_wrapper_parity_oracle():
    checks = parity.run("fba-wrapper")
    outputs = ("net_out", "alpha_from_stored_net_out", "alpha")
    assert {(c.case, c.output) for c in checks} == {(i, o) for i in range(2) for o in outputs}
    for check in checks:
        assert check.passed, check.line("fba-wrapper")


def test_compose_of_stored_net_out_is_the_stored_alpha_bit_for_bit(wrapper_cases):
    for case in wrapper_cases:
        trimap = case["trimap"][None, None]
        alpha = fm.fba_compose(case["net_out"], trimap)[0, 0]
        assert torch.equal(alpha, case["alpha"])
        assert (alpha[case["trimap"] == 0] == 0).all()


def test_network_size_is_the_thumbnail_rounded_up_to_8(wrapper_cases):
    assert fm.network_size(300, 200, 256) == (256, 176)  # thumbnail 256x171
    assert fm.network_size(180, 120, 256) == (184, 120)  # fits: only rounded up
    assert tuple(wrapper_cases[0]["net_out"].shape[-2:]) == fm.network_size(*wrapper_cases[0]["trimap"].shape, 256)


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
    ours = fm.pil_thumbnail(torch.from_numpy(array).permute(2, 0, 1)[None], max_size)[0].permute(1, 2, 0)
    assert ours.squeeze(-1).numpy().tolist() == np.array(reference).tolist()


@pytest.mark.parametrize("fx, fy", [(2, 2), (3, 3), (1, 3), (4, 4), (3, 2), (6, 7)])
def test_reduce_matches_pillow(fx, fy):
    array = _textured(53, 47, 3, seed=fx * 10 + fy)
    reference = np.array(Image.fromarray(array).reduce((fx, fy)))
    ours = fm.pil_reduce(torch.from_numpy(array).permute(2, 0, 1)[None], fy, fx)[0].permute(1, 2, 0)
    assert ours.numpy().tolist() == reference.tolist()


def _brute_force_distance(sites: torch.Tensor) -> torch.Tensor:
    _, h, w = sites.shape
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    out = torch.full(sites.shape, math.inf)
    for i, image in enumerate(sites):
        ys, xs = torch.nonzero(image, as_tuple=True)
        if ys.numel():
            sq = (yy.reshape(-1, 1) - ys) ** 2 + (xx.reshape(-1, 1) - xs) ** 2
            out[i] = sq.min(1).values.view(h, w).float().sqrt()
    return out


@pytest.mark.parametrize("shape, density", [((3, 37, 61), 0.01), ((2, 70, 23), 0.003), ((2, 1, 9), 0.3),
                                            ((1, 16, 16), 0.0), ((2, 45, 45), 0.3)])
def test_distance_transform_is_exact(shape, density):
    sites = torch.rand(shape, generator=torch.Generator().manual_seed(len(shape) + shape[1])) < density
    assert torch.equal(fm.distance_transform(sites), _brute_force_distance(sites))


def test_trimap_transform_matches_opencv_oracle():
    for case in parity.oracle_module().cases("fba-matting"):
        ours = fm.trimap_transform(case["two_chan_trimap"].double())
        expected = case["trimap_transformed"]
        # Same distances; numpy's float32 exp and torch's differ by at most an ulp near 1.
        assert (ours - expected).abs().max() <= 2.5e-7
        assert torch.equal(ours == 1, expected == 1)


def test_trimap_sites_follow_the_uint8_cast_of_the_original():
    # uint8((1 - t) * 255) == 0 on x86: t in (1 - 1/255, 1 + 1/255) and, by wrap-around, (-2/255, -1/255].
    values = torch.tensor([1.0, 1.003, 1.0045, 0.997, 0.995, -0.005, -0.003, -0.008, 0.0], dtype=torch.float64)
    two_chan = torch.zeros(1, 2, 1, values.numel(), dtype=torch.float64)
    two_chan[0, 1, 0] = values
    near = fm.trimap_transform(two_chan)[0, 3, 0]
    assert (near == 1).tolist() == [True, True, False, True, False, True, False, False, False]
    assert (fm.trimap_transform(torch.zeros(1, 2, 4, 4, dtype=torch.float64)) == 0).all()


def _lanczos4(t: float) -> float:
    if t == 0:
        return 1.0
    return 4 * math.sin(math.pi * t) * math.sin(math.pi * t / 4) / (math.pi * t) ** 2 if abs(t) < 4 else 0.0


def test_lanczos4_is_normalised_lanczos_with_replicated_edges():
    x = torch.rand(1, 1, 7, 13, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = fm.cv2_resize_lanczos4(x, (16, 8))
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
    assert torch.equal(fm.cv2_resize_lanczos4(x, (9, 12)), x)
    # Height unchanged but resampled (only equal sizes copy): its taps are ~(0,0,0,1,0,0,0,0).
    column = fm.cv2_resize_lanczos4(x[..., :1].expand(1, 2, 9, 12).contiguous(), (9, 16))
    assert torch.allclose(column, x[..., :1].expand(1, 2, 9, 16), atol=1e-6)


@pytest.mark.parametrize("size", [(37, 29), (9, 7), (16, 24)])
def test_linear_resize_is_half_pixel_bilinear(size):
    x = torch.rand(2, 1, 16, 12, generator=torch.Generator().manual_seed(3))
    expected = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
    assert (fm.cv2_resize_linear(x, size) - expected).abs().max() < 1e-5


def test_fba_alpha_accepts_alphamatting_trimaps(shared):
    data = shared / "data" / "alphamatting"
    image = np.array(Image.open(data / "image" / "GT01.png").convert("RGB"))[100:196, 300:372]
    trimap = np.array(Image.open(data / "trimap" / "GT01.png").convert("L"))[100:196, 300:372]
    assert set(np.unique(trimap)) <= {0, 128, 255}
    model = parity.load_oracle_model("fba-matting", "fba", seed=0, device="cpu", dtype=torch.float32)
    image_t = torch.from_numpy(image).permute(2, 0, 1)[None]
    trimap_t = torch.from_numpy(trimap)[None, None]
    alpha = fm.fba_alpha(model, image_t, trimap_t, mask_size=64)
    assert alpha.dtype == torch.uint8 and alpha.shape == (1, 1, 96, 72)
    assert (alpha[trimap_t == 0] == 0).all()
    assert ((alpha == 0) | (alpha >= 76)).all()  # the 0.3 noise floor
    inputs = fm.fba_inputs(image_t, trimap_t, 64)
    assert inputs.image.shape == (1, 3, 64, 48) and inputs.trimap_transformed.shape == (1, 6, 64, 48)
