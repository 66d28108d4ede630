"""The background-removal tasks' service (`remove_background`, `mask`): fetch, decode (every frame of
an animation; nvJPEG on the lane), restore faces where asked, plan, segment (batched with other jobs'
images on the device lane), pipeline/removal.py's two passes on the lane (the second streamed frame by
frame to the encoder), encode, write."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from imaging.animation import AnimationLimits, DecodedAnimation, decode_animation, frame_count
from imaging.decode import DecodedImage, decode_jpeg_on
from imaging.encode import check_frame_count, encode_animation, encode_image, holds_animations
from imaging.matte_ops import Box
from imaging.output import output_size, to_host
from models import registry
from models.spec import ModelSpec
from pipeline.carvekit.chain import check_plan, manual_plan, plan_networks, plans, post_networks
from pipeline.carvekit.params import CARVEKIT, ChainParams
from pipeline.removal import (
    clip_pixels,
    foreground_method,
    frame_pixels,
    full_alphas,
    restore_frames,
    still_pixels,
)
from pipeline.restore import FACE_NETWORKS
from pipeline.segmentation.segment import predict_mattes, segmentation_input_size
from worker.cache import resolve_dtype
from worker.context import JobRun, Services
from worker.device import synchronize
from worker.errors import InvalidInput
from worker.schema import Options
from worker.tasks import video
from worker.tasks.common import answer, fetch_input, networks_of, require_weights, still_to_host, write


def resolve_network(name: str, weights_dir) -> ModelSpec:
    """The segmentation network a plan names, or the caller's error listing what exists."""
    try:
        return registry.resolve(name, weights_dir)
    except KeyError:
        allowed = ", ".join([CARVEKIT, *registry.segmentation_names()])
        raise InvalidInput(f"model: unknown model {name[:80]!r}; allowed: {allowed}, "
                           f"or a BiRefNet weights folder under WEIGHTS_DIR") from None


@dataclass
class _Segmentation:
    """One image's place in a batched forward."""

    run: JobRun
    rgb: np.ndarray


def _segment_batch(services: Services, spec: ModelSpec, dtype: torch.dtype, size: int | None):
    """The lane's batch function: every member image through one network (in BATCH_SIZE chunks); each
    member's timings get the load time, its share of the forward and the batch size."""

    def run_batch(items: list[_Segmentation]) -> list[torch.Tensor]:
        with ExitStack() as members:  # each member's job counts the forward as its running work
            for item in items:
                members.enter_context(item.run.running())
            start = time.perf_counter()
            model = services.models.get(spec, dtype)
            loaded = time.perf_counter()
            mattes = predict_mattes(model, spec, [i.rgb for i in items], services.settings.batch_size, size)
            synchronize(services.device.device)
            done = time.perf_counter()
        for item in items:
            timings = item.run.timings
            timings["load_model"] = max(timings.get("load_model", 0.0), round((loaded - start) * 1000, 1))
            timings["model"] = round(timings.get("model", 0.0) + (done - loaded) * 1000 / len(items), 1)
            timings["batch"] = max(timings.get("batch", 0), len(items))
        return mattes

    return run_batch


def _decode_on_host(run: JobRun, data: bytes) -> DecodedAnimation:
    """Every frame as `frames` asks (an I/O thread's stage)."""
    settings, output = run.services.settings, run.job.options.output
    first_only = output.frames == "first"
    if not first_only and not holds_animations(output):  # refused from the header, before any decoding
        check_frame_count(frame_count(data, settings.max_image_pixels), output)
    limits = AnimationLimits(max_frames=settings.max_frames, max_total_pixels=settings.max_total_pixels)
    return decode_animation(data, settings.max_image_pixels, limits, first_frame_only=first_only)


async def _decode(run: JobRun, data: bytes | Path) -> DecodedAnimation:
    """On CUDA (GPU_JPEG), a JPEG is decoded by nvJPEG as the lane's host-to-device step (device work
    belongs to the lane); anything else, or a JPEG that nvJPEG declines, on an I/O thread; a clip's
    first frame as a still (`frames: "first"`)."""
    if isinstance(data, Path):
        first = await run.io("decode", video.first_frame, data, video.limits(run))
        return DecodedAnimation([first], [0], 0, video.SOURCE_FORMAT)
    settings, device = run.services.settings, run.services.device.device
    if device.type == "cuda" and settings.gpu_jpeg:
        image = await run.on_device("decode", decode_jpeg_on, data, settings.max_image_pixels, device)
        if image is not None:
            return DecodedAnimation([image], [0], 0, image.source_format)
    return await run.io("decode", _decode_on_host, run, data)


def _networks(options: Options, spec: ModelSpec) -> list[ModelSpec]:
    """Every network the job may run, known before its image is: the segmentation network (`spec`
    for pre = none, else every one the automatic mode may choose), the post step's, the face networks."""
    knobs = options.chain_knobs()
    segmenters = [spec] if options.pre == "none" else [
        registry.get_spec(name) for name in plan_networks(options.pre, options.model, knobs)]
    names = [*post_networks(options.pre, options.model, knobs), *(FACE_NETWORKS if options.restore_faces else ())]
    return [*segmenters, *(registry.get_spec(name) for name in names)]


