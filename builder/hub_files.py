"""RunPod hub files and the hub's sample image, made from the code so that nothing is written twice.

    python -m builder.hub_files            # (re)write .runpod/hub.json and .runpod/tests.json
    python -m builder.hub_files --sample bucket/ogs/sample.png   # the image the hub's tests cut out

hub.json lists every setting of worker/config.py (name, default, meaning). A hub deployment pre-fills
its environment from those defaults, so each is the value a GPU worker runs with inside the image: the
Dockerfile's ENV lines (WEIGHTS_DIR=/weights), else the CUDA default (MAX_CONCURRENCY, BATCH_SIZE),
else the setting's default (DEVICE=auto). tests.json runs jobs on a synthetic sample image that the
Docker build writes into the image's local bucket folder, so the hub's tests need no bucket of the
caller's.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from builder import dockerfile
from worker import config

REPO = Path(__file__).resolve().parents[1]
SAMPLE_ID = "sample.png"
# torch 2.14.1's CUDA 13.0 build: the host's NVIDIA driver must support CUDA 13.0 (driver >= 580).
CUDA_VERSIONS = ["13.0"]
# RunPod's GPU pools (references/gpu-types, "GPU pools") of 16 to 48 GB: the Swin-L models want >= 16 GB.
GPU_POOLS = "AMPERE_16,AMPERE_24,ADA_24,AMPERE_48,ADA_48_PRO"


def _env_input(name: str, default, doc: str) -> dict:
    """A hub env entry, its default spelled as the worker reads it; flags get on/off options."""
    if isinstance(default, bool):
        return {"name": name, "type": "string", "description": doc, "default": config.env_spelling(default),
                "options": [{"label": "on", "value": "1"}, {"label": "off", "value": "0"}]}
    entry = {"name": name, "type": "number" if isinstance(default, (int, float)) else "string", "description": doc}
    if default is not None:
        entry["default"] = config.env_spelling(default)
    return entry


def hub() -> dict:
    image = config.in_environment(dockerfile.env(), gpu_visible=True)
    env = [{"key": name, "input": _env_input(name, value, doc)} for name, value, doc in image]
    return {
        "title": "Background removal and image restoration",
        "description": "Cut subjects out of photos (RMBG-2.0 / BiRefNet, carvekit's chain), restore faces "
                       "(GFPGAN), upscale (Real-ESRGAN) and matte against a known background "
                       "(BackgroundMattingV2); images in and out through your S3 bucket.",
        "type": "serverless",
        "category": "image",
        "config": {
            "runsOn": "GPU",
            "containerDiskInGb": 30,
            "gpuCount": 1,
            "gpuIds": GPU_POOLS,
            "allowedCudaVersions": CUDA_VERSIONS,
            "env": env,
        },
    }


def tests() -> dict:
    jobs = [
        ("cutout", {"id": SAMPLE_ID, "model": "u2netp"}),
        ("mask", {"id": SAMPLE_ID, "model": "u2netp", "task": "mask"}),
    ]
    return {
        "tests": [{"name": name, "input": job, "timeout": 120000} for name, job in jobs],
        "config": {"gpuTypeId": "NVIDIA GeForce RTX 4090", "gpuCount": 1, "allowedCudaVersions": CUDA_VERSIONS},
    }


def write_sample(path: Path) -> None:
    """A 320x240 synthetic photo: a shaded disc in front of a gradient, with some texture."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:240, 0:320].astype(np.float32)
    background = np.stack([x / 320 * 120 + 60, y / 240 * 80 + 90, 200 - x / 320 * 60], -1)
    inside = ((x - 160) ** 2 + (y - 125) ** 2) < 80**2
    shade = np.clip(1.1 - np.hypot(x - 135, y - 100) / 130, 0.3, 1)[..., None]
    disc = np.array([220, 80, 40], np.float32) * shade
    texture = (np.sin(x / 3) * np.cos(y / 4) * 8)[..., None]
    pixels = np.where(inside[..., None], disc, background) + texture
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m builder.hub_files", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=Path, help="write the sample image here instead")
    args = parser.parse_args(argv)
    if args.sample:
        write_sample(args.sample)
        return 0
    for name, content in (("hub.json", hub()), ("tests.json", tests())):
        (REPO / ".runpod" / name).write_text(json.dumps(content, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
