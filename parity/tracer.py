"""Parity runner for TRACER-B7: the fused logits, which our forward returns directly."""
from __future__ import annotations

from parity import close, runner


@runner("tracer-b7", checkpoint="tracer_b7")
def tracer_logits(model, case, ctx):
    logits = model(ctx.to(case["x"]))
    return [close("logits", logits, case["logits"], ctx.manifest["tolerance"])]
