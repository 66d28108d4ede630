"""The `matte` task: BackgroundMattingV2 against a clean plate of the background (`bgr/<id>`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from imaging.confidence import MatteConfidence, matte_confidence
from imaging.decode import DecodedImage, as_tensor
from imaging.knobs import Knob, check_plain_key
from imaging.matte_ops import apply_matte_knobs
from imaging.options import OutputOptions
from imaging.output import output_frames
from imaging.temporal import MatteSmoother
from models.bmv2 import REFINE_MODES
from pipeline.matting.background import PRESETS, DeviceMatte, MatteParams, device_matte
from pipeline.task import BG_COLOR, Control, TaskSpec

_DEFAULTS = MatteParams()

KNOBS = (
    BG_COLOR,
    Knob("bgr_id", str, None, "the background plate's key below bgr/ (default: the job's id)",
         parse=check_plain_key, nullable=True),
    Knob("preset", str, _DEFAULTS.preset, "hd (backbone_scale 0.25, 80,000 refined pixels) or 4k (0.125, "
         f"320,000); auto: 4k above {_DEFAULTS.four_k_above_pixels} pixels", choices=("auto", *PRESETS)),
    Knob("refine_mode", str, _DEFAULTS.refine_mode, "which 4x4 patches the refiner refines: the most uncertain "
         "sample_pixels (sampling), those above refine_threshold (thresholding), or all (full)",
         choices=REFINE_MODES),
    Knob("backbone_scale", float, None, "the coarse pass's scale (default: the preset's)",
         bounds=(0.03125, 0.5), nullable=True),
    Knob("sample_pixels", int, None, "pixels refined in sampling mode (default: the preset's)",
         bounds=(16, 16_000_000), nullable=True),
    Knob("refine_threshold", float, _DEFAULTS.threshold, "error above which a patch is refined in thresholding "
         "mode", bounds=(0, 1)),
)


@dataclass(frozen=True)
class MatteJob:
    params: MatteParams
    bgr_id: str | None


def _params(values: dict[str, Any]) -> MatteJob:
    params = MatteParams(preset=values.get("preset", _DEFAULTS.preset),
                         refine_mode=values.get("refine_mode", _DEFAULTS.refine_mode),
                         backbone_scale=values.get("backbone_scale"), sample_pixels=values.get("sample_pixels"),
                         threshold=values.get("refine_threshold", _DEFAULTS.threshold))
    return MatteJob(params, values.get("bgr_id"))


# A matte is made of one still photo and its plate: `frames` (animations) does not apply.
MATTE = TaskSpec("matte", output_name="trans", output_kind="cutout", role="background_matting", knobs=KNOBS,
                 default_model="bmv2-mobilenetv2", params=_params, output_excluded=frozenset({"frames"}))


def finish(result: DeviceMatte, output: OutputOptions, bg_color: str | None) -> tuple[torch.Tensor, MatteConfidence]:
    """The second device program: the job's matte knobs, the confidence, the output's pixels (on the
    device)."""
    alpha = result.rgba[3]
    confidence = matte_confidence(alpha[None])
    alpha = apply_matte_knobs(alpha, output)
    return output_frames([result.rgba[:3]], [alpha], output, bg_color)[0], confidence


def clip_pixels(model: torch.nn.Module, frames: list[DecodedImage], plate: DecodedImage, params: MatteParams,
                output: OutputOptions, bg_color: str | None, smoother: MatteSmoother | None,
                control: Control) -> list[torch.Tensor]:
    """Consecutive frames of a video against the one plate, each as a still (device_matte, then a
    video's temporal smoothing of its alpha, then finish), in order."""
    pixels = []
    for frame in frames:
        control.check()
        result = device_matte(model, frame.rgb, plate.rgb, params)
        if smoother is not None:
            result.rgba[3] = smoother(result.rgba[3], as_tensor(frame.rgb, result.rgba.device))
        pixels.append(finish(result, output, bg_color)[0])
    return pixels
