"""Download the weight files of chosen models into WEIGHTS_DIR, at image build time.

    python -m builder.fetch_weights briaai/RMBG-2.0 u2netp      # chosen models
    python -m builder.fetch_weights --all                        # every registered model
    python -m builder.fetch_weights --plan briaai/RMBG-2.0 u2netp   # what it would do; no network

Each file goes to WEIGHTS_DIR/<registry filename>, the place `models.registry.load` looks first, so
the worker never touches the network at run time. Two kinds of source: a Hugging Face repo taken at
the commit its registry entry pins (huggingface_hub), and a GitHub release asset taken over plain
HTTPS and checked against the SHA-256 its entry states. Both are retried with backoff, checked
against every hash the entry states, and written atomically. A download with nothing to pin it (no
commit, no hash) is refused. Files that need converting are converted here, once. Gated repos
(briaai/RMBG-2.0) need HF_TOKEN. Files placed by hand are named with where to get them.

--plan prints every file it would fetch (source, revision, hashes, target path), the ones placed by
hand and the gated ones, and exits 1 when it would refuse any.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from models import registry
from models.spec import Download, ModelSpec, ReleaseAsset
from worker import config

ATTEMPTS = 5
READ_TIMEOUT_S = 60


def digest(path: Path, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def expected_hashes(source: Download | ReleaseAsset) -> dict[str, str]:
    stated = {"sha256": source.sha256, "sha512": source.sha512 if isinstance(source, Download) else None}
    return {algorithm: value for algorithm, value in stated.items() if value}


def refusal(spec: ModelSpec) -> str | None:
    """Why builder/ will not download the file of `spec`, or None when it will (or it is placed by hand)."""
    source = spec.weights.download
    if isinstance(source, Download) and not source.revision:
        return (f"{spec.name}: {source.origin}: no revision is pinned in the registry; refusing an unpinned "
                f"download (pin a commit of the repo in the {spec.family} family's CHECKPOINTS under models/, "
                f"or place the file by hand)")
    return None


def verify(path: Path, source: Download | ReleaseAsset) -> None:
    for algorithm, expected in expected_hashes(source).items():
        found = digest(path, algorithm)
        if found != expected:
            raise SystemExit(f"{source.origin}: {path} has {algorithm.upper()} {found}, the registry states "
                             f"{expected}; refusing it")


def _retried(what: str, attempt_once, attempts: int = ATTEMPTS):
    """attempt_once(), retried with exponential backoff on any error (network errors come in many kinds)."""
    for attempt in range(1, attempts + 1):
        try:
            return attempt_once()
        except Exception as exc:  # noqa: BLE001 - every network error is retried
            if attempt == attempts:
                raise SystemExit(f"download of {what} failed after {attempts} attempts: {exc}") from None
            time.sleep(2**attempt)
    raise AssertionError("unreachable")


def download_hub_file(source: Download) -> Path:
    """hf_hub_download of the pinned revision (into the Hugging Face cache)."""
    from huggingface_hub import hf_hub_download

    return _retried(source.origin, lambda: Path(hf_hub_download(source.repo, source.filename,
                                                                 revision=source.revision)))


def download_release_asset(source: ReleaseAsset, folder: Path) -> Path:
    """The asset over HTTPS (redirects followed) into `folder`, complete or not at all."""
    target = folder / source.filename

    def attempt_once() -> Path:
        partial = target.with_name(target.name + ".partial")
        with urllib.request.urlopen(source.url, timeout=READ_TIMEOUT_S) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        os.replace(partial, target)
        return target

    return _retried(source.url, attempt_once)


def place(fetched: Path, target: Path) -> None:
    """Copy `fetched` to `target` atomically: a build stopped half way leaves no truncated weight file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(handle)
    shutil.copyfile(fetched, partial)
    os.replace(partial, target)


def fetch(spec: ModelSpec, directory: Path) -> Path:
    """Put the weight file of `spec` at directory/<filename>; files that need converting are converted."""
    source = spec.weights
    target = directory / source.filename
    if target.is_file():
        return target
    if reason := refusal(spec):
        raise SystemExit(reason)
    if source.download is None:
        where = f" from {source.by_hand.where} ({source.by_hand.reason})" if source.by_hand else ""
        raise SystemExit(f"{spec.name}: builder/ has no download for it; place {source.filename} in {directory} "
                         f"by hand{where}")
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".fetch-") as scratch:
        if isinstance(source.download, ReleaseAsset):
            fetched = download_release_asset(source.download, Path(scratch))
        else:
            fetched = download_hub_file(source.download)
        verify(fetched, source.download)
        if source.converter:
            importlib.import_module(source.converter).convert(fetched, directory)
        else:
            place(fetched, target)
    return target


def plan_lines(spec: ModelSpec, directory: Path) -> list[str]:
    """What fetch() would do for `spec`, without network: one line per file, refusals marked REFUSED."""
    source = spec.weights
    target = directory / source.filename
    if reason := refusal(spec):
        return [f"REFUSED {reason}"]
    download = source.download
    if download is None:
        where = f"get it from {source.by_hand.where}; {source.by_hand.reason}" if source.by_hand else "no source known"
        return [f"by hand {spec.name}: place {target} ({where})"]
    pinned = f"revision {download.revision}" if isinstance(download, Download) else "release asset"
    hashes = ", ".join(f"{a} {h}" for a, h in expected_hashes(download).items()) or "no hash (the commit pins it)"
    line = f"fetch   {spec.name}: {download.origin} ({pinned}; {hashes}) -> {target}"
    if source.converter:
        line += f" (converted by {source.converter})"
    if isinstance(download, Download) and download.gated:
        line += "; gated: needs HF_TOKEN and the licence accepted on the repo's page"
    return [line]


def plan(names: list[str], directory: Path) -> int:
    lines = [line for name in dict.fromkeys(names) for line in plan_lines(registry.get_spec(name), directory)]
    print("\n".join(lines))
    return 1 if any(line.startswith("REFUSED") for line in lines) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m builder.fetch_weights", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help=f"registry names: {', '.join(registry.names())}")
    parser.add_argument("--all", action="store_true", help="every registered model")
    parser.add_argument("--plan", action="store_true", help="print what would be fetched; touch no network")
    parser.add_argument("--dir", type=Path, default=None, help="target folder (default: WEIGHTS_DIR or ./weights)")
    args = parser.parse_args(argv)
    names = registry.names() if args.all else args.models
    unknown = [n for n in names if n not in registry.names()]
    if unknown or not names:
        parser.error(f"choose models from: {', '.join(registry.names())}" + (f" (unknown: {unknown})" if unknown else ""))
    directory = args.dir or config.read_settings().weights_dir
    if args.plan:
        return plan(names, directory)
    for name in names:
        print(f"{name}: {fetch(registry.get_spec(name), directory)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
