"""Face detection post-processing, 5-point alignment, warps, blurs and paste-back geometry.

The stored cases of ../shared/parity/face-align (OpenCV 5.0.0's LMEDS, inverses and crop) run through
parity.run; RetinaFace's network is checked by tests/parity/test_parity.py. The oracle's random
RetinaFace weights find meaningless faces, so the procedure is tested here with the stored outputs and
with landmark sets whose answer is known.
"""
from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
import torch

import parity
from imaging.exact import emulated_fma, fma
from imaging.filters import _softfloat_exp, erode, gaussian_blur, gaussian_kernel
from imaging.warp import invert_affine_transform, warp_affine
from pipeline.restoration.alignment import crop_face, estimate_affine_partial_lmeds, face_template, paste_affine
from pipeline.restoration.detection import (
    Faces,
    _eyes_far_enough,
    center_face,
    decode_boxes,
    decode_detections,
    decode_landmarks,
    prior_boxes,
)
from pipeline.restoration.paste import PARSE_FRAME, background, parse_mask, paste_faces


def _similarity(scale: float, angle: float, tx: float, ty: float) -> torch.Tensor:
    a, b = scale * math.cos(angle), scale * math.sin(angle)
    return torch.tensor([[a, -b, tx], [b, a, ty]], dtype=torch.float64)


