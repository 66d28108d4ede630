"""Parity against the oracle in ../shared/parity: is our model the published model?

`run(name)` rebuilds `oracle.checkpoint(name, seed)`, saves it in the published file format under the
file name the registry expects, loads it through `models.registry.load` (the path real weights take),
and runs every stored case through the runner registered for that oracle folder. Runners live in
parity/<family>.py; each turns one case into a list of checks, `fn(model, case, ctx)`.

The checkpoint seed of a case is, in this order: the one asked for (`--seed`), the case's own
`meta.seed` (the seed its outputs were made with), 0. Runners get the device and dtype to run on in
`ctx`, also runners of algorithm folders (manifest `keys` == {}, no model of their own) and of
folders that reuse another folder's checkpoint (`ctx.model_for`).
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from models import registry

DEFAULT_PARITY_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "parity"


def parity_dir() -> Path:
    return Path(os.environ.get("PARITY_DIR", DEFAULT_PARITY_DIR)).resolve()


@dataclass
class Check:
    case: int
    output: str
    figures: dict[str, float]
    passed: bool

    def line(self, oracle_name: str) -> str:
        figs = " ".join(f"{k}={v:.3g}" for k, v in self.figures.items())
        return f"{oracle_name} case {self.case} {self.output}: {figs} {'PASS' if self.passed else 'FAIL'}"


@dataclass
class Context:
    """What a runner needs besides the model and the case."""

    manifest: dict
    seed: int  # the checkpoint seed of this case
    device: torch.device
    dtype: torch.dtype
    channels_last: bool = False  # networks and 4-D inputs in channels_last, as the CUDA model cache gives them

    def to(self, x: torch.Tensor) -> torch.Tensor:
        """A stored input on the run's device; float inputs in the run's dtype (and memory format)."""
        if not x.is_floating_point():
            return x.to(self.device)
        x = x.to(self.device, self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def model_for(self, oracle_name: str, checkpoint: str) -> nn.Module:
        """Another folder's stand-in checkpoint (wrapper folders reuse the network folder's), at this
        case's seed, on the run's device, dtype and memory format."""
        model = _cached_oracle_model(oracle_name, checkpoint, self.seed, str(self.device), self.dtype)
        return model.to(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)


Runner = Callable[[nn.Module | None, dict, Context], list[tuple[str, dict[str, float], bool]]]


@dataclass(frozen=True)
class ParityTarget:
    oracle_name: str
    checkpoint: str | None  # registry name, or None for algorithm folders
    runner: Runner
    # Other registry entries stored in the same format: the same stand-in loads through their
    # entries and the same cases check them.
    same_format: tuple[str, ...] = ()
    # Entries that differ from `checkpoint` only in what the network does not see or what the runner
    # sets itself (name, input size, download, file format, a flag the runner checks both ways): the
    # stand-in loads through their own entries (tests/parity), the cases run once, through `checkpoint`.
    same_network: tuple[str, ...] = ()


_TARGETS: dict[str, ParityTarget] = {}
_RUNNERS_LOADED = False  # not "_TARGETS is empty": importing one runner module fills it with one entry


def runner(oracle_name: str, checkpoint: str | None = None, same_format: tuple[str, ...] = (),
           same_network: tuple[str, ...] = ()) -> Callable[[Runner], Runner]:
    """Register `fn(model, case, ctx) -> [(output, figures, passed), ...]` for an oracle folder."""

    def wrap(fn: Runner) -> Runner:
        _TARGETS[oracle_name] = ParityTarget(oracle_name, checkpoint, fn, same_format, same_network)
        return fn

    return wrap


def close(output: str, ours: torch.Tensor, expected: torch.Tensor, tol: dict) -> tuple[str, dict[str, float], bool]:
    """The standard check: max_abs and rel_l2 within the manifest's tolerance."""
    a = ours.detach().double().cpu()
    e = expected.detach().double().cpu()
    if a.shape != e.shape:
        return output, {"shape_mismatch": 1.0}, False
    figures = {
        "max_abs": float((a - e).abs().max()) if a.numel() else 0.0,
        "rel_l2": float((a - e).norm() / e.norm().clamp_min(1e-12)),
    }
    passed = figures["max_abs"] <= tol["max_abs"] and figures["rel_l2"] <= tol["rel_l2"]
    return output, figures, passed


