"""The `restore` task's service: fetch, decode, pipeline/restore.py's program on the lane, the
image's own alpha enlarged off the loop, encode, write."""
from __future__ import annotations

from imaging.decode import decode
from imaging.encode import encode_image
from models import registry
from pipeline.restore import BG_UPSAMPLER, DETECTOR, PARSER, RESTORE, RestoreJob, restore_image, restored_pixels
from worker.context import JobRun
from worker.tasks.common import (
    answer,
    check_output_pixels,
    fetch,
    network_for,
    networks_of,
    require_weights,
    restoration_output,
    rgb_tensor,
    write,
)


async def run(run: JobRun) -> dict:
    options = run.job.options
    job: RestoreJob = options.task_params
    spec = network_for(options.model, RESTORE.role)
    require_weights(run, spec, registry.get_spec(DETECTOR), registry.get_spec(PARSER),
                    *([registry.get_spec(BG_UPSAMPLER)] if job.bg_upsampler else []))
    data = await fetch(run, f"ogs/{run.job.id}")
    check_output_pixels(data, run, job.params.upscale)
    image = await run.io("decode", decode, data, run.services.settings.max_image_pixels)
    result = await run.on_device("restore", lambda: restore_image(
        rgb_tensor(image, run.services.device.device), networks_of(run), spec.name, job.params, run,
        job.bg_upsampler, job.noise_seed))
    pixels = await run.io("to_host", restored_pixels, result.image, image.alpha, options.output.format)
    encoded = await run.io("encode", encode_image, pixels, restoration_output(options.output),
                           run.services.settings.png)
    key = await write(run, encoded)
    height, width = pixels.shape[:2]
    return answer(run, key, width, height, spec.name, faces_found=result.faces_found, upscale=job.params.upscale,
                  **({"noise_seed": job.noise_seed} if job.noise_seed is not None else {}))
