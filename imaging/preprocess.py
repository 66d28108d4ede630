"""Images to network input, exactly as each checkpoint's original code prepared them.

Recipes whose original resized with Pillow (rembg, carvekit) are reproduced with Pillow on the CPU:
the input is at most about 1 MP, so this is cheap, and it is the only way to match their filters bit
for bit. Recipes defined on tensors (BiRefNet's model cards) run on the model's device.
"""
from __future__ import annotations

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
        resized = resized.resize((width, height), _PIL_FILTERS[recipe.resample])
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
