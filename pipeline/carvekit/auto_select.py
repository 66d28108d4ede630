"""carvekit's automatic choice of a background-removal chain per image (`pre` = "autoscene" / "auto").

Two classifiers look at the photo first:
- the scene classifier (models/scene_classifier.py): top-1 of hard / soft / digital;
- YOLOv4 (models/yolov4.py), for "auto" only: COCO detections at confidence > 0.4 after per-class
  NMS at IoU 0.6, reduced to carvekit's supercategories (human, animals, cars, objects, other).

"autoscene" (carvekit AutoScene, the CLI default) swaps only the segmentation network:
hard -> tracer_b7, soft -> isnet, digital -> tracer_b7. The configured network keeps the configured
seg_mask_size; a swapped-in one is built with its carvekit defaults (tracer_b7 960, isnet 1024).
Refinement, trimap and matting stay as configured.

"auto" (carvekit AutoInterface) picks the network from scene and objects and ignores the configured
chain except matting_mask_size: for hard and soft scenes tracer_b7 when cars are seen without a
person, isnet otherwise (nothing detected, people, animals, other things); digital -> tracer_b7.
Each network then gets carvekit's table of post-processing parameters (select_params_for_net).

Everything returns a plain `ChainParams` the chain runs; the networks themselves are not run here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from imaging.boxes import nms_in_numpy_order
from imaging.decode import as_array
from models import registry
from models.spec import IMAGENET_MEAN, IMAGENET_STD
from models.yolov4 import COCO_CLASSES
from pipeline.carvekit.params import DEFAULTS, ChainParams

SCENES = ("hard", "soft", "digital")

# SimplifiedYoloV4.db: the supercategory of each COCO class name (darknet spelling). Its "objects"
# group is every COCO class that no other group names (62 of the 80).
_NAMED_GROUPS: dict[str, tuple[str, ...]] = {
    "human": ("person",),
    "animals": ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"),
    "cars": ("car", "motorbike", "bus", "truck"),
    "other": ("aeroplane", "train", "boat"),
}
SUPERCATEGORIES: dict[str, tuple[str, ...]] = {
    **_NAMED_GROUPS,
    "objects": tuple(c for c in COCO_CLASSES if not any(c in group for group in _NAMED_GROUPS.values())),
}

# carvekit's YoloV4_COCO.data_postprocessing: post_processing(conf_thresh=0.4, nms_thresh=0.6).
CONF_THRESHOLD = 0.4
NMS_THRESHOLD = 0.6

# input_image_size defaults of carvekit's wrappers, used whenever a network is built by the
# automatic choice rather than by the caller's configuration.
DEFAULT_SEG_MASK_SIZE = {"tracer_b7": 960, "isnet": 1024}

# The chain carvekit's CLI configures when the caller sets nothing: tracer_b7 at 960 with CascadePSP + FBA.
CONFIGURED = replace(DEFAULTS, net="tracer_b7", seg_mask_size=DEFAULT_SEG_MASK_SIZE["tracer_b7"], post="cascade_fba")

# AutoScene.select_net
AUTOSCENE_NETS = {"hard": "tracer_b7", "soft": "isnet", "digital": "tracer_b7"}

# AutoInterface.select_params_for_net: its post-processing per network (the rest are ChainParams'
# defaults; AutoInterface's CascadePSP binarises at 128, not 127).
AUTO_PARAMS: dict[str, dict] = {
    "tracer_b7": {"post": "cascade_fba", "trimap_filter_threshold": -1, "fba_noise_filter": True,
                  "refine_mask_binary_threshold": 128},
    # ISNet's masks are not refined; low-probability noise (<= 70) is cut before the trimap instead.
    "isnet": {"post": "fba", "trimap_filter_threshold": 70, "fba_noise_filter": False,
              "refine_mask_binary_threshold": 128},
}


@dataclass(frozen=True)
class Detection:
    class_id: int
    confidence: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 relative to the image, not clipped


def scene_input(rgb: np.ndarray) -> torch.Tensor:
    """[3,224,224] float32 scene-classifier input from an HxWx3 uint8 image, as carvekit's
    transforms: Resize(256) (shorter side to 256, Pillow bilinear), CenterCrop(224), ToTensor,
    Normalize(ImageNet)."""
    image = Image.fromarray(as_array(rgb))
    width, height = image.size
    short, long = min(width, height), max(width, height)
    scaled_long = int(256 * long / short)  # torchvision truncates the longer side
    size = (256, scaled_long) if width <= height else (scaled_long, 256)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    left = int(round((size[0] - 224) / 2.0))
    top = int(round((size[1] - 224) / 2.0))
    image = image.crop((left, top, left + 224, top + 224))
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(255)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def read_class_map(weights_dir: Path) -> dict[str, int]:
    """The scene classifier's class_to_idx, written next to its weights by the converter."""
    spec = registry.get_spec("scene_classifier")
    path = registry.find_weights(spec, weights_dir).with_name(spec.extra["class_map"])
    return {name: int(index) for name, index in json.loads(path.read_text())["class_to_idx"].items()}


