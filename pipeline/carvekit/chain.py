"""carvekit's chain around the segmentation network: which network (pre), and the matte's refinement
(post: CascadePSP, trimap, FBA matting), resolved per image into a `ChainParams`.

    pre   none       the job's network and knobs
          autoscene  the scene classifier picks the network (carvekit AutoScene)
          auto       scene classifier + YOLOv4 objects pick the network and the post table (AutoInterface)
    post  none | fba (trimap -> FBA) | cascade_fba (CascadePSP -> trimap -> FBA, carvekit's default)

`model: "carvekit"` means carvekit's default chain: tracer_b7 with cascade_fba. A knob the job sets
explicitly always wins over carvekit's per-network recommendation or the automatic choice.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from models import registry
from models.spec import ModelSpec
from pipeline.carvekit.auto_select import (
    AUTO_PARAMS,
    AUTOSCENE_NETS,
    CONFIGURED,
    DEFAULT_SEG_MASK_SIZE,
    choose_auto,
    choose_autoscene,
    detections,
    read_class_map,
    scene_input,
    scene_labels,
    supercategories,
    top_scene,
)
from pipeline.carvekit.cascadepsp import check_refine_params, refine
from pipeline.carvekit.fba_matting import fba_alpha
from pipeline.carvekit.params import CARVEKIT, DEFAULT_NET, MATTER, REFINER, ChainParams, recommended
from pipeline.carvekit.trimap import make_trimap
from pipeline.segmentation.preprocess import network_batch


class Networks(Protocol):
    """Where the chain gets its helper networks (the worker's resident-model cache)."""

    weights_dir: Path

    def get(self, spec: ModelSpec, dtype: torch.dtype = torch.float32) -> nn.Module: ...


def manual_plan(model: str, knobs: dict) -> ChainParams:
    """pre = none: the job's network with carvekit's recommendation for it, then the job's knobs."""
    net = DEFAULT_NET if model == CARVEKIT else model
    return replace(recommended(net, post="cascade_fba" if model == CARVEKIT else "none"), **knobs)


def configured(model: str, knobs: dict) -> ChainParams:
    """The configured chain that carvekit's automatic modes start from (its CLI defaults + the job's knobs):
    only tracer_b7 and isnet can be configured there."""
    base = manual_plan(model, knobs)
    net = base.net if base.net in DEFAULT_SEG_MASK_SIZE else CONFIGURED.net
    return replace(base, net=net, seg_mask_size=knobs.get("seg_mask_size") or DEFAULT_SEG_MASK_SIZE[net],
                   post=knobs.get("post") or CONFIGURED.post)


def automatic_plans(networks: Networks, images: list[np.ndarray], pre: str, model: str,
                    knobs: dict) -> list[ChainParams]:
    """pre = autoscene / auto for HxWx3 uint8 images: classify each, then carvekit's decision rules,
    then the job's knobs."""
    classifier = networks.get(registry.get_spec("scene_classifier"))
    labels = scene_labels(read_class_map(networks.weights_dir))
    device = next(classifier.parameters()).device
    with torch.inference_mode():
        scenes = top_scene(classifier(torch.stack([scene_input(rgb) for rgb in images]).to(device)), labels)
    config = configured(model, knobs)
    if pre == "autoscene":
        return [replace(choose_autoscene(scene, config), **knobs) for scene, _ in scenes]
    detector_spec = registry.get_spec("yolov4")
    detector = networks.get(detector_spec)
    batch = network_batch(images, detector_spec.preprocess, device, torch.float32)
    with torch.inference_mode():
        found = detections(*detector(batch))
    classes = detector_spec.extra["classes"]
    return [replace(choose_auto(scene, supercategories(objects, classes), config), **knobs)
            for (scene, _), objects in zip(scenes, found)]


def plan_networks(pre: str, model: str, knobs: dict) -> tuple[str, ...]:
    """The registry names of the networks a job's plan may segment with, known before its image is:
    the job's network for pre = none; for the automatic modes their helper networks (scene classifier,
    and YOLOv4 for auto) and every network their rules can choose (the job's model only configures
    them, so a default model without weights is no reason to refuse)."""
    if pre == "none":
        return (manual_plan(model, knobs).net,)
    helpers = ("scene_classifier",) if pre == "autoscene" else ("scene_classifier", "yolov4")
    choices = set(AUTOSCENE_NETS.values()) if pre == "autoscene" else set(AUTO_PARAMS)
    return (*helpers, *sorted(choices))


def check_plan(params: ChainParams) -> None:
    """A plan's knobs that the chain cannot run with, refused naming the knob before any work."""
    check_refine_params(params)


POST_NETWORKS: dict[str, tuple[str, ...]] = {"none": (), "fba": (MATTER,), "cascade_fba": (REFINER, MATTER)}


def post_networks(pre: str, model: str, knobs: dict) -> tuple[str, ...]:
    """The registry names of the networks a job's post step may run, known before its image is: the
    plan's own for pre = none (or a post the job names); for the automatic modes every post their
    rules can choose."""
    if pre == "none" or knobs.get("post"):
        posts: tuple[str, ...] = (manual_plan(model, knobs).post,)
    elif pre == "autoscene":
        posts = (configured(model, knobs).post,)
    else:
        posts = tuple(params["post"] for params in AUTO_PARAMS.values())
    return tuple(dict.fromkeys(name for post in posts for name in POST_NETWORKS[post]))


def plans(networks: Networks, images: list[np.ndarray], pre: str, model: str, knobs: dict) -> list[ChainParams]:
    """One plan per image."""
    if pre == "none":
        return [manual_plan(model, knobs)] * len(images)
    return automatic_plans(networks, images, pre, model, knobs)


def post_process(networks: Networks, rgb: torch.Tensor, alpha: torch.Tensor, params: ChainParams) -> torch.Tensor:
    """carvekit's post step on one image: uint8 RGB [3,H,W] and alpha [H,W] -> refined alpha [H,W]."""
    if params.post == "none":
        return alpha
    image, mask = rgb[None], alpha[None, None]
    if params.post == "cascade_fba":
        refiner = networks.get(registry.get_spec(REFINER))
        mask = refine(refiner, image, mask, fast=params.refine_global_only, mask_size=params.refine_mask_size,
                      accel_size=params.refine_accel_size, mask_threshold=params.refine_mask_binary_threshold)
    if params.trimap_filter_threshold >= 0:
        mask = torch.where(mask <= params.trimap_filter_threshold, torch.zeros_like(mask), mask)
    trimap = make_trimap(mask, params.trimap_prob_threshold, params.trimap_dilation, params.trimap_erosion)
    matter = networks.get(registry.get_spec(MATTER))
    return fba_alpha(matter, image, trimap, mask_size=params.matting_mask_size, noise_filter=params.fba_noise_filter)[0, 0]
