"""The `matte` task: BackgroundMattingV2 against a clean plate of the background (`bgr/<id>`)."""
from __future__ import annotations

from imaging.decode import DecodedImage, ImageTooLarge, UndecodableImage
from imaging.encode import encode_frames
from imaging.errors import CallerValueError
from imaging.output import to_host
from pipeline.matte import MATTE, MatteJob, finish
from pipeline.matting.background import PlateSizeMismatch, check_pair, device_matte
from worker.context import JobRun
from worker.errors import ImageNotFound, InputTooLarge
from worker.tasks.common import (
    answer,
    fetch_image,
    network_for,
    require_weights,
    resident_network,
    write,
)


class PlateNotFound(ImageNotFound):
    def __init__(self, key: str):
        Exception.__init__(self, f"no background plate at {key} (the matte task needs a photo of the same "
                                 f"scene without the subject; name another with bgr_id)")


async def _fetch_plate(run: JobRun, key: str) -> DecodedImage:
    """The plate, decoded; its errors name it, so that they are not taken for the image's."""
    try:
        return await fetch_image(run, key)
    except ImageNotFound:
        raise PlateNotFound(key) from None
    except (UndecodableImage, ImageTooLarge, InputTooLarge) as exc:
        raise CallerValueError(key, f"the background plate: {exc}") from None


async def run(run: JobRun) -> dict:
    options = run.job.options
    job: MatteJob = options.task_params
    spec = network_for(options.model, MATTE.role)
    require_weights(run, spec)
    plate_key = f"bgr/{job.bgr_id or run.job.id}"
    image = await fetch_image(run, f"ogs/{run.job.id}")
    plate = await _fetch_plate(run, plate_key)
    try:
        check_pair(image.rgb, plate.rgb)
    except PlateSizeMismatch as exc:
        raise CallerValueError(plate_key, str(exc)) from None
    model = await run.on_device("load_model", resident_network, run, spec)
    result = await run.on_device("model", device_matte, model, image.rgb, plate.rgb, job.params)
    pixels, confidence = await run.on_device("postprocess", finish, result, options.output, options.bg_color)
    pixels = await run.io("to_host", to_host, pixels)
    encoded = await run.io("encode", encode_frames, [pixels], [0], 0, options.output,
                           run.services.settings.png)
    key = await write(run, encoded)
    height, width = pixels.shape[:2]  # the written file's: crop and size change it
    return answer(run, key, width, height, spec.name, preset=result.preset, refine_mode=result.refine.mode,
                  **confidence.as_dict())

