"""Parity runners for Real-ESRGAN: the RRDBNet outputs (x4plus, x2plus) and RealESRGANer's tiling
procedure (realesrgan-tile), whose cases were made with the x4plus oracle checkpoint.

The oracle stores the procedure's images in OpenCV's BGR order (HWC uint8) and its float outputs as
RGB NCHW; ours run in RGB, so the uint8 images are flipped on the way in and out."""
from __future__ import annotations

import torch

from parity import close, runner
from pipeline.restoration.upscale import quantise, upscale_float


@runner("realesrgan-x4plus", checkpoint="realesrgan-x4plus")
@runner("realesrgan-x2plus", checkpoint="realesrgan-x2plus")
def rrdbnet_output(model, case, ctx):
    return [close("output", model(ctx.to(case["input"])), case["output"], ctx.manifest["tolerance"])]


def _u8_within(output: str, ours: torch.Tensor, expected: torch.Tensor, max_abs: int) -> tuple[str, dict[str, float], bool]:
    if ours.shape != expected.shape or ours.dtype != expected.dtype:
        return output, {"shape_mismatch": 1.0}, False
    diff = (ours.int() - expected.int()).abs()
    figures = {"max_abs": float(diff.max()), "fraction_differing": float((diff > 0).double().mean())}
    return output, figures, figures["max_abs"] <= max_abs


@runner("realesrgan-tile")
def realesrgan_tile(_model, case, ctx):
    meta, tol = case["meta"], ctx.manifest["tolerance"]
    scale = int(meta["scale"])
    model = ctx.model_for("realesrgan-x4plus", "realesrgan-x4plus")
    rgb = (case["image_bgr_u8"].flip(-1).float() / 255).permute(2, 0, 1)[None]
    checks = []
    for tile, suffix in ((int(meta["tile"]), ""), (0, "_untiled")):
        out = upscale_float(model, rgb, scale, tile, int(meta["tile_pad"]), int(meta["pre_pad"]))
        checks.append(close(f"output_float{suffix}", out, case[f"output_float{suffix}"], tol[f"output_float{suffix}"]))
        # enhance(): clamp, then (x * 255).round() to uint8 (RGB -> BGR for the comparison).
        image = quantise(out[0].clamp(0, 1), 255).permute(1, 2, 0).flip(-1)
        checks.append(_u8_within(f"output_bgr_u8{suffix}", image, case[f"output_bgr_u8{suffix}"],
                                 tol["output_bgr_u8_max_abs"]))
    return checks
