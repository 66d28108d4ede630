"""BiRefNet / RMBG-2.0 against the parity oracle, through the real loader path, plus the local-folder spec."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

import parity
from models import registry
from models.birefnet import BiRefNet, spec_from_folder


def test_matte_is_the_float32_sigmoid_of_the_logits():
    logits = torch.tensor([[[[0.0, 100.0]]]], dtype=torch.float16)
    matte = registry.get_spec("briaai/RMBG-2.0").to_matte(logits)
    assert matte.dtype == torch.float32 and matte.flatten().tolist() == [0.5, 1.0]


@pytest.fixture(scope="module")
def lite_model() -> BiRefNet:
    model = BiRefNet("swin_v1_t")
    registry.load_state(model, parity.oracle_module().checkpoint("birefnet-lite"))
    return model.eval().requires_grad_(False)


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


def test_spec_from_folder_loads_a_local_checkpoint(tmp_path):
    state = parity.oracle_module().checkpoint("birefnet-lite")
    save_file(state, str(tmp_path / "model.safetensors"))
    # What the published config.json files hold: no input size, so the default 1024x1024 applies.
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BiRefNet"], "bb_pretrained": False}))
    spec = spec_from_folder(tmp_path)
    assert spec.extra == {"backbone": "swin_v1_t", "legacy_patch_order": False}
    assert spec.preprocess.size == (1024, 1024)
    assert registry.find_weights(spec, tmp_path) == tmp_path / "model.safetensors"
    model = spec.build()
    path = registry.find_weights(spec, tmp_path)
    registry.load_state(model, spec.remap_keys(registry.read_state_dict(path, spec.weights), model))
    assert spec_from_folder(tmp_path, legacy_patch_order=True).build().legacy_patch_order


def test_spec_from_folder_reads_swin_l_and_recorded_size(tmp_path):
    # Only the tensors the backbone is inferred from: Swin-L's embedding and its 18 stage-3 blocks.
    tensors = {"bb.patch_embed.proj.weight": torch.zeros(192, 3, 4, 4)}
    tensors.update({f"bb.layers.2.blocks.{i}.norm1.weight": torch.zeros(1) for i in range(18)})
    save_file(tensors, str(tmp_path / "model.safetensors"))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"size": {"height": 1440, "width": 2560}}))
    spec = spec_from_folder(tmp_path, name="mine")
    assert spec.name == "mine" and spec.extra["backbone"] == "swin_v1_l"
    assert spec.preprocess.size == (1440, 2560)
