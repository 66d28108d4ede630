"""The resident-model cache: networks stay on the device between jobs and are handed out by spec.

Loading a checkpoint costs seconds; a worker serves many jobs, so networks stay in memory. The cache
is sized by memory (MODEL_CACHE_GB, default half the device's memory), so a chain's networks (carvekit's
tracer_b7 + CascadePSP + FBA, or five with pre=auto) stay resident together; the least recently used
are evicted only when a new one would not fit (or beyond MAX_RESIDENT_MODELS, when set). A lock makes
concurrent jobs share one copy.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import torch
from runpod.serverless.modules.rp_logger import RunPodLogger
from torch import nn

from imaging.tensors import DTYPES
from models import registry
from models.spec import ModelSpec
from worker.config import Settings


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """A job's precision: auto is bfloat16 on CUDA, float32 on the CPU."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPES[precision]


def module_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


class ModelCache:
    def __init__(self, settings: Settings, budget_bytes: int | None = None, log: Callable[[str], None] | None = None):
        self.log = log or RunPodLogger().info  # loads and evictions, with their timings
        self.device = torch.device(settings.device)
        self.weights_dir: Path = settings.weights_dir
        self.budget_bytes = settings.model_cache_bytes or budget_bytes or 8 * 2**30
        self.max_resident = settings.max_resident_models  # 0: no count limit
        self.channels_last = settings.channels_last
        self.compile = settings.compile
        self.compile_mode = settings.compile_mode
        self.cpu_channels_last = settings.cpu_channels_last
        if self.device.type == "cpu" and settings.cpu_threads > 0:
            torch.set_num_threads(settings.cpu_threads)
        self.loads = 0  # networks loaded since start (a warm chain loads none)
        self._models: OrderedDict[tuple[str, torch.dtype], nn.Module] = OrderedDict()
        self._bytes: dict[tuple[str, torch.dtype], int] = {}
        self._lock = threading.Lock()

    def get(self, spec: ModelSpec, dtype: torch.dtype = torch.float32) -> nn.Module:
        """The network of `spec`, loaded once; half precision falls back to float32 where the
        published weights do not survive it (spec.half_ok)."""
        if not spec.half_ok:
            dtype = torch.float32
        key = (spec.name, dtype)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            start = time.perf_counter()
            model = registry.load_spec(spec, self.weights_dir, self.device, dtype)
            if self.uses_channels_last(spec):
                model = model.to(memory_format=torch.channels_last)
            if self.compile:
                model = torch.compile(model, mode=self.compile_mode)
            self._models[key] = model
            self._bytes[key] = module_bytes(model)
            self.loads += 1
            self.log(f"model cache: loaded {spec.name} ({dtype}, {self._bytes[key] / 2**20:.0f} MiB) on "
                     f"{self.device} in {(time.perf_counter() - start) * 1000:.0f} ms")
            self._evict_beyond_budget(keep=key)
            return model

    def _evict_beyond_budget(self, keep: tuple[str, torch.dtype]) -> None:
        """Least recently used first, never the one just loaded."""
        def over() -> bool:
            return (sum(self._bytes.values()) > self.budget_bytes
                    or (self.max_resident > 0 and len(self._models) > self.max_resident))

        evicted = False
        while over() and len(self._models) > 1:
            victim = next(k for k in self._models if k != keep)
            del self._models[victim]
            freed = self._bytes.pop(victim)
            evicted = True
            self.log(f"model cache: evicted {victim[0]} ({victim[1]}, {freed / 2**20:.0f} MiB) to stay within "
                     f"{self.budget_bytes / 2**30:.1f} GiB")
        if evicted and self.device.type == "cuda":
            torch.cuda.empty_cache()

    def uses_channels_last(self, spec: ModelSpec) -> bool:
        """The memory format policy per device: on CUDA every network (CHANNELS_LAST), on the CPU the
        families measured faster that way (CPU_CHANNELS_LAST)."""
        if self.device.type == "cuda":
            return self.channels_last
        return "all" in self.cpu_channels_last or spec.family in self.cpu_channels_last

