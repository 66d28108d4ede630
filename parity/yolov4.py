"""Parity runner for YOLOv4: the three raw head maps (hooks on head.conv2/conv10/conv18, as the
oracle), and the decoded boxes and confidences the network returns."""
from __future__ import annotations

import torch

from parity import close, runner, tolerance_for

HEAD_MAPS = {"head_x2": "conv2", "head_x10": "conv10", "head_x18": "conv18"}


def elementwise_close(
    output: str, ours: torch.Tensor, expected: torch.Tensor, tol: dict
) -> tuple[str, dict[str, float], bool]:
    """rel_l2, and max |ours - expected| / max(|expected|, 1) for outputs whose scale spans decades
    (box sizes are exp() of head values: one float32 step of a 1e10 box is ~1e3)."""
    a = ours.detach().double().cpu()
    e = expected.detach().double().cpu()
    if a.shape != e.shape:
        return output, {"shape_mismatch": 1.0}, False
    figures = {
        "elementwise_rel": float(((a - e).abs() / e.abs().clamp_min(1.0)).max()),
        "rel_l2": float((a - e).norm() / e.norm().clamp_min(1e-12)),
    }
    passed = figures["elementwise_rel"] <= tol["elementwise_rel"] and figures["rel_l2"] <= tol["rel_l2"]
    return output, figures, passed


@runner("yolov4", checkpoint="yolov4")
def yolov4_outputs(model, case, ctx):
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        getattr(model.head, conv).register_forward_hook(lambda _m, _i, out, name=name: captured.__setitem__(name, out))
        for name, conv in HEAD_MAPS.items()
    ]
    try:
        boxes, confs = model(ctx.to(case["x"]))
    finally:
        for hook in hooks:
            hook.remove()
    checks = [close(name, captured[name], case[name], tolerance_for(ctx.manifest, name)) for name in HEAD_MAPS]
    checks.append(elementwise_close("boxes", boxes, case["boxes"], tolerance_for(ctx.manifest, "boxes")))
    checks.append(close("confs", confs, case["confs"], tolerance_for(ctx.manifest, "confs")))
    return checks
