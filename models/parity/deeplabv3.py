"""Parity runner for DeepLabV3: the 21-class logits of the main head at the input size."""
from __future__ import annotations

from models.parity import close, runner


@runner("deeplabv3", checkpoint="deeplabv3")
def deeplab_logits(model, case, manifest):
    param = next(model.parameters())
    out = model(case["x"].to(param.device, param.dtype))
    return [close("out", out, case["out"], manifest["tolerance"])]
