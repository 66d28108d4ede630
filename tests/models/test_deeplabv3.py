"""DeepLabV3-ResNet101 against the parity oracle, and carvekit's argmax-to-mask conversion."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models import parity, registry
from models.deeplabv3 import deeplab_matte


def test_parity_oracle():
    checks = parity.run("deeplabv3")
    assert len(checks) == 2
    for check in checks:
        assert check.passed, check.line("deeplabv3")


def test_loader_consumes_every_key(tmp_path):
    state = parity.oracle_module().checkpoint("deeplabv3")
    spec = registry.get_spec("deeplabv3")
    assert set(spec.build().state_dict()) == set(state)
    state.pop("aux_classifier.4.bias")  # the unused head is still part of the published file
    parity.save_published(state, tmp_path / spec.weights.filename, spec.weights.file_format)
    with pytest.raises(registry.CheckpointMismatch):
        registry.load("deeplabv3", directory=tmp_path)


def test_matte_reproduces_carvekits_uint8_wrap():
    classes = torch.arange(21)
    logits = torch.nn.functional.one_hot(classes, 21).float().T.reshape(1, 21, 1, 21)
    matte = deeplab_matte(logits)
    assert matte.shape == (1, 1, 1, 21)
    # carvekit: Image.fromarray(out.argmax(0).byte().numpy() * 255), numpy uint8 arithmetic
    carvekit = classes.byte().numpy() * 255
    assert carvekit.dtype == np.uint8
    np.testing.assert_array_equal(np.round(matte[0, 0, 0].numpy() * 255).astype(np.uint8), carvekit)
    assert float(matte[0, 0, 0, 0]) == 0.0 and round(float(matte[0, 0, 0, 15]) * 255) == 241
