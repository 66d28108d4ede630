"""Parity against the oracle in ../shared/parity: is our model the published model?

`run(name)` rebuilds `oracle.checkpoint(name, seed)`, saves it in the published file format under the
file name the registry expects, loads it through `models.registry.load` (the path real weights take),
and runs every stored case through the runner registered for that oracle folder. Runners live in
models/parity/<family>.py; each turns one case into a list of `Check`s.

Algorithm folders (manifest `keys` == {}) have runners that take no model.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from models import registry

DEFAULT_PARITY_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "parity"


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


Runner = Callable[[nn.Module | None, dict, dict], list[tuple[str, dict[str, float], bool]]]


@dataclass(frozen=True)
class ParityTarget:
    oracle_name: str
    checkpoint: str | None  # registry name, or None for algorithm folders
    runner: Runner


_TARGETS: dict[str, ParityTarget] = {}


def runner(oracle_name: str, checkpoint: str | None = None) -> Callable[[Runner], Runner]:
    """Register `fn(model, case, manifest) -> [(output, figures, passed), ...]` for an oracle folder."""

    def wrap(fn: Runner) -> Runner:
        _TARGETS[oracle_name] = ParityTarget(oracle_name, checkpoint, fn)
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
    package = Path(__file__).parent
    for info in pkgutil.iter_modules([str(package)]):
        if not info.name.startswith("_"):
            importlib.import_module(f"models.parity.{info.name}")


def targets() -> dict[str, ParityTarget]:
    if not _TARGETS:
        _load_runners()
    return _TARGETS


def load_oracle_model(oracle_name: str, checkpoint: str, seed: int, device: str, dtype: torch.dtype) -> nn.Module:
    """Save the oracle's stand-in checkpoint as the published file and load it like real weights."""
    oracle = oracle_module()
    spec = registry.get_spec(checkpoint)
    state = oracle.checkpoint(oracle_name, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        save_published(state, Path(tmp) / spec.weights.filename, spec.weights.file_format)
        return registry.load(checkpoint, device=device, dtype=dtype, directory=Path(tmp))


def run(
    oracle_name: str,
    cases_file: Path | None = None,
    seed: int = 0,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> list[Check]:
    target = targets()[oracle_name]
    oracle = oracle_module()
    manifest = oracle.manifest(oracle_name)
    model = None
    if target.checkpoint is not None:
        model = load_oracle_model(oracle_name, target.checkpoint, seed, device, dtype)
    path = cases_file or parity_dir() / oracle_name / "cases.pt"
    cases = torch.load(path, weights_only=True)
    checks = []
    with torch.inference_mode():
        for index, case in enumerate(cases):
            for output, figures, passed in target.runner(model, case, manifest):
                checks.append(Check(index, output, figures, passed))
    return checks

