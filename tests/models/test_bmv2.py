"""BackgroundMattingV2: backbone structure, the ResNet-101 naming (no oracle of its own), the refiner's
patch geometry, and the deterministic choice of blocks under ties (its parity cases run in tests/parity)."""
from __future__ import annotations

import re

import pytest
import torch

import parity
from models import registry
from models.bmv2 import MattingRefine, MobileNetV2Encoder, RefineParams, Refiner, ResNetEncoder, select_blocks
from models.fold import fold_batchnorm

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


def output_shapes(net: torch.nn.Module, height: int, width: int) -> list[tuple[int, ...]]:
    """The encoder's output shapes, computed on the meta device (no arithmetic)."""
    return [tuple(t.shape[1:]) for t in net(torch.empty(1, 6, height, width, device="meta"))]


def test_mobilenet_encoder_is_output_stride_16_with_dilated_last_blocks():
    with torch.device("meta"):
        net = MobileNetV2Encoder()
    assert len(net.features) == 18 and not hasattr(net, "classifier")
    assert net.features[14].conv[1][0].stride == (1, 1)
    assert [b.conv[1][0].dilation for b in net.features[14:]] == [(1, 1)] + [(2, 2)] * 3
    assert output_shapes(net, 64, 96) == [(320, 4, 6), (32, 8, 12), (24, 16, 24), (16, 32, 48), (6, 64, 96)]


def test_resnet_encoder_dilates_layer4_after_its_first_block():
    with torch.device("meta"):
        net = ResNetEncoder("resnet50")
    assert [b.conv2.dilation for b in net.layer4] == [(1, 1), (2, 2), (2, 2)]
    assert net.layer4[0].downsample[0].stride == (1, 1)
    assert output_shapes(net, 64, 96) == [(2048, 4, 6), (512, 8, 12), (256, 16, 24), (64, 32, 48), (6, 64, 96)]


def test_resnet101_has_the_resnet50_keys_plus_the_deeper_layer3():
    """No oracle holds a ResNet-101 file: its keys must be the ResNet-50 file's, plus layer3.6-22."""
    with torch.device("meta"):
        state = registry.get_spec("bmv2-resnet101").build().state_dict()
    extra = re.compile(r"backbone\.layer3\.(\d+)\.")
    deeper = {k for k in state if (m := extra.match(k)) and int(m.group(1)) >= 6}
    assert {int(extra.match(k).group(1)) for k in deeper} == set(range(6, 23))
    resnet50 = parity.oracle_module().manifest("bmv2-resnet50")["keys"]
    assert {k: list(v.shape) for k, v in state.items() if k not in deeper} == {k: s for k, (s, _) in resnet50.items()}


def test_params_reject_what_the_original_asserts():
    with pytest.raises(ValueError, match="backbone_scale"):
        RefineParams(backbone_scale=0.75)
    with pytest.raises(ValueError, match="refine mode"):
        RefineParams(mode="patch")
    with pytest.raises(ValueError, match="threshold"):
        RefineParams(threshold=1.5)
    with torch.device("meta"):
        net = MattingRefine("mobilenetv2")
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.rand(1, 3, 30, 32), torch.rand(1, 3, 30, 32))
    with pytest.raises(ValueError, match="same shape"):
        net(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 36))


