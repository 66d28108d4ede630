"""The RunPod hub files: made from the code (no setting written twice), and their tests pass."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from builder import dockerfile, hub_files
from tests.conftest import DEVICE, REPO, SHARED
from worker import config


def test_committed_hub_files_are_the_generated_ones():
    assert json.loads((REPO / ".runpod" / "hub.json").read_text()) == hub_files.hub()
    assert json.loads((REPO / ".runpod" / "tests.json").read_text()) == hub_files.tests()
    keys = [e["key"] for e in hub_files.hub()["config"]["env"]]
    assert keys == [name for name, _, _ in config.documented()] and "MAX_CONCURRENCY" in keys


@pytest.mark.slow
def test_the_hubs_tests_pass_in_local_mode(tmp_path):
    """What the hub runs: each tests.json input through handler.py, the sample image in the image's
    local bucket folder (the Docker build writes it there)."""
    hub_files.write_sample(tmp_path / "ogs" / hub_files.SAMPLE_ID)
    env = {**os.environ, "LOCAL_BUCKET_DIR": str(tmp_path), "WEIGHTS_DIR": str(SHARED / "weights"),
           "DEVICE": DEVICE, "HF_HUB_OFFLINE": "1"}
    for test in hub_files.tests()["tests"]:
        done = subprocess.run([sys.executable, str(REPO / "handler.py"), "--test_input",
                               json.dumps({"input": test["input"]})], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=test["timeout"] / 1000)
        assert done.returncode == 0, (test["name"], done.stdout[-2000:], done.stderr[-2000:])
    cutout = np.asarray(Image.open(tmp_path / "img" / hub_files.SAMPLE_ID / "trans.png"))
    assert cutout.shape == (240, 320, 4)
    alpha = cutout[..., 3]
    assert alpha[125, 160] > 200 and alpha[5, 5] < 50  # the disc is kept, the corner removed


def test_readme_tables_are_the_generated_ones():
    """The README's tables of knobs, settings and models are made from the code (no default typed twice)."""
    from builder import readme_tables

    readme = (REPO / "README.md").read_text()
    assert readme_tables.render(readme) == readme, "run: python -m builder.readme_tables"


def test_hub_defaults_are_the_images():
    """A hub deployment pre-fills its environment with hub.json's defaults: on top of the image's own
    environment (the Dockerfile's ENV) on a GPU worker, they must change nothing the worker runs with."""
    image_env = dockerfile.env()
    published = {entry["key"]: str(entry["input"]["default"]) for entry in hub_files.hub()["config"]["env"]
                 if "default" in entry["input"]}
    in_image = config.read_settings(image_env, gpu_visible=True)
    assert config.read_settings({**image_env, **published}, gpu_visible=True) == in_image
    assert in_image.device == "cuda" and published["DEVICE"] == "auto"
    assert published["WEIGHTS_DIR"] == image_env["WEIGHTS_DIR"] == "/weights"
    assert published["MAX_CONCURRENCY"] == "8" and published["BATCH_SIZE"] == "8"  # the engine's CUDA defaults


def test_hub_names_gpu_pools():
    """RunPod's publishing guide: a GPU listing names its pools in `gpuIds` (comma-separated pool IDs)."""
    pools = hub_files.hub()["config"]["gpuIds"].split(",")
    assert pools and all(re.fullmatch(r"(AMPERE|ADA|HOPPER)_\d+(_PRO)?", pool) for pool in pools)
