"""The `upscale` task's service: fetch, decode, the forwards on the lane, quantise and resize on an I/O thread,
encode, write (pipeline/upscale.py: the descriptor, the tile that fits, the input)."""
from __future__ import annotations

from imaging.decode import decode
from imaging.encode import encode_image
from imaging.tensors import free_bytes
from pipeline.restoration.upscale import check_tiling, finish_upscale, output_size, upscale_forwards
from pipeline.upscale import UPSCALE, UpscaleJob, fitting_tile, upscale_input
from worker.context import JobRun
from worker.tasks.common import (
    answer,
    check_output_pixels,
    fetch,
    network_for,
    require_weights,
    resident_network,
    restoration_output,
    write,
)


async def run(run: JobRun) -> dict:
    options = run.job.options
    job: UpscaleJob = options.task_params
    spec = network_for(options.model, UPSCALE.role)
    net_scale = spec.extra["scale"]
    require_weights(run, spec)
    check_tiling(net_scale, job.params.tile, job.params.tile_pad)
    data = await fetch(run, f"ogs/{run.job.id}")
    check_output_pixels(data, run, max(net_scale, job.params.outscale))  # the network's output, then the final
    image = await run.io("decode", decode, data, run.services.settings.max_image_pixels)
    width, height = image.size
    params = fitting_tile(height, width, net_scale, job.params, free_bytes(run.services.device.device))
    if params.tile != job.params.tile:
        run.info(f"tile 0 would not fit in device memory: tiles of {params.tile}")
    model = await run.on_device("load_model", resident_network, run, spec)
    pixels = await run.io("pixels", upscale_input, image, options.output.format)
    forwards = await run.on_device("upscale", upscale_forwards, model, pixels, net_scale, params,
                                   lambda done, total: run.progress(f"forward {done}/{total}"), run.check)
    out = await run.io("finish", finish_upscale, forwards)  # quantise and resize: host work, off the lane
    encoded = await run.io("encode", encode_image, out, restoration_output(options.output),
                           run.services.settings.png)
    key = await write(run, encoded)
    out_h, out_w = output_size(height, width, net_scale, params)
    return answer(run, key, out_w, out_h, spec.name, scale=params.outscale, tile=params.tile)
