"""imaging.boxes: NMS in the order the numpy originals visit boxes (facexlib, carvekit)."""
from __future__ import annotations

import torch

from imaging.boxes import nms_in_numpy_order


def test_nms_has_no_plus_one_pixel_rule_and_keeps_equal_scores_in_numpy_order():
    # [0,0,2,2] vs [1,0,3,2]: IoU 2 / 6 = 0.33 (both kept); the old +1 pixel rule would give 6 / 12 = 0.5
    small = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0]])
    assert sorted(nms_in_numpy_order(small, torch.tensor([0.99, 0.98]), 0.4).tolist()) == [0, 1]
    # equal scores: numpy's argsort()[::-1] puts the later box first, so NMS keeps that one
    tied = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 11.0]])
    assert nms_in_numpy_order(tied, torch.tensor([0.99, 0.99]), 0.4).tolist() == [1]
    assert nms_in_numpy_order(tied, torch.tensor([0.995, 0.99]), 0.4).tolist() == [0]


def test_kept_boxes_come_best_first():
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0], [10.0, 0.0, 11.0, 1.0]])
    assert nms_in_numpy_order(boxes, torch.tensor([0.2, 0.9, 0.5]), 0.5).tolist() == [1, 2, 0]
