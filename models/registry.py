"""The table of published checkpoints and the one loader for all of them.

Each models/<family>.py module holds only nn.Modules; the entries below say which file each published
checkpoint is, how to build its network, and how to remap its keys. `load()` is the single place that
creates a model and loads its weights (timm's build_model_with_cfg), for real weights and for the
parity oracle's stand-ins alike.
"""
from __future__ import annotations

import importlib
import zipfile
from pathlib import Path

import torch
from torch import nn

from models.fold import fold_batchnorm
from models.spec import Download, ModelSpec, StateDict, WeightsSource

FETCH_COMMAND = "python -m builder.fetch_weights {name}"

# The models/ modules whose CHECKPOINTS lists make up the registry: each family's network module, or the
# table of its own that a family with many checkpoints has (birefnet_zoo).
FAMILIES = ("u2net", "isnet", "basnet", "deeplabv3", "tracer", "birefnet_zoo", "yolov4", "scene_classifier", "fba",
            "cascadepsp", "rrdbnet", "retinaface", "gfpgan", "parsenet", "bmv2")
# The models/ modules that make a spec from a local weights folder (spec_from_folder, CHECKPOINT_FILE).
FOLDER_READERS = ("birefnet_folder",)

_SPECS: dict[str, ModelSpec] = {}


def _gated_note(spec: ModelSpec) -> str:
    download = spec.weights.download
    if not (isinstance(download, Download) and download.gated):
        return ""
    return (f" ({spec.name} is a gated repo: accept its licence, {spec.licence or 'see its page'}, on "
            f"huggingface.co/{download.repo} and set HF_TOKEN)")


class WeightsNotFound(FileNotFoundError):
    """The weight file of a registered model is not on local disk."""

    def __init__(self, spec: ModelSpec, searched: list[Path], present: list[str] | None = None):
        self.spec = spec
        self.searched = searched
        where = ", ".join(str(p) for p in searched)
        others = f"; {spec.role} models whose weights are here: {', '.join(present)}" if present else ""
        super().__init__(
            f"weights for model '{spec.name}' are missing: {spec.weights.filename} not found "
            f"(looked in {where}); fetch them with: {FETCH_COMMAND.format(name=spec.name)}{_gated_note(spec)}{others}"
        )


class SeveralWeightsNotFound(WeightsNotFound):
    """The weight files of several models one job needs are missing: every one named at once."""

    def __init__(self, missing: list[WeightsNotFound]):
        self.missing = missing
        self.spec, self.searched = missing[0].spec, missing[0].searched
        files = ", ".join(f"'{m.spec.name}' ({m.spec.weights.filename})" for m in missing)
        folders = ", ".join(dict.fromkeys(str(m.searched[0].parent) for m in missing))
        names = " ".join(m.spec.name for m in missing)
        FileNotFoundError.__init__(
            self, f"weights for {len(missing)} models this job needs are missing: {files} (looked in {folders}); "
                  f"fetch them with: {FETCH_COMMAND.format(name=names)}{''.join(_gated_note(m.spec) for m in missing)}")


