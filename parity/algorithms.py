"""Parity runners for non-neural steps: BiRefNet's foreground estimation, carvekit's trimap and
compositing, on the run's device. The oracle stores images HWC (as the original numpy/PIL code);
ours are [B,C,H,W]."""
from __future__ import annotations

import torch

from imaging.compose import carvekit_apply_mask, carvekit_extract_alpha
from imaging.foreground import blur_fusion, estimate_foreground, estimate_foreground_u8
from parity import close, runner, tolerance_for
from pipeline.carvekit.trimap import make_trimap


def bchw(x: torch.Tensor) -> torch.Tensor:
    """HWC or HW oracle array -> [1,C,H,W]."""
    return (x[..., None] if x.dim() == 2 else x).permute(2, 0, 1)[None]


def exact(output: str, ours: torch.Tensor, expected: torch.Tensor) -> tuple[str, dict[str, float], bool]:
    ours = ours.cpu()
    if ours.shape != expected.shape:
        return output, {"shape_mismatch": 1.0}, False
    diff = (ours.to(torch.int64) - expected.to(torch.int64)).abs()
    figures = {"max_abs": float(diff.max()), "n_differing": float((diff > 0).sum())}
    return output, figures, figures["max_abs"] == 0 and ours.dtype == expected.dtype


def uint8_close(output: str, ours: torch.Tensor, expected: torch.Tensor, tol: dict) -> tuple[str, dict[str, float], bool]:
    """uint8 outputs: off by at most tol['max_abs'] on at most tol['max_fraction_differing'] of values."""
    ours = ours.cpu()
    if ours.shape != expected.shape or ours.dtype != expected.dtype:
        return output, {"shape_mismatch": 1.0}, False
    diff = (ours.to(torch.int64) - expected.to(torch.int64)).abs()
    figures = {"max_abs": float(diff.max()), "fraction_differing": float((diff > 0).double().mean())}
    passed = figures["max_abs"] <= tol["max_abs"] and figures["fraction_differing"] <= tol["max_fraction_differing"]
    return output, figures, passed


@runner("refine-foreground")
def refine_foreground(_model, case, ctx):
    r = ctx.manifest["source"]["config"]["r"]
    image, alpha = bchw(ctx.to(case["image"])), bchw(ctx.to(case["alpha"]))
    image_u8, mask_u8 = bchw(ctx.to(case["image_u8"])), bchw(ctx.to(case["mask_u8"]))
    checks = []
    for flavour, suffix in (("torch", "torch"), ("opencv", "cv2")):
        # The torch outputs are stored [1,3,H,W]; the cv2 ones HWC.
        as_stored = (lambda x: x) if suffix == "torch" else (lambda x: x[0].permute(1, 2, 0))
        fg = estimate_foreground(image, alpha, r, flavour)
        _, blurred_bg = blur_fusion(image, image, image, alpha, r, flavour)
        for name, ours in ((f"fg_{suffix}", fg), (f"blur_B_r90_{suffix}", blurred_bg)):
            checks.append(close(name, as_stored(ours), case[name], tolerance_for(ctx.manifest, name)))
        name = f"fg_u8_{suffix}"
        fg_u8 = estimate_foreground_u8(image_u8, mask_u8, r, flavour)
        checks.append(uint8_close(name, fg_u8[0].permute(1, 2, 0), case[name], tolerance_for(ctx.manifest, name)))
    return checks


@runner("carvekit-trimap")
def carvekit_trimap(_model, case, ctx):
    config = ctx.manifest["source"]["config"]
    assert config["filter_threshold"] < 0, "low_prob_filter is not implemented (a no-op at -1)"
    trimap = make_trimap(
        bchw(ctx.to(case["mask"])),
        prob_threshold=config["prob_threshold"],
        dilation=config["kernel_size"],
        erosion=config["erosion_iters"],
    )
    return [exact("trimap", trimap[0, 0], case["trimap"])]


@runner("carvekit-apply-mask")
def carvekit_compose(_model, case, ctx):
    rgba = carvekit_apply_mask(bchw(ctx.to(case["image"])), bchw(ctx.to(case["alpha"])))
    # extract_alpha_channel is fed the stored rgba, so each output is checked on its own.
    alpha_rgba = carvekit_extract_alpha(bchw(ctx.to(case["rgba"])))
    return [
        exact("rgba", rgba[0].permute(1, 2, 0), case["rgba"]),
        exact("extract_alpha_rgba", alpha_rgba[0].permute(1, 2, 0), case["extract_alpha_rgba"]),
    ]
