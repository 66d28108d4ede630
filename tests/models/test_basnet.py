"""BASNet against the parity oracle, through the real loader path."""
from __future__ import annotations

import pytest
import torch

from models import parity, registry
from models.basnet import basnet_matte


def test_parity_oracle():
    checks = parity.run("basnet")
    assert len(checks) == 2
    for check in checks:
        assert check.passed, check.line("basnet")


def test_loader_consumes_every_key(tmp_path):
    state = parity.oracle_module().checkpoint("basnet")
    spec = registry.get_spec("basnet")
    assert set(spec.build().state_dict()) == set(state)
    state.pop("refunet.conv_d0.weight")
    parity.save_published(state, tmp_path / spec.weights.filename, spec.weights.file_format)
    with pytest.raises(registry.CheckpointMismatch):
        registry.load("basnet", directory=tmp_path)


def test_forward_returns_the_refined_sigmoid_at_input_size():
    model = registry.get_spec("basnet").build().eval()
    with torch.inference_mode():
        mask = model(torch.randn(1, 3, 64, 96))
    assert mask.shape == (1, 1, 64, 96)
    assert 0.0 <= float(mask.min()) and float(mask.max()) <= 1.0


def test_matte_is_min_max_per_image():
    masks = torch.tensor([[[[0.1, 0.3]]], [[[0.5, 0.9]]]])
    torch.testing.assert_close(basnet_matte(masks), torch.tensor([[[[0.0, 1.0]]], [[[0.0, 1.0]]]]))
