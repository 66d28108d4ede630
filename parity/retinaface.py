"""Parity runner for facexlib's RetinaFace ResNet-50: the network's outputs and the decoding of them.

boxes_px / landms_px are decoded from OUR network outputs with pipeline/restoration/detection.py's priors and
decoding, so that a case checks the network and the decoding together (each has its own tolerance).
"""
from __future__ import annotations

import torch.nn.functional as F

from parity import close, runner, tolerance_for
from pipeline.restoration.detection import decode_boxes, decode_landmarks, prior_boxes


@runner("retinaface-resnet50", checkpoint="retinaface-resnet50")
def retinaface_outputs(model, case, ctx):
    height, width = case["input"].shape[-2:]
    out = model(ctx.to(case["input"]))
    priors = prior_boxes(height, width).to(ctx.device)
    scale = priors.new_tensor([width, height] * 5)
    ours = {
        "loc": out.loc,
        "conf": F.softmax(out.logits.float(), dim=-1),
        "landms": out.landmarks,
        "conf_logits": out.logits,
        "priors": priors,
        "boxes_px": decode_boxes(out.loc[0].float(), priors) * scale[:4],
        "landms_px": decode_landmarks(out.landmarks[0].float(), priors) * scale,
    }
    return [close(name, value, case[name], tolerance_for(ctx.manifest, name)) for name, value in ours.items()]
