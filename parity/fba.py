"""Parity runners for FBA Matting: the network (fba-matting) and carvekit's FBAMatting wrapper (fba-wrapper).

The wrapper folder has no checkpoint of its own: it ran with oracle.checkpoint("fba-matting") at the
case's seed, so its runner loads that stand-in through the same loader path (`ctx.model_for`).
"""
from __future__ import annotations

import torch

from parity import close, oracle_module, runner
from pipeline.carvekit.fba_matting import fba_compose, fba_inputs, known_alpha

FLIP_VALUES = (76, 77)  # uint8(alpha * 255) of an alpha just above the 0.3 noise floor
FLIP_WINDOW = 1e-3  # how close to 0.3 the pre-filter alpha must be for a flip to be float noise


@runner("fba-matting", checkpoint="fba")
def fba_network(model, case, ctx):
    names = ("image", "two_chan_trimap", "image_n", "trimap_transformed")
    out = model(*(ctx.to(case[n]) for n in names))
    tol = ctx.manifest["tolerance"]
    return [close(name, out[:, sl], case[name], tol)
            for name, sl in (("alpha", slice(0, 1)), ("fg", slice(1, 4)), ("bg", slice(4, 7)))]


def alpha_check(ours: torch.Tensor, expected: torch.Tensor, pre_filter: torch.Tensor,
                tol: dict) -> tuple[dict[str, float], bool]:
    """The wrapper manifest's uint8 rule: few differing pixels, each off by <= max_abs or a noise-filter flip."""
    diff = (ours.int() - expected.int()).abs()
    differing = diff != 0
    pair = torch.stack((ours, expected))
    flip = differing & (pair.amin(0) == 0) & torch.isin(pair.amax(0), torch.tensor(FLIP_VALUES)) & (
        (pre_filter - 0.3).abs() <= FLIP_WINDOW
    )
    other = diff[differing & ~flip]
    figures = {
        "frac_differing": float(differing.float().mean()),
        "max_abs_not_flip": float(other.max()) if other.numel() else 0.0,
        "flips": float(flip.sum()),
    }
    passed = (figures["frac_differing"] <= tol["alpha_u8_frac_pixels_differing_max"]
              and figures["max_abs_not_flip"] <= tol["alpha_u8_max_abs"])
    return figures, passed


@runner("fba-wrapper")
def fba_wrapper(_model, case, ctx):
    model = ctx.model_for("fba-matting", "fba")
    meta = case["meta"]
    image = ctx.to(case["image"]).permute(2, 0, 1)[None]
    trimap = ctx.to(case["trimap"])[None, None]
    noise_filter = not meta["disable_noise_filter"]
    net_out = model(*(ctx.to(t) for t in fba_inputs(image, trimap, int(meta["input_tensor_size"]))))
    net_tol = oracle_module().manifest("fba-matting")["tolerance"]
    checks = [close("net_out", net_out, case["net_out"], net_tol)]

    from_stored = fba_compose(ctx.to(case["net_out"]), trimap, noise_filter)[0, 0]
    mismatched = float((from_stored.cpu() != case["alpha"]).sum())
    checks.append(("alpha_from_stored_net_out", {"differing": mismatched}, mismatched == 0))

    ours = fba_compose(net_out, trimap, noise_filter)[0, 0]
    figures, passed = alpha_check(ours.cpu(), case["alpha"], known_alpha(net_out, trimap)[0, 0].cpu(),
                                  ctx.manifest["tolerance"])
    checks.append(("alpha", figures, passed))
    return checks
