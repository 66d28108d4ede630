"""The resident-model cache: networks stay on the device between jobs and are handed out by spec.

Loading a checkpoint costs seconds; a worker serves many jobs, so networks stay in memory (least
recently used evicted beyond MAX_RESIDENT_MODELS). A lock makes concurrent jobs share one copy.
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

from models import registry
from models.spec import ModelSpec
from worker.config import Settings

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """A job's precision: auto is bfloat16 on CUDA, float32 on the CPU."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return _DTYPES[precision]


class ModelCache:
    def __init__(self, settings: Settings, log: Callable[[str], None] | None = None):
        self.log = log or RunPodLogger().info  # loads and evictions, with their timings
        self.device = torch.device(settings.device)
        self.weights_dir: Path = settings.weights_dir
        self.max_resident = max(1, settings.max_resident_models)
        self.channels_last = settings.channels_last
        self.cpu_channels_last = settings.cpu_channels_last
        self.compile = settings.compile
        if self.device.type == "cpu" and settings.cpu_threads > 0:
            torch.set_num_threads(settings.cpu_threads)
        self._models: OrderedDict[tuple[str, torch.dtype], nn.Module] = OrderedDict()
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
            while len(self._models) >= self.max_resident:
                (evicted, evicted_dtype), _ = self._models.popitem(last=False)
                self.log(f"model cache: evicted {evicted} ({evicted_dtype})")
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
            start = time.perf_counter()
            model = registry.load_spec(spec, self.weights_dir, self.device, dtype)
            if self.uses_channels_last(spec):
                model = model.to(memory_format=torch.channels_last)
            if self.compile:
                model = torch.compile(model)
            self._models[key] = model
            self.log(f"model cache: loaded {spec.name} ({dtype}) on {self.device} "
                     f"in {(time.perf_counter() - start) * 1000:.0f} ms")
            return model

    def uses_channels_last(self, spec: ModelSpec) -> bool:
        """The memory format policy per device: on CUDA every network (CHANNELS_LAST), on the CPU the
        families measured faster that way (CPU_CHANNELS_LAST)."""
        if self.device.type == "cuda":
            return self.channels_last
        if self.device.type == "cpu":
            return "all" in self.cpu_channels_last or spec.family in self.cpu_channels_last
        return False

    def by_name(self, name: str, dtype: torch.dtype = torch.float32) -> nn.Module:
        """A registered network by its registry name (the chains' helper networks)."""
        return self.get(registry.get_spec(name), dtype)

    def resident(self) -> list[str]:
        return [name for name, _ in self._models]
