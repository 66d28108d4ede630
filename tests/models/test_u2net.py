"""U^2-Net family against the parity oracle, through the real loader path."""
from __future__ import annotations

import pytest

from models import parity, registry


@pytest.mark.parametrize("name", ["u2netp", "u2net"])
def test_parity_oracle(name):
    checks = parity.run(name)
    assert checks, "no cases ran"
    for check in checks:
        assert check.passed, check.line(name)


@pytest.mark.parametrize("name", ["u2netp", "u2net"])
def test_loader_consumes_every_key(name, tmp_path):
    oracle = parity.oracle_module()
    state = oracle.checkpoint(name)
    spec = registry.get_spec(name)
    model = spec.build()
    assert set(model.state_dict()) == set(spec.remap_keys(dict(state)))
    state.pop(next(iter(state)))
    parity.save_published(state, tmp_path / spec.weights.filename, spec.weights.file_format)
    with pytest.raises(registry.CheckpointMismatch):
        registry.load(name, directory=tmp_path)


def test_missing_weights_names_file_and_command(tmp_path):
    with pytest.raises(registry.WeightsNotFound) as err:
        registry.load("u2net", directory=tmp_path)
    assert "u2net.pth" in str(err.value)
    assert "python -m builder.fetch_weights u2net" in str(err.value)
