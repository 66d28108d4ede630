"""U^2-Net family: missing weights name the file and the fetch command (parity cases run in tests/parity)."""
from __future__ import annotations

import pytest

from models import registry


def test_missing_weights_names_file_and_command(tmp_path):
    with pytest.raises(registry.WeightsNotFound) as err:
        registry.load("u2net", weights_dir=tmp_path)
    assert "u2net.pth" in str(err.value)
    assert "python -m builder.fetch_weights u2net" in str(err.value)
