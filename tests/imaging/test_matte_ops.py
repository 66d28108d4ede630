"""Matte post-processing: morphology against kornia's, blur, threshold, crop boxes and margins, resize."""
from __future__ import annotations

import kornia
import pytest
import torch

from imaging.matte_ops import (
    Box,
    crop,
    crop_box,
    feather_matte,
    fit_within,
    grow_matte,
    apply_matte_knobs,
    resize_cutout,
    subject_box,
    threshold_matte,
)
from imaging.options import OutputOptions, parse_margin


def _disc(radius: int) -> torch.Tensor:
    offsets = torch.arange(-radius, radius + 1)
    yy, xx = torch.meshgrid(offsets, offsets, indexing="ij")
    return ((yy ** 2 + xx ** 2) <= radius ** 2).float()


@pytest.fixture(scope="module")
def sparse_matte() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    keep = torch.rand(2, 50, 64, generator=generator) > 0.96
    values = torch.randint(1, 256, (2, 50, 64), generator=generator, dtype=torch.uint8)
    return keep.to(torch.uint8) * values


@pytest.mark.parametrize("radius", [1, 2, 5, 12, 40])
def test_grow_and_shrink_equal_kornias_disc_morphology(sparse_matte, radius):
    """kornia's geodesic border (outside ignored) is what the docstring promises."""
    x = sparse_matte[:, None].float()
    dilated = kornia.morphology.dilation(x, _disc(radius))[:, 0].to(torch.uint8)
    eroded = kornia.morphology.erosion(255 - x, _disc(radius))[:, 0].to(torch.uint8)
    assert torch.equal(grow_matte(sparse_matte, radius), dilated)
    assert torch.equal(grow_matte(255 - sparse_matte, -radius), eroded)


def test_grow_is_euclidean_and_shrink_keeps_a_subject_cut_by_the_frame():
    alpha = torch.zeros(41, 41, dtype=torch.uint8)
    alpha[20, 20] = 255
    grown = grow_matte(alpha, 10)
    assert grown[20, 30] == 255 and grown[30, 20] == 255  # radius 10 along the axes
    assert grown[27, 27] == 255 and grown[28, 28] == 0  # 7*sqrt2 = 9.9 inside, 8*sqrt2 = 11.3 outside
    assert int(grown.bool().sum()) == int(_disc(10).sum())
    half = torch.zeros(30, 30, dtype=torch.uint8)
    half[15:] = 255  # a subject touching the bottom and the sides
    shrunk = grow_matte(half, -5)
    assert shrunk[20:].eq(255).all() and shrunk[:20].eq(0).all()  # shrinks from its edge only


def test_feather_is_a_gaussian_blur_with_replicated_border():
    alpha = torch.zeros(1, 64, 64, dtype=torch.uint8)
    alpha[:, :, 32:] = 255
    soft = feather_matte(alpha, 4.0)
    reference = kornia.filters.gaussian_blur2d(alpha[None].float(), (25, 25), (4.0, 4.0), border_type="replicate")
    assert torch.equal(soft, reference[0].round().to(torch.uint8))
    assert soft[0, 0, 0] == 0 and soft[0, 0, -1] == 255  # the frame's edge neither fades nor leaks
    assert 100 < int(soft[0, 10, 31]) < 128 < int(soft[0, 10, 32]) < 155
    assert torch.equal(feather_matte(alpha, 0), alpha)


def test_threshold():
    alpha = torch.tensor([[0, 127, 128, 255]], dtype=torch.uint8)
    assert threshold_matte(alpha, 128).tolist() == [[0, 0, 255, 255]]


def test_refine_order_threshold_then_grow_then_feather():
    alpha = torch.zeros(40, 40, dtype=torch.uint8)
    alpha[10:30, 10:30] = 100  # a faint square
    alpha[18:22, 18:22] = 200  # a solid core
    refined = apply_matte_knobs(alpha, OutputOptions(threshold=150, grow=3, feather=1.0))
    # threshold leaves the 4x4 core, grow makes it 10x10 (a disc of 3 rounds the corners), feather softens
    expected = feather_matte(grow_matte(threshold_matte(alpha, 150), 3), 1.0)
    assert torch.equal(refined, expected)
    assert refined[20, 20] == 255 and refined[10, 10] == 0 and 0 < int(refined[20, 15]) < 255


def test_subject_box_over_frames_and_empty_matte():
    frames = torch.zeros(2, 20, 30, dtype=torch.uint8)
    frames[0, 2:5, 3:6] = 255
    frames[1, 10:12, 20:25] = 40
    assert subject_box(frames) == Box(2, 3, 12, 25)
    assert subject_box(frames, threshold=40) == Box(2, 3, 5, 6)
    assert subject_box(torch.zeros(20, 30, dtype=torch.uint8)) is None
    # nothing found: no crop, the whole frame
    assert crop_box(torch.zeros(20, 30, dtype=torch.uint8), parse_margin("10px")) == Box(0, 0, 20, 30)


def test_crop_margin_pixels_percent_and_beyond_the_image():
    alpha = torch.zeros(100, 200, dtype=torch.uint8)
    alpha[20:60, 50:150] = 255  # subject 40 high, 100 wide
    assert crop_box(alpha, parse_margin("0")) == Box(20, 50, 60, 150)
    assert crop_box(alpha, parse_margin("10%")) == Box(16, 40, 64, 160)  # 10 % of 40 and of 100
    assert crop_box(alpha, parse_margin("5px 30px")) == Box(15, 20, 65, 180)
    box = crop_box(alpha, parse_margin("30px 0 50px 60px"))  # top, right, bottom, left
    assert box == Box(-10, -10, 110, 150)
    cropped = crop(alpha, box)
    assert cropped.shape == (120, 160)
    assert cropped[:10].eq(0).all() and cropped[:, :10].eq(0).all()  # beyond the image: transparent
    assert torch.equal(cropped[10:110, 10:], alpha[:, :150])


def test_fit_within_keeps_aspect_and_budget():
    assert fit_within(800, 1000, None) == (800, 1000)
    assert fit_within(800, 1000, 1_000_000) == (800, 1000)  # never enlarged
    h, w = fit_within(800, 1000, 250_000)
    assert (h, w) == (447, 559) and h * w <= 250_000
    assert fit_within(1, 100_000, 100) == (1, 100)  # a 1-pixel side cannot shrink further
    assert fit_within(100_000, 2, 100) == (100, 1)


def test_resize_is_premultiplied():
    """A transparent neighbour's colour must not bleed into the visible edge."""
    colour = torch.zeros(3, 64, 64, dtype=torch.uint8)
    colour[0, :, :32] = 255  # red, visible
    colour[1, :, 32:] = 255  # green, invisible
    alpha = torch.zeros(64, 64, dtype=torch.uint8)
    alpha[:, :32] = 255
    small_colour, small_alpha = resize_cutout(colour, alpha, (16, 16))
    assert small_alpha.shape == (16, 16) and small_alpha[0, 0] == 255 and small_alpha[0, -1] == 0
    edge = small_alpha[8] > 0
    assert small_colour[1, 8][edge].max() < 1e-3  # no green at the edge
    assert small_colour[0, 8][edge].min() > 0.99
