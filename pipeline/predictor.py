"""Keeps networks resident on the device and hands them out by name.

Loading a checkpoint costs seconds; a worker serves many jobs, so networks stay in memory (least
recently used evicted beyond MAX_RESIDENT_MODELS). A lock makes concurrent jobs share one copy.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import torch
from torch import nn

from models import registry
from models.spec import ModelSpec
from pipeline.config import Settings
from pipeline.errors import InvalidInput

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return _DTYPES[precision]


def resolve_spec(name: str) -> ModelSpec:
    try:
        return registry.resolve(name)
    except KeyError:
        allowed = ", ".join(["carvekit", *registry.segmentation_names()])  # carvekit: pipeline/chain.py
        raise InvalidInput(f"model: unknown model {name!r}; allowed: {allowed}, "
                           f"or a BiRefNet weights folder under WEIGHTS_DIR") from None


class Predictor:
    def __init__(self, settings: Settings):
        self.device = torch.device(settings.device)
        self.max_resident = max(1, settings.max_resident_models)
        self.channels_last = settings.channels_last
        self.compile = settings.compile
        self._models: OrderedDict[tuple[str, torch.dtype], nn.Module] = OrderedDict()
        self._lock = threading.Lock()

    def model(self, spec: ModelSpec, dtype: torch.dtype) -> nn.Module:
        if not spec.half_ok:
            dtype = torch.float32
        key = (spec.name, dtype)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            while len(self._models) >= self.max_resident:
                self._models.popitem(last=False)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
            model = registry.load_spec(spec, self.device, dtype)
            if self.channels_last and self.device.type == "cuda":
                model = model.to(memory_format=torch.channels_last)
            if self.compile:
                model = torch.compile(model)
            self._models[key] = model
            return model

    def resident(self) -> list[str]:
        return [name for name, _ in self._models]
