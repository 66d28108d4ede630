"""Matte errors on hand-made cases whose answers are known."""
from __future__ import annotations

from collections import deque

import pytest
import torch

from evaluation import metrics as M


def blank(height: int = 40, width: int = 50, value: float = 0.0) -> torch.Tensor:
    return torch.full((height, width), value, dtype=torch.float64)


# -- SAD, MSE, MAD, IoU ---------------------------------------------------------------------------
def test_sad_of_a_thousand_pixels_off_by_one_is_one():
    true = blank()
    pred = true.clone()
    pred.view(-1)[:1000] = 1.0
    assert M.sad(pred, true) == pytest.approx(1.0)
    assert M.mse(pred, true) == pytest.approx(1000 / 2000)
    assert M.mad(pred, true) == pytest.approx(1000 / 2000)


def test_half_differences():
    true = blank()
    pred = blank(value=0.5)
    assert M.sad(pred, true) == pytest.approx(2000 * 0.5 / 1000)
    assert M.mse(pred, true) == pytest.approx(0.25)
    assert M.mad(pred, true) == pytest.approx(0.5)


def test_iou():
    a, b = blank(), blank()
    a[:, :10] = 1
    b[:, 20:30] = 1
    assert M.iou(a, b) == 0.0  # disjoint
    assert M.iou(a, a) == 1.0
    assert M.iou(blank(), blank()) == 1.0  # two empty masks agree
    c = blank()
    c[:, 5:15] = 1  # overlaps a in 5 of 15 columns
    assert M.iou(a, c) == pytest.approx(5 / 15)
    # The threshold is alpha >= 0.5: 128/255 is in, 127/255 out.
    assert M.iou(M.unit_alpha(torch.full((2, 2), 128, dtype=torch.uint8)), blank(2, 2, 1.0)) == 1.0
    assert M.iou(M.unit_alpha(torch.full((2, 2), 127, dtype=torch.uint8)), blank(2, 2, 1.0)) == 0.0


def test_region_restricts_the_benchmark_sums():
    true = blank()
    pred = true.clone()
    pred[:, :25] = 1.0  # wrong only in the left half
    right = torch.zeros(40, 50, dtype=torch.bool)
    right[:, 25:] = True
    assert M.sad(pred, true, right) == 0.0
    assert M.mse(pred, true, right) == 0.0
    assert M.sad(pred, true, ~right) == pytest.approx(1.0)
    assert M.mse(pred, true, ~right) == pytest.approx(1.0)  # mean over the region's pixels only
    errors = M.matte_errors(pred, true, right)
    assert errors["mad"] == pytest.approx(0.5)  # MAD and IoU stay whole-image
    assert errors["iou"] == 0.0


def test_unknown_region_of_a_trimap():
    trimap = torch.tensor([[0, 128, 255], [255, 128, 0]], dtype=torch.uint8)
    assert M.unknown_region(trimap).tolist() == [[False, True, False], [False, True, False]]


def test_unit_alpha_hits_the_thresholds_exactly():
    values = M.unit_alpha(torch.tensor([0, 51, 153, 255], dtype=torch.uint8))
    assert values.tolist() == [0.0, 0.2, 0.6, 1.0]
    assert M.unit_alpha(torch.tensor([153], dtype=torch.uint8), torch.float32) == torch.tensor(0.6)


@pytest.mark.parametrize("name", ["sad", "mse", "mad", "gradient_error", "connectivity_error"])
def test_identical_alphas_have_no_error(name):
    alpha = torch.rand(30, 40, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert getattr(M, name)(alpha, alpha.clone()) == 0.0


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError):
        M.sad(blank(3, 4), blank(4, 3))


# -- gradient error -------------------------------------------------------------------------------
def test_gradient_filters():
    gauss, dgauss = M.gaussian_derivative_filters(1.4)
    assert gauss.numel() == 9  # half-width ceil(1.4 * sqrt(-2 ln(sqrt(2 pi) 1.4 0.01))) = 4
    kernel = gauss[:, None] * dgauss[None, :]
    assert float(kernel.square().sum()) == pytest.approx(1.0)
    assert float(dgauss.sum()) == pytest.approx(0.0, abs=1e-15)  # flat images have no gradient


def test_gradient_of_constants_is_zero():
    assert float(M.gradient_magnitude(blank(value=0.7)).abs().max()) < 1e-12
    assert M.gradient_error(blank(value=0.3), blank(value=0.9)) == pytest.approx(0.0, abs=1e-12)


