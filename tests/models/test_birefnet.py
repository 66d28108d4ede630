"""BiRefNet / RMBG-2.0: the network. (Its checkpoints: test_birefnet_zoo.py; local folders and the
patch-order detector: test_birefnet_folder.py; parity against the oracle: tests/parity.)"""
from __future__ import annotations

import pytest
import torch

import parity
from models import registry
from models.birefnet import BiRefNet


def test_matte_is_the_float32_sigmoid_of_the_logits():
    logits = torch.tensor([[[[0.0, 100.0]]]], dtype=torch.float16)
    matte = registry.get_spec("briaai/RMBG-2.0").to_matte(logits)
    assert matte.dtype == torch.float32 and matte.flatten().tolist() == [0.5, 1.0]


@pytest.fixture(scope="module")
def lite_model() -> BiRefNet:
    model = BiRefNet("swin_v1_t")
    registry.load_state(model, parity.oracle_state("birefnet-lite"))
    return model.eval().requires_grad_(False)


@pytest.mark.slow
def test_batch_of_two_equals_two_singles(lite_model):
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        batch = lite_model(x)
        singles = torch.cat([lite_model(x[:1]), lite_model(x[1:])])
    assert batch.shape == (2, 1, 64, 96)
    torch.testing.assert_close(batch, singles, rtol=1e-4, atol=1e-4)


def test_bfloat16_channels_last_runs_close_to_float32(lite_model):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        reference = lite_model(x)
        low = lite_model.to(torch.bfloat16, memory_format=torch.channels_last)
        try:
            out = low(x.to(torch.bfloat16, memory_format=torch.channels_last))
        finally:
            lite_model.to(torch.float32, memory_format=torch.contiguous_format)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    rel = (out.float() - reference).norm() / reference.norm()
    assert rel < 0.1, float(rel)  # random oracle weights amplify rounding; measured 0.048


def test_input_size_must_be_divisible_by_32(lite_model):
    with pytest.raises(ValueError, match="divisible by 32"):
        lite_model(torch.zeros(1, 3, 64, 80))
