"""The `restore` task (GFPGAN face restoration, optionally Real-ESRGAN for the rest of the image), and
the face-restoration step that `restore_faces` puts before background removal."""
from __future__ import annotations

import numpy as np
import torch

from imaging.decode import DecodedImage, decode
from imaging.encode import encode_image
from imaging.resample import cv2_resize_lanczos4
from models import registry
from pipeline.restore import BG_UPSAMPLER, BG_UPSAMPLER_TILE, DETECTOR, PARSER, RESTORER, RestoreJob
from pipeline.restoration.restore import RestoreParams, RestoreResult, restore
from pipeline.restoration.upscale import UpscaleParams, upscale
from worker.context import JobRun
from worker.tasks.common import (
    answer,
    check_output_pixels,
    fetch,
    load,
    network_for,
    require_weights,
    restoration_output,
    rgb_tensor,
    write,
)

def _background_upsampler(run: JobRun):
    """Real-ESRGAN x2plus as GFPGAN's inference script sets it up (tile 400, outscale = upscale)."""
    spec = registry.get_spec(BG_UPSAMPLER)
    model = load(run, spec)

    def enlarge(image: torch.Tensor, scale: float) -> torch.Tensor:
        pixels = image.permute(1, 2, 0).cpu().numpy()
        params = UpscaleParams(tile=BG_UPSAMPLER_TILE, outscale=scale)
        out = upscale(model, pixels, spec.extra["scale"], params,
                      progress=lambda done, total: run.progress(f"background tile {done}/{total}"), check=run.check)
        return torch.from_numpy(out).to(image.device).permute(2, 0, 1)

    return enlarge


def restore_on_device(run: JobRun, image: torch.Tensor, restorer_name: str, params: RestoreParams,
                      bg_upsampler: bool = False, noise_seed: int | None = None) -> RestoreResult:
    """GFPGANer.enhance on uint8 RGB [3,H,W] on the device, with the job's networks from the cache."""
    detector = load(run, registry.get_spec(DETECTOR))
    restorer_model = load(run, registry.get_spec(restorer_name))
    parser = load(run, registry.get_spec(PARSER))

    dtype = next(restorer_model.parameters()).dtype

    def restorer(x: torch.Tensor) -> torch.Tensor:
        return restorer_model(x.to(dtype), noise_seed=noise_seed)

    with torch.inference_mode():
        return restore(image, detector, restorer, parser, params,
                       background_upsampler=_background_upsampler(run) if bg_upsampler else None,
                       progress=lambda done, total: run.progress(f"faces restored {done}/{total}"))


def restore_faces(run: JobRun, image: DecodedImage) -> tuple[DecodedImage, int]:
    """The `restore_faces` step of background removal: the photo with its faces restored in place
    (upscale 1, no background upsampler), and how many were found."""
    result = restore_on_device(run, rgb_tensor(image, run.services.device.device), RESTORER,
                               RestoreParams(upscale=1.0))
    rgb = np.ascontiguousarray(result.image.permute(1, 2, 0).cpu().numpy())
    return DecodedImage(rgb, image.alpha, image.source_format), result.faces_found


def _with_alpha(result: torch.Tensor, alpha: np.ndarray | None, fmt: str) -> np.ndarray:
    """HxWx3 RGB, or HxWx4 with the image's own alpha enlarged as the background is (Lanczos-4);
    a jpg has no transparency, so there the alpha is dropped."""
    pixels = result.permute(1, 2, 0).cpu().numpy()
    if alpha is None or fmt == "jpg":
        return np.ascontiguousarray(pixels)
    big = cv2_resize_lanczos4(torch.from_numpy(alpha), tuple(result.shape[-2:])).numpy()
    return np.dstack([pixels, big])


async def run(run: JobRun) -> dict:
    options = run.job.options
    job: RestoreJob = options.task_params
    spec = network_for(options.model, "face_restorer")
    require_weights(run, spec, registry.get_spec(DETECTOR), registry.get_spec(PARSER),
                    *([registry.get_spec(BG_UPSAMPLER)] if job.bg_upsampler else []))
    data = await fetch(run, f"ogs/{run.job.id}")
    check_output_pixels(data, run, job.params.upscale)
    image = await run.io("decode", decode, data, run.services.settings.max_image_pixels)
    result = await run.on_device("restore", lambda: restore_on_device(
        run, rgb_tensor(image, run.services.device.device), spec.name, job.params, job.bg_upsampler, job.noise_seed))
    pixels = await run.io("to_host", _with_alpha, result.image, image.alpha, options.output.format)
    encoded = await run.io("encode", encode_image, pixels, restoration_output(options.output),
                           run.services.settings.png)
    key = await write(run, encoded)
    height, width = pixels.shape[:2]
    return answer(run, key, width, height, spec.name, faces_found=result.faces_found, upscale=job.params.upscale,
                  **({"noise_seed": job.noise_seed} if job.noise_seed is not None else {}))
