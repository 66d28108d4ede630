"""imaging.filters' square morphology against a window-by-window reference, odd and even sizes."""
from __future__ import annotations

import pytest
import torch

from imaging.filters import dilate, erode


def _window_reduce(x: torch.Tensor, size: int, reduce) -> torch.Tensor:
    """Every pixel's window [i - size//2, i + size - 1 - size//2] clipped to the image, one at a time."""
    height, width = x.shape[-2:]
    before, after = size // 2, size - 1 - size // 2
    out = torch.empty_like(x)
    for i in range(height):
        for j in range(width):
            window = x[..., max(i - before, 0):i + after + 1, max(j - before, 0):j + after + 1]
            out[..., i, j] = reduce(window.flatten(-2), dim=-1).values
    return out


@pytest.mark.parametrize("size", [2, 3, 4, 7, 12])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_square_morphology_matches_the_window_reference(size, dtype):
    x = torch.rand(2, 3, 9, 13, generator=torch.Generator().manual_seed(size), dtype=dtype)
    assert torch.equal(dilate(x, size), _window_reduce(x, size, torch.max))
    assert torch.equal(erode(x, size), _window_reduce(x, size, torch.min))


def test_size_one_or_less_leaves_the_image_as_it_is():
    x = torch.rand(1, 1, 5, 5)
    for size in (-3, 0, 1):
        assert torch.equal(dilate(x, size), x) and torch.equal(erode(x, size), x)
