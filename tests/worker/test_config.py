"""The CPU settings: memory format per device and family, threads, OpenMP's wait policy."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from models import registry
from pipeline.segmentation.segment import predict_mattes
from tests.conftest import REPO, SHARED
from worker import config
from worker.cache import ModelCache


@pytest.mark.parametrize("value,families", [
    ("u2net", ("u2net",)), ("u2net, isnet", ("u2net", "isnet")), ("all", ("all",)), ("none", ()), ("", ()),
])
def test_cpu_channels_last_names_families(value, families):
    assert config.read_settings({"CPU_CHANNELS_LAST": value}).cpu_channels_last == families


def test_cpu_threads_must_be_an_integer():
    assert config.read_settings({"CPU_THREADS": "1"}).cpu_threads == 1
    with pytest.raises(config.ConfigError, match="CPU_THREADS"):
        config.read_settings({"CPU_THREADS": "two"})


@pytest.mark.parametrize("device,env,expected", [
    ("cpu", {}, {"u2netp": True, "u2net": True, "basnet": False, "ZhengPeng7/BiRefNet": False}),
    ("cpu", {"CPU_CHANNELS_LAST": "none"}, {"u2netp": False, "basnet": False}),
    ("cpu", {"CPU_CHANNELS_LAST": "all"}, {"u2netp": True, "basnet": True}),
    ("cpu", {"CPU_CHANNELS_LAST": "basnet"}, {"u2netp": False, "basnet": True}),
    ("cuda", {}, {"u2netp": True, "basnet": True}),
    ("cuda", {"CHANNELS_LAST": "0"}, {"u2netp": False, "basnet": False}),
])
def test_memory_format_policy_per_device(device, env, expected):
    """CHANNELS_LAST governs CUDA, CPU_CHANNELS_LAST the CPU (the default: u2net's family only)."""
    cache = ModelCache(config.read_settings({**env, "DEVICE": device}), log=lambda _: None)
    assert {name: cache.uses_channels_last(registry.get_spec(name)) for name in expected} == expected


@pytest.mark.parametrize("setting,channels_last", [("u2net", True), ("none", False)])
def test_the_network_input_follows_the_memory_format_setting(setting, channels_last):
    """The setting decides the input's memory format too, not only the weights' (on CUDA,
    CHANNELS_LAST=0 once left inputs in channels_last): here on the CPU, through CPU_CHANNELS_LAST."""
    spec = registry.get_spec("u2netp")
    settings = config.read_settings({"CPU_CHANNELS_LAST": setting, "DEVICE": "cpu", "WEIGHTS_DIR": str(SHARED / "weights")})
    model = ModelCache(settings, log=lambda _: None).get(spec)
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(
        args[0].is_contiguous(memory_format=torch.channels_last) and not args[0].is_contiguous()))
    predict_mattes(model, spec, [np.zeros((40, 60, 3), np.uint8)], batch_size=1)
    assert seen == [channels_last]


def test_cpu_threads_setting_is_applied():
    before = torch.get_num_threads()
    try:
        ModelCache(config.read_settings({"DEVICE": "cpu", "CPU_THREADS": "1"}), log=lambda _: None)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_prepare_process_sets_openmp_defaults_without_overriding():
    env: dict = {}
    config.prepare_process(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    config.prepare_process(env)
    assert env == {"OMP_WAIT_POLICY": "ACTIVE"}


SPY_ON_TORCH_IMPORT = """
import os, sys
seen = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.append(os.environ.get("OMP_WAIT_POLICY"))
sys.meta_path.insert(0, Spy())
import handler
print(seen[0])
"""


def test_handler_sets_the_wait_policy_before_torch_is_imported():
    """OpenMP reads OMP_WAIT_POLICY when torch loads it: the entry point must have set it by then."""
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", SPY_ON_TORCH_IMPORT], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "PASSIVE"


@pytest.mark.parametrize("env,gpu_visible,device", [
    ({}, True, "cuda"), ({}, False, "cpu"), ({"DEVICE": "auto"}, True, "cuda"), ({"DEVICE": "auto"}, False, "cpu"),
    ({"DEVICE": "cpu"}, True, "cpu"), ({"DEVICE": "cuda:1"}, False, "cuda:1"),
])
def test_device_auto_means_cuda_when_a_gpu_is_visible(env, gpu_visible, device):
    settings = config.read_settings(env, gpu_visible=gpu_visible)
    assert settings.device == device
    # The engine's defaults follow the device the worker resolves to, not the spelling of DEVICE.
    assert settings.max_concurrency == (8 if device.startswith("cuda") else 2)


def test_device_auto_asks_torch_when_not_told():
    assert config.read_settings({}).device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_settings_in_an_environment_are_what_the_worker_runs_with():
    found = {name: value for name, value, _ in config.in_environment({"WEIGHTS_DIR": "/w", "MODEL_CACHE_GB": "2"},
                                                                     gpu_visible=True)}
    assert found["DEVICE"] == "auto" and str(found["WEIGHTS_DIR"]) == "/w" and found["MODEL_CACHE_GB"] == 2
    assert found["BATCH_SIZE"] == 8 and found["PRECISION"] == "auto"
    assert list(found) == [name for name, _, _ in config.documented()]
