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
    """This torch build defaults cudnn float32 convolutions to TF32; the worker decides explicitly, and
    says which it chose. (What the choice does to the arithmetic needs a GPU: the test below.)"""
    try:
        torch.backends.cudnn.conv.fp32_precision = torch.backends.cuda.matmul.fp32_precision = "tf32"
        assert prepare(Settings(device="cpu")).float32 == "ieee"
        assert torch.backends.cudnn.conv.fp32_precision == torch.backends.cuda.matmul.fp32_precision == "ieee"
        assert prepare(Settings(device="cpu", allow_tf32=True)).float32 == "tf32"
        assert torch.backends.cudnn.conv.fp32_precision == torch.backends.cuda.matmul.fp32_precision == "tf32"
    finally:
        prepare(Settings(device="cpu"))


def _float32_error(device: str) -> float:
    """Relative error of a float32 convolution and matmul against float64: ~1e-7 in IEEE float32, ~1e-3
    with TF32's 10-bit mantissa."""
    generator = torch.Generator().manual_seed(0)
    x, w = torch.randn(1, 64, 32, 32, generator=generator), torch.randn(64, 64, 3, 3, generator=generator)
    a, b = torch.randn(256, 256, generator=generator), torch.randn(256, 256, generator=generator)
    conv = torch.nn.functional.conv2d(x.to(device), w.to(device), padding=1).cpu().double()
    product = (a.to(device) @ b.to(device)).cpu().double()
    conv_error = (conv - torch.nn.functional.conv2d(x.double(), w.double(), padding=1)).norm() / conv.norm()
    matmul_error = (product - a.double() @ b.double()).norm() / product.norm()
    return max(float(conv_error), float(matmul_error))


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] < 8,
                    reason="needs a GPU with TF32 (Ampere or later)")
def test_float32_policy_changes_the_arithmetic_on_the_gpu():
    try:
        prepare(Settings(device="cuda"))
        assert _float32_error("cuda") < 1e-5
        prepare(Settings(device="cuda", allow_tf32=True))
        assert _float32_error("cuda") > 1e-4
    finally:
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
    from worker.config import read_settings

    with pytest.raises(ConfigError, match="BATCH_SIZE='many' is not an integer"):
        read_settings({"BATCH_SIZE": "many", "DEVICE": "cpu"})
    with pytest.raises(ConfigError, match="PRECISION='int4': allowed values are"):
        read_settings({"PRECISION": "int4", "DEVICE": "cpu"})
