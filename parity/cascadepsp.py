"""Parity runners for CascadePSP: the network's logits, and carvekit's whole refinement procedure.

The refinement folder holds no checkpoint of its own: its cases were made with the network folder's
oracle checkpoint at the seed in each case's meta (3), so the runner loads that one itself, through
the same published-file path as `parity.run` (`ctx.model_for`).
"""
from __future__ import annotations

import torch

from parity import close, runner
from pipeline.carvekit.cascadepsp import network_inputs, process_high_res, process_single_pass, refine


@runner("cascadepsp", checkpoint="cascadepsp", same_format=("cascadepsp-carveset",))
def cascadepsp_logits(model, case, ctx):
    inter_s8 = case.get("inter_s8")
    out = model(ctx.to(case["x"]), ctx.to(case["seg"]), None if inter_s8 is None else ctx.to(inter_s8))
    expected = sorted(k for k in case if k.startswith("out_"))
    if sorted(out) != expected:
        return [("outputs", {"missing_or_extra": float(len(set(out) ^ set(expected)))}, False)]
    return [close(name, out[name], case[name], ctx.manifest["tolerance"]) for name in expected]


def _u8_check(output: str, ours: torch.Tensor, expected: torch.Tensor, max_abs: float) -> tuple[str, dict[str, float], bool]:
    if ours.shape != expected.shape:
        return output, {"shape_mismatch": 1.0}, False
    diff = (ours.int() - expected.int()).abs()
    figures = {"max_abs": float(diff.max()), "pixels_off": float((diff > 0).sum())}
    return output, figures, figures["max_abs"] <= max_abs


@runner("cascadepsp-refine")
def cascadepsp_refine(_model, case, ctx):
    meta = case["meta"]
    model = ctx.model_for("cascadepsp", "cascadepsp")
    tol = ctx.manifest["tolerance"]
    mask_size = int(meta["input_tensor_size"])
    accel_size = int(meta["processing_accelerate_image_size"])
    threshold = int(meta["mask_binary_threshold"])
    fast = bool(meta["global_step_only"])
    image = ctx.to(case["image"]).permute(2, 0, 1)[None]
    mask = ctx.to(case["mask"])[None, None]

    im, seg = network_inputs(image[0], mask[0], accel_size, threshold)
    checks = [close("net_im", im, case["net_im"], tol["pred"]), close("net_seg", seg, case["net_seg"], tol["pred"])]
    # The procedure on the stored network inputs, so that `pred` is judged apart from preprocessing.
    process = process_single_pass if fast else process_high_res
    pred = process(model, ctx.to(case["net_im"]), ctx.to(case["net_seg"]), mask_size)
    checks.append(close("pred", pred, case["pred"], tol["pred"]))
    refined = refine(model, image, mask, fast=fast, mask_size=mask_size, accel_size=accel_size, mask_threshold=threshold)
    checks.append(_u8_check("refined", refined[0, 0].cpu(), case["refined"], tol["refined_u8_max_abs"]))
    return checks
