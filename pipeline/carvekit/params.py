"""carvekit's chain parameters, written once: every default of the chain lives in `ChainParams`.

A plan for one image is `replace(DEFAULTS, ...)`: the network's recommendation, then the automatic
choice (pre), then the knobs the job set, each overriding the one before.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal

Post = Literal["none", "fba", "cascade_fba"]
POSTS: tuple[str, ...] = ("none", "fba", "cascade_fba")
PRES: tuple[str, ...] = ("none", "autoscene", "auto")

CARVEKIT = "carvekit"  # the job `model` that means carvekit's full default chain
DEFAULT_NET = "tracer_b7"  # its segmentation network
REFINER = "cascadepsp-carveset"  # carvekit's CUDA default refiner weights
MATTER = "fba"


@dataclass(frozen=True)
class ChainParams:
    """The chain for one image (carvekit's CLI / MLConfig defaults)."""

    net: str = DEFAULT_NET  # registry name of the segmentation network (or a local weights folder)
    seg_mask_size: int | None = None  # network input size; None: the checkpoint's own
    post: Post = "none"  # none | fba (trimap -> FBA) | cascade_fba (CascadePSP -> trimap -> FBA)
    refine_mask_size: int = 900  # CascadePSP input_tensor_size
    refine_accel_size: int = 2048  # CascadePSP processing_accelerate_image_size (thumbnail first)
    refine_mask_binary_threshold: int = 127  # CascadePSP binarises its input mask at > this value
    refine_global_only: bool = False  # CascadePSP global_step_only
    matting_mask_size: int = 2048  # FBA input_tensor_size
    trimap_prob_threshold: int = 231  # mask values above it are sure foreground
    trimap_dilation: int = 30  # TrimapGenerator kernel_size: unknown band radius
    trimap_erosion: int = 5  # TrimapGenerator erosion_iters
    trimap_filter_threshold: int = -1  # carvekit's low_prob_filter: mask <= t becomes 0 first; -1: off
    fba_noise_filter: bool = True  # FBAMatting's noise filter (carvekit: disable_noise_filter = not this)
    scene: str | None = None  # the scene class when `pre` chose the chain


DEFAULTS = ChainParams()

# The knobs a job may set on the chain (its schema's keys), each a ChainParams field.
JOB_KNOBS: tuple[str, ...] = ("seg_mask_size", "post", "refine_mask_size", "matting_mask_size",
                              "trimap_prob_threshold", "trimap_dilation", "trimap_erosion")

# carvekit README "Recommended parameters" per network.
RECOMMENDED: dict[str, dict] = {"deeplabv3": {"trimap_dilation": 40, "trimap_erosion": 20}}

assert set(JOB_KNOBS) <= {f.name for f in fields(ChainParams)}


def default_of(name: str):
    """A ChainParams field's default, for the job schema's descriptions."""
    return getattr(DEFAULTS, name)


def recommended(net: str, **changes) -> ChainParams:
    """DEFAULTS for `net` with carvekit's recommendation for it, then `changes`."""
    return replace(DEFAULTS, net=net, **{**RECOMMENDED.get(net, {}), **changes})
