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
from models import registry
from models.yolov4 import COCO_CLASSES
from tests.conftest import CAR, free_port, keys_under, photo_bytes, read_png, runsync, serve_api, worker_env

# Stand-ins for five networks and a scene classifier, and minutes of chain runs on a CPU: the full run only.
pytestmark = pytest.mark.slow

# the chain's networks, as the oracle's stand-in checkpoints (YOLOv4's is car_detector's, below)
CHAIN_NETWORKS = ["tracer_b7", "isnet", "cascadepsp-carveset", "fba"]
# Small sizes keep the CPU run short; the defaults (960 / 900 / 2048) take minutes per image here.
SMALL = {"seg_mask_size": 320, "refine_mask_size": 256, "matting_mask_size": 256}


# carvekit's rules, written out from its source (AutoScene.net_selection, AutoInterface.select_net):
# autoscene swaps the network by scene; auto takes tracer_b7 for a hard or soft scene only when cars are
# seen without a person (isnet otherwise), and tracer_b7 for a digital one.
AUTOSCENE_RULE = {"hard": "tracer_b7", "soft": "isnet", "digital": "tracer_b7"}
# The stand-ins are rigged so that the rules' inputs are known: every photo is a "soft" scene, where
# autoscene's choice (isnet) differs from the configured chain's (tracer_b7), and YOLOv4 sees cars only,
# where auto's choice (tracer_b7) differs from autoscene's.
SCENE = "soft"
AUTO_RULE_SOFT_WITH_CARS = "tracer_b7"


def scene_classifier(folder, tmp) -> None:
    torch.manual_seed(0)
    model = densenet161(weights=None)
    model.classifier = nn.Sequential(nn.Linear(2208, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 3))
    class_to_idx = {"digital": 0, "hard": 1, "soft": 2}
    with torch.no_grad():  # logits = the last layer's bias, whatever the photo: top-1 is SCENE
        model.classifier[3].weight.zero_()
        model.classifier[3].bias.copy_(torch.tensor([10.0 if name == SCENE else 0.0 for name in class_to_idx]))
    torch.save({"model": model.eval(), "class_to_idx": class_to_idx}, tmp / "scene.pth")
    convert(tmp / "scene.pth", folder)


def car_detector(folder) -> None:
    """YOLOv4's stand-in with heads that answer "car" at every anchor: each head's last conv is its bias,
    objectness and the car class far positive, the other classes far negative."""
    state = parity.oracle_state(parity.checkpoint_oracles()["yolov4"])
    weights = dict(state["state"])  # the cached stand-in stays untouched
    car = COCO_CLASSES.index("car")
    for conv in ("conv2", "conv10", "conv18"):
        bias = torch.full((3, 5 + len(COCO_CLASSES)), -30.0)  # per anchor: box (4), objectness, classes
        bias[:, 4] = bias[:, 5 + car] = 30.0
        name = f"head.{conv}.conv.0"
        weights[f"{name}.weight"] = torch.zeros_like(weights[f"{name}.weight"])
        weights[f"{name}.bias"] = bias.flatten()
    state = {**state, "state": weights}
    spec = registry.get_spec("yolov4")
    parity.save_published(state, folder / spec.weights.filename, spec.weights.file_format)


@pytest.fixture(scope="module")
def chain_api(s3_server, tmp_path_factory, install_stand_ins):
    import boto3

    tmp = tmp_path_factory.mktemp("chain")
    weights = tmp / "weights"
    install_stand_ins(CHAIN_NETWORKS, weights)
    scene_classifier(weights, tmp)
    car_detector(weights)
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


@pytest.mark.parametrize("pre,model", [("autoscene", AUTOSCENE_RULE[SCENE]), ("auto", AUTO_RULE_SOFT_WITH_CARS)])
def test_automatic_choice_follows_carvekits_rule(chain_api, pre, model):
    url, bucket_name, client, size = chain_api
    answer = runsync(url, {"id": "photo", "pre": pre, **SMALL})
    cutout_of(answer, client, bucket_name, size)
    assert answer["output"]["scene"] == SCENE
    assert answer["output"]["model"] == model


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
