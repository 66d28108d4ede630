"""Download the weight files of chosen models into WEIGHTS_DIR, at image build time.

    python -m builder.fetch_weights briaai/RMBG-2.0 u2netp      # chosen models
    python -m builder.fetch_weights --all                        # every registered model

Each file goes to WEIGHTS_DIR/<registry filename>, the place `models.registry.load` looks first, so
the worker never touches the network at run time. Downloads are retried with backoff; files with a
known SHA-256 are verified. Gated repos (briaai/RMBG-2.0) need HF_TOKEN.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import time
from pathlib import Path

from models import registry
from models.spec import ModelSpec


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(repo: str, filename: str, revision: str | None, attempts: int = 5) -> Path:
    """hf_hub_download with retries and exponential backoff."""
    from huggingface_hub import hf_hub_download

    for attempt in range(1, attempts + 1):
        try:
            return Path(hf_hub_download(repo, filename, revision=revision))
        except Exception as exc:  # noqa: BLE001 - network errors of every kind are retried
            if attempt == attempts:
                raise SystemExit(f"download of {repo}/{filename} failed after {attempts} attempts: {exc}")
            time.sleep(2**attempt)
    raise AssertionError("unreachable")


def fetch(spec: ModelSpec, directory: Path) -> Path:
    """Put the weight file of `spec` at directory/<filename>; files that need converting are converted."""
    source = spec.weights
    target = directory / source.filename
    if target.is_file() and (not source.sha256 or sha256_of(target) == source.sha256):
        return target
    convert_from = spec.extra.get("convert_from")
    if convert_from:
        from builder.convert_scene_classifier import convert

        pickled = download(convert_from["hf_repo"], convert_from["hf_filename"], convert_from.get("revision"))
        convert(pickled, directory)
        return target
    if not source.hf_repo:
        raise SystemExit(f"{spec.name}: no download source is registered; place {source.filename} by hand")
    cached = download(source.hf_repo, source.repo_filename, spec.extra.get("hf_revision"))
    if source.sha256 and sha256_of(cached) != source.sha256:
        raise SystemExit(f"{spec.name}: {cached} does not have the expected SHA-256 {source.sha256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, target)
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
    directory = args.dir or registry.weights_dir()
    for name in names:
        print(f"{name}: {fetch(registry.get_spec(name), directory)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
