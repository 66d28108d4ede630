"""Real-ESRGAN's procedure (restoration/upscale.py): the tile parity folder, one tile on the device at
a time, and the grey, RGBA, 16-bit and outscale paths against independently computed expectations.
Networks here are small RRDBNets (the real class, 1 block, 8 features) so each case takes moments."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import parity
from imaging.errors import CallerValueError
from models.rrdbnet import RRDBNet
from pipeline.restoration.upscale import (
    UpscaleParams,
    _reflect_pad,
    check_tiling,
    forward_passes,
    output_size,
    upscale,
    upscale_float,
)


@pytest.mark.slow
def test_parity_oracle():
    checks = parity.run("realesrgan-tile")
    assert {c.output for c in checks} == {"output_float", "output_bgr_u8", "output_float_untiled",
                                          "output_bgr_u8_untiled"}
    for check in checks:
        assert check.passed, check.line("realesrgan-tile")


def small_net(scale: int) -> RRDBNet:
    torch.manual_seed(scale)
    net = RRDBNet(scale=scale, num_feat=8, num_block=1, num_grow_ch=4).eval()
    with torch.no_grad():  # outputs around mid-grey with a spread (std ~0.3), some clamped at 0 and 1
        net.conv_last.weight.mul_(15)
        net.conv_last.bias.fill_(0.5)
    return net


class Recorder(nn.Module):
    """The network, noting the shape of every input it is given."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return self.net(x)


def textured(shape, top=255, seed=0):
    rng = np.random.default_rng(seed)
    h, w = shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    base = (np.sin(x / 3.0) * np.cos(y / 4.0) * 0.5 + 0.5) * top
    if len(shape) == 3:
        base = base[..., None]
    noisy = base + rng.normal(0, top / 10, shape)
    return np.clip(noisy, 0, top).astype(np.uint8 if top == 255 else np.uint16)


