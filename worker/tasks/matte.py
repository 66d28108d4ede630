"""The `matte` task: BackgroundMattingV2 against a clean plate of the background (`bgr/<id>`)."""
from __future__ import annotations

from pathlib import Path

import torch

from imaging.confidence import matte_confidence
from imaging.decode import DecodedImage, ImageTooLarge, UndecodableImage, decode
from imaging.encode import encode_frames
from imaging.errors import CallerValueError
from imaging.matte_ops import refine_matte
from imaging.output import output_frames
from imaging.temporal import MatteSmoother
from imaging.video import sniff
from matting.background import PlateSizeMismatch, check_pair, matte
from worker.context import JobRun
from worker.errors import ImageNotFound, InputTooLarge
from worker.schema import MatteJob
from worker.storage import SNIFF_BYTES
from worker.tasks import video
from worker.tasks.common import (
    answer,
    fetch,
    fetch_input,
    load,
    network_for,
    require_weights,
    write,
)


class PlateNotFound(ImageNotFound):
    def __init__(self, key: str):
        Exception.__init__(self, f"no background plate at {key} (the matte task needs a photo of the same "
                                 f"scene without the subject; name another with bgr_id)")


async def _fetch_plate(run: JobRun, key: str) -> DecodedImage:
    """The plate, decoded; its errors name it, so that they are not taken for the image's. A still
    only: BMV2 takes one clean background, and a video's is not one."""
    try:
        data = await fetch(run, key)
        if sniff(data[:SNIFF_BYTES]) is not None:
            raise CallerValueError(key, "the background plate is a video; the matte task needs one still photo "
                                        "of the background (for a video input too)")
        return await run.io("decode", decode, data, run.services.settings.max_image_pixels)
    except ImageNotFound:
        raise PlateNotFound(key) from None
    except (UndecodableImage, ImageTooLarge, InputTooLarge) as exc:
        raise CallerValueError(key, f"the background plate: {exc}") from None


def _check_pair(image: DecodedImage, plate: DecodedImage, plate_key: str) -> None:
    try:
        check_pair(image.rgb, plate.rgb)
    except PlateSizeMismatch as exc:
        raise CallerValueError(plate_key, str(exc)) from None


def _finish(run: JobRun, result, bg_color: str | None, smoother: MatteSmoother | None = None,
            frame: DecodedImage | None = None):
    """On the device: a video's temporal smoothing (of `frame`'s matte), the job's matte knobs, the
    confidence, the output's pixels."""
    device = run.services.device.device
    rgba = torch.from_numpy(result.rgba).to(device).permute(2, 0, 1)
    alpha = rgba[3]
    if smoother is not None:
        alpha = smoother(alpha, torch.from_numpy(frame.rgb).to(device).permute(2, 0, 1))
    confidence = matte_confidence(alpha[None])
    alpha = refine_matte(alpha, run.job.options.output)
    return output_frames([rgba[:3]], [alpha], run.job.options.output, bg_color)[0], confidence


async def run(run: JobRun) -> dict:
    options = run.job.options
    job: MatteJob = options.task_params
    spec = network_for(options.model, "background_matting")
    require_weights(run, spec)
    plate_key = f"bgr/{job.bgr_id or run.job.id}"
    source = await fetch_input(run, f"ogs/{run.job.id}")
    with video.deleted_after(source):
        plate = await _fetch_plate(run, plate_key)
        if isinstance(source, Path):
            return await _clip(run, source, plate, plate_key, spec)
        image = await run.io("decode", decode, source, run.services.settings.max_image_pixels)
    del source
    _check_pair(image, plate, plate_key)
    model = await run.on_device("load_model", load, run, spec)
    result = await run.on_device("model", matte, model, image.rgb, plate.rgb, job.params)
    pixels, confidence = await run.on_device("postprocess", _finish, run, result, options.bg_color)
    encoded = await run.io("encode", encode_frames, [pixels], [0], 0, options.output,
                           run.services.settings.png)
    key = await write(run, encoded)
    height, width = pixels.shape[:2]  # the written file's: crop and size change it
    return answer(run, key, width, height, spec.name, preset=result.preset, refine_mode=result.refine.mode,
                  **confidence.as_dict())



async def _clip(run: JobRun, path: Path, plate: DecodedImage, plate_key: str, spec) -> dict:
    """A video input: each frame against the one plate, streamed into one video (worker/tasks/video.py)."""
    info = await video.open_clip(run, path)
    model = await run.on_device("load_model", load, run, spec)
    smoother = video.smoother(run)

    async def work(frames: list[DecodedImage]):
        return await run.on_device("model", _matte_frames, run, model, frames, plate, plate_key, smoother)

    return await video.stream(run, path, info, work, spec.name)


def _matte_frames(run: JobRun, model, frames: list[DecodedImage], plate: DecodedImage, plate_key: str,
                  smoother: MatteSmoother | None) -> list:
    """On the device, each frame's matte against the plate and its output pixels, as a still's."""
    params, bg_color = run.job.options.task_params.params, run.job.options.bg_color
    pixels = []
    for frame in frames:
        run.check()
        _check_pair(frame, plate, plate_key)
        pixels.append(_finish(run, matte(model, frame.rgb, plate.rgb, params), bg_color, smoother, frame)[0])
    return pixels
