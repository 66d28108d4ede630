"""BASNet's matte (its parity cases run in tests/parity)."""
from __future__ import annotations

import torch

from models import registry


def test_forward_returns_the_refined_sigmoid_at_input_size():
    model = registry.get_spec("basnet").build().eval()
    with torch.inference_mode():
        mask = model(torch.randn(1, 3, 64, 96))
    assert mask.shape == (1, 1, 64, 96)
    assert 0.0 <= float(mask.min()) and float(mask.max()) <= 1.0


def test_matte_is_min_max_per_image():
    masks = torch.tensor([[[[0.1, 0.3]]], [[[0.5, 0.9]]]])
    torch.testing.assert_close(registry.get_spec("basnet").to_matte(masks), torch.tensor([[[[0.0, 1.0]]], [[[0.0, 1.0]]]]))
