"""Parity runner for GFPGAN v1.4 (and v1.3, the same format): the restored face with the stored
noise maps (randomize_noise=False), from the uint8 face through GFPGANer's normalisation."""
from __future__ import annotations

import torch

from parity import close, runner, tolerance_for


def gfpgan_input(face_u8: torch.Tensor) -> torch.Tensor:
    # GFPGANer: img2tensor(bgr / 255.) divides in float64, casts to float32, then normalize(0.5, 0.5).
    return ((face_u8.double() / 255).float() - 0.5) / 0.5


@runner("gfpgan-v1.4", checkpoint="gfpgan-v1.4", same_format=("gfpgan-v1.3",))
def gfpgan_output(model, case, ctx):
    out = model(ctx.to(gfpgan_input(case["input_u8"])))
    return [close("output", out, case["output"], tolerance_for(ctx.manifest, "output"))]
