"""The background-removal tasks (`remove_background`, `mask`): fetch, decode (every frame of an
animation), restore faces where asked, plan, segment (batched with other jobs' images on the device
lane), refine, apply the job's output knobs, encode, write."""
from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import torch

from carvekit.chain import check_plan, manual_plan, plan_networks, plans, post_networks, post_process
from carvekit.params import CARVEKIT, ChainParams
from imaging.animation import AnimationLimits, DecodedAnimation, decode_animation, frame_count
from imaging.confidence import matte_confidence
from imaging.decode import DecodedImage, decode_jpeg_on
from imaging.encode import check_frame_count, encode_frames
from imaging.matte_ops import refine_matte
from imaging.output import output_box, output_frames
from imaging.postprocess import foreground_colour, full_size_alpha, keep_own_alpha
from imaging.segment import network_size, predict_mattes
from models import registry
from models.spec import ModelSpec
from worker.cache import resolve_dtype
from worker.context import JobRun, Services
from worker.device import synchronize
from worker.errors import InvalidInput
from worker.schema import Options
from worker.tasks.common import answer, fetch, require_weights, rgb_tensor, write
from worker.tasks.restore import FACE_NETWORKS, restore_faces


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


def _decode(run: JobRun, data: bytes) -> DecodedAnimation:
    """Every frame as `frames` asks; a JPEG straight onto the GPU when on CUDA (GPU_JPEG)."""
    settings, output = run.services.settings, run.job.options.output
    device = run.services.device.device
    if device.type == "cuda" and settings.gpu_jpeg:
        image = decode_jpeg_on(data, settings.max_image_pixels, device)
        if image is not None:
            return DecodedAnimation([image], [0], 0, image.source_format)
    first_only = output.frames == "first"
    if not first_only:  # refused from the header, before anything is decoded or run
        check_frame_count(frame_count(data, settings.max_image_pixels), output)
    limits = AnimationLimits(max_frames=settings.max_frames, max_total_pixels=settings.max_total_pixels)
    return decode_animation(data, settings.max_image_pixels, limits, first_frame_only=first_only)


def _networks(options: Options, spec: ModelSpec) -> list[ModelSpec]:
    """Every network the job may run, known before its image is: the segmentation network (`spec`
    for pre = none, else every one the automatic mode may choose), the post step's, the face networks."""
    knobs = options.chain_knobs()
    segmenters = [spec] if options.pre == "none" else [
        registry.get_spec(name) for name in plan_networks(options.pre, options.model, knobs)]
    names = [*post_networks(options.pre, options.model, knobs), *(FACE_NETWORKS if options.restore_faces else ())]
    return [*segmenters, *(registry.get_spec(name) for name in names)]


def _restore_frames(run: JobRun, frames: list[DecodedImage]) -> tuple[list[DecodedImage], int]:
    restored = []
    for frame in frames:
        run.check()  # a job past its deadline restores no more frames
        restored.append(restore_faces(run, frame))
    return [frame for frame, _ in restored], sum(found for _, found in restored)


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
        network_size(spec, plan.seg_mask_size)
        check_plan(plan)
        require_weights(run, *_networks(options, spec))
        data = await fetch(run, f"ogs/{job.id}")
        animation = await run.io("decode", _decode, run, data)
        del data
        frames = animation.frames
        if options.restore_faces:
            frames, extra["faces_restored"] = await run.on_device("restore_faces", _restore_frames, run, frames)
        if options.pre != "none":  # one plan for every frame: one network runs the whole animation
            plan = (await run.on_device("pre", plans, services.models, [frames[0].rgb], options.pre, options.model,
                                        options.chain_knobs()))[0]
            spec = resolve_network(plan.net, settings.weights_dir)
        width, height = frames[0].size
        run.info(f"{animation.source_format} {width}x{height}" + (f", {len(frames)} frames" if len(frames) > 1 else "")
                 + f", {spec.name}" + (f" + {plan.post}" if plan.post != "none" else ""))
        key = (spec.name, dtype, network_size(spec, plan.seg_mask_size))
        batch = _segment_batch(services, spec, dtype, plan.seg_mask_size)
        lane.arrived()
        arrived = True
        mattes = await asyncio.gather(*(lane.batched(key, _Segmentation(run, f.rgb), batch) for f in frames))
    finally:
        if not arrived:
            lane.arrived()
    pixels, figures = await run.on_device("postprocess", _finish, run, frames, mattes, plan, spec)
    del mattes
    encoded = await run.io("encode", encode_frames, pixels, animation.durations, animation.loop, options.output,
                           settings.png)
    out_key = await write(run, encoded)
    out_h, out_w = pixels[0].shape[:2]
    if len(frames) > 1:
        extra["frames"] = len(frames)
    return answer(run, out_key, out_w, out_h, spec.name,
                  **({"post": plan.post} if plan.post != "none" else {}),
                  **({"scene": plan.scene} if plan.scene else {}), **figures, **extra)


def _finish(run: JobRun, frames: list[DecodedImage], mattes: list[torch.Tensor], plan: ChainParams,
            spec: ModelSpec) -> tuple[list[np.ndarray], dict]:
    """On the device: each frame's full-size alpha, carvekit's refinement, the confidence (of the
    model's matte), the job's matte knobs, the colour, then crop/size/channels for every frame."""
    options = run.job.options
    device = mattes[0].device
    colours, alphas = [], []
    if plan.post != "none":
        run.progress(f"refining the matte ({plan.post})")
    for frame, matte in zip(frames, mattes):
        run.check()
        rgb = rgb_tensor(frame, device)
        alpha = keep_own_alpha(post_process(run.services.models, rgb, full_size_alpha(matte, frame), plan), frame)
        colours.append(rgb)
        alphas.append(alpha)
    figures = matte_confidence(torch.stack(alphas)).as_dict()
    alphas = [refine_matte(a, options.output) for a in alphas]
    if options.output.channels == "rgba":
        method = options.foreground
        if method == "auto":
            method = "blur_fusion" if plan.post != "none" else spec.default_foreground
        colours = [foreground_colour(rgb, alpha, method) for rgb, alpha in zip(colours, alphas)]
    box = output_box(alphas, options.output)
    if box is not None:
        figures["crop"] = box.as_dict()
    return output_frames(colours, alphas, options.output, options.bg_color), figures
