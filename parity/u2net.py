"""Parity runners for the U^2-Net family: logits of the fused output (a hook on outconv, as the oracle)."""
from __future__ import annotations

import torch
from torch import nn

from parity import close, runner


def fused_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    captured = []
    hook = model.outconv.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        model(x)
    finally:
        hook.remove()
    return captured[0]


@runner("u2netp", checkpoint="u2netp")
@runner("u2net", checkpoint="u2net")
def u2net_logits(model, case, ctx):
    logits = fused_logits(model, ctx.to(case["x"]))
    return [close("logits", logits, case["logits"], ctx.manifest["tolerance"])]
