"""Parity runner for DeepLabV3: the 21-class logits of the main head at the input size."""
from __future__ import annotations

from parity import close, runner


@runner("deeplabv3", checkpoint="deeplabv3")
def deeplab_logits(model, case, ctx):
    out = model(ctx.to(case["x"]))
    return [close("out", out, case["out"], ctx.manifest["tolerance"])]
