"""What the tasks' services share: choosing a network by role, the job's networks for a device program,
fetching an input, writing the output."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from imaging.decode import DecodedImage, as_tensor, decode, displayed_size
from imaging.encode import Encoded
from imaging.options import OutputOptions
from imaging.output import filters_png_on_device, png_rows, to_host
from imaging.png import FilteredRows
from models import registry
from models.spec import ModelSpec, Role
from pipeline import TASKS
from pipeline.task import NetworkByName
from worker.cache import resolve_dtype
from worker.context import JobRun
from worker.errors import InvalidInput, OutputTooLarge
from worker.storage import InputLimits


def network_for(name: str, role: Role, key: str = "model") -> ModelSpec:
    """The registered network `name` if it serves `role`, else the caller's error listing those that do."""
    allowed = registry.names(role)
    if name not in allowed:
        raise InvalidInput(f"{key}: {name[:80]!r} is not a {role.replace('_', ' ')} network; allowed: "
                           f"{', '.join(allowed)}")
    return registry.get_spec(name)


def require_weights(run: JobRun, *specs: ModelSpec) -> None:
    """WeightsNotFound now, before any I/O or work, when networks the job needs have no weight file
    (every missing one named at once)."""
    registry.require_all(list(specs), run.services.settings.weights_dir)


def resident_network(run: JobRun, spec: ModelSpec) -> nn.Module:
    """The job's network from the resident cache, in the job's precision (float32 where the weights
    do not survive half precision)."""
    services = run.services
    return services.models.get(spec, resolve_dtype(run.job.options.precision, services.device.device))


def networks_of(run: JobRun) -> NetworkByName:
    """The job's networks by registered name, for a device program (pipeline/)."""
    return lambda name: resident_network(run, registry.get_spec(name))


async def fetch(run: JobRun, key: str) -> bytes:
    settings = run.services.settings
    return await run.io("get", run.services.storage.get, key, settings.max_input_bytes)


async def fetch_input(run: JobRun, key: str) -> bytes | Path:
    """An input's bytes, or a temporary file when it is a video (delete it: video.deleted_after)."""
    return await run.io("get", run.services.storage.get_input, key, InputLimits.of(run.services.settings))


async def fetch_image(run: JobRun, key: str) -> DecodedImage:
    data = await fetch(run, key)
    return await run.io("decode", decode, data, run.services.settings.max_image_pixels)


def check_output_pixels(data: bytes, run: JobRun, scale: float) -> tuple[int, int]:
    """The input's size from its header; OutputTooLarge when the output at `scale` would be over
    MAX_OUTPUT_PIXELS, before anything is decoded or run."""
    settings = run.services.settings
    width, height = displayed_size(data, settings.max_image_pixels)
    out_w, out_h = int(width * scale), int(height * scale)
    if out_w * out_h > settings.max_output_pixels:
        raise OutputTooLarge(f"output too large: {width}x{height} at scale {scale:g} is {out_w}x{out_h} = "
                             f"{out_w * out_h} pixels, the limit (MAX_OUTPUT_PIXELS) is {settings.max_output_pixels}")
    return width, height


def restoration_output(options: OutputOptions) -> OutputOptions:
    """The output knobs of restore and upscale: the image's colour under fully transparent pixels is
    kept, as RealESRGANer keeps it; a restoration changes no pixel it was not asked to (the cut-out
    tasks zero it by default, see imaging/encode.py)."""
    return replace(options, keep_invisible_rgb=True)


def rgb_tensor(image: DecodedImage, device: torch.device) -> torch.Tensor:
    """uint8 RGB [3,H,W] on the device."""
    return as_tensor(image.rgb, device)


async def still_to_host(run: JobRun, pixels: torch.Tensor) -> np.ndarray | FilteredRows:
    """A still's output pixels to the host for the encoder; an RGB/RGBA PNG's filtered into its rows on
    the device first where PNG_FILTER_ON_DEVICE says, so that the host only deflates them."""
    output, png = run.job.options.output, run.services.settings.png
    if filters_png_on_device(output, png):
        pixels = await run.on_device("png_filter", png_rows, pixels, output, png)
    return await run.io("to_host", to_host, pixels)


def output_key(run: JobRun, extension: str) -> str:
    """Where the job's output goes: img/<id>/<task's output name>.<extension>."""
    return f"img/{run.job.id}/{TASKS[run.job.options.task].output_name}.{extension}"


async def write(run: JobRun, encoded: Encoded) -> str:
    """The output at output_key, in one PUT; its key."""
    key = output_key(run, encoded.extension)
    await run.commit(key, encoded.data, encoded.content_type)
    run.info(f"wrote {key} ({len(encoded.data)} bytes) {run.timings}")
    return key


def answer(run: JobRun, key: str, width: int, height: int, model: str, **extra) -> dict:
    return {"key": key, "bucket": run.services.storage.name, "width": width, "height": height, "model": model,
            "task": run.job.options.task, **extra, "timings_ms": run.timings}

