"""Parity runners for FBA Matting: the network (fba-matting) and carvekit's FBAMatting wrapper (fba-wrapper).

The wrapper folder has no checkpoint of its own: it ran with oracle.checkpoint("fba-matting"), so its
runner loads that stand-in itself (CPU, float32) through the same loader path, once per process.
"""
from __future__ import annotations

from functools import cache

import torch
from torch import nn

from models.parity import close, load_oracle_model, oracle_module, runner
from pipeline.fba_matting import fba_compose, fba_inputs, known_alpha

FLIP_VALUES = (76, 77)  # uint8(alpha * 255) of an alpha just above the 0.3 noise floor
FLIP_WINDOW = 1e-3  # how close to 0.3 the pre-filter alpha must be for a flip to be float noise


@runner("fba-matting", checkpoint="fba")
def fba_network(model, case, manifest):
    param = next(model.parameters())
    names = ("image", "two_chan_trimap", "image_n", "trimap_transformed")
    out = model(*(case[n].to(param.device, param.dtype) for n in names))
    tol = manifest["tolerance"]
    return [close(name, out[:, sl], case[name], tol)
            for name, sl in (("alpha", slice(0, 1)), ("fg", slice(1, 4)), ("bg", slice(4, 7)))]


@cache
def _wrapper_model() -> nn.Module:
    return load_oracle_model("fba-matting", "fba", seed=0, device="cpu", dtype=torch.float32)


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
def fba_wrapper(_model, case, manifest):
    model = _wrapper_model()
    meta = case["meta"]
    image = case["image"].permute(2, 0, 1)[None]
    trimap = case["trimap"][None, None]
    noise_filter = not meta["disable_noise_filter"]
    net_out = model(*fba_inputs(image, trimap, int(meta["input_tensor_size"])))
    net_tol = oracle_module().manifest("fba-matting")["tolerance"]
    checks = [close("net_out", net_out, case["net_out"], net_tol)]

    from_stored = fba_compose(case["net_out"], trimap, noise_filter)[0, 0]
    mismatched = float((from_stored != case["alpha"]).sum())
    checks.append(("alpha_from_stored_net_out", {"differing": mismatched}, mismatched == 0))

    ours = fba_compose(net_out, trimap, noise_filter)[0, 0]
    figures, passed = alpha_check(ours, case["alpha"], known_alpha(net_out, trimap)[0, 0], manifest["tolerance"])
    checks.append(("alpha", figures, passed))
    return checks
