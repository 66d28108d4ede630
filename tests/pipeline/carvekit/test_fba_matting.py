"""carvekit's FBAMatting wrapper: the oracle cases, and each emulated step against its reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import parity
from pipeline.carvekit import fba_matting as fm


@pytest.fixture(scope="module")
def wrapper_cases():
    return parity.oracle_module().cases("fba-wrapper")


@pytest.mark.slow
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
    assert fm.fba_input_size(300, 200, 256) == (256, 176)  # thumbnail 256x171
    assert fm.fba_input_size(180, 120, 256) == (184, 120)  # fits: only rounded up
    assert tuple(wrapper_cases[0]["net_out"].shape[-2:]) == fm.fba_input_size(*wrapper_cases[0]["trimap"].shape, 256)


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


@pytest.mark.slow
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
