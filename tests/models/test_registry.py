"""Every published checkpoint in the registry against its parity oracle, through the real loader path:
the module has exactly the published keys and shapes, a file missing a key is refused by name, and the
stored cases of the original implementation are reproduced within the manifest's tolerance."""
from __future__ import annotations

import pytest

from models import parity, registry

CHECKPOINTS = {name: target.checkpoint for name, target in sorted(parity.targets().items()) if target.checkpoint}


def test_every_registered_network_has_a_parity_target():
    covered = set(CHECKPOINTS.values())
    # the scene classifier has no oracle: tests/models/test_scene_classifier.py builds its own file
    unchecked = {n for n in registry.names() if n not in covered} - {"scene_classifier", "isnet-general-use",
                                                                      "cascadepsp-carveset", "ZhengPeng7/BiRefNet-matting",
                                                                      "ZhengPeng7/BiRefNet-portrait",
                                                                      "ZhengPeng7/BiRefNet_HR",
                                                                      "ZhengPeng7/BiRefNet_lite-2K"}
    assert not unchecked, f"registered without a parity test: {unchecked}"


@pytest.mark.parametrize("oracle_name", CHECKPOINTS)
def test_parity_oracle(oracle_name):
    checks = parity.run(oracle_name)
    assert checks, "no cases ran"
    for check in checks:
        assert check.passed, check.line(oracle_name)


@pytest.mark.parametrize("oracle_name", CHECKPOINTS)
def test_module_keys_and_shapes_are_the_published_ones(oracle_name):
    keys = parity.oracle_module().manifest(oracle_name)["keys"]
    state = registry.get_spec(CHECKPOINTS[oracle_name]).build().state_dict()
    assert {k: list(v.shape) for k, v in state.items()} == {k: shape for k, (shape, _) in keys.items()}


@pytest.mark.parametrize("oracle_name", CHECKPOINTS)
def test_loader_refuses_a_checkpoint_missing_a_key(oracle_name, tmp_path):
    spec = registry.get_spec(CHECKPOINTS[oracle_name])
    state = parity.oracle_module().checkpoint(oracle_name)
    inner = state[spec.weights.wrap] if spec.weights.wrap else state
    weights = sorted(k for k in inner if k.endswith(".weight"))  # BatchNorm tolerates a missing counter
    missing = weights[len(weights) // 2]
    inner.pop(missing)
    parity.save_published(state, tmp_path / spec.weights.filename, spec.weights.file_format)
    with pytest.raises(registry.CheckpointMismatch, match="missing"):
        registry.load(spec.name, directory=tmp_path)
