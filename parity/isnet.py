"""Parity runners for IS-Net: d1 logits against the oracle, and the real general-use weights' masks."""
from __future__ import annotations

from parity import close, runner


@runner("isnet", checkpoint="isnet", same_format=("isnet-general-use",))
def isnet_logits(model, case, ctx):
    logits = model.forward_logits(ctx.to(case["x"]))
    return [close("logits", logits, case["logits"], ctx.manifest["tolerance"])]
