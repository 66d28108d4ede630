"""BasicSR's RRDBNet: its structure, the published file format, and the REAL Real-ESRGAN weights
(../shared/weights) through the registry reproducing the original pipeline's outputs on real photos
(../shared/data/upscale). The oracle's parity cases run in tests/parity."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

import parity
from models import registry
from models.rrdbnet import RRDBNet
from pipeline.restoration.upscale import UpscaleParams, upscale
from tests.conftest import SHARED

UPSCALE = SHARED / "data" / "upscale"
REAL_WEIGHTS = {  # registry name -> shared file (float16 convolutions, float32 biases)
    "realesrgan-x4plus": ("RealESRGAN_x4plus-fp16.pth", "ec07e08a36bb631b22ceccf0166f037ac1f37093d789d2e1100f316fb6df3472"),
    "realesrgan-x4plus-anime": ("RealESRGAN_x4plus_anime_6B-fp16.pth",
                                "a9755dd2f0533e61e3b0c180b14ad049e777157fe54134aa2d3267de789a1e66"),
}
MODEL_NAMES = {"RealESRGAN_x4plus": "realesrgan-x4plus", "RealESRGAN_x4plus_anime_6B": "realesrgan-x4plus-anime"}
CASES = json.loads((UPSCALE / "cases.json").read_text())["cases"]


def _basicsr_pixel_unshuffle(x: torch.Tensor, scale: int) -> torch.Tensor:
    """BasicSR arch_util.pixel_unshuffle, written out: view, permute (0, 1, 3, 5, 2, 4), reshape."""
    b, c, hh, hw = x.shape
    return x.view(b, c, hh // scale, scale, hw // scale, scale).permute(0, 1, 3, 5, 2, 4).reshape(
        b, c * scale * scale, hh // scale, hw // scale)


@pytest.mark.parametrize("scale, in_channels", [(4, 3), (2, 12), (1, 48)])
def test_scale_sets_unshuffle_and_output_size(scale, in_channels):
    net = RRDBNet(scale=scale, num_feat=8, num_block=1, num_grow_ch=4).eval()
    assert net.conv_first.in_channels == in_channels
    with torch.inference_mode():
        out = net(torch.rand(1, 3, 8, 12))
    assert out.shape == (1, 3, 8 * scale, 12 * scale)


@pytest.mark.parametrize("scale", [2, 1])
def test_unshuffled_input_is_basicsr_channel_order(scale):
    """conv_first of the x2 / x1 nets sees BasicSR's pixel_unshuffle of the input, channel c*s^2+dy*s+dx."""
    net = RRDBNet(scale=scale, num_feat=8, num_block=1, num_grow_ch=4).eval()
    x = torch.rand(1, 3, 8, 8)
    seen = []
    net.conv_first.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    with torch.inference_mode():
        net(x)
    assert torch.equal(seen[0], _basicsr_pixel_unshuffle(x, {2: 2, 1: 4}[scale]))


def test_channels_last_and_bfloat16_run():
    net = RRDBNet(scale=2, num_feat=8, num_block=1, num_grow_ch=4).eval()
    x = torch.rand(1, 3, 8, 10)
    with torch.inference_mode():
        reference = net(x)
        cl = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
        bf16 = net.bfloat16()(x.bfloat16())
    torch.testing.assert_close(cl, reference, rtol=1e-5, atol=1e-5)
    assert bf16.dtype == torch.bfloat16 and (bf16.float() - reference).abs().max() < 0.1


def test_loader_falls_back_to_params_when_there_is_no_params_ema(tmp_path):
    """RealESRGANer: 'params_ema' if present, else 'params' (the x4plus stand-in stored the other way)."""
    stand_in = parity.oracle_module().checkpoint("realesrgan-x4plus")["params_ema"]
    spec = registry.get_spec("realesrgan-x4plus")
    torch.save({"params": stand_in}, tmp_path / spec.weights.filename)
    model = registry.load("realesrgan-x4plus", tmp_path)
    assert torch.equal(model.conv_last.weight, stand_in["conv_last.weight"])


def test_registry_entries():
    for name, scale, blocks in (("realesrgan-x4plus", 4, 23), ("realesrgan-x2plus", 2, 23),
                                ("realesrgan-x4plus-anime", 4, 6)):
        spec = registry.get_spec(name)
        assert spec.role == "upscaler" and spec.extra["scale"] == scale
        assert spec.weights.wrap == ("params_ema", "params")
        download = spec.weights.download  # Real-ESRGAN's own release, checked against its SHA-256
        assert download.url.startswith("https://github.com/xinntao/Real-ESRGAN/releases/download/")
        assert download.filename == spec.weights.filename and len(download.sha256) == 64
        net = spec.build()
        assert net.scale == scale and len(net.body) == blocks


# --------------------------------------------------------------------------------------------------
# The real weights on real photos.


@pytest.fixture(scope="module")
def real_weights_dir(tmp_path_factory):
    """The shared real files under the names the registry looks for (links, nothing copied)."""
    folder = tmp_path_factory.mktemp("weights")
    for name, (shared_name, _) in REAL_WEIGHTS.items():
        (folder / registry.get_spec(name).weights.filename).symlink_to(SHARED / "weights" / shared_name)
    return folder


@pytest.fixture(scope="module")
def real_models(real_weights_dir):
    return {name: registry.load(name, real_weights_dir) for name in REAL_WEIGHTS}


@pytest.mark.parametrize("name", sorted(REAL_WEIGHTS))
def test_real_weight_files_are_the_recorded_ones(name):
    shared_name, sha256 = REAL_WEIGHTS[name]
    assert hashlib.sha256((SHARED / "weights" / shared_name).read_bytes()).hexdigest() == sha256


@pytest.mark.slow
def test_real_float16_weights_load_as_float32(real_models):
    model = real_models["realesrgan-x4plus"]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    stored = torch.load(SHARED / "weights" / REAL_WEIGHTS["realesrgan-x4plus"][0], weights_only=True)["params_ema"]
    assert torch.equal(model.conv_first.weight, stored["conv_first.weight"].float())


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c["output"] for c in CASES])
def test_real_weights_reproduce_the_original_pipeline(real_models, case):
    """uint8 within 1 on >= 99.9 % of values (other CPUs' float32 convolutions round differently;
    measured: max 1, 0.005-0.009 % of values off; BENCHMARKS.md, Real-ESRGAN "Parity figures")."""
    image = np.asarray(Image.open(UPSCALE / case["input"]))
    expected = np.asarray(Image.open(UPSCALE / case["output"]))
    params = UpscaleParams(tile=case["tile"], tile_pad=case["tile_pad"], pre_pad=case["pre_pad"],
                           outscale=case["outscale"], alpha_upsampler=case["alpha_upsampler"])
    out = upscale(real_models[MODEL_NAMES[case["model"]]], image, case["netscale"], params)
    assert out.shape == expected.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(np.int16) - expected)
    print(f"{case['output']}: max {diff.max()}, {100 * (diff > 0).mean():.4f} % of values off")
    assert (diff <= 1).mean() >= 0.999
