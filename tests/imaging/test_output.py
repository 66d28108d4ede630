"""From colour and alpha to the answer's pixels: crop over frames, size budget, channels, bg_color."""
from __future__ import annotations

import torch

from imaging.options import OutputOptions
from imaging.output import output_frames, to_host


def _subject(top: int, left: int) -> tuple[torch.Tensor, torch.Tensor]:
    colour = torch.full((3, 100, 160), 90, dtype=torch.uint8)
    alpha = torch.zeros(100, 160, dtype=torch.uint8)
    alpha[top:top + 20, left:left + 40] = 255
    return colour, alpha


def test_defaults_give_the_rgba_cutout_unchanged():
    colour, alpha = _subject(10, 10)
    (pixels,) = map(to_host, output_frames([colour], [alpha], OutputOptions()))
    assert pixels.shape == (100, 160, 4)
    assert (pixels[..., 3] == alpha.numpy()).all() and (pixels[..., :3] == 90).all()


def test_crop_uses_one_box_for_every_frame_and_a_margin():
    frames = [_subject(10, 10), _subject(50, 100)]
    options = OutputOptions(crop=True, crop_margin="5px")
    out = [to_host(f) for f in output_frames([c for c, _ in frames], [a for _, a in frames], options)]
    assert [f.shape for f in out] == [(70, 140, 4)] * 2  # rows 5..75, columns 5..145
    assert out[0][5:25, 5:45, 3].min() == 255 and out[1][45:65, 95:135, 3].min() == 255


def test_margin_beyond_the_image_takes_the_background_colour():
    colour, alpha = _subject(0, 0)
    (pixels,) = map(to_host, output_frames([colour], [alpha], OutputOptions(crop=True, crop_margin="10px"),
                                           bg_color="#ff0000"))
    assert pixels.shape == (40, 60, 3)
    assert pixels[0, 0].tolist() == [255, 0, 0] and pixels[15, 15].tolist() == [90, 90, 90]


def test_empty_matte_is_not_cropped():
    colour = torch.zeros(3, 30, 40, dtype=torch.uint8)
    alpha = torch.zeros(30, 40, dtype=torch.uint8)
    (pixels,) = map(to_host, output_frames([colour], [alpha], OutputOptions(crop=True, crop_margin="10%")))
    assert pixels.shape == (30, 40, 4) and not pixels[..., 3].any()


def test_size_budget_and_alpha_channel():
    colour, alpha = _subject(40, 60)
    big_colour = colour.repeat_interleave(8, 1).repeat_interleave(8, 2)  # 800 x 1280 = 1.02 MP
    big_alpha = alpha.repeat_interleave(8, 0).repeat_interleave(8, 1)
    (matte,) = map(to_host, output_frames([big_colour], [big_alpha], OutputOptions(size="preview", channels="alpha")))
    assert matte.shape == (395, 632)  # 249,640 pixels <= 250,000, aspect 1.6 kept
    assert matte.dtype.name == "uint8" and matte[200, 330] == 255 and matte[0, 0] == 0
