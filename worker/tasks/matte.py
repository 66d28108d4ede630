"""The `matte` task: BackgroundMattingV2 against a clean plate of the background (`bgr/<id>`)."""
from __future__ import annotations

from pathlib import Path

from imaging.decode import DecodedImage, ImageTooLarge, UndecodableImage, decode
from imaging.encode import encode_frames
from imaging.errors import CallerValueError
from imaging.video import sniff
from pipeline.matte import MATTE, MatteJob, clip_pixels, finish
from pipeline.matting.background import PlateSizeMismatch, check_pair, device_matte
from worker.context import JobRun
from worker.errors import ImageNotFound, InputTooLarge
from worker.storage import SNIFF_BYTES
from worker.tasks import video
from worker.tasks.common import (
    answer,
    fetch,
    fetch_input,
    network_for,
    require_weights,
    resident_network,
    still_to_host,
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


async def run(run: JobRun) -> dict:
    options = run.job.options
    job: MatteJob = options.task_params
    spec = network_for(options.model, MATTE.role)
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
    model = await run.on_device("load_model", resident_network, run, spec)
    result = await run.on_device("model", device_matte, model, image.rgb, plate.rgb, job.params)
    pixels, confidence = await run.on_device("postprocess", finish, result, options.output, options.bg_color)
    pixels = await still_to_host(run, pixels)
    encoded = await run.io("encode", encode_frames, [pixels], [0], 0, options.output,
                           run.services.settings.png)
    key = await write(run, encoded)
    height, width = pixels.shape[:2]  # the written file's: crop and size change it
    return answer(run, key, width, height, spec.name, preset=result.preset, refine_mode=result.refine.mode,
                  **confidence.as_dict())



async def _clip(run: JobRun, path: Path, plate: DecodedImage, plate_key: str, spec) -> dict:
    """A video input: each frame against the one plate, streamed into one video (worker/tasks/video.py)."""
    options = run.job.options
    info = await video.open_clip(run, path)
    model = await run.on_device("load_model", resident_network, run, spec)
    smoother = video.smoother(run)

    async def work(frames: list[DecodedImage]):
        for frame in frames:
            _check_pair(frame, plate, plate_key)
        return await run.on_device("model", clip_pixels, model, frames, plate, options.task_params.params,
                                   options.output, options.bg_color, smoother, run)

    return await video.stream(run, path, info, work, spec.name)
