"""Parity runner for BASNet: logits of the refined output (a hook on refunet, as the oracle)."""
from __future__ import annotations

from parity import close, runner


@runner("basnet", checkpoint="basnet")
def basnet_logits(model, case, ctx):
    captured = []
    hook = model.refunet.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        model(ctx.to(case["x"]))
    finally:
        hook.remove()
    return [close("logits", captured[0], case["logits"], ctx.manifest["tolerance"])]
