"""The `upscale` task: Real-ESRGAN x4 (x2 where asked) over the whole image, tile by tile."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imaging.knobs import Knob
from pipeline.restoration.upscale import ALPHA_UPSAMPLERS, UpscaleParams
from pipeline.task import TaskSpec

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