def scene_labels(class_to_idx: dict[str, int]) -> list[str]:
    """Class names in output order."""
    labels = sorted(class_to_idx, key=class_to_idx.__getitem__)
    if [class_to_idx[name] for name in labels] != list(range(len(labels))):
        raise ValueError(f"class_to_idx is not a permutation of 0..{len(labels) - 1}: {class_to_idx}")
    return labels


def top_scene(logits: torch.Tensor, labels: Sequence[str]) -> list[tuple[str, float]]:
    """(top-1 class, its softmax probability) per row of logits [B, classes]."""
    probs = torch.softmax(logits.float(), dim=1)
    best = probs.cpu().topk(1, dim=1)
    return [(labels[int(i)], float(p)) for p, i in zip(best.values[:, 0], best.indices[:, 0])]


def _nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """carvekit's nms_cpu on float32 boxes: areas without +1, numpy's argsort()[::-1] order, a box
    dropped when its float32 IoU with a kept one is > threshold. numpy compares the float32 IoU with
    the threshold rounded to float32 (torchvision compares in double), so an IoU of exactly 0.6 stays.

    Per class rather than torchvision's batched_nms: on the CPU below 1000 boxes that offsets each
    class's coordinates, which rounds the float32 IoU differently from carvekit's.
    """
    float32_threshold = torch.tensor(threshold, dtype=torch.float32).item()
    return nms_in_numpy_order(boxes, scores, float32_threshold).tolist()


def detections(
    boxes: torch.Tensor,
    confs: torch.Tensor,
    conf_threshold: float = CONF_THRESHOLD,
    nms_threshold: float = NMS_THRESHOLD,
) -> list[list[Detection]]:
    """carvekit's YOLO post_processing per image: each candidate keeps its best class; those above
    `conf_threshold` go through NMS per class; output ordered by class id, then by confidence.

    boxes [B,N,1,4] and confs [B,N,classes] as Yolov4 returns them.
    """
    boxes = boxes[:, :, 0].float().cpu()
    best_conf, best_class = confs.float().cpu().max(dim=2)
    result = []
    for image_boxes, image_conf, image_class in zip(boxes, best_conf, best_class):
        above = image_conf > conf_threshold
        cand_boxes, cand_conf, cand_class = image_boxes[above], image_conf[above], image_class[above]
        found = []
        for class_id in torch.unique(cand_class).tolist():
            of_class = cand_class == class_id
            class_boxes, class_conf = cand_boxes[of_class], cand_conf[of_class]
            for k in _nms(class_boxes, class_conf, nms_threshold):
                found.append(Detection(class_id, float(class_conf[k]), tuple(class_boxes[k].tolist())))
        result.append(found)
    return result


def supercategories(found: Iterable[Detection], class_names: Sequence[str]) -> list[str]:
    """SimplifiedYoloV4's output: the supercategory of each detection, in detection order."""
    lookup = {name: group for group, names in SUPERCATEGORIES.items() for name in names}
    return [lookup[class_names[d.class_id]] for d in found if class_names[d.class_id] in lookup]


def choose_autoscene(scene: str, config: ChainParams = CONFIGURED) -> ChainParams:
    """carvekit AutoScene: the scene picks the network; the rest of the configured chain stays."""
    if scene not in AUTOSCENE_NETS:
        raise ValueError(f"unknown scene {scene!r}; expected one of {SCENES}")
    net = AUTOSCENE_NETS[scene]
    # AutoScene reuses the configured network object when it is of the chosen class.
    seg_mask_size = config.seg_mask_size if net == config.net else DEFAULT_SEG_MASK_SIZE[net]
    return replace(config, net=net, seg_mask_size=seg_mask_size, scene=scene,
                   refine_mask_binary_threshold=DEFAULTS.refine_mask_binary_threshold, fba_noise_filter=True)


def auto_net(scene: str, objects: Sequence[str]) -> str:
    """AutoInterface.select_net for one image; `objects` are supercategory names, one per detection.

    carvekit's branches for hard and soft scenes, in order: nothing detected -> isnet; a person
    (alone or with anything else) -> isnet; cars -> tracer_b7; animals -> isnet; anything else ->
    isnet. So tracer_b7 exactly when cars are seen and no person is.
    """
    if scene == "digital":
        return "tracer_b7"
    if scene not in ("hard", "soft"):
        raise ValueError(f"unknown scene {scene!r}; expected one of {SCENES}")
    present = set(objects)
    return "tracer_b7" if "cars" in present and "human" not in present else "isnet"


def choose_auto(scene: str, objects: Sequence[str], config: ChainParams = CONFIGURED) -> ChainParams:
    """carvekit AutoInterface: network from scene + objects, post-processing from its table; of the
    configured chain only matting_mask_size is kept."""
    net = auto_net(scene, objects)
    return replace(DEFAULTS, net=net, seg_mask_size=DEFAULT_SEG_MASK_SIZE[net], scene=scene,
                   matting_mask_size=config.matting_mask_size, **AUTO_PARAMS[net])
