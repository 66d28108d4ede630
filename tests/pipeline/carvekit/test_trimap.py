"""carvekit trimap: exact parity, and the regions it marks on a synthetic disc."""
from __future__ import annotations

import torch

import parity
from pipeline.carvekit.trimap import make_trimap


def test_parity_oracle():
    checks = parity.run("carvekit-trimap")
    assert len(checks) == 3
    for check in checks:
        assert check.passed, check.line("carvekit-trimap")


def test_regions_of_a_rectangle():
    mask = torch.zeros(1, 1, 200, 200, dtype=torch.uint8)
    mask[..., 80:120, 60:140] = 255
    trimap = make_trimap(mask)[0, 0]
    assert trimap.dtype == torch.uint8
    row = trimap[100]
    assert (row[65:135] == 255).all()  # 5-pixel erosion leaves columns [65, 134] certain
    assert (row[60:65] == 128).all() and (row[135:140] == 128).all()  # eroded rim -> unknown
    assert (row[30:60] == 128).all() and (row[140:170] == 128).all()  # 30-pixel dilation band
    assert (row[:30] == 0).all() and (row[170:] == 0).all()
    # The dilation is a square: the band's corner reaches 30 pixels diagonally as well.
    assert trimap[50, 30] == 128 and trimap[49, 30] == 0 and trimap[50, 29] == 0


def test_disc_values():
    y, x = torch.meshgrid(torch.arange(200), torch.arange(200), indexing="ij")
    radius = (((y - 100) ** 2 + (x - 100) ** 2).float()).sqrt()
    mask = ((60 - radius) * 255 / 20).clamp(0, 255).to(torch.uint8)[None, None]  # hard core, soft rim r=40..60
    trimap = make_trimap(mask)[0, 0]
    assert set(trimap.unique().tolist()) == {0, 128, 255}
    assert trimap[100, 100] == 255
    soft = (mask[0, 0] > 0) & (mask[0, 0] <= 231)
    assert (trimap[soft] == 128).all()
    # Only the certain core (mask > 231) is dilated, by a 61x61 square: at least 30 pixels in
    # every direction, at most 30*sqrt(2) along diagonals.
    core = radius[mask[0, 0] > 231].max()
    assert (trimap[(radius > 60) & (radius <= core + 30)] == 128).all()
    assert (trimap[radius > core + 30 * 2**0.5 + 1] == 0).all()


def test_soft_values_are_unknown_and_border_does_not_erode():
    mask = torch.zeros(1, 1, 100, 100, dtype=torch.uint8)
    mask[..., :50, :] = 255  # touches the top, left and right borders
    mask[..., 80, 80] = 100  # a faint speck far from the object
    trimap = make_trimap(mask)[0, 0]
    assert trimap[80, 80] == 128
    assert trimap[0, 0] == 255 and trimap[0, 99] == 255  # image border is not background
    assert (trimap[45:50, 50] == 128).all() and trimap[44, 50] == 255
    assert trimap[60, 50] == 128 and trimap[90, 10] == 0  # inside / outside the 30-pixel band


def test_float_mask_matches_uint8():
    mask = torch.randint(0, 256, (2, 1, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(make_trimap(mask.float() / 255), make_trimap(mask))
