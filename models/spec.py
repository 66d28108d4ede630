"""What the registry knows about one published checkpoint (in the spirit of timm's default_cfgs).

A `ModelSpec` is plain data: where the weight file comes from, how to build the network, how to map
the file's keys onto the module, and the pre-/post-processing the checkpoint was trained with, so that
no caller can pair a network with the wrong normalisation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

StateDict = dict[str, torch.Tensor]


def identity_keys(state: StateDict) -> StateDict:
    return state


@dataclass(frozen=True)
class WeightsSource:
    """A weight file: its name under WEIGHTS_DIR and where builder/ downloads it from."""

    filename: str  # path relative to WEIGHTS_DIR, e.g. "u2netp.pth" or "briaai/RMBG-2.0/model.safetensors"
    hf_repo: str | None = None  # Hugging Face repo builder/ downloads from
    hf_filename: str | None = None  # file inside that repo (defaults to the basename of `filename`)
    sha256: str | None = None  # checked by builder/ after download when known
    file_format: Literal["torch", "safetensors"] = "torch"
    wrap: str | None = None  # key the state dict is stored under inside the file ("params_ema", ...)

    @property
    def repo_filename(self) -> str:
        return self.hf_filename or self.filename.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Preprocess:
    """How an RGB image becomes the network's input tensor.

    `resample` names the filter of the original recipe; `backend` says whether the original resized
    with Pillow (reproduced exactly on the CPU) or with torch (done on the model's device).
    `scale` is "255" for x/255, or "max" for x/max(x) (rembg and carvekit divide by the image maximum).
    """

    size: tuple[int, int]  # (height, width)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resample: Literal["lanczos", "bicubic", "bilinear"] = "bilinear"
    backend: Literal["pil", "torch"] = "torch"
    scale: Literal["255", "max"] = "255"
    antialias: bool = True  # torch backend: smooth when shrinking (Pillow always does)
    # "stretch": resize to `size`; "thumbnail": Pillow's thumbnail (keep the aspect ratio, only shrink,
    # reducing_gap 2.0) to fit within `size`, so inputs differ in shape and go one at a time.
    fit: Literal["stretch", "thumbnail"] = "stretch"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # the models/<family>.py file that builds it
    build: Callable[[], nn.Module]
    weights: WeightsSource
    preprocess: Preprocess
    # Turns the network's raw output into a [B,1,h,w] matte in [0,1] at the network's resolution.
    to_matte: Callable[[object], torch.Tensor]
    remap_keys: Callable[[StateDict], StateDict] = identity_keys
    # Precisions the published weights are known to survive; others fall back to float32.
    half_ok: bool = True
    # "segmentation" networks answer a job's `model`; the others are steps of a chain.
    role: Literal["segmentation", "matting", "refinement", "classifier"] = "segmentation"
    # What `foreground: "auto"` means for this network's cut-outs.
    default_foreground: Literal["blur_fusion", "none"] = "none"
    notes: str = ""
    extra: dict = field(default_factory=dict)


def no_matte(_output: object) -> torch.Tensor:
    """`to_matte` of networks that are steps of a chain (classifiers): they never answer a job."""
    raise TypeError("this network is a classifier: it has no matte (see pipeline/auto_select.py)")
