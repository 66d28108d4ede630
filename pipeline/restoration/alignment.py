"""5-point face alignment as FaceRestoreHelper does it (facexlib utils/face_restoration_helper.py).

align_warp_face: affine = cv2.estimateAffinePartial2D(landmarks, template, method=cv2.LMEDS)[0], then
cv2.warpAffine(image, affine, (512, 512), borderMode=BORDER_CONSTANT, borderValue=(135, 133, 132)).
get_inverse_affine: cv2.invertAffineTransform(affine) * upscale (the translation is scaled too);
paste_faces_to_input_image adds 0.5 * upscale to the translation when upscale > 1.

estimateAffinePartial2D with LMEDS (OpenCV 5.0 modules/3d/src/ptsetreg.cpp, the same code as 4.x
calib3d) is reproduced step by step, because a plain least-squares fit is not what it returns:
  * both point sets are cast to float32;
  * 13 two-point subsets (RANSACUpdateNumIters(0.99, 0.45, 2, 2000)) drawn by OpenCV's RNG seeded
    with (uint64)-1, redrawing a repeated index; with 2 points OpenCV's subset check always passes;
  * each subset gives the exact similarity through its 2 points (double); every point's squared
    residual is computed in float32 with the model cast to float; the model with the smallest median
    (element n/2 after nth_element: the 3rd smallest of 5; first one kept on ties) wins;
  * inliers: squared residual <= float(sigma^2), sigma = max(2.5 * 1.4826 * (1 + 5 / (n - 2)) *
    sqrt(min median), 0.001) (LMEDS ignores ransacReprojThreshold);
  * the similarity (a, b, tx, ty) is refined on the inliers by OpenCV's LevMarq (10 iterations,
    geodesic acceleration), reproduced in `_levmarq`.
"""
from __future__ import annotations

import math
import struct

import torch

from imaging.warp import invert_affine_transform, warp_affine

# FaceRestoreHelper's 5-point FFHQ template for 512 x 512 faces: eyes, nose, mouth corners.
FFHQ_TEMPLATE_512 = ((192.98138, 239.94708), (318.90277, 240.1936), (256.63416, 314.01935),
                     (201.26117, 371.41043), (313.08905, 371.15118))
CROP_BORDER_BGR = (135, 133, 132)  # align_warp_face's borderValue (grey), in BGR as OpenCV reads images

_LMEDS_CONFIDENCE, _LMEDS_OUTLIER_RATIO, _LMEDS_MAX_ITERS = 0.99, 0.45, 2000
_REFINE_ITERS = 10


def face_template(face_size: int = 512) -> torch.Tensor:
    """The template for `face_size` faces (crop_ratio (1, 1)): float64 [5, 2]."""
    return torch.tensor(FFHQ_TEMPLATE_512, dtype=torch.float64) * (face_size / 512.0)


def _f32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


class _OpenCVRng:
    """cv::RNG: multiply-with-carry, state = (uint32)state * 4164903690 + (state >> 32)."""

    def __init__(self, state: int = 2**64 - 1):
        self.state = state

    def uniform(self, low: int, high: int) -> int:
        self.state = ((self.state & 0xFFFFFFFF) * 4164903690 + (self.state >> 32)) & (2**64 - 1)
        return low if low == high else (self.state & 0xFFFFFFFF) % (high - low) + low


def _ransac_iterations(confidence: float, outlier_ratio: float, model_points: int, max_iters: int) -> int:
    num = math.log(max(1.0 - confidence, 2.2250738585072014e-308))
    denom = math.log(1.0 - (1.0 - outlier_ratio) ** model_points)
    return max_iters if denom >= 0 or -num >= max_iters * -denom else round(num / denom)