def tied_error(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[1,1,8,8]: 5 blocks at 0.8, 10 at 0.6 (the boundary for k = 9), the rest distinct below 0.5."""
    gen = torch.Generator().manual_seed(0)
    values = torch.linspace(0.01, 0.45, 64, dtype=torch.float64)[torch.randperm(64, generator=gen)]
    order = torch.randperm(64, generator=gen)
    values[order[:5]] = 0.8
    values[order[5:15]] = 0.6
    return values.reshape(1, 1, 8, 8).to(dtype)


def expected_tie_break(err: torch.Tensor, count: int) -> torch.Tensor:
    """The rule, written plainly: all blocks above the boundary value, then tied ones by flat index."""
    flat = err.flatten().double()
    boundary = flat.sort(descending=True).values[count - 1]
    chosen = (flat > boundary).clone()
    ties = (flat == boundary).nonzero().flatten()
    chosen[ties[:count - int(chosen.sum())]] = True
    return chosen.reshape(err.shape).to(err.dtype)


SAMPLE_9 = RefineParams(mode="sampling", sample_pixels=9 * 16)


def test_tied_boundary_takes_the_lower_flat_index():
    err = tied_error()
    ref = select_blocks(err, SAMPLE_9)
    assert int(ref.sum()) == 9
    assert torch.equal(ref, expected_tie_break(err, 9))


def test_selection_equals_topk_where_nothing_ties():
    """The original's rule (topk, scatter, times err > 0) wherever its choice is unambiguous."""
    err = torch.rand(2, 1, 12, 16, generator=torch.Generator().manual_seed(3))
    err[1, 0, :6] = 0  # batch element 1 has fewer positive errors than k: oversampling prevented
    params = RefineParams(mode="sampling", sample_pixels=100 * 16)
    flat = err.flatten(1)
    topk = torch.zeros_like(flat).scatter_(1, flat.topk(100, dim=1).indices, 1.0) * flat.gt(0)
    assert torch.equal(select_blocks(err, params), topk.reshape(err.shape))
    assert int(select_blocks(err, params)[1].sum()) == 96  # the positive ones only


def test_more_samples_than_blocks_selects_every_positive_block():
    """The original's topk fails when sample_pixels // 16 exceeds the blocks; here all are taken."""
    err = torch.rand(1, 1, 4, 4)
    err[0, 0, 0, 0] = 0
    ref = select_blocks(err, RefineParams(mode="sampling", sample_pixels=80_000))
    assert torch.equal(ref, err.gt(0).float())


def refiner_inputs(batch_err: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """Inputs of a 32x32 refiner pass whose quarter-resolution error is `batch_err` [B,1,8,8]."""
    gen = torch.Generator().manual_seed(seed)
    b = batch_err.shape[0]
    coarse = torch.rand(b, 36, 8, 8, generator=gen, dtype=torch.float64)
    return {"src": torch.rand(b, 3, 32, 32, generator=gen, dtype=torch.float64),
            "bgr": torch.rand(b, 3, 32, 32, generator=gen, dtype=torch.float64),
            "pha": coarse[:, :1], "fgr": coarse[:, 1:4] - 0.5, "err": batch_err.double(), "hid": coarse[:, 4:]}


def run_refiner(refiner: Refiner, inputs: dict, params: RefineParams, device: str, dtype: torch.dtype,
                channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    refiner = refiner.to(device, dtype)
    args = {k: v.to(device, dtype) for k, v in inputs.items()}
    if channels_last:
        refiner = refiner.to(memory_format=torch.channels_last)
        # as in the network: the coarse maps are slices of one channels_last decoder output
        stacked = torch.cat([args["pha"], args["fgr"], args["err"], args["hid"]], 1)
        stacked = stacked.contiguous(memory_format=torch.channels_last)
        args.update(pha=stacked[:, :1], fgr=stacked[:, 1:4], err=stacked[:, 4:5], hid=stacked[:, 5:])
        args.update(src=args["src"].contiguous(memory_format=torch.channels_last),
                    bgr=args["bgr"].contiguous(memory_format=torch.channels_last))
    with torch.inference_mode():
        out, ref = refiner(**args, params=params)
    return out.double().cpu(), ref.double().cpu()


@pytest.fixture(scope="module")
def refiner() -> Refiner:
    torch.manual_seed(0)
    return Refiner().eval()


@pytest.mark.parametrize("device", DEVICES)
def test_a_tie_is_broken_the_same_way_on_every_path(refiner, device):
    """float32 reference vs float64, channels_last, and the tied image as element 0 of a batch of 2."""
    err = tied_error()
    expected_ref = expected_tie_break(err, 9).double()
    out, ref = run_refiner(refiner, refiner_inputs(err), SAMPLE_9, device, torch.float32)
    assert torch.equal(ref, expected_ref)

    out64, ref64 = run_refiner(refiner, refiner_inputs(tied_error(torch.float64)), SAMPLE_9, device, torch.float64)
    assert torch.equal(ref64, expected_ref)
    torch.testing.assert_close(out64, out, atol=1e-5, rtol=0)

    out_cl, ref_cl = run_refiner(refiner, refiner_inputs(err), SAMPLE_9, device, torch.float32, channels_last=True)
    assert torch.equal(ref_cl, expected_ref)
    torch.testing.assert_close(out_cl, out, atol=1e-5, rtol=0)

    other = torch.flip(err, dims=[3]) * 0.9
    pair = refiner_inputs(torch.cat([err, other]))
    single = {k: v[:1] for k, v in pair.items()}
    out_b, ref_b = run_refiner(refiner, pair, SAMPLE_9, device, torch.float32)
    out_1, _ = run_refiner(refiner, single, SAMPLE_9, device, torch.float32)
    assert torch.equal(ref_b[:1], expected_ref)
    assert torch.equal(ref_b[1:], expected_tie_break(other, 9).double())
    torch.testing.assert_close(out_b[:1], out_1, atol=1e-5, rtol=0)


def test_refining_every_block_reproduces_full_mode(refiner):
    """Cropped 8x8 windows and replaced 4x4 blocks cover the image exactly as the 'full' convolution."""
    inputs = refiner_inputs(torch.rand(1, 1, 8, 8, dtype=torch.float64))
    every = RefineParams(mode="sampling", sample_pixels=64 * 16, prevent_oversampling=False)
    full, ref_full = run_refiner(refiner, inputs, RefineParams(mode="full"), "cpu", torch.float64)
    sampled, ref = run_refiner(refiner, inputs, every, "cpu", torch.float64)
    assert torch.equal(ref, ref_full)
    torch.testing.assert_close(sampled, full, atol=1e-12, rtol=0)


def test_unselected_blocks_keep_the_bilinear_upsampling(refiner):
    inputs = refiner_inputs(tied_error(torch.float64))
    nothing = RefineParams(mode="thresholding", threshold=0.9)
    out, ref = run_refiner(refiner, inputs, nothing, "cpu", torch.float64)
    coarse = torch.cat([inputs["pha"], inputs["fgr"]], 1)
    upsampled = torch.nn.functional.interpolate(coarse, (32, 32), mode="bilinear", align_corners=False)
    assert int(ref.sum()) == 0 and torch.equal(out, upsampled)

    partly, ref = run_refiner(refiner, inputs, RefineParams(mode="thresholding", threshold=0.7), "cpu", torch.float64)
    kept = ref.repeat_interleave(4, 2).repeat_interleave(4, 3).expand_as(out) == 0
    assert int(ref.sum()) == 5 and torch.equal(partly[kept], upsampled[kept]) and not torch.equal(partly, upsampled)


def test_batchnorm_folding_keeps_the_output():
    with torch.device("meta"):
        net = MattingRefine("mobilenetv2")
    net.load_state_dict(parity.oracle_module().checkpoint("bmv2-mobilenetv2"), assign=True)  # non-trivial BN
    net.eval()
    src, bgr = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    params = RefineParams(mode="full")
    with torch.inference_mode():
        before = net(src, bgr, params)
        fold_batchnorm(net)
        after = net(src, bgr, params)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    for name, a, b in zip(before._fields, before, after):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0, msg=name)
