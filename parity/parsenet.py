"""Parity runner for facexlib's ParseNet: the 19-class logits (every 4th pixel, and a full-resolution
crop), their argmax (what GFPGAN's paste-back consumes) and the image head, as the cases store them."""
from __future__ import annotations

import torch

from parity import close, runner, tolerance_for


def parsenet_input(face_u8: torch.Tensor) -> torch.Tensor:
    # FaceRestoreHelper.paste_faces_to_input_image: float32 division by 255, then normalize(0.5, 0.5).
    return (face_u8.float() / 255 - 0.5) / 0.5


def argmax_check(ours: torch.Tensor, expected: torch.Tensor, max_mismatch: int) -> tuple[str, dict[str, float], bool]:
    if ours.shape != expected.shape:
        return "mask_argmax", {"shape_mismatch": 1.0}, False
    mismatch = int((ours.cpu().to(expected.dtype) != expected).sum())
    return "mask_argmax", {"pixels_off": float(mismatch)}, mismatch <= max_mismatch


@runner("parsenet", checkpoint="parsenet")
def parsenet_outputs(model, case, ctx):
    logits, image = model(ctx.to(parsenet_input(case["input_u8"])))
    tol = ctx.manifest["tolerance"]
    return [
        close("mask_logits_s4", logits[:, :, ::4, ::4], case["mask_logits_s4"], tolerance_for(ctx.manifest, "mask_logits_s4")),
        close("mask_logits_crop", logits[:, :, 224:288, 224:288], case["mask_logits_crop"],
              tolerance_for(ctx.manifest, "mask_logits_crop")),
        argmax_check(logits.argmax(1), case["mask_argmax"], int(tol["argmax_mismatch_pixels_max"])),
        close("img_s4", image[:, :, ::4, ::4], case["img_s4"], tolerance_for(ctx.manifest, "img_s4")),
    ]
