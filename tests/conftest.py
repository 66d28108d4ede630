"""Test-wide settings: offline, deterministic, and the paths of ../shared."""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TORCH_NUM_THREADS", "2")

import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DIR", REPO / ".." / "shared")).resolve()
sys.path.insert(0, str(REPO))
torch.set_num_threads(int(os.environ["TORCH_NUM_THREADS"]))


@pytest.fixture(scope="session")
def shared() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    return SHARED / "parity"
