"""FBA Matting network: structure and fusion (its parity cases run in tests/parity)."""
from __future__ import annotations

import torch

from models.fba import FBA, WSConv2d, fba_fusion


def test_dilated_encoder_keeps_output_stride_8():
    encoder = FBA().encoder.eval()
    with torch.inference_mode():
        outs = encoder(torch.zeros(1, 11, 64, 48))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (11, 64, 48), (64, 32, 24), (256, 16, 12), (512, 8, 6), (1024, 8, 6), (2048, 8, 6)]
    layer4 = encoder.layer4
    assert (layer4[0].conv2.stride, layer4[0].conv2.dilation, layer4[1].conv2.dilation) == ((1, 1), (2, 2), (4, 4))


def test_fusion_keeps_a_consistent_composite():
    # If image = alpha F + (1 - alpha) B exactly, fusion must leave alpha, F and B unchanged.
    g = torch.Generator().manual_seed(0)
    alpha = torch.rand(1, 1, 4, 4, generator=g)
    fg, bg = torch.rand(1, 3, 4, 4, generator=g), torch.rand(1, 3, 4, 4, generator=g)
    image = alpha * fg + (1 - alpha) * bg
    a, f, b = fba_fusion(alpha, image, fg, bg)
    assert torch.allclose(f, fg, atol=1e-6) and torch.allclose(b, bg, atol=1e-6)
    assert torch.allclose(a, alpha, atol=1e-5)


def test_weight_standardised_conv_runs_in_channels_last():
    """The CUDA cache (and CPU_CHANNELS_LAST) convert networks to channels_last: the weight
    standardisation must not .view() a channels_last weight."""
    conv = WSConv2d(8, 4, 3, padding=1).eval()
    x = torch.rand(1, 8, 10, 12, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = conv(x)
        conv = conv.to(memory_format=torch.channels_last)
        assert not conv.weight.is_contiguous()
        got = conv(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(got, expected, atol=1e-5)
