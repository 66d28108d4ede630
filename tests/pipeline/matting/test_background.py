"""The `matte` procedure: padding and cropping, the published composition, plate checks, presets, and
an end-to-end run on the Background-Matting sample pair through the oracle's MobileNetV2 stand-in."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import parity
from pipeline.matting.background import (
    MatteParams,
    PlateSizeMismatch,
    coarse_min_side,
    compose_cutout,
    image_tensor,
    matte,
    pad_to_multiple,
    refine_params,
)


@pytest.fixture(scope="module")
def model():
    return parity.load_oracle_model("bmv2-mobilenetv2", "bmv2-mobilenetv2", 0, "cpu", torch.float32)


def photo_pair(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth plate and the same plate with a brighter rectangle in front of it."""
    gen = torch.Generator().manual_seed(seed)
    plate = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4, generator=gen), (height, width),
                                            mode="bilinear", align_corners=False)[0]
    image = plate.clone()
    image[:, height // 4: 3 * height // 4, width // 3: 2 * width // 3] = 0.9
    return tuple((t.permute(1, 2, 0) * 255).to(torch.uint8).numpy() for t in (image, plate))


def test_padding_replicates_the_last_row_and_column():
    x = torch.arange(3 * 5 * 6, dtype=torch.float32).reshape(1, 3, 5, 6)
    padded = pad_to_multiple(x)
    assert padded.shape == (1, 3, 8, 8)
    assert torch.equal(padded[..., :5, :6], x)
    assert torch.equal(padded[..., 5:, :6], x[..., 4:5, :].expand(1, 3, 3, 6))
    assert torch.equal(padded[..., :, 6:], padded[..., :, 5:6].expand(1, 3, 8, 2))
    assert pad_to_multiple(padded) is padded


def test_odd_sizes_are_padded_like_the_edge_and_cropped_back(model):
    image, plate = photo_pair(38, 53)
    result = matte(model, image, plate, MatteParams(refine_mode="full"))
    assert result.rgba.shape == (38, 53, 4) and result.alpha.shape == (38, 53)
    # the same network on the pair padded independently (NumPy's edge mode), then cropped
    src, bgr = (image_tensor(np.pad(p, ((0, 2), (0, 3), (0, 0)), mode="edge"), torch.device("cpu"), torch.float32)
                for p in (image, plate))
    with torch.inference_mode():
        out = model(src, bgr, result.refine)
    expected = compose_cutout(out.pha, out.fgr)[0, :, :38, :53].permute(1, 2, 0).numpy()
    assert np.array_equal(result.rgba, expected)


@pytest.mark.parametrize("size,knobs", [((1, 1), {"preset": "4k"}), ((3, 2), {"backbone_scale": 0.03125}),
                                        ((5, 40), {"backbone_scale": 0.1, "refine_mode": "full"})])
def test_images_too_small_for_the_coarse_pass_are_padded_up_to_one_coarse_pixel(model, size, knobs):
    """A side under 1 / backbone_scale has no coarse pixel (the original fails in the backbone): the
    pair is padded like the edge up to the shortest side that has one, and the outputs cropped back."""
    image, plate = photo_pair(*size)
    params = MatteParams(**knobs)
    result = matte(model, image, plate, params)
    assert result.rgba.shape == (*size, 4)
    _, refine = refine_params(params, *size)
    side = coarse_min_side(refine.backbone_scale)
    assert int(side * refine.backbone_scale) == 1 and int((side - 1) * refine.backbone_scale) == 0
    padded = [max(n, side) + -max(n, side) % 4 for n in size]
    src, bgr = (image_tensor(np.pad(p, ((0, padded[0] - size[0]), (0, padded[1] - size[1]), (0, 0)), mode="edge"),
                             torch.device("cpu"), torch.float32) for p in (image, plate))
    with torch.inference_mode():
        out = model(src, bgr, refine)
    expected = compose_cutout(out.pha, out.fgr)[0, :, :size[0], :size[1]].permute(1, 2, 0).numpy()
    assert np.array_equal(result.rgba, expected)


def test_cutout_is_the_published_com_with_truncation():
    pha = torch.tensor([0.0, 0.001, 0.5, 1.0]).reshape(1, 1, 1, 4)
    fgr = torch.tensor([0.7, 0.999, 0.5, 0.2]).reshape(1, 1, 1, 4).expand(1, 3, 1, 4)
    rgba = compose_cutout(pha, fgr)[0, :, 0].T.tolist()
    assert rgba[0] == [0, 0, 0, 0]  # alpha 0: black, whatever the foreground
    # alpha 0.001 is not 0, so the foreground stays, while trunc(0.255) makes the alpha byte 0
    assert rgba[1] == [254, 254, 254, 0]
    assert rgba[2] == [127, 127, 127, 127]  # 127.5 truncated, not rounded
    assert rgba[3] == [51, 51, 51, 255]


def test_a_plate_of_another_size_is_refused_naming_both(model):
    image, _ = photo_pair(72, 128)
    _, plate = photo_pair(64, 128)
    with pytest.raises(PlateSizeMismatch, match=r"plate is 128x64 but the image is 128x72") as caught:
        matte(model, image, plate)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        matte(model, image, image[..., :1])


def test_presets_follow_the_image_size_unless_named():
    assert refine_params(MatteParams(), 1080, 1920)[0] == "hd"
    assert refine_params(MatteParams(), 2160, 3840) == ("4k", refine_params(MatteParams(preset="4k"), 1, 1)[1])
    _, four_k = refine_params(MatteParams(), 2160, 3840)
    assert (four_k.backbone_scale, four_k.sample_pixels, four_k.mode) == (0.125, 320_000, "sampling")
    _, hd = refine_params(MatteParams(), 1080, 1920)
    assert (hd.backbone_scale, hd.sample_pixels) == (0.25, 80_000)
    limit = MatteParams().four_k_above_pixels
    assert refine_params(MatteParams(), 1, limit)[0] == "hd"
    assert refine_params(MatteParams(), 1, limit + 1)[0] == "4k"
    assert refine_params(MatteParams(preset="hd"), 2160, 3840)[0] == "hd"
    _, custom = refine_params(MatteParams(sample_pixels=1000, refine_mode="thresholding", threshold=0.3), 2160, 3840)
    assert (custom.backbone_scale, custom.sample_pixels, custom.mode, custom.threshold) == (0.125, 1000, "thresholding", 0.3)
    with pytest.raises(ValueError, match="preset"):
        MatteParams(preset="8k")


def test_end_to_end_on_the_sample_pair(model, shared):
    image = np.asarray(Image.open(shared / "data" / "bgm" / "0001_img.png").convert("RGB"))
    plate = np.asarray(Image.open(shared / "data" / "bgm" / "0001_back.png").convert("RGB"))
    result = matte(model, image, plate)
    assert result.preset == "hd" and result.refine.sample_pixels == 80_000
    assert result.rgba.shape == (1080, 1920, 4) and result.rgba.dtype == np.uint8
    assert np.array_equal(result.alpha, result.rgba[..., 3])
    assert len(np.unique(result.alpha)) > 2  # a soft matte, not a constant or a binary map
