"""CascadePSP's RefinementModule: the structure carvekit's file needs (its parity cases run in tests/parity)."""
from __future__ import annotations

import torch

from models.cascadepsp import DilatedResNet50


def test_backbone_is_output_stride_8_with_undilated_first_blocks():
    """carvekit dilates only blocks 2.. of layer3 (2) and layer4 (4); torchvision would dilate layer4's first by 2."""
    net = DilatedResNet50().eval()
    assert [b.conv2.dilation for b in net.layer3] == [(1, 1)] + [(2, 2)] * 5
    assert [b.conv2.dilation for b in net.layer4] == [(1, 1)] + [(4, 4)] * 2
    assert [b.conv2.padding for b in net.layer4] == [(1, 1)] + [(4, 4)] * 2
    with torch.inference_mode():
        f, x_1, x_2 = net(torch.randn(1, 6, 64, 96))
    assert f.shape == (1, 2048, 8, 12)
    assert x_1.shape == (1, 64, 32, 48)  # conv1 output, before bn1
    assert x_2.shape == (1, 256, 16, 24)
    assert not hasattr(net, "fc") and not hasattr(net, "avgpool")