class CheckpointMismatch(RuntimeError):
    """A weight file does not fit the network: missing or unexpected keys, wrong shapes."""


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _SPECS:
        raise ValueError(f"model {spec.name!r} registered twice")
    _SPECS[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    return _SPECS[name]


def names(role: str | None = None) -> list[str]:
    """Registered checkpoint names, optionally only those of one role."""
    return [name for name, spec in _SPECS.items() if role is None or spec.role == role]


def find_weights(spec: ModelSpec, weights_dir: Path) -> Path:
    """The local weight file of `spec`: the weights folder first, then the Hugging Face cache (offline)."""
    candidate = Path(weights_dir) / spec.weights.filename
    searched = [candidate]
    if candidate.is_file():
        return candidate
    download = spec.weights.download
    if isinstance(download, Download) and not spec.weights.converter:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(download.repo, download.filename, revision=download.revision)
        if isinstance(cached, str) and Path(cached).is_file():
            return Path(cached)
        searched.append(Path(f"hf-cache:{download.repo}/{download.filename}"))
    raise WeightsNotFound(spec, searched, present(spec.role, weights_dir))


def require_all(specs: list[ModelSpec], weights_dir: Path) -> None:
    """find_weights for each spec; the one WeightsNotFound, or SeveralWeightsNotFound naming every
    missing file, so that a caller fetches them all in one go."""
    missing = []
    for spec in {spec.name: spec for spec in specs}.values():
        try:
            find_weights(spec, weights_dir)
        except WeightsNotFound as exc:
            missing.append(exc)
    if len(missing) == 1:
        raise missing[0]
    if missing:
        raise SeveralWeightsNotFound(missing)


def present(role: str, weights_dir: Path) -> list[str]:
    """Registered networks of `role` whose weight file lies in the weights folder."""
    return [name for name in names(role) if (Path(weights_dir) / _SPECS[name].weights.filename).is_file()]


def read_state_dict(path: Path, source: WeightsSource) -> StateDict:
    """The state dict stored in a published weight file (never unpickles arbitrary objects)."""
    if source.file_format == "safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        # Memory-mapped where the file is torch's zip format: tensors are read once, straight into use.
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    return dict(source.unwrap(state))


def load_state(model: nn.Module, state: StateDict, assign: bool = False) -> None:
    """Strict load that reports every missing and unexpected key by name.

    assign=True adopts the given tensors instead of copying into the module's (a module built on the
    meta device has no storage to copy into).
    """
    result = model.load_state_dict(state, strict=False, assign=assign)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointMismatch(
            f"checkpoint does not fit {type(model).__name__}: "
            f"missing {result.missing_keys[:10]} ({len(result.missing_keys)}), "
            f"unexpected {result.unexpected_keys[:10]} ({len(result.unexpected_keys)})"
        )


def segmentation_names() -> list[str]:
    """The names a job's `model` may take for background removal (besides local weight folders)."""
    return names("segmentation")


def resolve(name: str, weights_dir: Path) -> ModelSpec:
    """The segmentation spec a job's `model` names: a registered one, or a folder under the weights
    folder holding weights a family can read (`spec_from_folder`). KeyError when there is none."""
    spec = _SPECS.get(name)
    if spec is not None:
        if spec.role != "segmentation":
            raise KeyError(name)
        return spec
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise KeyError(name)
    folder = Path(weights_dir) / name
    if folder.is_dir():
        for reader in FOLDER_READERS:
            module = importlib.import_module(f"models.{reader}")
            if (folder / module.CHECKPOINT_FILE).is_file():
                return module.spec_from_folder(folder, name=name)
    raise KeyError(name)


def _build_with_weights(spec: ModelSpec, state: StateDict) -> nn.Module:
    """The network with the file's tensors, without first filling it with random weights: built on
    the meta device and given the loaded tensors (cold start: no init kernels, no second copy). A
    network that computes tensors outside its state dict at construction is built normally."""
    with torch.device("meta"):
        model = spec.build()
    load_state(model, spec.remap_keys(state, model), assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        model = spec.build()
        load_state(model, spec.remap_keys(state, model))
    return model


def load_spec(
    spec: ModelSpec,
    weights_dir: Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """Build the network of `spec`, load its published weight file, move it, eval mode.

    Float tensors are read as float32 whatever the file stores (some published files are float16);
    networks whose weights do not survive half precision (spec.half_ok False) stay in float32.
    """
    path = find_weights(spec, weights_dir)
    state = {k: v.float() if v.is_floating_point() else v for k, v in read_state_dict(path, spec.weights).items()}
    model = _build_with_weights(spec, state)
    if dtype.is_floating_point and dtype.itemsize < 4 and not spec.half_ok:  # float64 is kept: parity runs in it
        dtype = torch.float32
    model.eval().requires_grad_(False)
    fold_batchnorm(model)  # after loading: the file's keys are the unfolded network's
    return model.to(device=device, dtype=dtype)


def load(
    name: str,
    weights_dir: Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """The one loader: registered checkpoint `name` from `weights_dir`, ready for inference."""
    return load_spec(get_spec(name), weights_dir, device, dtype)


def _register_families() -> None:
    for family in FAMILIES:
        for spec in importlib.import_module(f"models.{family}").CHECKPOINTS:
            register(spec)


_register_families()
