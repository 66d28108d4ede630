"""The `restore` task (GFPGAN face restoration, optionally Real-ESRGAN for the rest of the image), and
the networks of the face-restoration step that `restore_faces` puts before background removal."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import torch

from imaging.decode import DecodedImage, as_tensor
from imaging.knobs import Knob
from imaging.resample import cv2_resize_lanczos4
from models import registry
from pipeline.restoration.restore import RestoreParams, RestoreResult, restore
from pipeline.restoration.upscale import UpscaleParams, upscale
from pipeline.task import Control, NetworkByName, TaskSpec

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


def _background_upsampler(networks: NetworkByName, control: Control) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """Real-ESRGAN x2plus as GFPGAN's inference script sets it up (tile 400, outscale = upscale).
    Its procedure keeps the image in host memory (pipeline/restoration/upscale.py): a device -> host
    -> device round trip, left as it is (README, Layout)."""
    model = networks(BG_UPSAMPLER)
    net_scale = registry.get_spec(BG_UPSAMPLER).extra["scale"]

    def enlarge(image: torch.Tensor, scale: float) -> torch.Tensor:
        pixels = image.permute(1, 2, 0).cpu().numpy()
        out = upscale(model, pixels, net_scale, UpscaleParams(tile=BG_UPSAMPLER_TILE, outscale=scale),
                      progress=lambda done, total: control.progress(f"background tile {done}/{total}"),
                      check=control.check)
        return torch.from_numpy(out).to(image.device).permute(2, 0, 1)

    return enlarge


def restore_image(image: torch.Tensor, networks: NetworkByName, restorer_name: str, params: RestoreParams,
                  control: Control, bg_upsampler: bool = False, noise_seed: int | None = None) -> RestoreResult:
    """The device program of `restore`: GFPGANer.enhance on uint8 RGB [3,H,W] on the device."""
    restorer_model = networks(restorer_name)
    dtype = next(restorer_model.parameters()).dtype

    def restorer(x: torch.Tensor) -> torch.Tensor:
        return restorer_model(x.to(dtype), noise_seed=noise_seed)

    with torch.inference_mode():
        return restore(image, networks(DETECTOR), restorer, networks(PARSER), params,
                       background_upsampler=_background_upsampler(networks, control) if bg_upsampler else None,
                       progress=lambda done, total: control.progress(f"faces restored {done}/{total}"))


def restore_faces(frame: DecodedImage, networks: NetworkByName, device: torch.device,
                  control: Control) -> tuple[DecodedImage, int]:
    """The `restore_faces` step of background removal: the photo with its faces restored in place
    (upscale 1, no background upsampler), and how many were found. The restored colour comes back to
    the host because the segmentation recipes that follow resize with Pillow (README, Layout)."""
    control.check()  # a job past its deadline restores no more frames
    result = restore_image(as_tensor(frame.rgb, device), networks, RESTORER, RestoreParams(upscale=1.0), control)
    rgb = np.ascontiguousarray(result.image.permute(1, 2, 0).cpu().numpy())
    return DecodedImage(rgb, frame.alpha, frame.source_format), result.faces_found


def restored_pixels(result: torch.Tensor, alpha: np.ndarray | None, fmt: str) -> np.ndarray:
    """The host stage after `restore_image` (an I/O thread's): the result's one device-to-host copy, as
    HxWx3 RGB, or HxWx4 with the image's own alpha enlarged as the background is (Lanczos-4); a jpg has
    no transparency, so there the alpha is dropped."""
    pixels = result.permute(1, 2, 0).cpu().numpy()
    if alpha is None or fmt == "jpg":
        return np.ascontiguousarray(pixels)
    big = cv2_resize_lanczos4(torch.from_numpy(alpha), tuple(result.shape[-2:])).numpy()
    return np.dstack([pixels, big])
