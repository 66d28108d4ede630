"""facexlib's ParseNet: structure, BatchNorm folding and memory format (its parity cases run in
tests/parity). The network is fully convolutional, so these run on 64x64 faces in milliseconds."""
from __future__ import annotations

import copy

import pytest
import torch

import parity
from models.fold import fold_batchnorm
from models.parsenet import ParseNet

# float32 reordering (folded conv+BN, channels_last kernels) on logits of magnitude ~1-10.
ATOL = 1e-4


@pytest.fixture(scope="module")
def unfolded() -> ParseNet:
    """The published network with the oracle's stand-in weights, BatchNorm not yet folded."""
    model = ParseNet()
    model.load_state_dict(parity.oracle_module().checkpoint("parsenet"), strict=True)
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def face() -> torch.Tensor:
    return torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_down_blocks_stride_their_second_conv_and_keep_every_conv_reflection_padded(unfolded, face):
    down = unfolded.encoder[1]
    assert (down.conv1.conv2d.stride, down.conv2.conv2d.stride, down.shortcut_func.conv2d.stride) == (
        (1, 1), (2, 2), (2, 2))
    assert all(m.padding == (0, 0) for m in unfolded.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.inference_mode():
        logits, image = unfolded(face)
    assert logits.shape == (1, 19, 64, 64) and image.shape == (1, 3, 64, 64)


def test_folding_batchnorm_keeps_the_function(unfolded, face):
    folded = copy.deepcopy(unfolded)
    fold_batchnorm(folded)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.inference_mode():
        expected, got = unfolded(face), folded(face)
    for ours, theirs in zip(got, expected):
        torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0)


def test_channels_last_gives_the_same_result(unfolded, face):
    channels_last = copy.deepcopy(unfolded).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = unfolded(face)
        got = channels_last(face.contiguous(memory_format=torch.channels_last))
    for ours, theirs in zip(got, expected):
        torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0)
