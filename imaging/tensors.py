"""Small device helpers: constant tensors kept on the device they are used on, inputs in their
network's memory format, and free memory.

Normalisation statistics and similar constants are needed on every call; building them with
`torch.tensor(..., device=cuda)` each time is a host-to-device copy that stalls the GPU queue. They
are made once per (values, device, dtype, shape) instead. Callers must not modify them in place.
"""
from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

# The precisions a job or a tool names, and their tensor dtypes ("auto" is resolved by the worker).
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@lru_cache(maxsize=128)
def constant(values: tuple[float, ...], device: torch.device, dtype: torch.dtype = torch.float32,
             shape: tuple[int, ...] = (-1,)) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype).view(*shape).to(device)


def in_model_format(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """A 4-D input in the memory format of the network's convolution weights: channels_last where the
    model cache made the network so (CHANNELS_LAST on CUDA, CPU_CHANNELS_LAST on the CPU), else as is,
    so the first convolution does not convert it and the settings govern inputs as well as weights."""
    if x.dim() != 4:
        return x
    for param in model.parameters():
        if param.dim() == 4 and not param.is_contiguous():  # a 1x1 kernel is contiguous either way
            if param.is_contiguous(memory_format=torch.channels_last):
                return x.contiguous(memory_format=torch.channels_last)
            break
    return x


def free_bytes(device: torch.device) -> int:
    """Memory a computation on `device` can still take: the GPU's free memory plus what torch's caching
    allocator holds unused, or the host's available memory."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return host_memory("MemAvailable") or 2**62  # unknown: do not refuse


def host_memory(field: str) -> int:
    """A /proc/meminfo figure in bytes (MemTotal, MemAvailable); 0 where the system does not say."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
