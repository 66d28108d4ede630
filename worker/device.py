"""The device the worker runs on, checked once at start-up: a worker meant for a GPU that cannot use
one refuses to start (rather than answering every job with an error, or serving slowly on the CPU),
and the float32 policy is set explicitly.

float32 policy: this torch build runs float32 convolutions as TF32 on Ampere and later
(`torch.backends.cudnn.conv.fp32_precision == "tf32"`). The networks kept in float32 are kept there
because reduced precision moves their results outside parity (tracer_b7, U^2-Net, FBA, CascadePSP,
YOLOv4, the scene classifier), so float32 means IEEE float32 unless ALLOW_TF32=1.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass

import torch

from imaging.tensors import host_memory
from worker.config import ConfigError, Settings


@dataclass(frozen=True)
class DeviceInfo:
    device: torch.device
    name: str  # "cpu" or the GPU's name
    memory_bytes: int  # the device's total memory (RAM for the CPU)
    float32: str  # "ieee" or "tf32"

    def describe(self) -> str:
        return (f"device {self.device} ({self.name}, {self.memory_bytes / 2**30:.1f} GiB), "
                f"float32 as {self.float32}, torch {torch.__version__}"
                + (f" (CUDA {torch.version.cuda})" if self.device.type == "cuda" else ""))


def check_gpu(device: torch.device) -> str:
    """The GPU's name, after a small computation on it; ConfigError when it cannot be used."""
    if not torch.cuda.is_available():
        raise ConfigError(
            f"DEVICE={device} but no usable GPU: torch {torch.__version__} (built for CUDA {torch.version.cuda}) "
            "finds none. Either no NVIDIA driver is visible to the container, or the driver is older than "
            "this CUDA build needs; fix the driver, or set DEVICE=cpu to serve on the CPU on purpose")
    index = device.index or 0
    if index >= torch.cuda.device_count():
        raise ConfigError(f"DEVICE={device}: only {torch.cuda.device_count()} GPU(s) visible")
    try:
        probe = torch.ones(64, 64, device=device)
        if float((probe @ probe).sum().item()) != 64.0 ** 3:
            raise ConfigError(f"DEVICE={device}: the GPU computed a wrong result")
    except RuntimeError as exc:
        raise ConfigError(f"DEVICE={device}: the GPU does not work: {exc}") from None
    return torch.cuda.get_device_name(index)


def set_float32_policy(allow_tf32: bool) -> str:
    policy = "tf32" if allow_tf32 else "ieee"
    torch.backends.cuda.matmul.fp32_precision = policy
    torch.backends.cudnn.conv.fp32_precision = policy
    return policy


def prepare(settings: Settings) -> DeviceInfo:
    """Check the configured device and set the float32 policy; ConfigError when the worker cannot run."""
    try:
        device = torch.device(settings.device)
    except RuntimeError:
        raise ConfigError(f"DEVICE={settings.device!r} is not a device; use auto, cuda, cuda:N or cpu") from None
    if settings.compile and shutil.which("cc") is None and shutil.which("gcc") is None:
        raise ConfigError("TORCH_COMPILE=1 needs a C compiler for Triton's kernels and none is installed "
                          "(the image's python:slim base has none); install gcc in the image or unset it")
    policy = set_float32_policy(settings.allow_tf32)
    if device.type == "cuda":
        name = check_gpu(device)
        memory = torch.cuda.get_device_properties(device.index or 0).total_memory
        return DeviceInfo(device, name, memory, policy)
    if device.type != "cpu":
        raise ConfigError(f"DEVICE={settings.device!r}: this worker serves on cuda or cpu")
    return DeviceInfo(device, "cpu", host_memory("MemTotal"), policy)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a stage's time is its own (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
