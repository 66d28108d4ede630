"""The `upscale` task: Real-ESRGAN x4 (x2 where asked) over the whole image, tile by tile."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from imaging.decode import DecodedImage
from imaging.knobs import Knob
from pipeline.restoration.upscale import ALPHA_UPSAMPLERS, UpscaleParams
from pipeline.task import TaskSpec

FORWARD_SHARE = 0.6  # of the free device memory one whole-image forward may take
AUTO_TILE_STEP = 32
UPSCALE_MODELS = {2: "realesrgan-x2plus", 4: "realesrgan-x4plus"}  # `scale` picks the network by default
_DEFAULTS = UpscaleParams()

SCALE = Knob("scale", int, 4, "output scale; picks realesrgan-x2plus or -x4plus unless `model` names one (then "
             "resized as the original)", choices=tuple(UPSCALE_MODELS))
KNOBS = (
    SCALE,
    Knob("tile", int, _DEFAULTS.tile, "tile size in input pixels, 0 = the whole image in one forward; device "
         "memory is bounded by the tile (the image stays in host memory)", bounds=(0, 4096)),
    Knob("tile_pad", int, _DEFAULTS.tile_pad, "context around each tile", bounds=(0, 512)),
    Knob("pre_pad", int, _DEFAULTS.pre_pad, "reflect padding at the right and bottom, removed afterwards",
         bounds=(0, 512)),
    Knob("alpha_upsampler", str, _DEFAULTS.alpha_upsampler, "how a transparent image's alpha is enlarged: "
         "through the network, or OpenCV's bilinear resize", choices=ALPHA_UPSAMPLERS),
)


@dataclass(frozen=True)
class UpscaleJob:
    params: UpscaleParams


def _params(values: dict[str, Any]) -> UpscaleJob:
    return UpscaleJob(UpscaleParams(tile=values.get("tile", _DEFAULTS.tile),
                                    tile_pad=values.get("tile_pad", _DEFAULTS.tile_pad),
                                    pre_pad=values.get("pre_pad", _DEFAULTS.pre_pad),
                                    outscale=float(values.get("scale", SCALE.default)),
                                    alpha_upsampler=values.get("alpha_upsampler", _DEFAULTS.alpha_upsampler)))


UPSCALE = TaskSpec("upscale", output_name="upscaled", output_kind="image", role="upscaler", knobs=KNOBS,
                   default_model=UPSCALE_MODELS[SCALE.default],
                   model_by_knobs=lambda values: UPSCALE_MODELS[values.get("scale", SCALE.default)], params=_params)


def bytes_per_input_pixel(net_scale: int) -> int:
    """Float32 activations one RRDBNet forward keeps per input pixel, roughly: the dense blocks' 192
    channels at the input's size, the 64-channel upsampling convolutions at 2x and 4x (a x2 network
    runs at half size after its pixel-unshuffle, the same in the end), twice for the convolution
    outputs alive at once."""
    return 2 * 4 * (192 + 64 * 4 + 64 * 16) // (4 if net_scale == 2 else 1)


def fitting_tile(height: int, width: int, net_scale: int, params: UpscaleParams, free: int) -> UpscaleParams:
    """params as asked, or, for `tile` 0 (the whole image in one forward) on an image whose forward
    would not fit in the device's free memory, the largest tile that does (a multiple of 32). Tiled
    output differs from untiled near tile borders, as in the original, so the answer says so."""
    per_pixel = bytes_per_input_pixel(net_scale)
    budget = free * FORWARD_SHARE
    if params.tile or height * width * per_pixel <= budget:
        return params
    side = int(math.sqrt(budget / per_pixel)) - 2 * params.tile_pad
    return replace(params, tile=max(AUTO_TILE_STEP, side // AUTO_TILE_STEP * AUTO_TILE_STEP))


def upscale_input(image: DecodedImage, fmt: str) -> np.ndarray:
    """The host stage before the forwards: HxWx3 RGB, or HxWx4 RGBA where the image has an alpha and
    the format keeps it (a jpg has no transparency)."""
    if image.alpha is None or fmt == "jpg":
        return image.rgb
    return np.dstack([image.rgb, image.alpha])