def tolerance_for(manifest: dict, output: str) -> dict:
    per_output = manifest.get("tolerance_per_output") or {}
    return per_output.get(output, manifest["tolerance"])


def oracle_module(directory: Path | None = None):
    path = str(directory or parity_dir())
    if path not in sys.path:
        sys.path.insert(0, path)
    import oracle

    return oracle


def save_published(state: dict, path: Path, file_format: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if file_format == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)


def _load_runners() -> None:
    global _RUNNERS_LOADED
    package = Path(__file__).parent
    for info in pkgutil.iter_modules([str(package)]):
        if not info.name.startswith("_"):
            importlib.import_module(f"parity.{info.name}")
    _RUNNERS_LOADED = True


def targets() -> dict[str, ParityTarget]:
    if not _RUNNERS_LOADED:
        _load_runners()
    return _TARGETS


def checkpoint_oracles() -> dict[str, str]:
    """The one oracle-to-checkpoint map: registry name -> the oracle folder whose stand-in checkpoint
    has its file format (for tests, benchmarks and parity runs alike)."""
    pairs = {}
    for target in targets().values():
        for name in (target.checkpoint, *target.same_format, *target.same_network):
            if name is not None:
                pairs.setdefault(name, target.oracle_name)
    return pairs


@lru_cache(maxsize=1)
def _oracle_state(oracle_name: str, seed: int) -> dict:
    return oracle_module().checkpoint(oracle_name, seed=seed)


def oracle_state(oracle_name: str, seed: int = 0) -> dict:
    """The oracle's stand-in checkpoint, built once per (folder, seed): a Swin-L one takes ~45 s of
    float64 noise. A shallow copy: do not modify its tensors (or a wrapped inner dict)."""
    return dict(_oracle_state(oracle_name, seed))


def install_oracle_weights(names: list[str], weights_dir: Path, seed: int = 0) -> None:
    """Write the oracle stand-in of each registry name where the registry looks for its real file."""
    oracles = checkpoint_oracles()
    for name in names:
        spec = registry.get_spec(name)
        save_published(oracle_state(oracles[name], seed), Path(weights_dir) / spec.weights.filename,
                       spec.weights.file_format)


def load_oracle_model(oracle_name: str, checkpoint: str, seed: int, device: str | torch.device,
                      dtype: torch.dtype) -> nn.Module:
    """Save the oracle's stand-in checkpoint as the published file and load it like real weights."""
    spec = registry.get_spec(checkpoint)
    state = oracle_state(oracle_name, seed)
    with tempfile.TemporaryDirectory() as tmp:
        save_published(state, Path(tmp) / spec.weights.filename, spec.weights.file_format)
        return registry.load(checkpoint, Path(tmp), device, dtype)


@lru_cache(maxsize=4)
def _cached_oracle_model(oracle_name: str, checkpoint: str, seed: int, device: str, dtype: torch.dtype) -> nn.Module:
    return load_oracle_model(oracle_name, checkpoint, seed, device, dtype)


def case_seed(case: dict, asked: int | None) -> int:
    if asked is not None:
        return asked
    return int(case.get("meta", {}).get("seed", 0))


def run(
    oracle_name: str,
    cases_file: Path | None = None,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    checkpoint: str | None = None,
    channels_last: bool = False,
) -> list[Check]:
    """Every case of an oracle folder, through `checkpoint` (default: the folder's own registry entry;
    any entry of the same format may be named)."""
    target = targets()[oracle_name]
    checkpoint = checkpoint or target.checkpoint
    if checkpoint is not None and checkpoint not in (target.checkpoint, *target.same_format, *target.same_network):
        raise ValueError(f"{checkpoint} is not stored in the format of {oracle_name}")
    manifest = oracle_module().manifest(oracle_name)
    path = cases_file or parity_dir() / oracle_name / "cases.pt"
    cases = torch.load(path, weights_only=True)
    device = torch.device(device)
    checks = []
    with torch.inference_mode():
        for index, case in enumerate(cases):
            ctx = Context(manifest, case_seed(case, seed), device, dtype, channels_last)
            model = None if checkpoint is None else ctx.model_for(oracle_name, checkpoint)
            for output, figures, passed in target.runner(model, case, ctx):
                checks.append(Check(index, output, figures, passed))
    return checks
