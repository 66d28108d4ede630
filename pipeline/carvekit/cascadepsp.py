"""Mask refinement with CascadePSP, as carvekit's CascadePSP wrapper does it (freezed_carvekit_2023).

carvekit's recipe for one image (its defaults; its knob names in brackets):
  PRE     image and mask are Pillow-thumbnailed (BICUBIC, reducing_gap 2.0) to fit
          accel_size x accel_size [processing_accelerate_image_size=2048; 0 disables]; the image is
          ImageNet-normalised, the mask binarised (> mask_threshold [mask_binary_threshold=127]) to
          {-1, 1}.
  GLOBAL  the pair is resized so that its longer side is mask_size [input_tensor_size=900] (area
          when shrinking, bicubic/bilinear when enlarging) and refined once.
  LOCAL   (skipped when fast [global_step_only=False]) at the thumbnail's resolution, crops of
          mask_size x mask_size every mask_size//2 - 32 pixels are refined again, starting from the
          global result binarised at 0.5 (as seg) and its 1/4-scale estimate (as the first-pass
          estimate); crops that are more than 90% or less than 10% foreground are skipped; the
          crops' predictions, less a 16 px margin on inner sides, are averaged, and pixels no crop
          covers keep the binarised global result.
  POST    prediction * 255 truncated to uint8, Pillow-resized (BICUBIC) back to the mask's size.

carvekit resizes with Pillow on 8-bit images; `pil_bicubic_resize`/`pil_thumbnail` (imaging/resample.py)
reproduce Pillow's fixed-point arithmetic exactly with torch ops, so the whole procedure runs on the
model's device.
Images are refined one at a time (carvekit's batch_size=1 path, its default): which crops run
depends on each image's content.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from imaging.errors import CallerValueError
from imaging.resample import pil_bicubic_resize, pil_thumbnail
from imaging.tensors import constant
from models.spec import IMAGENET_MEAN, IMAGENET_STD
from pipeline.carvekit.params import DEFAULTS, ChainParams

MASK_SIZE = DEFAULTS.refine_mask_size
ACCEL_SIZE = DEFAULTS.refine_accel_size
MASK_THRESHOLD = DEFAULTS.refine_mask_binary_threshold
CROP_MARGIN = 16  # carvekit's `padding`: inner crop borders are dropped when pasting
INTEREST = (0.1, 0.9)  # crops with a foreground fraction outside this range are not refined


def _resize_max_side(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """carvekit's resize_max_side: interpolate by the scale factor that brings the longer side to `size`."""
    ratio = size / max(x.shape[-2:])
    if mode == "area":
        return F.interpolate(x, scale_factor=ratio, mode=mode)
    return F.interpolate(x, scale_factor=ratio, mode=mode, align_corners=False)


