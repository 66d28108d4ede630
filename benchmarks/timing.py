"""What the benchmark scripts share: a forward timed properly on either device, and peak memory; a
call's CPU and wall time."""
from __future__ import annotations

import resource
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from worker.device import synchronize


def time_forward(model: nn.Module, x: torch.Tensor, repeat: int) -> dict:
    """Median seconds of `repeat` forwards after one warm-up (and compilation), the device's work
    waited for; peak memory in GiB (CUDA: allocated; CPU: the process's max RSS)."""
    device = x.device
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        model(x)
        synchronize(device)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            model(x)
            synchronize(device)
            times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    return {"seconds": sorted(times)[len(times) // 2], "peak_gib": peak}


def cpu_and_wall(call: Callable[[], Any]) -> tuple[Any, float, float]:
    """call()'s result, the process's CPU seconds during it (every thread's, summed) and wall seconds."""
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    result = call()
    return result, time.process_time() - start_cpu, time.perf_counter() - start_wall
