"""Parity runner for TRACER-B7: the fused logits, which our forward returns directly."""
from __future__ import annotations

from models.parity import close, runner


@runner("tracer-b7", checkpoint="tracer_b7")
def tracer_logits(model, case, manifest):
    param = next(model.parameters())
    logits = model(case["x"].to(param.device, param.dtype))
    return [close("logits", logits, case["logits"], manifest["tolerance"])]
