"""The scene classifier: carvekit's pickled module -> safetensors + class map -> our network.

There is no oracle for it: the test builds a file with the published structure (a whole
torchvision DenseNet-161 with a Linear-ReLU-Dropout-Linear head, pickled in a dict with
class_to_idx), converts it, loads it through the registry and compares with the pickled module.
"""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torchvision.models import densenet161

from builder.convert_scene_classifier import convert
from models import registry

CLASS_TO_IDX = {"digital": 0, "hard": 1, "soft": 2}


def published_module(head: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    model = densenet161(weights=None)
    model.classifier = head
    # Non-trivial BN statistics, so that running_mean/var must really be carried over.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scene")
    original = published_module(nn.Sequential(nn.Linear(2208, 96), nn.ReLU(), nn.Dropout(0.3), nn.Linear(96, 3)))
    torch.save({"model": original, "class_to_idx": CLASS_TO_IDX}, tmp / "scene_classifier.pth")
    out = tmp / "weights"
    paths = convert(tmp / "scene_classifier.pth", out)
    return original, out, paths


def test_conversion_writes_tensors_and_class_map(converted):
    original, out, (weights, class_map) = converted
    assert weights == out / "scene_classifier.safetensors"
    state = load_file(str(weights))
    assert set(state) == set(original.state_dict())
    assert state["classifier.0.weight"].shape == (96, 2208) and state["classifier.3.weight"].shape == (3, 96)
    assert json.loads(class_map.read_text()) == {"class_to_idx": CLASS_TO_IDX}


def test_registry_model_matches_pickled_module(converted):
    original, out, _ = converted
    model = registry.load("scene_classifier", weights_dir=out)
    assert model.classifier[0].out_features == 96 and model.classifier[3].out_features == 3
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected, actual = original(x), model(x)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_other_head_structure_is_refused(tmp_path):
    original = published_module(nn.Linear(2208, 3))
    torch.save({"model": original, "class_to_idx": CLASS_TO_IDX}, tmp_path / "scene_classifier.pth")
    with pytest.raises(registry.CheckpointMismatch):
        convert(tmp_path / "scene_classifier.pth", tmp_path / "weights")
