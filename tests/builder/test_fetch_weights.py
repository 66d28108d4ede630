"""builder.fetch_weights: the offline plan covers every model the image and the tasks need; release
assets are hash-checked, retried and written whole; u2netp is converted from an ONNX file."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import socket
import urllib.error

import pytest
import torch

from builder import convert_u2netp, dockerfile, fetch_weights
from models import registry
from models.fold import fold_batchnorm
from models.spec import ReleaseAsset, WeightsSource
from pipeline import TASKS
from pipeline.restore import BG_UPSAMPLER, DETECTOR, PARSER
from pipeline.upscale import UPSCALE_MODELS
from tests.conftest import REPO
from worker import config


def models_that_must_build() -> set[str]:
    """The Dockerfile's default MODELS, the hub's tests, test_input.json, the README's deploy lines,
    the default model and every network a task runs by default."""
    names = set(dockerfile.arg_default("MODELS").split())
    names |= {test["input"]["model"] for test in json.loads((REPO / ".runpod" / "tests.json").read_text())["tests"]}
    names.add(json.loads((REPO / "test_input.json").read_text())["input"]["model"])
    for line in re.findall(r'MODELS="([^"]+)"', (REPO / "README.md").read_text()):
        names |= set(line.split())
    names |= {config.DEFAULT_MODEL, *(spec.default_model for spec in TASKS.values() if spec.default_model), *UPSCALE_MODELS.values(), BG_UPSAMPLER, DETECTOR, PARSER}
    return names


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("the plan must not touch the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_plan_passes_on_every_model_that_must_build(no_network, capsys, tmp_path):
    names = models_that_must_build()
    assert {"briaai/RMBG-2.0", "u2netp", "retinaface-resnet50", "parsenet", "realesrgan-x2plus"} <= names
    assert fetch_weights.main(["--plan", *sorted(names), "--dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(names) and not any(line.startswith("REFUSED") for line in lines)
    by_name = {line.split(":")[0].split()[-1]: line for line in lines}
    assert "gated: needs HF_TOKEN" in by_name["briaai/RMBG-2.0"]
    assert "revision 94cba2d" in by_name["briaai/RMBG-2.0"]
    assert by_name["bmv2-mobilenetv2"].startswith("by hand") and "BackgroundMattingV2" in by_name["bmv2-mobilenetv2"]
    assert f"-> {tmp_path / 'u2netp.pth'} (converted by builder.convert_u2netp)" in by_name["u2netp"]
    for name in ("u2netp", "retinaface-resnet50", "parsenet", "gfpgan-v1.4", "realesrgan-x4plus"):
        assert re.search(r"github\.com/.+/releases/download/.+ \(release asset; sha256 [0-9a-f]{64}\)", by_name[name])


def test_plan_refuses_an_unpinned_download_and_still_lists_the_rest(no_network, capsys, tmp_path):
    assert fetch_weights.main(["--plan", "ZhengPeng7/BiRefNet-COD", "u2netp", "--dir", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("REFUSED ZhengPeng7/BiRefNet-COD") and "no revision is pinned" in lines[0]
    assert lines[1].startswith("fetch   u2netp")


def test_fetch_refuses_what_the_plan_refuses(tmp_path):
    with pytest.raises(SystemExit, match="no revision is pinned"):
        fetch_weights.fetch(registry.get_spec("ZhengPeng7/BiRefNet-COD"), tmp_path)
    with pytest.raises(SystemExit, match="place pytorch_mobilenetv2.pth .* by hand from https://github.com/PeterL1n"):
        fetch_weights.fetch(registry.get_spec("bmv2-mobilenetv2"), tmp_path)


# -- Release assets: HTTPS answered here by a stand-in for urlopen, so the download code runs as shipped.

URL = "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth"


def spec_with_asset(sha256: str):
    return dataclasses.replace(registry.get_spec("realesrgan-x2plus"),
                               weights=WeightsSource("RealESRGAN_x2plus.pth", ReleaseAsset(URL, sha256=sha256)))


@pytest.fixture
def served(monkeypatch):
    """urlopen answering URL with `served.payload` after `served.failures` dropped connections."""
    class Server:
        payload, failures, requests = b"", 0, []

    def urlopen(url, timeout):
        Server.requests.append(url)
        if len(Server.requests) <= Server.failures:
            raise urllib.error.URLError("connection reset")
        return io.BytesIO(Server.payload)

    monkeypatch.setattr(fetch_weights.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(fetch_weights.time, "sleep", lambda _s: None)
    Server.requests = []
    return Server


def test_release_asset_is_retried_and_checked(served, tmp_path):
    served.payload, served.failures = b"weights" * 1000, 2
    target = fetch_weights.fetch(spec_with_asset(hashlib.sha256(served.payload).hexdigest()), tmp_path)
    assert target == tmp_path / "RealESRGAN_x2plus.pth" and target.read_bytes() == served.payload
    assert served.requests == [URL] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RealESRGAN_x2plus.pth"]  # no partial files left


def test_release_asset_with_another_hash_is_refused_and_nothing_is_written(served, tmp_path):
    served.payload = b"a changed file"
    with pytest.raises(SystemExit, match="SHA256 .* the registry states 0{64}; refusing it"):
        fetch_weights.fetch(spec_with_asset("0" * 64), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_release_asset_needs_a_hash_and_a_release_url():
    with pytest.raises(ValueError, match="SHA-256"):
        ReleaseAsset(URL, sha256="")
    with pytest.raises(ValueError, match="not a GitHub release asset"):
        ReleaseAsset("https://example.org/RealESRGAN_x2plus.pth", sha256="0" * 64)


# -- u2netp from an ONNX file laid out as torch's exporter writes rembg's: Conv nodes in forward order,
# BatchNorm folded into them, initializers as raw float32 bytes.

def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def onnx_model(convolutions: list[tuple[str, torch.Tensor, torch.Tensor]]) -> bytes:
    graph = b""
    for index, (name, weight, bias) in enumerate(convolutions):
        names = (f"{name}.weight", f"{name}.bias") if name.startswith("side") else (f"{900 + 2 * index}",
                                                                                  f"{901 + 2 * index}")
        for tensor_name, tensor in zip(names, (weight, bias)):
            graph += _field(5, b"".join(_field(1, d) for d in tensor.shape) + _field(2, 1)
                            + _field(8, tensor_name.encode()) + _field(9, tensor.numpy().tobytes()))
        graph += _field(1, _field(1, f"x{index}".encode()) + _field(1, names[0].encode())
                        + _field(1, names[1].encode()) + _field(2, f"y{index}".encode()) + _field(4, b"Conv"))
        graph += _field(1, _field(1, f"y{index}".encode()) + _field(4, b"Relu"))
    return _field(1, 7) + _field(7, graph)


def test_u2netp_converted_from_onnx_computes_what_the_network_with_batchnorm_does(tmp_path):
    torch.manual_seed(0)
    reference = registry.get_spec("u2netp").build().eval()
    for module in reference.modules():  # BatchNorm that is not the identity, so folding matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.1)
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    folded = registry.get_spec("u2netp").build().eval()
    folded.load_state_dict(reference.state_dict())
    assert fold_batchnorm(folded) > 0
    convs = []
    hooks = [m.register_forward_hook(lambda module, *_: convs.append(module))
             for m in folded.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        folded(torch.zeros(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    names = {module: name for name, module in folded.named_modules()}
    (tmp_path / "u2netp.onnx").write_bytes(onnx_model([(names[c], c.weight.detach(), c.bias.detach()) for c in convs]))

    target = convert_u2netp.convert(tmp_path / "u2netp.onnx", tmp_path)
    converted = registry.load("u2netp", weights_dir=tmp_path)
    x = torch.rand(1, 3, 96, 80, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected, actual = reference(x)[0], converted(x)[0]
    assert target == tmp_path / "u2netp.pth"
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


def test_onnx_with_other_convolutions_is_refused(tmp_path):
    (tmp_path / "other.onnx").write_bytes(onnx_model([("side1", torch.zeros(1, 64, 3, 3), torch.zeros(1))]))
    with pytest.raises(ValueError, match="1 Conv nodes, U\\^2-Net-p runs"):
        convert_u2netp.convert(tmp_path / "other.onnx", tmp_path)
    assert not (tmp_path / "u2netp.pth").exists()
