"""The background-removal tasks (`remove_background`, `mask`): fetch, decode, plan, segment (batched
with other jobs on the device lane), refine, cut out, encode, write."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from carvekit.chain import manual_plan, plans, post_process
from carvekit.params import CARVEKIT, ChainParams
from imaging.decode import DecodedImage, decode
from imaging.encode import PNG, encode_png
from imaging.postprocess import cutout, foreground_colour, full_size_alpha, keep_own_alpha
from imaging.segment import network_size, predict_mattes
from models import registry
from models.spec import ModelSpec
from worker.cache import resolve_dtype
from worker.context import JobRun
from worker.device import synchronize
from worker.errors import InvalidInput

OUTPUT_FILES = {"remove_background": "trans.png", "mask": "mask.png"}


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


def _segment_batch(services, spec: ModelSpec, dtype: torch.dtype, size: int | None):
    """The lane's batch function: every member image through one network (in BATCH_SIZE chunks); each
    member's timings get the load time, its share of the forward and the batch size."""

    def run_batch(items: list[_Segmentation]) -> list[torch.Tensor]:
        start = time.perf_counter()
        model = services.models.get(spec, dtype)
        loaded = time.perf_counter()
        mattes = predict_mattes(model, spec, [i.rgb for i in items], services.settings.batch_size, size)
        synchronize(services.device.device)
        done = time.perf_counter()
        for item in items:
            item.run.timings["load_model"] = round((loaded - start) * 1000, 1)
            item.run.timings["model"] = round((done - loaded) * 1000 / len(items), 1)
            item.run.timings["batch"] = len(items)
        return mattes

    return run_batch


async def run(run: JobRun) -> dict:
    job, services = run.job, run.services
    settings, options = services.settings, run.job.options
    lane = services.lane
    lane.expect()
    arrived = False
    try:
        plan = manual_plan(options.model, options.chain_knobs())
        spec = resolve_network(plan.net, settings.weights_dir)  # the model is checked before any I/O
        dtype = resolve_dtype(options.precision, services.device.device)
        data = await run.io("get", services.storage.get, f"ogs/{job.id}", settings.max_input_bytes)
        image: DecodedImage = await run.io("decode", decode, data, settings.max_image_pixels)
        del data
        if options.pre != "none":
            plan = (await run.on_device("pre", plans, services.models, [image.rgb], options.pre, options.model,
                                        options.chain_knobs()))[0]
            spec = resolve_network(plan.net, settings.weights_dir)
        run.info(f"{image.source_format} {image.size[0]}x{image.size[1]}, {spec.name}"
                 + (f" + {plan.post}" if plan.post != "none" else ""))
        key = (spec.name, dtype, network_size(spec, plan.seg_mask_size))
        lane.arrived()
        arrived = True
        matte = await lane.batched(key, _Segmentation(run, image.rgb),
                                   _segment_batch(services, spec, dtype, plan.seg_mask_size))
    finally:
        if not arrived:
            lane.arrived()
    pixels = await run.on_device("postprocess", _finish, run, image, matte, plan, spec)
    del matte
    png = await run.io("encode", encode_png, pixels, settings.png_compress_level)
    out_key = f"img/{job.id}/{OUTPUT_FILES[options.task]}"
    await run.commit(out_key, png, PNG)
    width, height = image.size
    run.info(f"wrote {out_key} ({len(png)} bytes) {run.timings}")
    return {
        "key": out_key,
        "bucket": services.storage.name,
        "width": width,
        "height": height,
        "model": spec.name,
        **({"post": plan.post} if plan.post != "none" else {}),
        **({"scene": plan.scene} if plan.scene else {}),
        "task": options.task,
        "timings_ms": run.timings,
    }


def _finish(run: JobRun, image: DecodedImage, matte: torch.Tensor, plan: ChainParams, spec: ModelSpec) -> np.ndarray:
    """On the device: the full-size alpha, carvekit's refinement, the colour, the cut-out's pixels."""
    options = run.job.options
    rgb = torch.from_numpy(image.rgb).to(matte.device).permute(2, 0, 1)
    alpha = full_size_alpha(matte, image)
    if plan.post != "none":
        run.progress(f"refining the matte ({plan.post})")
    alpha = keep_own_alpha(post_process(run.services.models, rgb, alpha, plan), image)
    if options.task == "mask":
        return alpha.cpu().numpy()
    method = options.foreground
    if method == "auto":
        method = "blur_fusion" if plan.post != "none" else spec.default_foreground
    return cutout(foreground_colour(rgb, alpha, method), alpha, options.bg_color)
