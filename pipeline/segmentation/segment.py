"""The segmentation step: a batch of images through one network to mattes at the network's size."""
from __future__ import annotations

import torch
from torch import nn

from imaging.tensors import free_bytes, in_model_format
from models.spec import ModelSpec
from pipeline.segmentation.preprocess import network_batch


def segmentation_input_size(spec: ModelSpec, seg_mask_size: int | None) -> tuple[int, int]:
    """The input size: the checkpoint's own, or a square `seg_mask_size` asked for by the job (checked
    against the checkpoint's `size_range` where it has one; SizeOutOfRange otherwise)."""
    if not seg_mask_size:
        return spec.preprocess.size
    if spec.preprocess.size_range is not None:
        spec.preprocess.size_range.check(seg_mask_size)
    return seg_mask_size, seg_mask_size


WORKSPACE_SHARE = 0.8  # of the free memory a forward's scratch may take: activations need the rest


class WorkTooLarge(ValueError):
    """A network input needs more scratch memory than the device has (the message is for the caller)."""


def fitting_batch(model: nn.Module, device: torch.device, batch_size: int, size: tuple[int, int]) -> int:
    """The largest batch up to `batch_size` whose scratch memory (networks that state it, e.g.
    BiRefNet's deformable convolutions) fits in the device's free memory; WorkTooLarge when not even
    one image fits, so a valid but oversized request is a clear error rather than an out-of-memory
    that would take a healthy worker down."""
    workspace = getattr(model, "workspace_bytes", None)
    if workspace is None:
        return batch_size
    free = int(free_bytes(device) * WORKSPACE_SHARE)
    for batch in range(batch_size, 0, -1):
        if workspace(batch, *size) <= free:
            return batch
    raise WorkTooLarge(
        f"seg_mask_size: a {size[1]}x{size[0]} network input needs about {workspace(1, *size) / 2**30:.1f} GiB of "
        f"scratch memory and {free / 2**30:.1f} GiB is free on {device}; use a smaller seg_mask_size")


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
    size = segmentation_input_size(spec, seg_mask_size)
    if spec.preprocess.fit == "thumbnail":
        batch_size = 1  # inputs keep their aspect ratio, so their shapes differ
    batch_size = fitting_batch(model, param.device, max(1, batch_size), size)
    mattes: list[torch.Tensor] = []
    for start in range(0, len(images), max(1, batch_size)):
        chunk = images[start:start + batch_size]
        batch = network_batch(chunk, spec.preprocess, param.device, param.dtype, size)
        batch = in_model_format(batch, model)
        with torch.inference_mode():
            matte = spec.to_matte(model(batch)).float().clamp_(0, 1)
        mattes.extend(matte.split(1))
    return mattes
