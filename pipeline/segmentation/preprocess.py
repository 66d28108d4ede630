"""Images to network input, exactly as each checkpoint's original code prepared them.

Recipes whose original resized with Pillow (rembg, carvekit) are reproduced with Pillow on the CPU:
the output is at most about 1 MP, so this is cheap, and it is the only way to match their filters bit
for bit. Recipes defined on tensors (BiRefNet's model cards) run on the model's device.

A large photo's Pillow resize is split into strips resized on several threads (Pillow releases the
GIL while it resamples), with the same pixels as one Image.resize: see `threaded_pil_resize`.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from imaging.decode import as_array, as_tensor
from imaging.resample import antialiased_resize
from imaging.tensors import constant
from models.spec import Preprocess

_PIL_FILTERS = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
}


# Below this many source pixels (well under 1 MP) a resize takes a few ms: one call, no threads.
_STRIPS_FROM_PIXELS = 500_000
# Strips per thread: more, shorter strips even out a thread that another process delays.
_STRIPS_PER_THREAD = 2
_resize_pool: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _resize_pool
    if _resize_pool is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        _resize_pool = ThreadPoolExecutor(cores, thread_name_prefix="pil-resize")
    return _resize_pool


def _spans(length: int, parts: int) -> list[tuple[int, int]]:
    step = -(-length // parts)
    return [(start, min(start + step, length)) for start in range(0, length, step)]


def threaded_pil_resize(image: Image.Image, size: tuple[int, int], resample: int) -> Image.Image:
    """`image.resize(size, resample)` (size is (width, height)), pixel for pixel, on torch's number of
    intra-op threads (CPU_THREADS).

    Pillow's resample (Resample.c) is two separable 8-bit passes, each rounded to 8 bits: the first
    along one axis treats every line on its own, so strips across that axis can go through it
    separately and be put together for the second pass. Pillow 13 runs the vertical pass first when
    the height shrinks by more than twice as many pixels as the width (python-pillow/Pillow#9549),
    else the horizontal one. Each call below does a single pass (the other axis keeps its size and
    its whole box), so both the coefficients and the order are those of the one-call resize.
    """
    width, height = image.size
    out_w, out_h = size
    threads = torch.get_num_threads()
    if (threads == 1 or width * height < _STRIPS_FROM_PIXELS or out_w == width or out_h == height
            or image.mode not in ("RGB", "L")):
        return image.resize(size, resample)
    vertical_first = out_h < height and height - out_h > 2 * (width - out_w)
    parts = threads * _STRIPS_PER_THREAD
    if vertical_first:  # column strips through the vertical pass, then the horizontal pass
        boxes = [(x0, 0, x1, height) for x0, x1 in _spans(width, parts)]
        first = Image.new(image.mode, (width, out_h))
    else:  # row strips through the horizontal pass, then the vertical pass
        boxes = [(0, y0, width, y1) for y0, y1 in _spans(height, parts)]
        first = Image.new(image.mode, (out_w, height))

    def first_pass(box: tuple[int, int, int, int]) -> Image.Image:
        strip = image.crop(box)
        return strip.resize((strip.width, out_h) if vertical_first else (out_w, strip.height), resample)

    for box, strip in zip(boxes, _pool().map(first_pass, boxes)):
        first.paste(strip, box[:2])
    return first.resize(size, resample)


def _normalise(array: np.ndarray, recipe: Preprocess) -> np.ndarray:
    """HxWx3 float64 in the original's order: scale, subtract mean, divide by std; CHW float32."""
    if recipe.scale == "max":
        array = array / max(float(array.max()), 1e-6)
    else:
        array = array / 255.0
    array = (array - np.asarray(recipe.mean)) / np.asarray(recipe.std)
    return array.transpose(2, 0, 1).astype(np.float32)


def pil_input(rgb: np.ndarray, recipe: Preprocess, size: tuple[int, int]) -> torch.Tensor:
    """[3,h,w] float32 from an HxWx3 uint8 image, resized with the original's Pillow filter."""
    height, width = size
    resized = Image.fromarray(as_array(rgb))
    if recipe.fit == "thumbnail":
        resized.thumbnail((width, height), _PIL_FILTERS[recipe.resample], reducing_gap=2.0)
    else:
        resized = threaded_pil_resize(resized, (width, height), _PIL_FILTERS[recipe.resample])
    return torch.from_numpy(_normalise(np.asarray(resized, dtype=np.float64), recipe))


def torch_input(rgb: np.ndarray, recipe: Preprocess, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """[3,h,w] float32 on `device`: the pixels travel as uint8, resize and normalise run there."""
    image = as_tensor(rgb, device)[None].float()
    if recipe.antialias:
        image = antialiased_resize(image, size, recipe.resample)
    else:
        image = F.interpolate(image, size=size, mode=recipe.resample, align_corners=False)
    if recipe.scale == "max":
        image = image / image.amax().clamp_min(1e-6)
    else:
        image = image / 255.0
    mean = constant(recipe.mean, image.device, shape=(1, 3, 1, 1))
    std = constant(recipe.std, image.device, shape=(1, 3, 1, 1))
    return ((image - mean) / std)[0]


def network_batch(
    images: list[np.ndarray],
    recipe: Preprocess,
    device: torch.device,
    dtype: torch.dtype,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """[B,3,h,w] network input for a batch of HxWx3 uint8 images (size defaults to the recipe's)."""
    size = size or recipe.size
    if recipe.backend == "pil":
        batch = torch.stack([pil_input(rgb, recipe, size) for rgb in images]).to(device, non_blocking=True)
    else:
        batch = torch.stack([torch_input(rgb, recipe, size, device) for rgb in images])
    return batch.to(dtype)
