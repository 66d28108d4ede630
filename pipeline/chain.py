"""carvekit's chain around the segmentation network: which network (pre), and the matte's refinement
(post: CascadePSP, trimap, FBA matting), resolved per image into a plain `Plan`.

    pre   none       the job's network and knobs
          autoscene  the scene classifier picks the network (carvekit AutoScene)
          auto       scene classifier + YOLOv4 objects pick the network and the post table (AutoInterface)
    post  none | fba (trimap -> FBA) | cascade_fba (CascadePSP -> trimap -> FBA, carvekit's default)

`model: "carvekit"` means carvekit's default chain: tracer_b7 with cascade_fba. A knob the job sets
explicitly always wins over carvekit's per-network recommendation or the automatic choice.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from models import registry
from models.spec import ModelSpec
from pipeline.auto_select import (CarvekitConfig, Choice, choose_auto, choose_autoscene, detections, scene_input,
                                  scene_labels, read_class_map, supercategories, top_scene)
from pipeline.decode import DecodedImage
from pipeline.fba_matting import fba_alpha
from pipeline.predictor import Predictor, resolve_spec
from pipeline.preprocess import network_batch
from pipeline.refine import refine
from pipeline.schema import Options
from pipeline.trimap import make_trimap

CARVEKIT = "carvekit"  # the model name of carvekit's full default chain
CARVEKIT_DEFAULT_NET = "tracer_b7"
REFINER = "cascadepsp-carveset"  # carvekit's CUDA default refiner weights
MATTER = "fba"

# carvekit README "Recommended parameters": trimap (dilation, erosion) per network.
RECOMMENDED_TRIMAP = {"deeplabv3": (40, 20)}
DEFAULTS = {"matting_mask_size": 2048, "refine_mask_size": 900, "trimap_prob_threshold": 231}


@dataclass(frozen=True)
class Plan:
    """Everything needed to turn one image into an alpha matte."""

    spec: ModelSpec
    seg_mask_size: int | None
    post: str = "none"
    refine_mask_size: int = 900
    matting_mask_size: int = 2048
    trimap_prob_threshold: int = 231
    trimap_dilation: int = 30
    trimap_erosion: int = 5
    trimap_filter_threshold: int = -1  # mask values <= this become 0 before the trimap; -1: off
    refine_mask_binary_threshold: int = 127
    fba_noise_filter: bool = True
    scene: str | None = None


def _overrides(options: Options) -> dict:
    """The chain knobs the job set explicitly."""
    names = ("post", "refine_mask_size", "matting_mask_size", "trimap_prob_threshold", "trimap_dilation",
             "trimap_erosion", "seg_mask_size")
    return {name: getattr(options, name) for name in names if getattr(options, name) is not None}


def manual_plan(options: Options) -> Plan:
    """pre = none: the job's network with carvekit's recommendations for it."""
    name = CARVEKIT_DEFAULT_NET if options.model == CARVEKIT else options.model
    spec = resolve_spec(name)
    dilation, erosion = RECOMMENDED_TRIMAP.get(spec.name, (30, 5))
    plan = Plan(spec=spec, seg_mask_size=None, post="cascade_fba" if options.model == CARVEKIT else "none",
                trimap_dilation=dilation, trimap_erosion=erosion, **DEFAULTS)
    return replace(plan, **_overrides(options))


def _from_choice(choice: Choice, options: Options) -> Plan:
    plan = Plan(spec=resolve_spec(choice.model), seg_mask_size=choice.seg_mask_size, post=choice.post,
                refine_mask_size=choice.refine_mask_size, matting_mask_size=choice.matting_mask_size,
                trimap_prob_threshold=choice.trimap_prob_threshold, trimap_dilation=choice.trimap_dilation,
                trimap_erosion=choice.trimap_erosion, trimap_filter_threshold=choice.trimap_filter_threshold,
                refine_mask_binary_threshold=choice.refine_mask_binary_threshold,
                fba_noise_filter=choice.fba_noise_filter, scene=choice.scene)
    return replace(plan, **_overrides(options))


def _config(options: Options) -> CarvekitConfig:
    """The configured chain that carvekit's automatic modes start from (its CLI defaults + the job's knobs)."""
    base = manual_plan(options)
    net = base.spec.name if base.spec.name in ("tracer_b7", "isnet") else CARVEKIT_DEFAULT_NET
    return CarvekitConfig(net=net, seg_mask_size=options.seg_mask_size or registry.get_spec(net).preprocess.size[0],
                          post=options.post or "cascade_fba", matting_mask_size=base.matting_mask_size,
                          refine_mask_size=base.refine_mask_size, trimap_prob_threshold=base.trimap_prob_threshold,
                          trimap_dilation=base.trimap_dilation, trimap_erosion=base.trimap_erosion)


def automatic_plans(predictor: Predictor, images: list[DecodedImage], options: Options) -> list[Plan]:
    """pre = autoscene / auto: classify each image, then carvekit's decision rules."""
    classifier = predictor.model(registry.get_spec("scene_classifier"), torch.float32)
    labels = scene_labels(read_class_map())
    device = next(classifier.parameters()).device
    with torch.inference_mode():
        scenes = top_scene(classifier(torch.stack([scene_input(i.rgb) for i in images]).to(device)), labels)
    config = _config(options)
    if options.pre == "autoscene":
        return [_from_choice(choose_autoscene(scene, config), options) for scene, _ in scenes]
    detector_spec = registry.get_spec("yolov4")
    detector = predictor.model(detector_spec, torch.float32)
    batch = network_batch([i.rgb for i in images], detector_spec.preprocess, device, torch.float32)
    with torch.inference_mode():
        found = detections(*detector(batch))
    classes = detector_spec.extra["classes"]
    return [_from_choice(choose_auto(scene, supercategories(objects, classes), config), options)
            for (scene, _), objects in zip(scenes, found)]


def plans(predictor: Predictor, images: list[DecodedImage], options: Options) -> list[Plan]:
    if options.pre == "none":
        return [manual_plan(options)] * len(images)
    return automatic_plans(predictor, images, options)


def post_process(predictor: Predictor, rgb: torch.Tensor, alpha: torch.Tensor, plan: Plan) -> torch.Tensor:
    """carvekit's post step on one image: uint8 RGB [3,H,W] and alpha [H,W] -> refined alpha [H,W]."""
    if plan.post == "none":
        return alpha
    image, mask = rgb[None], alpha[None, None]
    if plan.post == "cascade_fba":
        refiner = predictor.model(registry.get_spec(REFINER), torch.float32)
        mask = refine(refiner, image, mask, mask_size=plan.refine_mask_size,
                      mask_threshold=plan.refine_mask_binary_threshold)
    if plan.trimap_filter_threshold >= 0:
        mask = torch.where(mask <= plan.trimap_filter_threshold, torch.zeros_like(mask), mask)
    trimap = make_trimap(mask, plan.trimap_prob_threshold, plan.trimap_dilation, plan.trimap_erosion)
    matter = predictor.model(registry.get_spec(MATTER), torch.float32)
    return fba_alpha(matter, image, trimap, mask_size=plan.matting_mask_size, noise_filter=plan.fba_noise_filter)[0, 0]
