"""carvekit compositing: exact parity, and the grey blend it applies under soft alpha."""
from __future__ import annotations

import torch

import parity
from imaging.compose import carvekit_apply_mask, carvekit_extract_alpha


def test_parity_oracle():
    checks = parity.run("carvekit-apply-mask")
    assert {c.output for c in checks} == {"rgba", "extract_alpha_rgba"}
    for check in checks:
        assert check.passed, check.line("carvekit-apply-mask")


def test_blends_toward_grey_and_keeps_alpha():
    image = torch.tensor([230, 30, 0], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 1, 3)
    mask = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 1, 1, 3)
    rgba = carvekit_apply_mask(image, mask)
    assert rgba.dtype == torch.uint8 and rgba.shape == (1, 4, 1, 3)
    assert rgba[0, :, 0, 0].tolist() == [130, 130, 130, 0]  # transparent: grey, not black
    assert rgba[0, :, 0, 2].tolist() == [230, 30, 0, 255]  # opaque: the image
    # half alpha: a*fg + (1-a)*130, truncated: 128/255*230 + 127/255*130 = 180.2..., 79.8..., 64.7...
    assert rgba[0, :, 0, 1].tolist() == [180, 79, 64, 128]


def test_extract_alpha_is_rounded_square():
    rgba = torch.zeros(1, 4, 1, 256, dtype=torch.uint8)
    rgba[:, 3] = torch.arange(256, dtype=torch.uint8)
    out = carvekit_extract_alpha(rgba)
    a = torch.arange(256).double()
    assert torch.equal(out[0, 0, 0].long(), (a * a / 255).round().long())
    assert (out[:, 3] == 255).all() and torch.equal(out[:, 0], out[:, 2])


def test_apply_mask_table_is_carvekits_float32_arithmetic_for_every_pair():
    """The table the composite reads equals carvekit's formula with IEEE float32 division, computed
    independently here elementwise in float64 and rounded as float32 does, for all 65,536 pairs."""
    import numpy as np

    from imaging.compose import _apply_mask_table

    mask, fg = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    a = (mask.astype(np.float32) / np.float32(255)).astype(np.float32)  # IEEE float32 division
    value = a * fg.astype(np.float32) + (np.float32(1) - a) * np.float32(130)
    expected = value.astype(np.float32).astype(np.uint8).reshape(-1)
    assert np.array_equal(_apply_mask_table().numpy(), expected)


def test_apply_mask_does_not_depend_on_the_devices_division():
    """A reciprocal multiplication (CUDA's scalar division) would change some values; the table does not."""
    image = torch.arange(256, dtype=torch.uint8).view(1, 1, 1, 256).expand(1, 3, 256, 256)
    mask = torch.arange(256, dtype=torch.uint8).view(1, 1, 256, 1).expand(1, 1, 256, 256)
    by_reciprocal = (mask.float() * (1 / torch.tensor(255.0)) * image.float()
                     + (1 - mask.float() * (1 / torch.tensor(255.0))) * 130).to(torch.uint8)
    ours = carvekit_apply_mask(image, mask)[:, :3]
    exact = (mask.float() / 255 * image.float() + (1 - mask.float() / 255) * 130).to(torch.uint8)
    assert torch.equal(ours, exact)
    assert not torch.equal(by_reciprocal, exact)  # the hazard is real for some (mask, colour) pairs
