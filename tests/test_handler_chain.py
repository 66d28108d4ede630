"""carvekit's chain end to end through the handler (runpod's local API server), with the parity
oracle's checkpoints (and a scene classifier built with the published structure) in a temp folder."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.models import densenet161

import parity
from builder.convert_scene_classifier import convert
from tests.conftest import CAR, free_port, keys_under, photo_bytes, read_png, runsync, serve_api, worker_env

# the chain's networks, as the oracle's stand-in checkpoints
CHAIN_NETWORKS = ["tracer_b7", "isnet", "cascadepsp-carveset", "fba", "yolov4"]
# Small sizes keep the CPU run short; the defaults (960 / 900 / 2048) take minutes per image here.
SMALL = {"seg_mask_size": 320, "refine_mask_size": 256, "matting_mask_size": 256}


def scene_classifier(folder, tmp) -> None:
    torch.manual_seed(0)
    model = densenet161(weights=None)
    model.classifier = nn.Sequential(nn.Linear(2208, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 3))
    torch.save({"model": model.eval(), "class_to_idx": {"digital": 0, "hard": 1, "soft": 2}}, tmp / "scene.pth")
    convert(tmp / "scene.pth", folder)


@pytest.fixture(scope="module")
def chain_api(s3_server, tmp_path_factory):
    import boto3

    tmp = tmp_path_factory.mktemp("chain")
    weights = tmp / "weights"
    parity.install_oracle_weights(CHAIN_NETWORKS, weights)
    scene_classifier(weights, tmp)
    bucket_name = f"chain-{free_port()}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket_name)
    photo = Image.open(CAR).convert("RGB").resize((160, 120))
    client.put_object(Bucket=bucket_name, Key="ogs/photo", Body=photo_bytes(photo, "PNG"))
    with serve_api(worker_env(s3_server, bucket_name, WEIGHTS_DIR=str(weights), MAX_RESIDENT_MODELS="6")) as url:
        yield url, bucket_name, client, photo.size


def cutout_of(answer: dict, client, bucket_name: str, size) -> np.ndarray:
    assert answer["status"] == "COMPLETED", answer
    image = read_png(client, bucket_name, answer["output"]["key"])
    assert image.mode == "RGBA" and image.size == size
    return np.asarray(image)


@pytest.mark.parametrize("job,model,post", [
    ({"model": "tracer_b7", "post": "cascade_fba"}, "tracer_b7", "cascade_fba"),
    ({"model": "isnet", "post": "fba"}, "isnet", "fba"),
    ({"model": "carvekit"}, "tracer_b7", "cascade_fba"),
])
def test_chains(chain_api, job, model, post):
    url, bucket_name, client, size = chain_api
    answer = runsync(url, {"id": "photo", **job, **SMALL})
    pixels = cutout_of(answer, client, bucket_name, size)
    assert answer["output"]["model"] == model and answer["output"]["post"] == post
    alpha = pixels[..., 3]
    # FBA's composition: sure background 0, and the 0.3 noise filter leaves no alpha in 1..76.
    assert ((alpha == 0) | (alpha >= 76)).all()


@pytest.mark.parametrize("pre", ["autoscene", "auto"])
def test_automatic_choice(chain_api, pre):
    url, bucket_name, client, size = chain_api
    answer = runsync(url, {"id": "photo", "pre": pre, **SMALL})
    cutout_of(answer, client, bucket_name, size)
    assert answer["output"]["scene"] in ("hard", "soft", "digital")
    assert answer["output"]["model"] in ("tracer_b7", "isnet")


@pytest.mark.parametrize("job,message", [
    ({"post": "cascade"}, "post: 'cascade' is not allowed; allowed values: none, fba, cascade_fba"),
    ({"pre": "magic"}, "pre: 'magic' is not allowed; allowed values: none, autoscene, auto"),
    ({"trimap_dilation": -1}, "trimap_dilation: -1 is out of range; allowed: 0..256"),
    ({"matting_mask_size": 10}, "matting_mask_size: 10 is out of range; allowed: 64..4096"),
    ({"trimap_prob_threshold": "high"}, "trimap_prob_threshold: 'high' has the wrong type; expected integer"),
])
def test_bad_knobs(chain_api, job, message):
    url, bucket_name, client, _ = chain_api
    before = keys_under(client, bucket_name, "img/")
    answer = runsync(url, {"id": "photo", "model": "isnet", **job})
    assert answer["status"] == "FAILED" and message in answer["error"], answer
    assert keys_under(client, bucket_name, "img/") == before