def padded_forward(
    model: nn.Module, im: torch.Tensor, seg: torch.Tensor, inter_s8: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """carvekit's safe_forward: (sigmoid out_224, sigmoid out_56_2), the net run on inputs padded to /8.

    When either side is not a multiple of 8, BOTH sides grow to (n // 8 + 1) * 8, so a side that is
    already a multiple still gains 8 pixels (this changes the result). The padding is at the
    bottom/right: 0 for the image, -1 (background) for the masks.
    """
    height, width = seg.shape[-2:]
    if height % 8 or width % 8:
        pad = (0, (width // 8 + 1) * 8 - width, 0, (height // 8 + 1) * 8 - height)
        im = F.pad(im, pad, value=0.0)
        seg = F.pad(seg, pad, value=-1.0)
        if inter_s8 is not None:
            inter_s8 = F.pad(inter_s8, pad, value=-1.0)
    out = model(im, seg, inter_s8)
    crop = (..., slice(0, height), slice(0, width))
    return torch.sigmoid(out["out_224"][crop]), torch.sigmoid(out["out_56_2"][crop])


def crop_stride(mask_size: int) -> int:
    """carvekit's step between local crops, mask_size // 2 - 2 * CROP_MARGIN; a size that leaves none
    is the caller's refine_mask_size (the original divides by the step)."""
    step = mask_size // 2 - 2 * CROP_MARGIN
    if step <= 0:
        raise CallerValueError("refine_mask_size", f"{mask_size} leaves no step between CascadePSP's local crops "
                                                   f"(size // 2 - {2 * CROP_MARGIN}); use at least "
                                                   f"{2 * (2 * CROP_MARGIN + 1)}")
    return step


def _crop_starts(length: int, size: int, step: int) -> list[int]:
    """carvekit's crop origins along one side: every `step`, the last shifted back to end at the border."""
    return [max(0, min(i * step, length - size)) for i in range(length // step + 1)]


def _interesting_crops(positive: torch.Tensor, boxes: list[tuple[int, int, int, int]]) -> list[bool]:
    """Whether each crop (y0, y1, x0, x1) of a bool [H,W] map is refined (foreground fraction within
    INTEREST), decided on the device and read back in one transfer (deciding crop by crop would wait
    for the device once per crop). Counts come from an integral image in int64; count / area is one
    float32 division and the comparisons are float32, as the original's float32 mean of 0/1 values."""
    integral = F.pad(positive.to(torch.int64).cumsum(0).cumsum(1), (1, 0, 1, 0))
    corners = torch.tensor(boxes, dtype=torch.long, device=positive.device)
    y0, y1, x0, x1 = corners.unbind(1)
    counts = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    fraction = counts.float() / ((y1 - y0) * (x1 - x0)).float()
    return ((fraction <= INTEREST[1]) & (fraction >= INTEREST[0])).tolist()


def global_step(model: nn.Module, im: torch.Tensor, seg: torch.Tensor, mask_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole image refined at longer side `mask_size`: (pred_224, pred_56_2) at that size."""
    longest = max(im.shape[-2:])
    if longest > mask_size:
        im, seg = _resize_max_side(im, mask_size, "area"), _resize_max_side(seg, mask_size, "area")
    elif longest < mask_size:
        im, seg = _resize_max_side(im, mask_size, "bicubic"), _resize_max_side(seg, mask_size, "bilinear")
    return padded_forward(model, im, seg)


def process_high_res(model: nn.Module, im: torch.Tensor, seg: torch.Tensor, mask_size: int = MASK_SIZE) -> torch.Tensor:
    """carvekit's process_high_res_im for one image: global step, then local crops -> [1,1,H,W] in [0,1].

    carvekit also resizes the input and the result by a factor of 1 (area, and bilinear with
    align_corners=True); both are identities and are left out.
    """
    height, width = seg.shape[-2:]
    pred_224, pred_56 = global_step(model, im, seg, mask_size)
    coarse = (F.interpolate(pred_224, size=(height, width), mode="bilinear", align_corners=False) > 0.5).to(im.dtype) * 2 - 1
    coarse_56 = F.interpolate(pred_56, size=(height, width), mode="bilinear", align_corners=False) * 2 - 1

    combined = torch.zeros_like(seg)
    weight = torch.zeros_like(seg)
    step = crop_stride(mask_size)
    # x outer, y inner, as carvekit; the order fixes the summation order of overlapping crops.
    crops = list(dict.fromkeys((y0, x0) for x0 in _crop_starts(width, mask_size, step)
                               for y0 in _crop_starts(height, mask_size, step)))
    boxes = [(y0, min(height, y0 + mask_size), x0, min(width, x0 + mask_size)) for y0, x0 in crops]
    for (y0, y1, x0, x1), interesting in zip(boxes, _interesting_crops(coarse[0, 0] > 0, boxes)):
        if not interesting:
            continue
        part = (..., slice(y0, y1), slice(x0, x1))
        pred, _ = padded_forward(model, im[part], coarse[part], coarse_56[part])
        # Drop a margin on the sides that are inside the image, where the crop lacks context.
        top = CROP_MARGIN if y0 else 0
        left = CROP_MARGIN if x0 else 0
        bottom = CROP_MARGIN if y1 != height else 0
        right = CROP_MARGIN if x1 != width else 0
        inner = (..., slice(y0 + top, y1 - bottom), slice(x0 + left, x1 - right))
        combined[inner] += pred[..., top : pred.shape[-2] - bottom, left : pred.shape[-1] - right]
        weight[inner] += 1
    return torch.where(weight == 0, coarse / 2 + 0.5, combined / weight)


def process_single_pass(model: nn.Module, im: torch.Tensor, seg: torch.Tensor, mask_size: int = MASK_SIZE) -> torch.Tensor:
    """carvekit's process_im_single_pass (global step only) -> [1,1,H,W] in [0,1]."""
    height, width = seg.shape[-2:]
    pred, _ = global_step(model, im, seg, mask_size)
    if max(height, width) < mask_size:
        return F.interpolate(pred, size=(height, width), mode="area")
    if max(height, width) > mask_size:
        return F.interpolate(pred, size=(height, width), mode="bilinear", align_corners=True)
    return pred


def network_inputs(
    image: torch.Tensor, mask: torch.Tensor, accel_size: int = ACCEL_SIZE, mask_threshold: int = MASK_THRESHOLD
) -> tuple[torch.Tensor, torch.Tensor]:
    """carvekit's data_preprocessing of one uint8 [3,H,W] image and uint8 [1,H,W] mask -> [1,3,h,w], [1,1,h,w].

    mask_threshold 0 (or outside 0..255) keeps the mask's grey levels instead of binarising it.
    """
    if accel_size > 0:
        image, mask = pil_thumbnail(image, accel_size), pil_thumbnail(mask, accel_size)
    mean = constant(IMAGENET_MEAN, image.device, shape=(3, 1, 1))
    std = constant(IMAGENET_STD, image.device, shape=(3, 1, 1))
    im = (image.float() / 255 - mean) / std  # torchvision's ToTensor + Normalize
    if 0 < mask_threshold <= 255:
        mask = (mask > mask_threshold).to(torch.uint8) * 255
    seg = (mask.float() / 255 - 0.5) / 0.5
    return im[None], seg[None]


def check_refine_params(params: ChainParams) -> None:
    """CallerValueError now, before any work, for a refine_mask_size the chain's refinement cannot run at."""
    if params.post == "cascade_fba" and not params.refine_global_only:
        crop_stride(params.refine_mask_size)


def refine(
    model: nn.Module,
    image: torch.Tensor,
    mask: torch.Tensor,
    fast: bool = False,
    mask_size: int = MASK_SIZE,
    accel_size: int = ACCEL_SIZE,
    mask_threshold: int = MASK_THRESHOLD,
) -> torch.Tensor:
    """Refine uint8 masks [B,1,H,W] of uint8 RGB images [B,3,H,W] -> uint8 [B,1,H,W], as carvekit does.

    `model` is a loaded CascadePSP RefinementModule (registry name "cascadepsp"); inputs go to its
    device and dtype. fast=True runs the global step only (carvekit's global_step_only).
    """
    param = next(model.parameters())
    refined = []
    for one_image, one_mask in zip(image, mask):
        height, width = one_mask.shape[-2:]
        im, seg = network_inputs(one_image.to(param.device), one_mask.to(param.device), accel_size, mask_threshold)
        im, seg = im.to(param.dtype), seg.to(param.dtype)
        process = process_single_pass if fast else process_high_res
        pred = process(model, im, seg, mask_size)
        out = (pred[0].float() * 255).to(torch.uint8)  # truncation, as numpy's astype("uint8")
        refined.append(pil_bicubic_resize(out, (height, width)))
    return torch.stack(refined)
