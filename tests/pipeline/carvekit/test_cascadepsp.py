"""carvekit's CascadePSP refinement procedure: parity, preprocessing, padding and crop schedule."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import parity
from imaging.errors import CallerValueError
from pipeline.carvekit.cascadepsp import check_refine_params, network_inputs, padded_forward, process_high_res, refine
from pipeline.carvekit.params import ChainParams
from tests.imaging.test_resample import _u8


@pytest.mark.slow
def test_parity_oracle():
    checks = parity.run("cascadepsp-refine")
    assert {c.output for c in checks} == {"net_im", "net_seg", "pred", "refined"}
    for check in checks:
        assert check.passed, check.line("cascadepsp-refine")


class EchoRefiner(nn.Module):
    """Stands in for the network: predicts the segmentation it is given, and records its inputs."""

    def __init__(self, local_sign: float = 1.0) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # refine() reads device and dtype off the parameters
        self.local_sign = local_sign  # -1: local crops (called with inter_s8) predict the opposite
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []

    def forward(self, x, seg, inter_s8=None):
        self.calls.append((x, seg, inter_s8))
        logits = 30 * seg * (1.0 if inter_s8 is None else self.local_sign)
        return {"out_224": logits, "out_56_2": logits}


def test_network_inputs_binarise_the_mask_above_127():
    image = _u8((3, 4, 5), 3)
    mask = torch.tensor([[0, 127, 128, 255, 200]], dtype=torch.uint8).expand(4, 5)[None]
    im, seg = network_inputs(image, mask, accel_size=0)
    assert seg[0, 0, 0].tolist() == [-1, -1, 1, 1, 1]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    torch.testing.assert_close(im[0], (image / 255 - mean) / std)
    _, grey = network_inputs(image, mask, accel_size=0, mask_threshold=0)
    torch.testing.assert_close(grey[0, 0, 0], torch.tensor([0, 127, 128, 255, 200]) / 127.5 - 1)


def test_padded_forward_grows_both_sides_when_one_is_not_a_multiple_of_8():
    """carvekit's rule: 128x85 becomes 136x88 (128 gains 8 too); 128x128 is left alone."""
    model = EchoRefiner()
    im, seg, inter = torch.ones(1, 3, 128, 85), torch.ones(1, 1, 128, 85), torch.ones(1, 1, 128, 85)
    pred, pred_56 = padded_forward(model, im, seg, inter)
    x, s, i = model.calls[-1]
    assert x.shape[-2:] == s.shape[-2:] == i.shape[-2:] == (136, 88)
    assert x[..., 128:, :].eq(0).all() and s[..., :, 85:].eq(-1).all() and i[..., 128:, :].eq(-1).all()
    assert pred.shape == pred_56.shape == (1, 1, 128, 85)
    padded_forward(model, torch.ones(1, 3, 128, 128), torch.ones(1, 1, 128, 128))
    assert model.calls[-1][0].shape[-2:] == (128, 128) and model.calls[-1][2] is None


def _stripes(height: int, width: int, period: int) -> torch.Tensor:
    columns = (torch.arange(width) // (period // 2)) % 2
    return (columns.expand(height, width) * 255).to(torch.uint8)[None, None]


def test_local_step_runs_carvekits_crop_grid():
    """160x256 at mask_size 128: crops every 128//2 - 32 = 32 px, shifted back to the border, so x
    origins 0, 32, 64, 96, 128 and y origins 0, 32: 10 crops of 128x128 after one global pass."""
    model = EchoRefiner()
    mask = _stripes(160, 256, 32)
    image = _u8((1, 3, 160, 256), 4)
    refined = refine(model, image, mask, mask_size=128, accel_size=0)
    shapes = [tuple(call[0].shape[-2:]) for call in model.calls]
    assert shapes == [(80, 128)] + [(128, 128)] * 10
    assert all(call[2] is not None for call in model.calls[1:])  # local crops start from the global s4 estimate
    # The stand-in echoes its input, so the procedure must give the binarised mask back, pixel for pixel.
    assert refined.dtype == torch.uint8 and torch.equal(refined, mask)


def test_uniform_crops_are_skipped():
    model = EchoRefiner()
    mask = torch.full((1, 1, 160, 256), 255, dtype=torch.uint8)
    refined = refine(model, _u8((1, 3, 160, 256), 5), mask, mask_size=128, accel_size=0)
    assert len(model.calls) == 1 and torch.equal(refined, mask)


def test_fast_runs_the_global_step_only_and_keeps_batch_and_size():
    model = EchoRefiner()
    masks = torch.cat([_stripes(150, 230, 80), 255 - _stripes(150, 230, 80)])
    refined = refine(model, _u8((2, 3, 150, 230), 6), masks, fast=True, mask_size=128, accel_size=200)
    assert len(model.calls) == 2 and refined.shape == (2, 1, 150, 230) and refined.dtype == torch.uint8
    # Thumbnailed to 130x200, refined at 83x128, resized back: the stripes survive, blurred at edges only.
    agree = (refined > 127) == (masks > 127)
    assert agree.float().mean() > 0.9


def test_local_predictions_replace_the_global_one_inside_their_margins():
    """A crop's prediction is pasted less 16 px on its inner sides; pixels that no kept crop covers
    take the binarised global prediction. Foreground in columns 200..255 of 160x256 at mask_size
    128: crops at x 96 and 128 are kept (19% and 44% foreground), those at x 0..64 (none) are
    skipped, so columns 112..255 come from the crops (inverted by the stand-in), 0..111 from the
    global step."""
    model = EchoRefiner(local_sign=-1.0)
    seg = torch.full((1, 1, 160, 256), -1.0)
    seg[..., 200:] = 1.0
    pred = process_high_res(model, torch.zeros(1, 3, 160, 256), seg, mask_size=128)
    assert len(model.calls) == 1 + 4
    coarse = (seg > 0).float()
    expected = torch.where(torch.arange(256) >= 112, 1 - coarse, coarse)
    torch.testing.assert_close(pred, expected, atol=1e-6, rtol=0)


def test_mask_size_must_leave_a_crop_stride():
    """refine_mask_size 64 passes the schema (64..4096) but leaves no step between local crops: refused
    naming the knob, by the refinement and by the plan check that runs before any work."""
    message = (r"^refine_mask_size: 65 leaves no step between CascadePSP's local crops \(size // 2 - 32\); "
               r"use at least 66$")
    with pytest.raises(CallerValueError, match=message):
        process_high_res(EchoRefiner(), torch.zeros(1, 3, 50, 50), torch.zeros(1, 1, 50, 50), mask_size=65)
    with pytest.raises(CallerValueError, match="^refine_mask_size: 64 "):
        check_refine_params(ChainParams(post="cascade_fba", refine_mask_size=64))
    check_refine_params(ChainParams(post="cascade_fba", refine_mask_size=66))
    check_refine_params(ChainParams(post="cascade_fba", refine_mask_size=64, refine_global_only=True))
    check_refine_params(ChainParams(post="fba", refine_mask_size=64))  # no CascadePSP in the chain
