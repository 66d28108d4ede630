"""The `restore` task (GFPGAN face restoration, optionally Real-ESRGAN for the rest of the image), and
the networks of the face-restoration step that `restore_faces` puts before background removal."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from imaging.knobs import Knob
from pipeline.restoration.restore import RestoreParams
from pipeline.task import TaskSpec

RESTORER = "gfpgan-v1.4"
DETECTOR = "retinaface-resnet50"
PARSER = "parsenet"
FACE_NETWORKS = (DETECTOR, RESTORER, PARSER)  # what restore_faces runs
BG_UPSAMPLER = "realesrgan-x2plus"  # GFPGAN's inference script's background upsampler
BG_UPSAMPLER_TILE = 400  # ... and its --bg_tile
_DEFAULTS = RestoreParams()

KNOBS = (
    Knob("upscale", float, _DEFAULTS.upscale, "output scale of restore (the faces are restored at 512x512 and "
         "pasted back)", bounds=(1, 4)),
    Knob("only_center_face", bool, _DEFAULTS.only_center_face, "restore only the face nearest the image centre"),
    Knob("bg_upsampler", str, "none", f"enlarge the non-face regions with Real-ESRGAN ({BG_UPSAMPLER}, tile "
         f"{BG_UPSAMPLER_TILE}) instead of Lanczos; also restores an image with no face",
         choices=("none", "realesrgan")),
    Knob("noise_seed", int, None, "GFPGAN's per-layer noise: null = the checkpoint's stored noise "
         "(deterministic); an integer = fresh noise drawn from this seed (the published inference draws "
         "unseeded noise on every call)", bounds=(0, 2**31 - 1), nullable=True),
)


@dataclass(frozen=True)
class RestoreJob:
    params: RestoreParams
    bg_upsampler: bool
    noise_seed: int | None


def _params(values: dict[str, Any]) -> RestoreJob:
    params = replace(_DEFAULTS, upscale=values.get("upscale", _DEFAULTS.upscale),
                     only_center_face=values.get("only_center_face", _DEFAULTS.only_center_face))
    return RestoreJob(params, values.get("bg_upsampler") == "realesrgan", values.get("noise_seed"))


RESTORE = TaskSpec("restore", output_name="restored", output_kind="image", role="face_restorer", knobs=KNOBS,
                   default_model=RESTORER, params=_params)
