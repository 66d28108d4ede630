"""Parity runners for IS-Net: d1 logits against the oracle, and the real general-use weights' masks."""
from __future__ import annotations

from models.parity import close, runner


@runner("isnet", checkpoint="isnet")
def isnet_logits(model, case, manifest):
    param = next(model.parameters())
    logits = model.forward_logits(case["x"].to(param.device, param.dtype))
    return [close("logits", logits, case["logits"], manifest["tolerance"])]