def gray_weights(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of [3, H, W] in float64, the formula OpenCV's BGR2GRAY rounds."""
    return 0.299 * rgb[0].double() + 0.587 * rgb[1].double() + 0.114 * rgb[2].double()


def test_tiles_go_to_the_network_one_at_a_time_and_no_larger_than_tile_plus_pad():
    params = UpscaleParams(tile=16, tile_pad=5, pre_pad=3, outscale=None)
    model = Recorder(small_net(4))
    image = textured((45, 38, 3))
    calls = []
    upscale(model, image, 4, params, progress=lambda done, total: calls.append((done, total)))
    bound = params.tile + 2 * params.tile_pad
    # the padded image is 48 x 41: 3 x 3 tiles, each alone (batch 1), never the whole image
    assert len(model.shapes) == 9 == forward_passes(45, 38, 3, 4, params)
    assert all(s[0] == 1 and s[2] <= bound and s[3] <= bound for s in model.shapes)
    assert max(s[2] * s[3] for s in model.shapes) < 48 * 41
    assert calls == [(i, 9) for i in range(1, 10)]


class Stop(Exception):
    pass


def test_a_check_that_raises_stops_the_tiles_at_the_next_boundary():
    """The caller's check runs after each forward: when it raises, no further tile goes through."""
    model = Recorder(small_net(4))
    checks = []

    def check():
        checks.append(len(model.shapes))
        if len(checks) == 2:
            raise Stop

    with pytest.raises(Stop):
        upscale(model, textured((45, 38, 3)), 4, UpscaleParams(tile=16, tile_pad=5, pre_pad=3, outscale=None),
                check=check)
    assert checks == [1, 2] and len(model.shapes) == 2  # of the 9 tiles


def test_channels_last_inputs_follow_the_network():
    """A tile goes in the memory format of the network's weights (the model cache's CHANNELS_LAST /
    CPU_CHANNELS_LAST decision), never converted against it."""
    formats = []

    class Format(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            formats.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
            return self.net(x)

    image = textured((20, 18, 3))
    upscale(Format(small_net(4)), image, 4, UpscaleParams(outscale=None))
    upscale(Format(small_net(4).to(memory_format=torch.channels_last)), image, 4, UpscaleParams(outscale=None))
    assert formats == [False, True]


def test_tiled_output_is_the_tiles_cropped_into_place():
    """Each output tile is the network's output on the tile with its (clamped) context, cropped."""
    net = small_net(4)
    x = torch.rand(1, 3, 20, 27, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = upscale_float(net, x, 4, tile=10, tile_pad=3, pre_pad=0)
        corner = net(x[:, :, 7:20, 17:27])  # last tile: rows 10..20 with 3 above, cols 20..27 with 3 left
        first = net(x[:, :, 0:13, 0:13])
    torch.testing.assert_close(out[:, :, 40:80, 80:108], corner[:, :, 12:52, 12:40], rtol=0, atol=0)
    torch.testing.assert_close(out[:, :, 0:40, 0:40], first[:, :, 0:40, 0:40], rtol=0, atol=0)


def test_pre_pad_and_mod_pad_reflect_right_and_bottom_and_are_cropped():
    """x2 net, odd size, pre_pad 3: the network sees reflect(3) then reflect-to-even, right/bottom only."""
    model = Recorder(small_net(2))
    x = torch.rand(1, 3, 11, 14, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        out = upscale_float(model, x, 2, tile=0, tile_pad=0, pre_pad=3)
        padded = F.pad(F.pad(x, (0, 3, 0, 3), mode="reflect"), (0, 1, 0, 0), mode="reflect")  # 14 x 17 -> 14 x 18
        expected = model.net(padded)[:, :, :22, :28]
    assert model.shapes[0] == (1, 3, 14, 18)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


@pytest.mark.parametrize("shape,pre_pad", [((1, 5, 3), 0), ((1, 1, 3), 0), ((2, 3, 3), 512), ((3, 2, 4), 7)])
def test_images_smaller_than_the_pad_are_upscaled(shape, pre_pad):
    """Where the original's single reflect pad fails (pad >= side), the padding is reflected again (or
    the one-pixel side replicated); the output is cropped to the image's own size times the scale."""
    model = Recorder(small_net(2))
    out = upscale(model, textured(shape), 2, UpscaleParams(pre_pad=pre_pad, outscale=None))
    height, width = shape[:2]
    assert out.shape == (2 * height, 2 * width, *shape[2:])
    padded = tuple(n + pre_pad + (n + pre_pad) % 2 for n in (height, width))
    assert model.shapes[0] == (1, 3, *padded)


def test_wide_reflect_pads_repeat_the_reflection():
    """Wider than the image: reflected, then the reflected image reflected again (numpy's "reflect");
    a one-pixel side is replicated. A pad the original can take is its single F.pad."""
    x = torch.arange(3.0).reshape(1, 1, 1, 3)
    padded = _reflect_pad(x, 2, 5)
    assert padded[0, 0, 0].tolist() == [0, 1, 2, 1, 0, 1, 2, 1]
    assert padded[0, 0, :, 0].tolist() == [0, 0, 0]
    y = torch.rand(1, 3, 6, 5)
    torch.testing.assert_close(_reflect_pad(y, 5, 4), F.pad(y, (0, 4, 0, 5), mode="reflect"), rtol=0, atol=0)


def test_rgb_is_clamped_and_rounded_half_to_even():
    net = small_net(4)
    image = textured((9, 11, 3))
    out = upscale(net, image, 4, UpscaleParams(outscale=None))
    with torch.inference_mode():
        raw = net(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)[0]
    expected = np.round(np.clip(raw.numpy(), 0, 1) * np.float32(255)).astype(np.uint8).transpose(1, 2, 0)
    assert raw.min() < 0 or raw.max() > 1  # the clamp matters here
    assert np.array_equal(out, expected)


def test_grey_goes_through_as_rgb_and_back_to_luma():
    net = small_net(4)
    grey = textured((10, 13))
    out = upscale(net, grey, 4, UpscaleParams(outscale=None))
    with torch.inference_mode():
        rgb = net(torch.from_numpy(grey).float().div(255).expand(1, 3, 10, 13))[0].clamp(0, 1)
    expected = (gray_weights(rgb) * 255).round().numpy()
    assert out.shape == (40, 52) and out.dtype == np.uint8
    assert np.abs(out - expected).max() <= 1 and (out == expected).mean() > 0.99


def test_rgba_alpha_through_the_network_as_grey():
    net = small_net(4)
    rgba = textured((10, 12, 4), seed=3)
    out = upscale(net, rgba, 4, UpscaleParams(outscale=None))
    with torch.inference_mode():
        alpha = net(torch.from_numpy(rgba[..., 3]).float().div(255).expand(1, 3, 10, 12))[0].clamp(0, 1)
    expected = (gray_weights(alpha) * 255).round().numpy()
    assert out.shape == (40, 48, 4)
    assert np.array_equal(out[..., :3], upscale(net, rgba[..., :3].copy(), 4, UpscaleParams(outscale=None)))
    assert np.abs(out[..., 3] - expected).max() <= 1 and (out[..., 3] == expected).mean() > 0.99


def test_rgba_alpha_linear_is_a_half_pixel_bilinear_resize():
    net = Recorder(small_net(4))
    rgba = textured((10, 12, 4), seed=4)
    out = upscale(net, rgba, 4, UpscaleParams(outscale=None, alpha_upsampler="linear"))
    alpha = torch.from_numpy(rgba[..., 3]).float()[None, None] / 255
    expected = (F.interpolate(alpha, scale_factor=4, mode="bilinear", align_corners=False)[0, 0] * 255).round()
    assert len(net.shapes) == 1  # the alpha never goes through the network
    assert np.abs(out[..., 3].astype(int) - expected.numpy()).max() <= 1


def test_sixteen_bit_input_gives_sixteen_bit_output():
    net = small_net(4)
    image = textured((8, 9, 3), top=65535)
    out = upscale(net, image, 4, UpscaleParams(outscale=None))
    with torch.inference_mode():
        raw = net(torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None] / 65535)[0].clamp(0, 1)
    expected = np.round(raw.numpy().astype(np.float64) * 65535).transpose(1, 2, 0)
    assert out.dtype == np.uint16 and out.shape == (32, 36, 3)
    assert np.abs(out - expected).max() <= 1


def test_sixteen_bit_storage_with_small_values_counts_as_eight_bit():
    """The original decides by value (max > 256), not by dtype: such an image comes back as uint8."""
    net = small_net(4)
    image = textured((8, 9, 3)).astype(np.uint16)
    out = upscale(net, image, 4, UpscaleParams(outscale=None))
    assert out.dtype == np.uint8
    assert np.array_equal(out, upscale(net, image.astype(np.uint8), 4, UpscaleParams(outscale=None)))


def _lanczos4_reference(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Separable Lanczos-4 (a = 4, normalised taps, half-pixel centres, edges replicated) in float64."""
    def weights(n_in: int, n_out: int) -> np.ndarray:
        matrix = np.zeros((n_out, n_in))
        for d in range(n_out):
            centre = (d + 0.5) * n_in / n_out - 0.5
            base = int(np.floor(centre))
            for i in range(base - 3, base + 5):
                t = centre - i
                w = 1.0 if t == 0 else 4 * np.sin(np.pi * t) * np.sin(np.pi * t / 4) / (np.pi * t) ** 2
                matrix[d, min(max(i, 0), n_in - 1)] += w
        return matrix / matrix.sum(1, keepdims=True)
    rows, cols = weights(image.shape[0], size[0]), weights(image.shape[1], size[1])
    return np.einsum("yh,hwc,xw->yxc", rows, image.astype(np.float64), cols)


@pytest.mark.parametrize("outscale", [2.5, 6.0, 1.3])
def test_outscale_resizes_the_network_output_with_lanczos4(outscale):
    net = small_net(4)
    image = textured((9, 7, 3), seed=5)
    params = UpscaleParams(outscale=outscale)
    out = upscale(net, image, 4, params)
    size = output_size(9, 7, 4, params)
    assert out.shape[:2] == size == (int(9 * outscale), int(7 * outscale))
    native = upscale(net, image, 4, UpscaleParams(outscale=None))
    expected = np.clip(np.round(_lanczos4_reference(native, size)), 0, 255)
    diff = np.abs(out - expected)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.9  # 11-bit fixed-point taps: measured 93-97 % exact


def test_output_size_without_running():
    assert output_size(100, 150, 4) == (400, 600)  # the CLI's default outscale 4 on an x4 net
    assert output_size(100, 150, 2) == (400, 600)  # ... and on an x2 net (Lanczos from 200 x 300)
    assert output_size(100, 150, 2, UpscaleParams(outscale=None)) == (200, 300)
    assert output_size(33, 17, 4, UpscaleParams(outscale=1.5)) == (49, 25)
    with pytest.raises(ValueError):
        output_size(1, 1, 4, UpscaleParams(outscale=0.1))


def test_forward_passes_count_the_alpha_pass_and_the_padded_tiles():
    assert forward_passes(100, 150, 3, 4) == 1
    assert forward_passes(100, 150, 4, 4) == 2
    assert forward_passes(100, 150, 4, 4, UpscaleParams(alpha_upsampler="linear")) == 1
    assert forward_passes(100, 150, 3, 4, UpscaleParams(tile=64)) == 2 * 3
    assert forward_passes(63, 63, 3, 2, UpscaleParams(tile=32, pre_pad=1)) == 2 * 2  # 64 x 64


@pytest.mark.parametrize("bad", [dict(tile=-1), dict(outscale=0), dict(outscale=float("nan")),
                                 dict(alpha_upsampler="bicubic")])
def test_params_are_validated(bad):
    with pytest.raises(ValueError):
        UpscaleParams(**bad)


def test_x2_tiles_must_have_even_sides():
    """The x2 net pixel-unshuffles each tile: an odd tile_pad would give odd tiles (the original asserts)."""
    with pytest.raises(CallerValueError, match="^tile_pad: 3 is not a multiple of 2, which the x2 network needs"):
        upscale(small_net(2), textured((12, 14, 3)), 2, UpscaleParams(tile=8, tile_pad=3, outscale=None))
    with pytest.raises(CallerValueError, match="^tile: 1 is not a multiple of 2"):
        check_tiling(2, 1, 0)
    check_tiling(4, 1, 3)  # the x4 net takes any tile
    check_tiling(2, 0, 3)  # untiled: the context is not used
    out = upscale(small_net(2), textured((13, 15, 3)), 2, UpscaleParams(tile=8, tile_pad=4, outscale=None))
    assert out.shape == (26, 30, 3)
