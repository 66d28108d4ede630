"""carvekit's automatic choice: decision tables, YOLO post-processing, scene-classifier input."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from torchvision import transforms

from models.yolov4 import COCO_CLASSES
from pipeline.carvekit import auto_select as auto
from pipeline.carvekit.auto_select import CONFIGURED, Detection
from pipeline.carvekit.params import ChainParams

# (scene, supercategories detected, network) for carvekit AutoInterface.select_net, one row per branch.
AUTO_TABLE = [
    ("hard", [], "isnet"),  # nothing detected
    ("hard", ["human"], "isnet"),  # person only
    ("hard", ["human", "human", "cars"], "isnet"),  # person and something else
    ("hard", ["cars"], "tracer_b7"),
    ("hard", ["cars", "animals", "objects"], "tracer_b7"),  # cars are tested before animals
    ("hard", ["animals"], "isnet"),
    ("hard", ["objects", "other"], "isnet"),
    ("soft", [], "isnet"),
    ("soft", ["human"], "isnet"),
    ("soft", ["human", "animals"], "isnet"),
    ("soft", ["cars", "cars"], "tracer_b7"),
    ("soft", ["animals", "objects"], "isnet"),
    ("soft", ["other"], "isnet"),
    ("digital", [], "tracer_b7"),
    ("digital", ["human"], "tracer_b7"),
    ("digital", ["animals"], "tracer_b7"),
]


@pytest.mark.parametrize("scene, objects, net", AUTO_TABLE)
def test_auto_network(scene, objects, net):
    assert auto.choose_auto(scene, objects).net == net


def test_auto_post_processing_per_network():
    config = replace(CONFIGURED, seg_mask_size=640, post="none", matting_mask_size=1536, refine_mask_size=500,
                     trimap_dilation=10, trimap_erosion=1, trimap_prob_threshold=200)
    tracer = auto.choose_auto("hard", ["cars"], config)
    isnet = auto.choose_auto("soft", ["human"], config)
    # Only matting_mask_size comes from the configuration; the rest is AutoInterface's table.
    assert tracer == ChainParams(
        scene="hard", net="tracer_b7", seg_mask_size=960, post="cascade_fba", trimap_prob_threshold=231,
        trimap_dilation=30, trimap_erosion=5, trimap_filter_threshold=-1, refine_mask_size=900,
        refine_mask_binary_threshold=128, matting_mask_size=1536, fba_noise_filter=True,
    )
    assert isnet == ChainParams(
        scene="soft", net="isnet", seg_mask_size=1024, post="fba", trimap_prob_threshold=231,
        trimap_dilation=30, trimap_erosion=5, trimap_filter_threshold=70, refine_mask_size=900,
        refine_mask_binary_threshold=128, matting_mask_size=1536, fba_noise_filter=False,
    )


# (scene, configured net, configured seg_mask_size) -> (network, seg_mask_size) for carvekit AutoScene.
AUTOSCENE_TABLE = [
    ("hard", "tracer_b7", 640, "tracer_b7", 640),  # the configured network is reused as configured
    ("digital", "tracer_b7", 640, "tracer_b7", 640),
    ("soft", "tracer_b7", 640, "isnet", 1024),  # swapped in with carvekit's defaults
    ("soft", "isnet", 800, "isnet", 800),
    ("hard", "isnet", 800, "tracer_b7", 960),
    ("digital", "u2net", 320, "tracer_b7", 960),
    ("soft", "u2net", 320, "isnet", 1024),
]


@pytest.mark.parametrize("scene, net, size, chosen, chosen_size", AUTOSCENE_TABLE)
def test_autoscene_network(scene, net, size, chosen, chosen_size):
    choice = auto.choose_autoscene(scene, replace(CONFIGURED, net=net, seg_mask_size=size))
    assert (choice.net, choice.seg_mask_size) == (chosen, chosen_size)


def test_autoscene_keeps_configured_post_processing():
    config = replace(CONFIGURED, post="fba", matting_mask_size=1024, refine_mask_size=700,
                     trimap_prob_threshold=220, trimap_dilation=20, trimap_erosion=3, trimap_filter_threshold=10)
    choice = auto.choose_autoscene("soft", config)
    assert (choice.post, choice.matting_mask_size, choice.refine_mask_size) == ("fba", 1024, 700)
    assert (choice.trimap_prob_threshold, choice.trimap_dilation, choice.trimap_erosion,
            choice.trimap_filter_threshold) == (220, 20, 3, 10)
    assert choice.refine_mask_binary_threshold == 127 and choice.fba_noise_filter


@pytest.mark.parametrize("scene", ["indoor", ""])
def test_unknown_scene_is_refused(scene):
    with pytest.raises(ValueError, match="unknown scene"):
        auto.choose_autoscene(scene)
    with pytest.raises(ValueError, match="unknown scene"):
        auto.choose_auto(scene, [])


def test_every_coco_class_has_one_supercategory():
    names = [name for group in auto.SUPERCATEGORIES.values() for name in group]
    assert sorted(names) == sorted(COCO_CLASSES) and len(names) == len(set(names)) == 80


def _yolo_output(rows: list[tuple[tuple[float, float, float, float], int, float]], classes: int = 80):
    """boxes [1,N,1,4], confs [1,N,classes] with one confident class per row (plus low noise)."""
    boxes = torch.tensor([box for box, _, _ in rows], dtype=torch.float32).view(1, -1, 1, 4)
    confs = torch.full((1, len(rows), classes), 0.01)
    for i, (_, cls, conf) in enumerate(rows):
        confs[0, i, cls] = conf
    return boxes, confs


def test_detections_threshold_nms_and_order():
    person, car, dog = COCO_CLASSES.index("person"), COCO_CLASSES.index("car"), COCO_CLASSES.index("dog")
    rows = [
        ((0.10, 0.10, 0.50, 0.50), car, 0.70),
        ((0.12, 0.10, 0.52, 0.50), car, 0.90),  # IoU ~0.9 with the first: suppresses it
        ((0.10, 0.10, 0.50, 0.50), person, 0.80),  # same place, other class: kept
        ((0.60, 0.60, 0.90, 0.90), car, 0.50),  # no overlap: kept
        ((0.00, 0.00, 0.20, 0.20), dog, 0.40),  # not above 0.4: dropped
        ((0.00, 0.00, 0.20, 0.20), dog, 0.41),
    ]
    found = auto.detections(*_yolo_output(rows))[0]
    assert [(d.class_id, round(d.confidence, 2)) for d in found] == [(person, 0.8), (car, 0.9), (car, 0.5), (dog, 0.41)]
    assert found[1].box == pytest.approx((0.12, 0.10, 0.52, 0.50))
    assert auto.supercategories(found, COCO_CLASSES) == ["human", "cars", "cars", "animals"]


def test_nms_keeps_overlap_up_to_threshold():
    # Two unit-height boxes: IoU = overlap / (2 - overlap). 0.75 -> 0.6 exactly: kept (carvekit keeps <= 0.6).
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.25, 0.0, 1.25, 1.0], [0.2, 0.0, 1.2, 1.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert auto._nms(boxes[:2], scores[:2], 0.6) == [0, 1]
    assert auto._nms(boxes[[0, 2]], scores[[0, 2]], 0.6) == [0]  # IoU 0.8/1.2 = 0.667
    assert auto._nms(boxes, torch.tensor([0.7, 0.8, 0.9]), 0.6) == [2]  # the best box suppresses both


def test_detections_empty_when_nothing_confident():
    boxes, confs = _yolo_output([((0.1, 0.1, 0.2, 0.2), 3, 0.3)])
    assert auto.detections(boxes, confs) == [[]]
    assert auto.choose_auto("hard", auto.supercategories([], COCO_CLASSES)).net == "isnet"


def test_supercategories_from_detections_choose_network():
    car, person = COCO_CLASSES.index("truck"), COCO_CLASSES.index("person")
    cars_only = [Detection(car, 0.9, (0, 0, 1, 1))]
    with_person = cars_only + [Detection(person, 0.5, (0, 0, 1, 1))]
    assert auto.choose_auto("soft", auto.supercategories(cars_only, COCO_CLASSES)).net == "tracer_b7"
    assert auto.choose_auto("soft", auto.supercategories(with_person, COCO_CLASSES)).net == "isnet"


@pytest.mark.parametrize("height, width", [(300, 500), (500, 301), (256, 256), (257, 999), (40, 41)])
def test_scene_input_matches_torchvision_transforms(height, width):
    from PIL import Image

    rgb = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    reference = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])(Image.fromarray(rgb))
    ours = auto.scene_input(rgb)
    assert ours.shape == (3, 224, 224)
    assert torch.equal(ours, reference)


def test_top_scene_and_class_map(tmp_path, monkeypatch):
    (tmp_path / "scene_classifier.json").write_text(json.dumps({"class_to_idx": {"soft": 2, "digital": 0, "hard": 1}}))
    (tmp_path / "scene_classifier.safetensors").write_bytes(b"")
    labels = auto.scene_labels(auto.read_class_map(tmp_path))
    assert labels == ["digital", "hard", "soft"]
    logits = torch.tensor([[0.0, 1.0, 3.0], [5.0, 0.0, 0.0]])
    (first, p1), (second, p2) = auto.top_scene(logits, labels)
    assert (first, second) == ("soft", "digital")
    assert p1 == pytest.approx(float(torch.softmax(logits[0], 0)[2]))
    assert auto.choose_autoscene(first).net == "isnet" and auto.choose_autoscene(second).net == "tracer_b7"


def test_scene_labels_refuses_gaps():
    with pytest.raises(ValueError):
        auto.scene_labels({"hard": 0, "soft": 2})


def _carvekit_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """An independent greedy NMS in numpy float32, in the steps of carvekit's nms_cpu (with a stable
    argsort: numpy's own is stable only up to 16 boxes)."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(scores, kind="stable")[::-1]
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]))
        inter = w * h
        order = rest[inter / (areas[best] + areas[rest] - inter) <= np.float32(threshold)]
    return keep


@pytest.mark.parametrize("seed", range(20))
def test_nms_matches_an_independent_greedy_nms_on_random_boxes_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    corner = rng.uniform(0, 0.5, (n, 2)).astype(np.float32)
    size = rng.uniform(0.05, 0.5, (n, 2)).astype(np.float32)
    boxes = np.concatenate([corner, corner + size], axis=1)
    boxes[n // 2:] = boxes[rng.integers(0, n // 2, n - n // 2)]  # repeated boxes: IoU exactly 1
    scores = (rng.integers(1, 6, n) / 8).astype(np.float32)  # five values: many equal scores
    got = auto._nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.3)
    assert got == _carvekit_nms(boxes, scores, 0.3)
