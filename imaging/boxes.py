"""Greedy non-maximum suppression in the order the numpy originals (facexlib, carvekit) visit boxes."""
from __future__ import annotations

import torch
import torchvision


def nms_in_numpy_order(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices of the kept boxes [N, 4] (x1, y1, x2, y2), best first: numpy's scores.argsort()[::-1],
    then torchvision.ops.nms (areas without the +1 pixel rule; a box goes when its IoU with a kept one,
    in the boxes' dtype, is > iou_threshold).

    A stable ascending sort reversed is numpy's order (equal scores: the later box first) wherever
    numpy's introsort is stable, which it is for up to 16 boxes; torchvision keeps equal scores in the
    order it is given, so pre-sorting fixes the visiting order.
    """
    order = torch.sort(scores, stable=True).indices.flip(0)
    return order[torchvision.ops.nms(boxes[order], scores[order], iou_threshold)]
