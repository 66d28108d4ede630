"""TRACER-B7 against the parity oracle, through the real loader path."""
from __future__ import annotations

import pytest
import torch

import parity
from models import registry
from models.tracer import EfficientNetEncoder, drop_foreign_keys, same_padding

NAME = "tracer-b7"


def test_static_same_padding_is_fixed_for_600():
    # The manifest's padding table: computed once for 600x600, whatever the input size.
    assert same_padding(600, 3, 2) == (0, 1)
    assert same_padding(150, 5, 2) == (1, 2)
    assert same_padding(75, 3, 2) == (1, 1)
    assert same_padding(38, 5, 2) == (1, 2)
    with torch.device("meta"):
        encoder = EfficientNetEncoder()
    stride2 = [b._depthwise_conv for b in encoder._blocks if b._depthwise_conv.stride == (2, 2)]
    pads = [conv.pre_pad or (conv.padding[0],) * 4 for conv in stride2]
    assert pads == [(0, 1, 0, 1), (1, 2, 1, 2), (1, 1, 1, 1), (1, 2, 1, 2)]
    assert encoder._conv_stem.pre_pad == (0, 1, 0, 1)


def test_loader_ignores_extra_keys_and_reports_missing(tmp_path):
    oracle = parity.oracle_module()
    state = oracle.checkpoint(NAME)
    spec = registry.get_spec("tracer_b7")
    model = spec.build()
    assert set(model.state_dict()) == set(spec.remap_keys(dict(state), model))

    # The published file also holds edge-detector weights that carvekit skips with strict=False.
    extra = {"encoder.edge_layer.weight": torch.ones(2, 2), "edge_detector.conv.weight": torch.ones(3)}
    assert set(drop_foreign_keys({**state, **extra}, model)) == set(state)
    parity.save_published({**state, **extra}, tmp_path / spec.weights.filename, spec.weights.file_format)
    loaded = registry.load("tracer_b7", weights_dir=tmp_path)
    key = "encoder._blocks.54._project_conv.weight"
    assert torch.equal(loaded.state_dict()[key], state[key])

    state.pop("agg.UAM.fc.weight")
    with pytest.raises(registry.CheckpointMismatch, match="agg.UAM.fc.weight"):
        registry.load_state(model, spec.remap_keys(state, model))


def test_matte_is_plain_sigmoid():
    # carvekit takes sigmoid(final_map) as the mask, without U^2-Net's min-max normalisation.
    logits = torch.tensor([[[[0.0, 2.0]]]], dtype=torch.float16)
    matte = registry.get_spec("tracer_b7").to_matte(logits)
    assert matte.dtype == torch.float32
    assert torch.allclose(matte, torch.sigmoid(logits.float()))
