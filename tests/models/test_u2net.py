"""U^2-Net family: missing weights name the file and the fetch command (parity cases run in tests/parity)."""
from __future__ import annotations

import pytest

from models import registry


def test_missing_weights_names_file_and_command(tmp_path):
    with pytest.raises(registry.WeightsNotFound) as err:
        registry.load("u2net", weights_dir=tmp_path)
    assert "u2net.pth" in str(err.value)
    assert "python -m builder.fetch_weights u2net" in str(err.value)


def test_every_missing_weight_file_is_named_at_once(tmp_path):
    (tmp_path / "u2netp.pth").write_bytes(b"present")
    specs = [registry.get_spec(name) for name in ("u2net", "u2netp", "isnet", "u2net")]
    with pytest.raises(registry.SeveralWeightsNotFound) as err:
        registry.require_all(specs, tmp_path)
    assert isinstance(err.value, registry.WeightsNotFound)
    assert str(err.value) == (f"weights for 2 models this job needs are missing: 'u2net' (u2net.pth), 'isnet' "
                              f"({registry.get_spec('isnet').weights.filename}) (looked in {tmp_path}); fetch them "
                              f"with: python -m builder.fetch_weights u2net isnet")
    with pytest.raises(registry.WeightsNotFound, match="weights for model 'u2net' are missing"):
        registry.require_all(specs[:2], tmp_path)  # one missing: its own message
    registry.require_all(specs[1:2], tmp_path)