def _two_point_similarity(p: list[tuple[float, float]], q: list[tuple[float, float]]) -> tuple[float, ...]:
    """AffinePartial2DEstimatorCallback::runKernel: (a, b, tx, ty) of [[a, -b, tx], [b, a, ty]] in double."""
    (x1, y1), (x2, y2) = p
    (u1, v1), (u2, v2) = q
    d = 1.0 / ((x1 - x2) * (x1 - x2) + (y1 - y2) * (y1 - y2))
    a = d * ((u1 - u2) * (x1 - x2) + (v1 - v2) * (y1 - y2))
    b = d * ((v1 - v2) * (x1 - x2) - (u1 - u2) * (y1 - y2))
    tx = d * ((v1 - v2) * (x1 * y2 - x2 * y1) - (u1 * y2 - u2 * y1) * (y1 - y2) - (u1 * x2 - u2 * x1) * (x1 - x2))
    ty = d * (-(u1 - u2) * (x1 * y2 - x2 * y1) - (v1 * x2 - v2 * x1) * (x1 - x2) - (v1 * y2 - v2 * y1) * (y1 - y2))
    return a, b, tx, ty


def _squared_residuals(model: tuple[float, ...], src, dst) -> list[float]:
    """Affine2DEstimatorCallback::computeError: float32 arithmetic on the float-cast 2x3 model."""
    a, b, tx, ty = (_f32(v) for v in model)
    errors = []
    for (x, y), (u, v) in zip(src, dst):
        ex = _f32(_f32(_f32(_f32(a * x) + _f32(-b * y)) + tx) - u)
        ey = _f32(_f32(_f32(_f32(b * x) + _f32(a * y)) + ty) - v)
        errors.append(_f32(_f32(ex * ex) + _f32(ey * ey)))
    return errors


def _residuals_and_jacobian(h: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = src[:, 0], src[:, 1]
    rx = h[0] * x - h[1] * y + h[2] - dst[:, 0]
    ry = h[1] * x + h[0] * y + h[3] - dst[:, 1]
    ones, zeros = torch.ones_like(x), torch.zeros_like(x)
    jacobian = torch.stack((torch.stack((x, -y, ones, zeros), 1), torch.stack((y, x, zeros, ones), 1)), 1)
    return torch.stack((rx, ry), 1).reshape(-1), jacobian.reshape(-1, 4)


def _divide(a: float, b: float) -> float:
    """a / b with IEEE semantics (C++ doubles): inf or nan instead of ZeroDivisionError."""
    if b != 0:
        return a / b
    return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1.0, b)


def _solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.linalg.lstsq(a, b[:, None], driver="gelsd").solution[:, 0]  # cv::solve DECOMP_SVD


def _levmarq(h: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, max_iters: int = _REFINE_ITERS) -> torch.Tensor:
    """OpenCV 5's LevMarq::optimize (modules/3d/src/levmarq.cpp) with the settings ptsetreg.cpp gives it:
    10 iterations, geodesic acceleration on, every other setting at its default (lambda 1e-4, up x2
    doubling, down by max(1/3, 1 - (2q - 1)^3), diagonal clamped to [1e-6, 1e32], stop on gradient,
    step or relative energy change below 1e-6). The residuals are linear in (a, b, tx, ty), so it
    converges to the least-squares fit on the inliers, up to where those criteria stop it.

    With linear residuals the geodesic correction is rounding noise amplified by 1/h^2 = 1e8, which
    depends on OpenCV's gemm and SVD internals: on exact landmarks the result agrees with OpenCV 5.0.0 to
    ~1e-11, on noisy ones it differs by ~1e-5 (stored cases <= 8.5e-5; the oracle's tolerance is 2e-3)."""
    h_geo, geo_scale, tolerance = 1e-4, 0.5, 1e-6
    residuals, jacobian = _residuals_and_jacobian(h, src, dst)
    jtj, jtb, energy = jacobian.T @ jacobian, jacobian.T @ residuals, float(residuals @ residuals)
    old_energy, lam, up = energy, 1e-4, 2.0
    iteration, done = 0, False
    while not done:
        gradient_max, diag = float(jtb.abs().max()), jtj.diagonal().clone()
        accepted = False
        while not accepted and not done:
            lm_diag = (diag * lam).clamp(1e-6, 1e32)
            system = jtj.clone()
            system.diagonal().copy_(lm_diag + diag)
            step = _solve(system, -jtb)
            expected = float(-0.5 * (step * (jtb - lm_diag * step)).sum())
            step_norm = float(step @ step)
            geo_residuals, _ = _residuals_and_jacobian(h + step * h_geo, src, dst)
            jtrvv = (jacobian.T @ geo_residuals + jtb * (h_geo - 1.0) + lm_diag * step * h_geo) / (h_geo * h_geo)
            geo_step = _solve(system, -jtrvv)
            if math.sqrt(_divide(float(geo_step @ geo_step), float(step @ step))) < 1.0:
                step = step + geo_step * geo_scale
            probe = h + step
            probe_residuals, _ = _residuals_and_jacobian(probe, src, dst)
            energy = float(probe_residuals @ probe_residuals)
            if math.isnan(energy):  # OpenCV stops and keeps the last accepted parameters
                return h
            change = old_energy - energy
            if change < 0:
                lam *= up
                up *= 2.0
            else:
                accepted = True
                quality = _divide(change, expected)
                lam *= max(1.0 / 3.0, 1.0 - (2.0 * quality - 1.0) ** 3)
                up = 2.0
                h, old_energy = probe, energy
                small = gradient_max < tolerance or step_norm < tolerance or _divide(change, energy) < tolerance
                done = small
            iteration += 1
            done = done or iteration >= max_iters or lam >= 1e32
        if not done:
            residuals, jacobian = _residuals_and_jacobian(h, src, dst)
            jtj, jtb = jacobian.T @ jacobian, jacobian.T @ residuals
    return h


