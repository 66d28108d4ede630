"""The motion-gated moving average of a video's mattes."""
from __future__ import annotations

import torch

from imaging.temporal import MatteSmoother


def frame(value: int) -> torch.Tensor:
    return torch.full((3, 4, 4), value, dtype=torch.uint8)


def test_still_pixels_are_averaged_and_moving_ones_taken_as_they_are():
    smoother = MatteSmoother(0.5)
    assert smoother(torch.full((4, 4), 200, dtype=torch.uint8), frame(100)).eq(200).all()  # the first frame
    alpha = torch.full((4, 4), 100, dtype=torch.uint8)
    colour = frame(100)
    colour[:, 0, 0] = 160  # one pixel moved
    smoothed = smoother(alpha, colour)
    assert smoothed[0, 0] == 100  # moved: the new alpha, no trail
    assert smoothed[1, 1] == 150  # still: halfway between 200 and 100
    assert smoother(alpha, colour)[1, 1] == 125  # the average carries on


def test_flicker_on_a_still_scene_is_lowered():
    smoother, raw, smoothed = MatteSmoother(0.7), [], []
    for index in range(20):
        alpha = torch.full((4, 4), 120 + (index % 2) * 20, dtype=torch.uint8)  # flickers by 20
        raw.append(alpha.float())
        smoothed.append(smoother(alpha, frame(90)).float())
    change = lambda mattes: sum((b - a).abs().mean() for a, b in zip(mattes, mattes[1:])) / (len(mattes) - 1)  # noqa: E731
    assert change(smoothed[5:]) < 0.4 * change(raw[5:])
