"""Parity runner for BASNet: logits of the refined output (a hook on refunet, as the oracle)."""
from __future__ import annotations

from models.parity import close, runner


@runner("basnet", checkpoint="basnet")
def basnet_logits(model, case, manifest):
    param = next(model.parameters())
    captured = []
    hook = model.refunet.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        model(case["x"].to(param.device, param.dtype))
    finally:
        hook.remove()
    return [close("logits", captured[0], case["logits"], manifest["tolerance"])]
