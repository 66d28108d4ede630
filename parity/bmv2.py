"""Parity runners for BackgroundMattingV2 (MattingRefine with the MobileNetV2 and ResNet-50 backbones).

Each case holds one input pair and the original's outputs for each refine mode it was run in (the
meta's `modes`, with the mode's constructor arguments in `constructor_args_<mode>`). One loaded network
runs every mode with the knobs passed to forward. The coarse outputs (pha_sm, fgr_sm, err_sm) do not
depend on the mode and are checked on every run; the selection map ref_sm must be identical.
"""
from __future__ import annotations

import json

import torch

from models.bmv2 import RefineParams
from parity import close, runner, tolerance_for

COARSE = ("pha_sm", "fgr_sm", "err_sm")


def refine_params(meta: dict, mode: str) -> RefineParams:
    """The original's constructor arguments of one mode as our run-time knobs."""
    args = json.loads(meta[f"constructor_args_{mode}"])
    defaults = RefineParams()
    return RefineParams(
        backbone_scale=args.get("backbone_scale", defaults.backbone_scale),
        mode=args["refine_mode"],
        sample_pixels=args.get("refine_sample_pixels", defaults.sample_pixels),
        threshold=args.get("refine_threshold", defaults.threshold),
        prevent_oversampling=args.get("refine_prevent_oversampling", defaults.prevent_oversampling),
    )


def identical(output: str, ours: torch.Tensor, expected: torch.Tensor) -> tuple[str, dict[str, float], bool]:
    if ours.shape != expected.shape:
        return output, {"shape_mismatch": 1.0}, False
    differing = float((ours.cpu().to(expected.dtype) != expected).sum())
    return output, {"differing": differing, "selected": float(expected.sum())}, differing == 0


def matting_refine(model, case, ctx):
    src, bgr = ctx.to(case["src"]), ctx.to(case["bgr"])
    checks = []
    for mode in case["meta"]["modes"]:
        out = model(src, bgr, refine_params(case["meta"], mode))
        if mode == case["meta"]["modes"][0]:
            checks += [close(name, getattr(out, name), case[name], tolerance_for(ctx.manifest, name))
                       for name in COARSE]
        checks += [close(f"{name}_{mode}", getattr(out, name), case[f"{name}_{mode}"],
                         tolerance_for(ctx.manifest, name)) for name in ("pha", "fgr")]
        checks.append(identical(f"ref_sm_{mode}", out.ref_sm, case[f"ref_sm_{mode}"]))
    return checks


runner("bmv2-mobilenetv2", checkpoint="bmv2-mobilenetv2")(matting_refine)
runner("bmv2-resnet50", checkpoint="bmv2-resnet50")(matting_refine)
