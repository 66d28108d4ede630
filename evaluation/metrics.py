"""Matte quality: the alphamatting.com benchmark's errors, and two segmentation-style ones.

Definitions follow Rhemann et al., "A Perceptually Motivated Online Benchmark for Image Matting"
(CVPR 2009) as the benchmark's evaluation code computes them. Alphas are [H,W] tensors in [0,1]
(`unit_alpha` turns 8-bit ones into that); `region`, when given, is an [H,W] bool tensor that
restricts the sums to its pixels (the benchmark's: the trimap's unknown band, `unknown_region`).
Gradients and connected components are always computed on the whole image, only summed over the region.

- SAD: sum of |pred - true|, / 1000.
- MSE: mean of (pred - true)^2 over the region's pixels.
- Gradient: sum of (|grad pred| - |grad true|)^2, / 1000, with gradients from first-derivative-of-
  Gaussian filters, sigma 1.4.
- Connectivity: sum of |phi(pred) - phi(true)|, / 1000, where phi(a) = 1 - d * (d >= 0.15) and
  d = a - l, l being the highest threshold (steps of 0.1) at which the pixel still belongs to the largest
  4-connected component of {pred >= t and true >= t}.
- MAD: mean of |pred - true|; IoU of the masks alpha >= 0.5.

Everything is plain torch on the alphas' device; the connected components are labelled here
(`label_components`), scipy is not needed.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

GRADIENT_SIGMA = 1.4
CONNECTIVITY_STEP = 0.1
CONNECTIVITY_MIN_DROP = 0.15  # phi ignores a drop below the connectivity level smaller than this


def unit_alpha(alpha: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """An alpha in [0,1]: uint8 values v become v/255 (correctly rounded, so that 51/255 equals the
    threshold 0.2 exactly), float alphas are only cast."""
    if alpha.dtype == torch.uint8:
        table = torch.tensor([v / 255 for v in range(256)], dtype=dtype, device=alpha.device)
        return table[alpha.long()]
    return alpha.to(dtype)


def unknown_region(trimap: torch.Tensor) -> torch.Tensor:
    """The unknown band of an 8-bit trimap (0 background, 255 foreground, 128 unknown): every pixel that
    is neither 0 nor 255, which for the benchmark's trimaps is exactly trimap == 128."""
    return (trimap != 0) & (trimap != 255)