def test_gradient_of_a_ramp_points_along_it():
    ramp = torch.arange(50, dtype=torch.float64).div(100).expand(40, 50).contiguous()
    magnitude = M.gradient_magnitude(ramp)
    gauss, dgauss = M.gaussian_derivative_filters(1.4)
    # Away from the borders: the slope (0.01) times the filter's response to a unit ramp.
    expected = 0.01 * abs(float((dgauss * torch.arange(-4, 5, dtype=torch.float64)).sum())) * float(gauss.sum())
    assert torch.allclose(magnitude[5:-5, 5:-5], torch.full((30, 40), expected, dtype=torch.float64))


def test_gradient_error_of_an_edge_against_flat():
    edge = blank()
    edge[:, 25:] = 1.0
    error = M.gradient_error(edge, blank())
    assert error > 0
    assert error == pytest.approx(M.gradient_error(blank(), edge))
    assert error == pytest.approx(float(M.gradient_magnitude(edge).square().sum()) / 1000)


# -- connected components -------------------------------------------------------------------------
def bfs_labels(mask: torch.Tensor) -> torch.Tensor:
    """Reference: plain breadth-first search, labels as label_components defines them."""
    height, width = mask.shape
    grid = mask.tolist()
    labels = [[-1] * width for _ in range(height)]
    for y in range(height):
        for x in range(width):
            if grid[y][x] and labels[y][x] == -1:
                label = y * width + x
                labels[y][x] = label
                queue = deque([(y, x)])
                while queue:
                    cy, cx = queue.popleft()
                    for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                        if 0 <= ny < height and 0 <= nx < width and grid[ny][nx] and labels[ny][nx] == -1:
                            labels[ny][nx] = label
                            queue.append((ny, nx))
    return torch.tensor(labels)


def test_label_components_by_hand():
    mask = torch.tensor([
        [1, 1, 0, 1],
        [0, 1, 0, 1],
        [1, 0, 0, 0],  # (2,0) touches (1,1) only diagonally: not 4-connected
        [1, 1, 1, 1],
    ], dtype=torch.bool)
    assert M.label_components(mask).tolist() == [
        [0, 0, -1, 3],
        [-1, 0, -1, 3],
        [8, -1, -1, -1],
        [8, 8, 8, 8],
    ]


def test_label_components_of_a_spiral_and_a_comb():
    # A U-turn: the right arm's first pixel comes before the bottom joins it to the left arm.
    u = torch.zeros(5, 5, dtype=torch.bool)
    u[:, 0] = u[:, 4] = u[4, :] = True
    assert set(M.label_components(u)[u].tolist()) == {0}
    # A comb with teeth hanging from its back at the bottom: one component labelled by its first tooth.
    comb = torch.zeros(6, 9, dtype=torch.bool)
    comb[:, ::2] = True
    comb[5, :] = True
    labels = M.label_components(comb)
    assert set(labels[comb].tolist()) == {0} and (labels[~comb] == -1).all()


@pytest.mark.parametrize("seed", range(6))
def test_label_components_match_bfs(seed):
    generator = torch.Generator().manual_seed(seed)
    density = [0.3, 0.5, 0.6, 0.7, 0.45, 0.55][seed]
    mask = torch.rand(23, 31, generator=generator) < density
    assert torch.equal(M.label_components(mask), bfs_labels(mask))


def test_label_components_of_empty_and_full():
    assert (M.label_components(torch.zeros(3, 4, dtype=torch.bool)) == -1).all()
    assert (M.label_components(torch.ones(3, 4, dtype=torch.bool)) == 0).all()


def test_largest_component():
    mask = torch.tensor([[1, 0, 1, 1], [0, 0, 0, 1], [1, 1, 0, 0]], dtype=torch.bool)
    assert M.largest_component(mask).tolist() == [
        [False, False, True, True], [False, False, False, True], [False, False, False, False]]
    tie = torch.tensor([[1, 1, 0, 1, 1]], dtype=torch.bool)  # a tie goes to the first
    assert M.largest_component(tie).tolist() == [[True, True, False, False, False]]
    assert not M.largest_component(torch.zeros(2, 2, dtype=torch.bool)).any()