def _apply(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    return points.double() @ matrix[:, :2].T + matrix[:, 2]


def _least_squares_similarity(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    x, y = src[:, 0].double(), src[:, 1].double()
    ones, zeros = torch.ones_like(x), torch.zeros_like(x)
    design = torch.cat((torch.stack((x, -y, ones, zeros), 1), torch.stack((y, x, zeros, ones), 1)))
    a, b, tx, ty = torch.linalg.lstsq(design, torch.cat((dst[:, 0], dst[:, 1])).double()[:, None]).solution[:, 0].tolist()
    return torch.tensor([[a, -b, tx], [b, a, ty]], dtype=torch.float64)


# ---------------------------------------------------------------------------------------------- oracle


def test_face_align_parity_cases():
    checks = parity.run("face-align")
    assert len(checks) == 20  # 6 cases x (affine + 2 inverses), the crop case x (affine + crop)
    for check in checks:
        assert check.passed, check.line("face-align")
    crop = next(c for c in checks if c.output == "cropped_face")
    assert crop.figures["max_abs"] == 0  # the float32 warp reproduces OpenCV 5.0.0's crop exactly


def test_priors_and_decoding_reproduce_the_stored_detector_outputs(parity_dir):
    manifest = parity.oracle_module().manifest("retinaface-resnet50")
    for case in torch.load(parity_dir / "retinaface-resnet50" / "cases.pt", weights_only=True):
        height, width = case["input"].shape[-2:]
        priors = prior_boxes(height, width)
        assert torch.equal(priors, case["priors"])
        scale = torch.tensor([width, height] * 5, dtype=torch.float32)
        for name, ours in (("boxes_px", decode_boxes(case["loc"][0], priors) * scale[:4]),
                           ("landms_px", decode_landmarks(case["landms"][0], priors) * scale)):
            _, figures, passed = parity.close(name, ours, case[name], parity.tolerance_for(manifest, name))
            assert passed and figures["max_abs"] < 1e-4, (name, figures)


# ---------------------------------------------------------------------------------------------- detection


def _planted_outputs(priors: torch.Tensor, chosen: dict[int, tuple[float, torch.Tensor]], height: int, width: int):
    """Network outputs that decode to the given (score logit, box in pixels) at the given priors."""
    n = priors.shape[0]
    loc, landmarks = torch.zeros(n, 4), torch.zeros(n, 10)
    logits = torch.tensor([[8.0, -8.0]]).repeat(n, 1)
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    for index, (logit, box) in chosen.items():
        rel = box / scale
        centre, size = (rel[:2] + rel[2:]) / 2, rel[2:] - rel[:2]
        prior = priors[index]
        loc[index, :2] = (centre - prior[:2]) / (0.1 * prior[2:])
        loc[index, 2:] = torch.log(size / prior[2:]) / 0.2
        logits[index] = torch.tensor([-logit, logit])
    return loc, logits, landmarks


def test_detections_are_decoded_thresholded_and_suppressed_like_detect_faces():
    height, width = 64, 96
    priors = prior_boxes(height, width)
    box = torch.tensor([20.0, 10.0, 52.0, 50.0])
    overlapping = box + torch.tensor([2.0, 2.0, 2.0, 2.0])  # IoU ~0.8 with `box`
    apart = torch.tensor([60.0, 5.0, 90.0, 40.0])
    loc, logits, landmarks = _planted_outputs(priors, {
        10: (5.0, box), 11: (6.0, overlapping), 200: (4.0, apart), 230: (1.7, apart + 1)}, height, width)
    faces = decode_detections(loc, logits, landmarks, height, width)
    # softmax(1.7 vs -1.7) = 0.968 < 0.97 drops prior 230; NMS keeps the better of the overlapping pair
    assert len(faces) == 2
    assert torch.allclose(faces.boxes, torch.stack((overlapping, apart)), atol=1e-4)
    assert faces.scores[0] > faces.scores[1] > 0.97


def _faces(landmarks: list, boxes: list) -> Faces:
    return Faces(torch.tensor(boxes, dtype=torch.float32), torch.full((len(boxes),), 0.99),
                 torch.tensor(landmarks, dtype=torch.float32))


def _eyes(distance: float) -> list[tuple[float, float]]:
    return [(50.0, 50.0), (50.0 + distance, 50.0), (52.0, 55.0), (50.0, 60.0), (54.0, 60.0)]


def test_faces_with_close_eyes_are_dropped_and_the_centre_face_is_the_nearest_box_centre():
    faces = _faces([_eyes(4.9), _eyes(5.0), _eyes(30.0)], [[0, 0, 10, 10], [40, 40, 60, 60], [90, 90, 110, 130]])
    assert _eyes_far_enough(faces, 5.0) == [1, 2]
    assert _eyes_far_enough(faces, None) == [0, 1, 2]
    assert center_face(faces, height=200, width=200) == 2  # box centre (100, 110) is 10 px from (100, 100)
    assert center_face(faces, height=100, width=100) == 1


# ---------------------------------------------------------------------------------------------- alignment


def test_lmeds_recovers_an_exact_similarity():
    template = face_template()
    truth = _similarity(0.37, 0.3, 41.0, -17.5)
    landmarks = _apply(invert_affine_transform(truth), template).float()  # the template seen in an image
    affine = estimate_affine_partial_lmeds(landmarks, template)
    assert torch.allclose(affine, truth, atol=1e-4)
    assert torch.allclose(_apply(affine, landmarks), template, atol=2e-3)


def test_lmeds_rejects_an_outlier_that_least_squares_follows():
    template = face_template()
    landmarks = _apply(invert_affine_transform(_similarity(0.5, -0.2, 10.0, 30.0)), template)
    landmarks[3] += torch.tensor([25.0, -18.0], dtype=torch.float64)  # a badly placed mouth corner
    landmarks = landmarks.float()
    affine = estimate_affine_partial_lmeds(landmarks, template)
    inliers = [0, 1, 2, 4]
    assert torch.allclose(affine, _least_squares_similarity(landmarks[inliers], template[inliers]), atol=1e-3)
    assert (affine - _least_squares_similarity(landmarks, template)).abs().max() > 10
    residuals = (_apply(affine, landmarks) - template).norm(dim=1)
    assert residuals[inliers].max() < 1e-2 and residuals[3] > 10


def test_lmeds_of_two_points_is_the_exact_similarity_through_them():
    src = torch.tensor([[10.0, 20.0], [50.0, 25.0]])
    truth = _similarity(2.0, 0.5, 3.0, 4.0)
    assert torch.allclose(estimate_affine_partial_lmeds(src, _apply(truth, src)), truth, atol=1e-5)
    assert estimate_affine_partial_lmeds(src[:1], src[:1]) is None


def test_paste_matrix_is_the_scaled_inverse_with_a_half_pixel_shift_above_upscale_one():
    affine = _similarity(1.7, 0.4, -120.0, 33.0)
    inverse = invert_affine_transform(affine)
    homogeneous = torch.cat((affine, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)))
    assert torch.allclose(inverse @ homogeneous, torch.eye(3, dtype=torch.float64)[:2], atol=1e-12)
    assert torch.equal(paste_affine(affine, 1), inverse)
    expected = inverse * 3
    expected[:, 2] += 1.5
    assert torch.equal(paste_affine(affine, 3), expected)


# ---------------------------------------------------------------------------------------------- warps


def _smooth_image(height: int, width: int) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                          indexing="ij")
    channels = (128 + 100 * torch.sin(x / 23 + y / 37), 128 + 90 * torch.cos(x / 31 - y / 19), 60 + x / width * 150)
    return torch.stack(channels).round().to(torch.uint8)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_warp_by_a_whole_pixel_shift_moves_pixels_and_fills_the_border(dtype):
    image = _smooth_image(20, 30).to(dtype)
    shift = torch.tensor([[1.0, 0.0, 3.0], [0.0, 1.0, -2.0]], dtype=torch.float64)
    out = warp_affine(image, shift, (20, 30), (7.0, 8.0, 9.0))
    assert torch.equal(out[:, :18, 3:].double(), image[:, 2:, :27].double())
    assert torch.equal(out[:, :, 0].double(), torch.tensor([7.0, 8.0, 9.0], dtype=torch.float64)[:, None].expand(3, 20))
    window = warp_affine(image, shift, (20, 30), 0.0, region=(4, 15, 6, 29))
    assert torch.equal(window, warp_affine(image, shift, (20, 30), 0.0)[:, 4:15, 6:29])