def _select(values: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
    return values if region is None else values[region]


def _check(pred: torch.Tensor, true: torch.Tensor, region: torch.Tensor | None) -> None:
    if pred.shape != true.shape or pred.dim() != 2:
        raise ValueError(f"alphas must be [H,W] of one shape, got {tuple(pred.shape)} and {tuple(true.shape)}")
    if region is not None and (region.shape != pred.shape or region.dtype != torch.bool):
        raise ValueError("region must be an [H,W] bool tensor of the alphas' shape")


def sad(pred: torch.Tensor, true: torch.Tensor, region: torch.Tensor | None = None) -> float:
    """Sum of absolute differences / 1000."""
    _check(pred, true, region)
    return float(_select((pred - true).abs(), region).sum()) / 1000


def mse(pred: torch.Tensor, true: torch.Tensor, region: torch.Tensor | None = None) -> float:
    """Mean squared error over the region's pixels (0 for an empty region)."""
    _check(pred, true, region)
    values = _select((pred - true).square(), region)
    return float(values.mean()) if values.numel() else 0.0


def mad(pred: torch.Tensor, true: torch.Tensor, region: torch.Tensor | None = None) -> float:
    """Mean absolute difference over the region's pixels (0 for an empty region)."""
    _check(pred, true, region)
    values = _select((pred - true).abs(), region)
    return float(values.mean()) if values.numel() else 0.0


def iou(pred: torch.Tensor, true: torch.Tensor, region: torch.Tensor | None = None, threshold: float = 0.5) -> float:
    """Intersection over union of alpha >= threshold; 1 when both masks are empty."""
    _check(pred, true, region)
    a, b = _select(pred >= threshold, region), _select(true >= threshold, region)
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else 1.0


# -- gradient error -----------------------------------------------------------------------------
def gaussian_derivative_filters(
    sigma: float = GRADIENT_SIGMA, epsilon: float = 1e-2, dtype: torch.dtype = torch.float64, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(gauss, dgauss): the 1-D Gaussian and its derivative, sampled at -h..h where h is the half-width
    at which the Gaussian falls to `epsilon` (h = 4 for sigma 1.4), both scaled by the same factor so
    that the 2-D derivative filter gauss (x) dgauss has unit L2 norm."""
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * epsilon)))
    r = torch.arange(-half, half + 1, dtype=dtype, device=device)
    gauss = torch.exp(-r.square() / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
    dgauss = -r * gauss / sigma**2
    norm = (gauss.square().sum() * dgauss.square().sum()).sqrt().sqrt()
    return gauss / norm, dgauss / norm


def _filter_1d(image: torch.Tensor, taps: torch.Tensor, dim: int) -> torch.Tensor:
    """Correlate an [H,W] image with 1-D `taps` along `dim`, borders replicated."""
    half, size = taps.numel() // 2, image.shape[dim]
    rows = torch.arange(-half, size + half, device=image.device).clamp_(0, size - 1)
    padded = image.index_select(dim, rows)
    out = padded.narrow(dim, 0, size) * taps[0]
    for k in range(1, taps.numel()):
        out.add_(padded.narrow(dim, k, size), alpha=float(taps[k]))
    return out


def gradient_magnitude(alpha: torch.Tensor, sigma: float = GRADIENT_SIGMA) -> torch.Tensor:
    """[H,W] |grad alpha| with Gaussian-derivative filters (smooth across, differentiate along; the
    2-D filter is separable), borders replicated."""
    gauss, dgauss = gaussian_derivative_filters(sigma, dtype=alpha.dtype, device=alpha.device)
    gx = _filter_1d(_filter_1d(alpha, gauss, 0), dgauss, 1)
    gy = _filter_1d(_filter_1d(alpha, gauss, 1), dgauss, 0)
    return (gx.square() + gy.square()).sqrt()


def gradient_error(
    pred: torch.Tensor, true: torch.Tensor, region: torch.Tensor | None = None, sigma: float = GRADIENT_SIGMA
) -> float:
    """Sum of squared differences of the gradient magnitudes / 1000."""
    _check(pred, true, region)
    diff = (gradient_magnitude(pred, sigma) - gradient_magnitude(true, sigma)).square()
    return float(_select(diff, region).sum()) / 1000


# -- connectivity error -------------------------------------------------------------------------
def label_components(mask: torch.Tensor) -> torch.Tensor:
    """4-connected components of an [H,W] bool mask: each True pixel gets the flat index (y*W + x) of
    the first pixel of its component in row-major order, each False pixel -1.

    Horizontal runs of True pixels are the nodes (a cumulative sum labels them at once); two runs on
    consecutive rows are joined where they overlap, one edge per overlap. The runs are then merged by
    union-find done in parallel: every round hooks, for each edge whose ends lie in different trees,
    the larger root under the smaller one, then compresses every path to its root (pointer jumping).
    A root touching another tree is hooked or has one hooked onto it, so the number of trees still
    touching another at least halves each round: O(log n) rounds of whole-tensor work.
    """
    if mask.dim() != 2 or mask.dtype != torch.bool:
        raise ValueError("mask must be an [H,W] bool tensor")
    height, width = mask.shape
    left = F.pad(mask[:, :-1], (1, 0), value=False)  # the pixel to the left is True
    starts = (mask & ~left).flatten()
    run = (torch.cumsum(starts, 0) - 1).view(height, width)  # run of each True pixel, row-major order
    start_pixel = torch.nonzero(starts).flatten()  # [R] flat index of each run's first pixel
    if not start_pixel.numel():
        return torch.full_like(run, -1)
    down = mask[:-1] & mask[1:]  # True pixels with a True pixel below
    first = down & ~F.pad(down[:, :-1], (1, 0), value=False)  # one per overlap of two runs
    u, v = run[:-1][first], run[1:][first]
    parent = torch.arange(start_pixel.numel(), device=mask.device)
    while u.numel():
        pu, pv = parent[u], parent[v]
        apart = pu != pv
        u, v, pu, pv = u[apart], v[apart], pu[apart], pv[apart]  # joined ends stay joined
        if not u.numel():
            break
        parent.scatter_reduce_(0, torch.maximum(pu, pv), torch.minimum(pu, pv), reduce="amin")
        while True:
            jumped = parent[parent]
            if torch.equal(jumped, parent):
                break
            parent = jumped
    # The root of a tree is its smallest run, whose first pixel comes first in row-major order.
    labels = start_pixel[parent][run.clamp_min(0)]
    return torch.where(mask, labels, -1)


def largest_component(mask: torch.Tensor) -> torch.Tensor:
    """The largest 4-connected component of an [H,W] bool mask (the first in row-major order on a tie;
    all False when the mask is empty)."""
    labels = label_components(mask)
    if not bool(mask.any()):
        return mask.clone()
    counts = torch.bincount(labels[mask], minlength=mask.numel())
    return labels == int(counts.argmax())


def connectivity_levels(pred: torch.Tensor, true: torch.Tensor, step: float = CONNECTIVITY_STEP) -> torch.Tensor:
    """[H,W] l: the highest threshold t (0, step, 2 step, ..., 1) such that the pixel belongs to the
    largest component of {pred >= s and true >= s} for every threshold s in (0, t]."""
    steps = round(1 / step)
    thresholds = [k / steps for k in range(steps + 1)]  # k/10, not k*0.1: 0.6 must be 153/255 exactly
    level = torch.full_like(pred, -1)
    for k in range(1, steps + 1):
        t = torch.tensor(thresholds[k], dtype=pred.dtype, device=pred.device)
        omega = largest_component((pred >= t) & (true >= t))
        level[(level == -1) & ~omega] = thresholds[k - 1]
    level[level == -1] = 1
    return level


def connectivity_error(
    pred: torch.Tensor, true: torch.Tensor, region: torch.Tensor | None = None, step: float = CONNECTIVITY_STEP
) -> float:
    """Sum of |phi(pred) - phi(true)| / 1000, phi(a) = 1 - d * (d >= 0.15) with d = a - level."""
    _check(pred, true, region)
    level = connectivity_levels(pred, true, step)

    def phi(alpha: torch.Tensor) -> torch.Tensor:
        d = alpha - level
        return 1 - d * (d >= CONNECTIVITY_MIN_DROP)

    return float(_select((phi(pred) - phi(true)).abs(), region).sum()) / 1000


# -- all at once ---------------------------------------------------------------------------------
METRICS = ("sad", "mse", "grad", "conn", "mad", "iou")


def matte_errors(pred: torch.Tensor, true: torch.Tensor, region: torch.Tensor | None = None) -> dict[str, float]:
    """Every measure for one image. SAD, MSE, gradient and connectivity over `region` (the benchmark's
    unknown band) when given, else the whole image; MAD and IoU always over the whole image."""
    return {
        "sad": sad(pred, true, region),
        "mse": mse(pred, true, region),
        "grad": gradient_error(pred, true, region),
        "conn": connectivity_error(pred, true, region),
        "mad": mad(pred, true),
        "iou": iou(pred, true),
    }
