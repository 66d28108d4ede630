"""Download the weight files of chosen models into WEIGHTS_DIR, at image build time.

    python -m builder.fetch_weights briaai/RMBG-2.0 u2netp      # chosen models
    python -m builder.fetch_weights --all                        # every registered model

Each file goes to WEIGHTS_DIR/<registry filename>, the place `models.registry.load` looks first, so
the worker never touches the network at run time. Every download is taken from the repo commit its
registry entry pins, retried with backoff, and checked against the SHA-256 / SHA-512 the entry
states. Files that need converting (a pickled module) are converted here, once. Gated repos
(briaai/RMBG-2.0) need HF_TOKEN.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import shutil
import sys
import time
from pathlib import Path

from models import registry
from models.spec import Download, ModelSpec
from worker import config


def digest(path: Path, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def verify(path: Path, download: Download) -> None:
    for algorithm, expected in (("sha256", download.sha256), ("sha512", download.sha512)):
        if expected and digest(path, algorithm) != expected:
            raise SystemExit(f"{download.repo}/{download.filename}: {path} does not have the expected "
                             f"{algorithm.upper()} {expected}")


def download(source: Download, attempts: int = 5) -> Path:
    """hf_hub_download of the pinned revision, with retries and exponential backoff."""
    from huggingface_hub import hf_hub_download

    if not source.revision:
        raise SystemExit(f"{source.repo}/{source.filename}: no revision is pinned in the registry; refusing an "
                         f"unpinned download")
    for attempt in range(1, attempts + 1):
        try:
            return Path(hf_hub_download(source.repo, source.filename, revision=source.revision))
        except Exception as exc:  # noqa: BLE001 - network errors of every kind are retried
            if attempt == attempts:
                raise SystemExit(f"download of {source.repo}/{source.filename} failed after {attempts} attempts: {exc}")
            time.sleep(2**attempt)
    raise AssertionError("unreachable")


def fetch(spec: ModelSpec, directory: Path) -> Path:
    """Put the weight file of `spec` at directory/<filename>; files that need converting are converted."""
    source = spec.weights
    target = directory / source.filename
    if target.is_file():
        return target
    if source.download is None:
        raise SystemExit(f"{spec.name}: no download source is registered; place {source.filename} by hand")
    fetched = download(source.download)
    verify(fetched, source.download)
    if source.converter:
        importlib.import_module(source.converter).convert(fetched, directory)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(fetched, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m builder.fetch_weights", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help=f"registry names: {', '.join(registry.names())}")
    parser.add_argument("--all", action="store_true", help="every registered model")
    parser.add_argument("--dir", type=Path, default=None, help="target folder (default: WEIGHTS_DIR or ./weights)")
    args = parser.parse_args(argv)
    names = registry.names() if args.all else args.models
    unknown = [n for n in names if n not in registry.names()]
    if unknown or not names:
        parser.error(f"choose models from: {', '.join(registry.names())}" + (f" (unknown: {unknown})" if unknown else ""))
    directory = args.dir or config.load().weights_dir
    for name in names:
        print(f"{name}: {fetch(registry.get_spec(name), directory)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
