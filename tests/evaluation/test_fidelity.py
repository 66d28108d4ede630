"""evaluation.fidelity: PSNR and SSIM as BasicSR defines them, against direct computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from evaluation import fidelity


def noisy_pair(seed: int = 0, shape=(3, 24, 30)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    b = (a.int() + torch.randint(-20, 21, shape, generator=g)).clamp(0, 255).to(torch.uint8)
    return a, b


def window_2d() -> np.ndarray:
    # the Gaussian of sigma 1.5 over -5..5, normalised, as an 11x11 outer product
    g = np.exp(-(np.arange(-5, 6) ** 2) / (2 * 1.5 ** 2))
    g /= g.sum()
    return np.outer(g, g)


def ssim_by_windows(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al.'s SSIM written out window by window (float64 [H, W], 0..255): the mean over every
    11x11 window inside the image."""
    w = window_2d()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i:i + 11, j:j + 11], y[i:i + 11, j:j + 11]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cov = (w * (px - mx) * (py - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_psnr_of_an_error_of_one_everywhere_is_48_13_db():
    a = torch.full((3, 16, 16), 100, dtype=torch.uint8)
    assert fidelity.psnr(a, a + 1) == pytest.approx(10 * math.log10(255 ** 2), abs=1e-12)
    assert fidelity.psnr(a, a) == math.inf


def test_psnr_is_over_every_value_and_crop_border_leaves_the_edges_out():
    a, b = noisy_pair()
    mse = float(((a.double() - b.double()) ** 2).mean())
    assert fidelity.psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / mse), rel=1e-12)
    damaged = a.clone()
    damaged[:, :2] = 255 - damaged[:, :2]
    damaged[:, :, -2:] = 0
    assert fidelity.psnr(a, damaged, crop_border=2) == math.inf
    assert fidelity.ssim(a, damaged, crop_border=2) == pytest.approx(1.0, abs=1e-12)
    assert fidelity.psnr(a, damaged) < 20


def test_ssim_equals_the_window_by_window_definition():
    a, b = noisy_pair(1)
    per_channel = [ssim_by_windows(a[c].double().numpy(), b[c].double().numpy()) for c in range(3)]
    assert fidelity.ssim(a, b) == pytest.approx(float(np.mean(per_channel)), abs=1e-10)
    assert fidelity.ssim(a[0], b[0]) == pytest.approx(per_channel[0], abs=1e-10)
    assert fidelity.ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_y_channel_is_bt601_studio_luma():
    a, b = noisy_pair(2)
    r, g, bl = (a[i].double() for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * bl) / 255
    assert torch.allclose(fidelity.luma(a)[0], y, atol=1e-4)  # BasicSR rounds through float32 twice
    ya, yb = fidelity.luma(a)[0].numpy(), fidelity.luma(b)[0].numpy()
    mse = float(((ya - yb) ** 2).mean())
    assert fidelity.psnr(a, b, y_channel=True) == pytest.approx(10 * math.log10(255 ** 2 / mse), rel=1e-12)
    assert fidelity.ssim(a, b, y_channel=True) == pytest.approx(ssim_by_windows(ya, yb), abs=1e-10)


@pytest.mark.parametrize("a,b,kwargs,message", [
    (torch.zeros(3, 20, 20, dtype=torch.uint8), torch.zeros(3, 20, 21, dtype=torch.uint8), {}, "one shape"),
    (torch.zeros(3, 20, 20), torch.zeros(3, 20, 20), {}, "uint8"),
    (torch.zeros(3, 20, 20, dtype=torch.uint8), torch.zeros(3, 20, 20, dtype=torch.uint8), {"crop_border": 10},
     "leaves nothing"),
    (torch.zeros(1, 20, 20, dtype=torch.uint8), torch.zeros(1, 20, 20, dtype=torch.uint8), {"y_channel": True},
     "RGB"),
])
def test_bad_inputs_are_refused(a, b, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fidelity.psnr(a, b, **kwargs)


def test_ssim_needs_a_whole_window():
    a = torch.zeros(3, 10, 40, dtype=torch.uint8)
    with pytest.raises(ValueError, match="at least 11x11"):
        fidelity.ssim(a, a)