async def run(run: JobRun) -> dict:
    job, services = run.job, run.services
    settings, options = services.settings, run.job.options
    lane = services.lane
    lane.expect()
    arrived = False
    extra: dict = {}
    try:
        plan = manual_plan(options.model, options.chain_knobs())
        spec = resolve_network(plan.net, settings.weights_dir)  # the model and its size checked before any I/O
        dtype = resolve_dtype(options.precision, services.device.device)
        segmentation_input_size(spec, plan.seg_mask_size)
        check_plan(plan)
        require_weights(run, *_networks(options, spec))
        data = await fetch_input(run, f"ogs/{job.id}")
        if isinstance(data, Path) and options.output.frames == "all":
            lane.arrived()
            arrived = True
            with video.deleted_after(data):
                return await _clip(run, data, plan, spec, dtype)
        with video.deleted_after(data):
            animation = await _decode(run, data)
        del data
        frames = animation.frames
        if options.restore_faces:
            frames, extra["faces_restored"] = await run.on_device("restore_faces", restore_frames, frames,
                                                                  networks_of(run), services.device.device, run)
        if options.pre != "none":  # one plan for every frame: one network runs the whole animation
            plan = (await run.on_device("pre", plans, services.models, [frames[0].rgb], options.pre, options.model,
                                        options.chain_knobs()))[0]
            spec = resolve_network(plan.net, settings.weights_dir)
        width, height = frames[0].size
        run.info(f"{animation.source_format} {width}x{height}" + (f", {len(frames)} frames" if len(frames) > 1 else "")
                 + f", {spec.name}" + (f" + {plan.post}" if plan.post != "none" else ""))
        key = (spec.name, dtype, segmentation_input_size(spec, plan.seg_mask_size))
        batch = _segment_batch(services, spec, dtype, plan.seg_mask_size)
        lane.arrived()
        arrived = True
        mattes = await asyncio.gather(*(lane.batched(key, _Segmentation(run, f.rgb), batch) for f in frames))
    finally:
        if not arrived:
            lane.arrived()
    method = foreground_method(options.foreground, plan, spec)
    if len(frames) > 1:
        alphas, box, figures = await run.on_device("postprocess", full_alphas, frames, mattes, plan, services.models,
                                                   options.output, run)
        del mattes
        pixels = _streamed_pixels(run, asyncio.get_running_loop(), frames, alphas, box, method)
        encoded = await run.io("encode", encode_animation, pixels, animation.durations, animation.loop,
                               options.output, settings.png)
        out_h, out_w = output_size(height, width, box, options.output)
    else:
        still, figures = await run.on_device("postprocess", still_pixels, frames[0], mattes, plan, method,
                                             services.models, options.output, options.bg_color, run)
        still = await still_to_host(run, still)
        del mattes
        encoded = await run.io("encode", encode_image, still, options.output, settings.png)
        out_h, out_w = still.shape[:2]
    out_key = await write(run, encoded)
    if len(frames) > 1:
        extra["frames"] = len(frames)
    return answer(run, out_key, out_w, out_h, spec.name,
                  **({"post": plan.post} if plan.post != "none" else {}),
                  **({"scene": plan.scene} if plan.scene else {}), **figures, **extra)


async def _clip(run: JobRun, path: Path, plan: ChainParams, spec: ModelSpec, dtype: torch.dtype) -> dict:
    """A video input: every frame through the same batched forward (on the lane, with other jobs'
    images) and the same device programs as a still, streamed into one video (worker/tasks/video.py)."""
    services, options = run.services, run.job.options
    info = await video.open_clip(run, path)
    if options.pre != "none":  # one plan, from the first frame, for every frame
        first = await run.io("decode", video.first_frame, path, video.limits(run))
        plan = (await run.on_device("pre", plans, services.models, [first.rgb], options.pre, options.model,
                                    options.chain_knobs()))[0]
        spec = resolve_network(plan.net, services.settings.weights_dir)
        del first
    key = (spec.name, dtype, segmentation_input_size(spec, plan.seg_mask_size))
    segment = _segment_batch(services, spec, dtype, plan.seg_mask_size)
    method = foreground_method(options.foreground, plan, spec)
    smoother = video.smoother(run)

    async def work(frames: list[DecodedImage]) -> list[torch.Tensor]:
        mattes = await asyncio.gather(*(services.lane.batched(key, _Segmentation(run, f.rgb), segment)
                                        for f in frames))
        return await run.on_device("postprocess", clip_pixels, frames, mattes, plan, method, services.models,
                                   options.output, options.bg_color, smoother, run)

    return await video.stream(run, path, info, work, spec.name,
                              **({"post": plan.post} if plan.post != "none" else {}))


def _streamed_pixels(run: JobRun, loop: asyncio.AbstractEventLoop, frames: list[DecodedImage],
                     alphas: torch.Tensor, box: Box | None, method: str) -> Iterator[np.ndarray]:
    """Each frame's output pixels, made on the device lane when the encoder (on its own thread) asks
    for the frame, and copied to the host on the encoder's thread: only the frames the encoder holds
    exist at once, and other jobs' device work runs between frames."""
    for frame, alpha in zip(frames, alphas):
        made = run.on_device("postprocess", frame_pixels, frame, alpha, box, method, run.job.options.output,
                             run.job.options.bg_color, run)
        yield to_host(asyncio.run_coroutine_threadsafe(made, loop).result())
