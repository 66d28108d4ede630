"""The `upscale` task: Real-ESRGAN x4 (x2 where asked), tiles moved to the device one at a time."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from imaging.decode import decode
from imaging.encode import encode_image
from imaging.tensors import free_bytes
from pipeline.upscale import UpscaleJob
from pipeline.restoration.upscale import UpscaleParams, check_tiling, output_size, upscale
from worker.context import JobRun
from worker.tasks.common import (
    answer,
    check_output_pixels,
    fetch,
    load,
    network_for,
    require_weights,
    restoration_output,
    write,
)

MEMORY_HEADROOM = 0.6  # of the free device memory one forward may take
AUTO_TILE_STEP = 32


def bytes_per_input_pixel(net_scale: int) -> int:
    """Float32 activations one RRDBNet forward keeps per input pixel, roughly: the dense blocks' 192
    channels at the input's size, the 64-channel upsampling convolutions at 2x and 4x (a x2 network
    runs at half size after its pixel-unshuffle, the same in the end), twice for the convolution
    outputs alive at once."""
    return 2 * 4 * (192 + 64 * 4 + 64 * 16) // (4 if net_scale == 2 else 1)


def fitting_tile(height: int, width: int, net_scale: int, params: UpscaleParams, free: int) -> UpscaleParams:
    """params as asked, or, for `tile` 0 (the whole image in one forward) on an image whose forward
    would not fit in the device's free memory, the largest tile that does (a multiple of 32). Tiled
    output differs from untiled near tile borders, as in the original, so the answer says so."""
    per_pixel = bytes_per_input_pixel(net_scale)
    budget = free * MEMORY_HEADROOM
    if params.tile or height * width * per_pixel <= budget:
        return params
    side = int(math.sqrt(budget / per_pixel)) - 2 * params.tile_pad
    return replace(params, tile=max(AUTO_TILE_STEP, side // AUTO_TILE_STEP * AUTO_TILE_STEP))


def _pixels(image) -> np.ndarray:
    return image.rgb if image.alpha is None else np.dstack([image.rgb, image.alpha])


async def run(run: JobRun) -> dict:
    options = run.job.options
    job: UpscaleJob = options.task_params
    spec = network_for(options.model, "upscaler")
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
    model = await run.on_device("load_model", load, run, spec)
    pixels = await run.io("pixels", _pixels, image)
    if options.output.format == "jpg":
        pixels = image.rgb  # a jpg has no transparency
    out = await run.on_device("upscale", upscale, model, pixels, net_scale, params,
                              lambda done, total: run.progress(f"forward {done}/{total}"), run.check)
    encoded = await run.io("encode", encode_image, out, restoration_output(options.output),
                           run.services.settings.png)
    key = await write(run, encoded)
    out_h, out_w = output_size(height, width, net_scale, params)
    return answer(run, key, out_w, out_h, spec.name, scale=params.outscale, tile=params.tile)
