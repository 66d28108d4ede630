"""Parity runner for FaceRestoreHelper's alignment: OpenCV's LMEDS similarity, its inverses, and the crop.

The crop is warped with the STORED affine (as the manifest's tolerance note states), so that it judges
the warp alone; the affine of that case is checked like the others.
"""
from __future__ import annotations

import math

import torch

from imaging.warp import invert_affine_transform
from parity import close, runner
from pipeline.restoration.alignment import crop_face, estimate_affine_partial_lmeds, face_template, paste_affine


def _within(output: str, ours: torch.Tensor | None, expected: torch.Tensor, max_abs: float):
    if ours is None:
        return output, {"no_result": 1.0}, False
    return close(output, ours, expected, {"max_abs": max_abs, "rel_l2": math.inf})


def _u8_within(output: str, ours: torch.Tensor, expected: torch.Tensor, max_abs: int):
    diff = (ours.cpu().long() - expected.long()).abs()
    figures = {"max_abs": float(diff.max()), "values_off": float((diff > 0).sum())}
    return output, figures, ours.shape == expected.shape and figures["max_abs"] <= max_abs


@runner("face-align")
def face_align(_model, case, ctx):
    tol = ctx.manifest["tolerance"]
    meta = case["meta"]
    affine = estimate_affine_partial_lmeds(case["landmarks"], face_template(meta["face_size"]))
    checks = [_within("affine", affine, case["affine"], tol["affine_max_abs"])]
    if "inverse_affine" in case:
        upscale = meta["upscale_factor"]
        inverse = None if affine is None else invert_affine_transform(affine) * upscale
        pasted = None if affine is None else paste_affine(affine, upscale)
        checks.append(_within("inverse_affine", inverse, case["inverse_affine"], tol["inverse_affine_max_abs"]))
        checks.append(_within("inverse_affine_paste", pasted, case["inverse_affine_paste"], tol["inverse_affine_max_abs"]))
    if "cropped_face_bgr_u8" in case:
        image_rgb = ctx.to(case["image_bgr_u8"]).permute(2, 0, 1).flip(0)
        crop = crop_face(image_rgb, case["affine"], meta["face_size"]).flip(0).permute(1, 2, 0)
        checks.append(_u8_within("cropped_face", crop, case["cropped_face_bgr_u8"], tol["crop_u8_max_abs"]))
    return checks
