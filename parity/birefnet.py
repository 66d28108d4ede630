"""Parity runners for BiRefNet / RMBG-2.0.

RMBG-2.0's code returns [m4, m3, m2, logits] in eval, and the oracle stores all four. The ZhengPeng7
folders store the final logits with both tile orders ('logits': einops image2patches,
'logits_legacy_patch_order': get_patches_batch); the encoder does not depend on the order, so it runs
once and the decoder twice: both orders are checked, whatever order the loaded entry has.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from models.birefnet import BiRefNet
from models.birefnet_zoo import ZOO
from parity import close, runner, tolerance_for


@contextmanager
def patch_order(model: BiRefNet, legacy: bool) -> Iterator[BiRefNet]:
    saved = model.legacy_patch_order
    model.legacy_patch_order = legacy
    try:
        yield model
    finally:
        model.legacy_patch_order = saved


@runner("rmbg-2.0", checkpoint="briaai/RMBG-2.0")
def rmbg_outputs(model, case, ctx):
    outs = model.forward_with_aux(ctx.to(case["image"]))
    return [
        close(name, out, case[name], tolerance_for(ctx.manifest, name))
        for name, out in zip(("aux_m4", "aux_m3", "aux_m2", "logits"), outs)
    ]


# Every other entry of the zoo has one of these two networks and differs only in name, size, download,
# file format or patch order: its own entry loads the stand-in (tests/parity), the cases run here once.
SWIN_T = tuple(r.repo for r in ZOO if r.backbone == "swin_v1_t" and r.repo != "ZhengPeng7/BiRefNet_lite")
SWIN_L = tuple(r.repo for r in ZOO if r.backbone == "swin_v1_l" and r.repo not in ("ZhengPeng7/BiRefNet",
                                                                                     "briaai/RMBG-2.0"))


@runner("birefnet-lite", checkpoint="ZhengPeng7/BiRefNet_lite", same_network=SWIN_T)
@runner("birefnet-general", checkpoint="ZhengPeng7/BiRefNet", same_network=SWIN_L)
def birefnet_both_orders(model, case, ctx):
    x = ctx.to(case["image"])
    features = (x, *model.encode(x))
    checks = []
    for output, legacy in (("logits", False), ("logits_legacy_patch_order", True)):
        with patch_order(model, legacy):
            logits = model.decoder(features)
        checks.append(close(output, logits, case[output], tolerance_for(ctx.manifest, output)))
    return checks
