"""The table of published checkpoints and the one loader for all of them.

Each models/<family>.py module holds only nn.Modules; the entries below say which file each published
checkpoint is, how to build its network, and how to remap its keys. `load()` is the single place that
creates a model and loads its weights (timm's build_model_with_cfg), for real weights and for the
parity oracle's stand-ins alike.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

import torch
from torch import nn

from models.spec import ModelSpec, StateDict, WeightsSource

FETCH_COMMAND = "python -m builder.fetch_weights {name}"

# The models/<family>.py modules whose CHECKPOINTS lists make up the registry.
FAMILIES = ("u2net", "isnet", "basnet", "deeplabv3", "tracer", "birefnet", "yolov4", "scene_classifier", "fba", "cascadepsp")

_SPECS: dict[str, ModelSpec] = {}


class WeightsNotFound(FileNotFoundError):
    """The weight file of a registered model is not on local disk."""

    def __init__(self, spec: ModelSpec, searched: list[Path]):
        self.spec = spec
        self.searched = searched
        where = ", ".join(str(p) for p in searched)
        super().__init__(
            f"weights for model '{spec.name}' are missing: {spec.weights.filename} not found "
            f"(looked in {where}); fetch them with: {FETCH_COMMAND.format(name=spec.name)}"
        )


class CheckpointMismatch(RuntimeError):
    """A weight file does not fit the network: missing or unexpected keys, wrong shapes."""


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _SPECS:
        raise ValueError(f"model {spec.name!r} registered twice")
    _SPECS[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    return _SPECS[name]


def names() -> list[str]:
    return list(_SPECS)


def weights_dir() -> Path:
    return Path(os.environ.get("WEIGHTS_DIR", "weights")).expanduser()


def find_weights(spec: ModelSpec, directory: Path | None = None) -> Path:
    """The local weight file of `spec`: WEIGHTS_DIR first, then the Hugging Face cache (offline)."""
    candidate = (directory or weights_dir()) / spec.weights.filename
    searched = [candidate]
    if candidate.is_file():
        return candidate
    if spec.weights.hf_repo:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(spec.weights.hf_repo, spec.weights.repo_filename)
        if isinstance(cached, str) and Path(cached).is_file():
            return Path(cached)
        searched.append(Path(f"hf-cache:{spec.weights.hf_repo}/{spec.weights.repo_filename}"))
    raise WeightsNotFound(spec, searched)


def read_state_dict(path: Path, source: WeightsSource) -> StateDict:
    """The state dict stored in a published weight file (never unpickles arbitrary objects)."""
    if source.file_format == "safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if source.wrap:
        state = state[source.wrap]
    return dict(state)


def load_state(model: nn.Module, state: StateDict) -> None:
    """Strict load that reports every missing and unexpected key by name."""
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointMismatch(
            f"checkpoint does not fit {type(model).__name__}: "
            f"missing {result.missing_keys[:10]} ({len(result.missing_keys)}), "
            f"unexpected {result.unexpected_keys[:10]} ({len(result.unexpected_keys)})"
        )


def segmentation_names() -> list[str]:
    """The names a job's `model` may take (besides local weight folders)."""
    return [name for name, spec in _SPECS.items() if spec.role == "segmentation"]


def resolve(name: str) -> ModelSpec:
    """The segmentation spec a job's `model` names: a registered one, or a folder under WEIGHTS_DIR
    holding weights a family can read (`spec_from_folder`). KeyError when there is none."""
    spec = _SPECS.get(name)
    if spec is not None:
        if spec.role != "segmentation":
            raise KeyError(name)
        return spec
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise KeyError(name)
    folder = weights_dir() / name
    if folder.is_dir():
        for family in FAMILIES:
            module = importlib.import_module(f"models.{family}")
            from_folder = getattr(module, "spec_from_folder", None)
            if from_folder and (folder / module.CHECKPOINT_FILE).is_file():
                return from_folder(folder, name=name)
    raise KeyError(name)


def load_spec(
    spec: ModelSpec,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    directory: Path | None = None,
) -> nn.Module:
    """Build the network of `spec`, load its published weight file, move it, eval mode.

    Networks whose weights do not survive half precision (spec.half_ok False) stay in float32.
    """
    path = find_weights(spec, directory)
    model = spec.build()
    state = {k: v.float() if v.is_floating_point() else v for k, v in read_state_dict(path, spec.weights).items()}
    load_state(model, spec.remap_keys(state))
    if dtype != torch.float32 and not spec.half_ok:
        dtype = torch.float32
    model.eval().requires_grad_(False)
    for module in model.modules():  # inference-time rewrites a family offers, e.g. BatchNorm folding
        if hasattr(module, "fold_batchnorm"):
            module.fold_batchnorm()
    return model.to(device=device, dtype=dtype)


def load(
    name: str,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    directory: Path | None = None,
) -> nn.Module:
    """The one loader: checkpoint `name` from WEIGHTS_DIR (or `directory`), ready for inference."""
    return load_spec(get_spec(name), device, dtype, directory)


def _register_families() -> None:
    for family in FAMILIES:
        for spec in importlib.import_module(f"models.{family}").CHECKPOINTS:
            register(spec)


_register_families()