# -- connectivity error ---------------------------------------------------------------------------
def test_connectivity_of_a_hole():
    """A 3x3 opaque true alpha; the prediction drops the centre to 0. The ring stays one component at
    every threshold, the centre leaves it at 0.1, so its level is 0: phi(pred) = 1 - 0 * ... = 1 and
    phi(true) = 1 - (1 - 0) = 0 there, 1 everywhere else. Error 1 / 1000."""
    true = blank(3, 3, 1.0)
    pred = true.clone()
    pred[1, 1] = 0.0
    levels = M.connectivity_levels(pred, true)
    expected = torch.ones(3, 3, dtype=torch.float64)
    expected[1, 1] = 0.0
    assert torch.equal(levels, expected)
    assert M.connectivity_error(pred, true) == pytest.approx(0.001)
    assert M.connectivity_error(true, pred) == pytest.approx(0.001)


def test_connectivity_of_a_detached_island():
    """True alpha: a 0.8 island beside a 1.0 body. The island is never part of the largest component,
    its level is 0 and phi(true) = 1 - 0.8 = 0.2; a prediction of 0.1 there gives d = 0.1 < 0.15, phi 1.
    Error over the island's 4 pixels: 4 * 0.8 / 1000."""
    true = blank(6, 10)
    true[:, :5] = 1.0
    true[1:3, 7:9] = 0.8
    pred = true.clone()
    pred[1:3, 7:9] = 0.1
    assert M.connectivity_error(pred, true) == pytest.approx(4 * 0.8 / 1000)
    # The body is the same in both, so restricting to it leaves no error.
    body = torch.zeros(6, 10, dtype=torch.bool)
    body[:, :5] = True
    assert M.connectivity_error(pred, true, body) == 0.0


def test_connectivity_levels_of_a_fading_bridge():
    """Two blocks joined by a bridge of 0.55: at 0.6 the right block (smaller) detaches, its level is
    0.5; the bridge itself leaves at 0.6 as well (level 0.5)."""
    alpha = blank(3, 9)
    alpha[:, :5] = 1.0
    alpha[1, 5] = 0.55
    alpha[:, 6:] = 1.0
    levels = M.connectivity_levels(alpha, alpha)
    assert torch.equal(levels[:, :5], torch.ones(3, 5, dtype=torch.float64))
    assert float(levels[1, 5]) == 0.5
    assert torch.equal(levels[:, 6:], torch.full((3, 3), 0.5, dtype=torch.float64))
    assert float(levels[0, 5]) == 0.0  # alpha 0 is outside the mask from the first threshold on


def reference_connectivity(pred: torch.Tensor, true: torch.Tensor) -> float:
    """The benchmark's loop written out with the BFS labels above, pixel by pixel."""
    height, width = pred.shape
    level = [[-1.0] * width for _ in range(height)]
    thresholds = [k / 10 for k in range(11)]
    for k in range(1, 11):
        labels = bfs_labels((pred >= thresholds[k]) & (true >= thresholds[k])).flatten().tolist()
        sizes: dict[int, int] = {}
        for label in labels:
            if label >= 0:
                sizes[label] = sizes.get(label, 0) + 1
        biggest = min(sizes, key=lambda label: (-sizes[label], label)) if sizes else None
        for i, label in enumerate(labels):
            y, x = divmod(i, width)
            if level[y][x] == -1 and (biggest is None or label != biggest):
                level[y][x] = thresholds[k - 1]
    total = 0.0
    for y in range(height):
        for x in range(width):
            lv = 1.0 if level[y][x] == -1 else level[y][x]
            dp, dt = float(pred[y, x]) - lv, float(true[y, x]) - lv
            total += abs((1 - dp * (dp >= 0.15)) - (1 - dt * (dt >= 0.15)))
    return total / 1000


@pytest.mark.parametrize("seed", range(3))
def test_connectivity_matches_the_loop_written_out(seed):
    generator = torch.Generator().manual_seed(seed)
    # Blurry blobs, so that components appear and split as the threshold rises.
    coarse = torch.rand(1, 1, 5, 6, generator=generator, dtype=torch.float64)
    true = torch.nn.functional.interpolate(coarse, size=(20, 24), mode="bilinear")[0, 0]
    pred = (true + 0.2 * torch.randn(20, 24, generator=generator, dtype=torch.float64)).clamp(0, 1)
    pred = M.unit_alpha(pred.mul(255).round().to(torch.uint8))
    true = M.unit_alpha(true.mul(255).round().to(torch.uint8))
    assert M.connectivity_error(pred, true) == pytest.approx(reference_connectivity(pred, true), abs=1e-12)
    assert M.connectivity_error(pred, true) > 0
