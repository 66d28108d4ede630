"""The segmentation step: a batch of images through one network to mattes at the network's size."""
from __future__ import annotations

import torch
from torch import nn

from models.spec import ModelSpec
from imaging.preprocess import network_batch


def network_size(spec: ModelSpec, seg_mask_size: int | None) -> tuple[int, int]:
    """The input size: the checkpoint's own, or a square `seg_mask_size` asked for by the job (checked
    against the checkpoint's `size_range` where it has one; SizeOutOfRange otherwise)."""
    if not seg_mask_size:
        return spec.preprocess.size
    if spec.preprocess.size_range is not None:
        spec.preprocess.size_range.check(seg_mask_size)
    return seg_mask_size, seg_mask_size


def predict_mattes(
    model: nn.Module,
    spec: ModelSpec,
    images: list,
    batch_size: int,
    seg_mask_size: int | None = None,
) -> list[torch.Tensor]:
    """[1,1,h,w] float32 mattes in [0,1] on the model's device, one per HxWx3 uint8 image.

    Images go through in chunks of `batch_size`: every input has the same network size, so a chunk is
    one forward pass.
    """
    param = next(model.parameters())
    size = network_size(spec, seg_mask_size)
    if spec.preprocess.fit == "thumbnail":
        batch_size = 1  # inputs keep their aspect ratio, so their shapes differ
    mattes: list[torch.Tensor] = []
    for start in range(0, len(images), max(1, batch_size)):
        chunk = images[start:start + batch_size]
        batch = network_batch(chunk, spec.preprocess, param.device, param.dtype, size)
        if param.device.type == "cuda":
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            matte = spec.to_matte(model(batch)).float().clamp_(0, 1)
        mattes.extend(matte.split(1))
    return mattes
