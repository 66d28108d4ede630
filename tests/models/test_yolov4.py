"""YOLOv4 (carvekit's object detector) against the parity oracle, through the real loader path."""
from __future__ import annotations

import pytest
import torch

import parity
from models import registry
from models.yolov4 import ANCHORS, COCO_CLASSES, decode_scale


def test_published_file_with_class_list_loads_weights_only(tmp_path):
    """The real file also holds the 80 class names (a list of str): still weights_only-safe."""
    spec = registry.get_spec("yolov4")
    state = parity.oracle_module().checkpoint("yolov4")["state"]
    torch.save({"state": state, "classes": list(COCO_CLASSES)}, tmp_path / spec.weights.filename)
    model = registry.load("yolov4", weights_dir=tmp_path)
    assert set(model.state_dict()) == set(state)
    key = "head.conv18.conv.0.bias"
    assert torch.equal(model.state_dict()[key], state[key])
    assert spec.extra["classes"] == COCO_CLASSES and len(COCO_CLASSES) == 80


def test_loader_reports_missing_key(tmp_path):
    spec = registry.get_spec("yolov4")
    state = spec.build().state_dict()
    state.pop("neek.conv20.conv.1.running_var")
    torch.save({"state": state}, tmp_path / spec.weights.filename)
    with pytest.raises(registry.CheckpointMismatch, match="neek.conv20"):
        registry.load("yolov4", weights_dir=tmp_path)


def test_decode_layout_and_box_formula():
    """Index = anchor*H*W + y*W + x; centre = (sigmoid + cell)/grid, size = exp * anchor/stride / grid."""
    classes, height, width, stride = 2, 3, 4, 8
    anchors = ANCHORS[:3]
    raw = torch.zeros(1, 3 * (5 + classes), height, width)
    anchor, y, x = 1, 2, 3
    base = anchor * (5 + classes)
    raw[0, base + 2, y, x] = 0.5  # log width
    raw[0, base + 4, y, x] = 2.0  # objectness logit
    raw[0, base + 6, y, x] = -1.0  # class 1 logit
    boxes, confs = decode_scale(raw, anchors, stride, classes)
    assert boxes.shape == (1, 3 * height * width, 1, 4) and confs.shape == (1, 3 * height * width, classes)
    i = anchor * height * width + y * width + x
    w = torch.exp(torch.tensor(0.5)) * anchors[anchor][0] / stride / width
    h = anchors[anchor][1] / stride / height
    cx, cy = (0.5 + x) / width, (0.5 + y) / height
    torch.testing.assert_close(boxes[0, i, 0], torch.stack([cx - w / 2, torch.tensor(cy - h / 2), cx + w / 2,
                                                            torch.tensor(cy + h / 2)]).float())
    torch.testing.assert_close(confs[0, i], torch.sigmoid(torch.tensor(2.0)) * torch.sigmoid(torch.tensor([0.0, -1.0])))