def estimate_affine_partial_lmeds(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor | None:
    """cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)[0]: float64 [2, 3], or None where OpenCV
    returns None (fewer than 2 points or fewer than 2 inliers)."""
    src_pts = [(_f32(x), _f32(y)) for x, y in src.double().tolist()]
    dst_pts = [(_f32(x), _f32(y)) for x, y in dst.double().tolist()]
    count = len(src_pts)
    if count < 2:
        return None
    if count == 2:
        best = _two_point_similarity(src_pts, dst_pts)
        inliers = [0, 1]
    else:
        rng = _OpenCVRng()
        best, min_median = None, math.inf
        for _ in range(max(_ransac_iterations(_LMEDS_CONFIDENCE, _LMEDS_OUTLIER_RATIO, 2, _LMEDS_MAX_ITERS), 3)):
            first = rng.uniform(0, count)
            second = rng.uniform(0, count)
            while second == first:
                second = rng.uniform(0, count)
            model = _two_point_similarity([src_pts[first], src_pts[second]], [dst_pts[first], dst_pts[second]])
            median = sorted(_squared_residuals(model, src_pts, dst_pts))[count // 2]
            if median < min_median:
                best, min_median = model, median
        if best is None:
            return None
        sigma = max(2.5 * 1.4826 * (1 + 5.0 / (count - 2)) * math.sqrt(min_median), 0.001)
        threshold = _f32(sigma * sigma)
        inliers = [i for i, e in enumerate(_squared_residuals(best, src_pts, dst_pts)) if e <= threshold]
        if len(inliers) < 2:
            return None
        chosen = torch.tensor([src_pts[i] for i in inliers], dtype=torch.float64)
        target = torch.tensor([dst_pts[i] for i in inliers], dtype=torch.float64)
        best = tuple(_levmarq(torch.tensor(best, dtype=torch.float64), chosen, target).tolist())
    a, b, tx, ty = best
    return torch.tensor([[a, -b, tx], [b, a, ty]], dtype=torch.float64)


def paste_affine(affine: torch.Tensor, upscale: float) -> torch.Tensor:
    """The matrix the restored face is warped back with: invertAffineTransform(affine) * upscale
    (get_inverse_affine), plus 0.5 * upscale on the translation when upscale > 1 (paste_faces_to_input_image)."""
    inverse = invert_affine_transform(affine) * upscale
    if upscale > 1:
        inverse[:, 2] += 0.5 * upscale
    return inverse


def crop_face(image_rgb: torch.Tensor, affine: torch.Tensor, face_size: int = 512) -> torch.Tensor:
    """align_warp_face's crop of uint8 RGB [3, H, W]: uint8 [3, face_size, face_size], grey outside."""
    return warp_affine(image_rgb, affine, (face_size, face_size), tuple(float(v) for v in CROP_BORDER_BGR[::-1]))
