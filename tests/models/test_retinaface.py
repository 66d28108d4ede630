"""RetinaFace ResNet-50: the structure facexlib's checkpoint needs (its parity cases, key set and refusal
of an incomplete file run in tests/parity/test_parity.py)."""
from __future__ import annotations

import math

import torch

from models.fold import fold_batchnorm
from models.retinaface import PRIORS, RetinaFace, strip_data_parallel_prefix


def _priors_per_image(height: int, width: int) -> int:
    return sum(len(sizes) * math.ceil(height / s) * math.ceil(width / s) for s, sizes in zip(PRIORS.steps, PRIORS.min_sizes))


def test_one_prediction_per_prior_for_sizes_that_are_not_multiples_of_32():
    net = RetinaFace().eval()
    with torch.inference_mode():
        out = net(torch.randn(2, 3, 70, 45))
    n = _priors_per_image(70, 45)
    assert out.loc.shape == (2, n, 4) and out.logits.shape == (2, n, 2) and out.landmarks.shape == (2, n, 10)


def test_channels_last_and_batchnorm_folding_compute_the_same_function():
    torch.manual_seed(0)
    net = RetinaFace().eval()
    for module in net.modules():  # non-trivial BatchNorm statistics, as a trained file has
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        reference = net(x)
        channels_last = net.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
        fold_batchnorm(net)  # as models.registry does after loading
        folded = net(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    for ours in (channels_last, folded):
        for a, b in zip(ours, reference):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_the_data_parallel_prefix_is_stripped_and_nothing_else():
    state = {"module.body.conv1.weight": torch.zeros(1), "module.fpn.module_name.bias": torch.ones(1)}
    assert list(strip_data_parallel_prefix(state, torch.nn.Module())) == ["body.conv1.weight", "fpn.module_name.bias"]
