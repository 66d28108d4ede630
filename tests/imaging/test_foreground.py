"""Blur-fusion foreground estimation: parity with BiRefNet's refine_foreground, and what it is for."""
from __future__ import annotations

import pytest
import torch

import parity
from imaging.foreground import box_blur, estimate_foreground, estimate_foreground_u8


def test_parity_oracle():
    checks = parity.run("refine-foreground")
    outputs = {c.output for c in checks}
    assert outputs == {f"{k}_{s}" for k in ("fg", "blur_B_r90", "fg_u8") for s in ("torch", "cv2")}
    for check in checks:
        assert check.passed, check.line("refine-foreground")


def test_opaque_alpha_returns_the_image():
    image = torch.rand(1, 3, 40, 50, generator=torch.Generator().manual_seed(0))
    fg = estimate_foreground(image, torch.ones(1, 1, 40, 50))
    torch.testing.assert_close(fg, image, atol=1e-5, rtol=0)


def test_recovers_foreground_colour_in_soft_edges():
    """I = a*F + (1-a)*B with a flat red F over a noisy background: the estimate of F in the
    semi-transparent band is several times closer to red than the image colour there (the
    method is approximate: about 0.06 mean error against 0.21 here)."""
    gen = torch.Generator().manual_seed(1)
    h, w = 120, 160
    y, x = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    radius = ((y - 60) ** 2 + (x - 80) ** 2).sqrt()
    alpha = (1 - (radius - 30) / 15).clamp(0, 1)[None, None]  # soft ring between r=30 and r=45
    red = torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1).expand(1, 3, h, w)
    background = torch.rand(1, 3, h, w, generator=gen)
    image = alpha * red + (1 - alpha) * background
    fg = estimate_foreground(image, alpha)
    soft = ((alpha > 0.2) & (alpha < 0.8)).expand(1, 3, h, w)
    err_estimate = (fg - red)[soft].abs().mean()
    err_image = (image - red)[soft].abs().mean()
    assert err_estimate < 0.4 * err_image


@pytest.mark.parametrize("flavour", ["torch", "opencv"])
def test_batch_is_per_image(flavour):
    gen = torch.Generator().manual_seed(2)
    image = torch.rand(2, 3, 64, 96, generator=gen)
    alpha = torch.rand(2, 1, 64, 96, generator=gen)
    both = estimate_foreground(image, alpha, flavour=flavour)
    for i in range(2):
        torch.testing.assert_close(both[i : i + 1], estimate_foreground(image[i : i + 1], alpha[i : i + 1], flavour=flavour))


def test_box_blur_windows():
    """Even kernels are off-centre, in opposite directions for the two flavours."""
    x = torch.zeros(1, 1, 6, 12)
    x[..., 6] = 4.0  # a vertical line: the vertical pass leaves it as is
    torch_blur = box_blur(x, 4, "torch")[0, 0, 3]  # window [i-1, i+2]
    opencv_blur = box_blur(x, 4, "opencv")[0, 0, 3]  # window [i-2, i+1]
    assert torch_blur.nonzero().flatten().tolist() == [4, 5, 6, 7]
    assert opencv_blur.nonzero().flatten().tolist() == [5, 6, 7, 8]
    assert torch.equal(torch_blur[4:8], torch.ones(4))


def test_uint8_truncates_and_keeps_dtype():
    image = torch.full((1, 3, 16, 16), 200, dtype=torch.uint8)
    mask = torch.full((1, 1, 16, 16), 255, dtype=torch.uint8)
    out = estimate_foreground_u8(image, mask)
    assert out.dtype == torch.uint8
    # 200/255*255 lands just below or at 200; truncation must never round up past it.
    assert int(out.max()) <= 200 and int(out.min()) >= 199
    half = estimate_foreground(torch.rand(1, 3, 8, 8).half(), torch.ones(1, 1, 8, 8).half())
    assert half.dtype == torch.float16
