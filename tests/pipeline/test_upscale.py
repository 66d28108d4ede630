"""pipeline/upscale.py: the tile that fits in the device's free memory."""
from __future__ import annotations

from pipeline.restoration.upscale import UpscaleParams
from pipeline.upscale import AUTO_TILE_STEP, FORWARD_SHARE, bytes_per_input_pixel, fitting_tile


def test_a_forward_that_fits_or_an_asked_tile_is_kept():
    per_pixel = bytes_per_input_pixel(4)
    whole = UpscaleParams(tile=0)
    assert fitting_tile(100, 100, 4, whole, free=int(100 * 100 * per_pixel / FORWARD_SHARE) + 1) == whole
    assert fitting_tile(4000, 4000, 4, UpscaleParams(tile=64), free=0).tile == 64


def test_a_whole_image_that_does_not_fit_gets_the_largest_tile_that_does():
    params = UpscaleParams(tile=0, tile_pad=10)
    for net_scale in (2, 4):
        per_pixel = bytes_per_input_pixel(net_scale)
        free = 300 * 300 * per_pixel
        budget = free * FORWARD_SHARE
        tile = fitting_tile(3000, 3000, net_scale, params, free).tile
        assert tile % AUTO_TILE_STEP == 0 and tile > 0
        assert (tile + 2 * params.tile_pad) ** 2 * per_pixel <= budget  # a tile and its context fit
        assert (tile + AUTO_TILE_STEP + 2 * params.tile_pad) ** 2 * per_pixel > budget  # the next step would not
