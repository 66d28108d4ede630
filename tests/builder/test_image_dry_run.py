"""The image without Docker: exactly what the Dockerfile COPYs, in an empty folder, with its ENV, its
build steps that need no network, and its CMD serving the hub's first test job. A folder the
Dockerfile forgets to COPY, or an ENV path the worker cannot use, fails here."""
from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builder import dockerfile
from tests.conftest import REPO, SHARED

NETWORK_STEPS = ("pip install",)  # the requirements are this venv's; every other RUN step runs here


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    return any(fnmatch.fnmatch(path, pattern.removeprefix("**/")) for pattern in dockerignore())


def test_build_context_leaves_out_the_big_folders_and_keeps_what_the_image_copies():
    assert all(ignored(name) for name in (".venv", "weights", "bucket", ".git", "tests", "benchmarks"))
    sources = [source for sources, _ in dockerfile.copies() for source in sources]
    assert sources and not [source for source in sources if ignored(source.rstrip("/"))]


@pytest.mark.slow
def test_image_dry_run_serves_the_hubs_first_job(tmp_path):
    app, weights, hf_home = tmp_path / "app", tmp_path / "weights", tmp_path / "hf"
    places = {"/app": str(app), "/weights": str(weights), "/tmp/hf": str(hf_home)}

    def here(text: str) -> str:
        for image_path, local in places.items():
            text = text.replace(image_path, local)
        return text

    app.mkdir()
    for sources, destination in dockerfile.copies():
        for source in sources:
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, app / destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif destination.endswith("/") or destination == ".":  # into a folder, as Docker does
                shutil.copy(REPO / source, app / destination / Path(source).name)
            else:
                shutil.copy(REPO / source, app / destination)
    # The build fetches u2netp (the hub's tests use it); here the file is already in WEIGHTS_DIR.
    weights.mkdir()
    (weights / "u2netp.pth").symlink_to(SHARED / "weights" / "u2netp.pth")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path), "MODELS": "u2netp",
           **{name: here(value) for name, value in dockerfile.env().items()}}

    for command in dockerfile.runs():
        if not any(step in command for step in NETWORK_STEPS):
            done = subprocess.run(["bash", "-c", here(command)], cwd=app, env=env, capture_output=True, text=True,
                                  timeout=120)
            assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])

    job = json.loads((REPO / ".runpod" / "tests.json").read_text())["tests"][0]
    cmd = json.loads(dict(dockerfile.instructions())["CMD"])
    done = subprocess.run([*cmd, "--test_input", json.dumps({"input": job["input"]})], cwd=app, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    bucket = Path(env["LOCAL_BUCKET_DIR"])
    assert bucket.is_relative_to(app)
    cutout = np.asarray(Image.open(bucket / "img" / job["input"]["id"] / "trans.png"))
    assert cutout.shape == (240, 320, 4) and cutout[..., 3].max() > 200
