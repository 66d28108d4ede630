"""The device checked at start-up: the float32 policy, and a worker meant for a GPU that has none."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO
from worker.config import ConfigError, Settings
from worker.device import prepare


def test_float32_is_ieee_unless_tf32_is_allowed():
    """This torch build defaults cudnn float32 convolutions to TF32; the worker decides explicitly."""
    prepare(Settings(device="cpu"))
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    prepare(Settings(device="cpu", allow_tf32=True))
    assert torch.backends.cudnn.conv.fp32_precision == "tf32"
    prepare(Settings(device="cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_refused_by_name():
    with pytest.raises(ConfigError, match="DEVICE=cuda but no usable GPU.*set DEVICE=cpu"):
        prepare(Settings(device="cuda"))


def test_compile_without_a_compiler_is_refused(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(ConfigError, match="TORCH_COMPILE=1 needs a C compiler"):
        prepare(Settings(device="cpu", compile=True))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_worker_exits_at_start_when_its_gpu_is_missing(tmp_path):
    """No job is taken: the process exits 2 with the reason, before runpod starts serving."""
    env = {"PATH": "/usr/bin:/bin", "DEVICE": "cuda", "LOCAL_BUCKET_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(REPO / "handler.py"), "--test_input", '{"input": {"id": "x"}}'],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "cannot start: DEVICE=cuda but no usable GPU" in done.stdout + done.stderr
    assert "Started" not in done.stdout  # no job ran


def test_bad_settings_are_refused_by_name():
    from worker.config import load

    with pytest.raises(ConfigError, match="BATCH_SIZE='many' is not an integer"):
        load({"BATCH_SIZE": "many", "DEVICE": "cpu"})
    with pytest.raises(ConfigError, match="PRECISION='int4': allowed values are"):
        load({"PRECISION": "int4", "DEVICE": "cpu"})