def test_a_face_cropped_and_pasted_back_lands_where_it_came_from():
    image = _smooth_image(160, 200)
    affine = _similarity(2.6, 0.25, -150.0, -110.0)  # image -> 512 crop: a face of about 200 px
    crop = crop_face(image, affine)
    square = torch.ones((1, 512, 512), dtype=torch.float64)  # blend the whole crop
    for upscale in (1, 2):
        size = (160 * upscale, 200 * upscale)
        up = background(image, size)
        matrix = paste_affine(affine, upscale)
        inside = warp_affine(square, matrix, size, 0.0)[0] > 0.999
        pasted = paste_faces(up, crop[None], matrix[None], square, upscale).long()
        error = (pasted - up.long()).abs()[:, inside].float().mean()
        assert inside.sum() > 5000 * upscale**2 and error < 1.5
        shifted = matrix.clone()
        shifted[:, 2] += 3.0 * upscale  # the same face pasted 3 px off is visibly worse
        wrong = paste_faces(up, crop[None], shifted[None], square, upscale).long()
        assert (wrong - up.long()).abs()[:, inside].float().mean() > 3 * error


# ---------------------------------------------------------------------------------------------- OpenCV pieces


def test_fma_rounds_once():
    rng = random.Random(0)
    a = torch.tensor([rng.uniform(-300, 300) for _ in range(300)], dtype=torch.float64)
    b = torch.tensor([rng.uniform(-2, 2) for _ in range(300)], dtype=torch.float64)
    c = torch.cat((-(a[:150] * b[:150]), torch.tensor([rng.uniform(-50, 50) for _ in range(150)], dtype=torch.float64)))
    exact = torch.tensor([float(Fraction(x) * Fraction(y) + Fraction(z)) for x, y, z in
                          zip(a.tolist(), b.tolist(), c.tolist())], dtype=torch.float64)
    assert torch.equal(emulated_fma(a, b, c), exact)
    assert torch.equal(fma(a, b, c), exact)
    assert not torch.equal(c + a * b, exact)


def test_gaussian_kernels_are_opencvs():
    assert gaussian_kernel(5, 0) == (0.0625, 0.25, 0.375, 0.25, 0.0625)
    for size, sigma in ((101, 11.0), (21, 0)):
        kernel = torch.tensor(gaussian_kernel(size, sigma), dtype=torch.float64)
        sigma = sigma or 0.3 * ((size - 1) * 0.5 - 1) + 0.8
        offsets = torch.arange(size, dtype=torch.float64) - size // 2
        analytic = torch.exp(-offsets**2 / (2 * sigma**2))
        assert torch.allclose(kernel, analytic / analytic.sum(), rtol=1e-13, atol=0)
        assert torch.equal(kernel, kernel.flip(0)) and abs(float(kernel.sum()) - 1) < 1e-14
    for x in (-0.01, -1.0, -7.5, -40.0):  # OpenCV's table-and-polynomial exp: within a few ulp of libm's
        assert math.isclose(_softfloat_exp(x), math.exp(x), rel_tol=1e-14)


def test_blur_keeps_constants_and_erode_shrinks_by_the_window():
    constant = torch.full((30, 33), 3.0, dtype=torch.float64)
    assert torch.allclose(gaussian_blur(constant, 101, 11.0), constant, rtol=1e-14)
    step = torch.zeros(40, 41, dtype=torch.float64)
    step[:, 20:] = 1.0
    blurred = gaussian_blur(step, 7, 0)
    assert blurred[:, 10].max() < 1e-3 and blurred[:, 30].min() > 1 - 1e-3 and 0.3 < blurred[5, 20] < 0.7
    mask = torch.zeros(12, 13)
    mask[2:9, 3:11] = 1
    assert erode(mask, 3).sum() == 5 * 6
    assert erode(mask, 4).sum() == 4 * 5  # even sizes anchor at size // 2
    assert torch.equal(erode(torch.ones(5, 5), 3), torch.ones(5, 5))  # outside the image does not count


def test_parse_mask_is_a_soft_face_with_a_black_frame():
    parsing = torch.zeros(512, 512, dtype=torch.long)
    parsing[100:420, 120:400] = 1  # skin
    parsing[180:220, 150:250] = 4  # an eye: face as well
    parsing[100:140, 120:400] = 17  # hair: not face
    mask = parse_mask(parsing)
    assert mask.dtype == torch.float64 and mask.min() >= 0 and mask.max() <= 1 + 1e-12
    assert mask[:PARSE_FRAME].abs().max() == 0 and mask[:, -PARSE_FRAME:].abs().max() == 0
    assert mask[300, 260] > 0.99 and mask[120, 260] < mask[300, 260] - 0.2 and mask[30, 30] < 0.01
