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
KeyMap = Callable[[StateDict, nn.Module], StateDict]

# What a network is for. Only "segmentation" networks answer a job's `model` for background removal;
# the others are steps of a chain or serve another task.
Role = Literal[
    "segmentation",  # image -> matte (BiRefNet, carvekit's networks)
    "matting",  # image + trimap -> alpha (FBA)
    "refinement",  # image + mask -> refined mask (CascadePSP)
    "classifier",  # picks a chain (scene classifier, YOLOv4)
    "upscaler",  # image -> larger image (Real-ESRGAN)
    "face_detector",  # image -> faces and landmarks (RetinaFace)
    "face_restorer",  # aligned face -> restored face (GFPGAN)
    "face_parser",  # face -> parts (ParseNet)
    "background_matting",  # image + background plate -> alpha and foreground (BackgroundMattingV2)
]


def identity_keys(state: StateDict, _model: nn.Module) -> StateDict:
    return state


@dataclass(frozen=True)
class Download:
    """Where builder/ fetches a file from: a Hugging Face repo pinned to one commit, with checksums."""

    repo: str
    filename: str  # the file inside the repo
    revision: str | None  # the repo commit the file is taken from (40 hex digits); None: not yet pinned
    sha256: str | None = None  # checked after download where known
    sha512: str | None = None  # where the publisher states SHA-512 only (carvekit)
    gated: bool = False  # the repo asks users to accept its licence first: downloads need HF_TOKEN

    @property
    def origin(self) -> str:
        return f"huggingface.co/{self.repo} {self.filename}"


@dataclass(frozen=True)
class ReleaseAsset:
    """Where builder/ fetches a file from: a release asset of a GitHub repo, over plain HTTPS. A release's
    tag can be moved and its asset replaced, so the publisher's SHA-256 is what pins the file."""

    url: str  # https://github.com/<owner>/<repo>/releases/download/<tag>/<file>
    sha256: str

    def __post_init__(self) -> None:
        if not self.url.startswith("https://github.com/") or "/releases/download/" not in self.url:
            raise ValueError(f"{self.url}: not a GitHub release asset URL")
        if len(self.sha256) != 64:
            raise ValueError(f"{self.url}: a release asset needs its SHA-256 (64 hex digits)")

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[1]

    @property
    def origin(self) -> str:
        return self.url.removeprefix("https://")


@dataclass(frozen=True)
class ByHand:
    """A file with no download builder/ may take: placed in the weights folder by hand."""

    where: str  # where a person gets it (the authors' page, a drive link)
    reason: str  # why builder/ cannot fetch it


@dataclass(frozen=True)
class WeightsSource:
    """A weight file: its name under the weights folder, where it comes from and how it is stored."""

    filename: str  # path relative to the weights folder, e.g. "u2netp.pth" or "briaai/RMBG-2.0/model.safetensors"
    download: Download | ReleaseAsset | None = None  # None: placed by hand (see `by_hand`)
    sha256: str | None = None  # of a file placed by hand (no download), where known
    by_hand: ByHand | None = None  # where to get a file that no download provides
    # A builder/ module that turns the downloaded file into `filename` (e.g. a pickled module into
    # safetensors); None when the download is the file itself.
    converter: str | None = None
    file_format: Literal["torch", "safetensors"] = "torch"
    # Keys the state dict may be stored under inside the file, first present wins (BasicSR's
    # ("params_ema", "params")); empty when the file is the state dict itself.
    wrap: tuple[str, ...] = ()

    def unwrap(self, stored: dict) -> dict:
        """The state dict inside a file's top-level dict."""
        for key in self.wrap:
            if key in stored:
                return stored[key]
        if self.wrap:
            raise KeyError(f"none of the keys {list(self.wrap)} in the weight file (found {sorted(stored)[:5]})")
        return stored


class SizeOutOfRange(ValueError):
    """A requested network input size that the checkpoint does not take (the message is for the caller)."""


@dataclass(frozen=True)
class SizeRange:
    """The square input sizes a network trained on many resolutions takes: multiples of `multiple` from
    `minimum` to `maximum` (BiRefNet_dynamic: 256..2304 in steps of 32)."""

    minimum: int
    maximum: int
    multiple: int

    def check(self, size: int, knob: str = "seg_mask_size") -> int:
        if size % self.multiple or not self.minimum <= size <= self.maximum:
            raise SizeOutOfRange(f"{knob}: {size} is not allowed for this model; allowed: a multiple of "
                                 f"{self.multiple} from {self.minimum} to {self.maximum}")
        return size


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
    # Networks trained on a range of sizes: the sizes a job may ask for instead of `size` (the default).
    # None: `size` is the trained size (a job may still ask for another, at its own risk).
    size_range: SizeRange | None = None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # the models/<family>.py file that builds it
    build: Callable[[], nn.Module]
    weights: WeightsSource
    # Segmentation networks: the recipe that makes the input, and the function that turns the
    # network's raw output into a [B,1,h,w] matte in [0,1]. Other roles bring their own procedures.
    preprocess: Preprocess | None = None
    to_matte: Callable[[object], torch.Tensor] | None = None
    remap_keys: KeyMap = identity_keys  # the file's keys onto the module's (timm's checkpoint_filter_fn)
    # False: the published weights are known not to survive half precision; the network stays float32.
    half_ok: bool = True
    role: Role = "segmentation"
    # What `foreground: "auto"` means for this network's cut-outs.
    default_foreground: Literal["blur_fusion", "none"] = "none"
    licence: str = ""
    notes: str = ""
    extra: dict = field(default_factory=dict)  # family-specific facts (class names, patch order, ...)

    def __post_init__(self) -> None:
        if self.role == "segmentation" and (self.preprocess is None or self.to_matte is None):
            raise ValueError(f"{self.name}: a segmentation spec needs `preprocess` and `to_matte`")
