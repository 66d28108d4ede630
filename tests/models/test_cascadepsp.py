"""CascadePSP's RefinementModule against the parity oracle, through the real loader path."""
from __future__ import annotations

import pytest
import torch

from models import parity, registry
from models.cascadepsp import DilatedResNet50


def test_parity_oracle():
    checks = parity.run("cascadepsp")
    # Every case checks all logits the original returned (out_28 only without inter_s8).
    assert {c.output for c in checks} == {"out_28", "out_28_2", "out_56", "out_28_3", "out_56_2", "out_224"}
    assert len(checks) == 6 + 6 + 5
    for check in checks:
        assert check.passed, check.line("cascadepsp")


@pytest.mark.parametrize("name", ["cascadepsp", "cascadepsp-carveset"])
def test_loader_consumes_every_key(name, tmp_path):
    state = parity.oracle_module().checkpoint("cascadepsp")
    spec = registry.get_spec(name)
    assert set(spec.build().state_dict()) == set(state)
    state.pop("feats.layer4.2.bn3.running_var")
    parity.save_published(state, tmp_path / spec.weights.filename, spec.weights.file_format)
    with pytest.raises(registry.CheckpointMismatch, match="feats.layer4.2.bn3.running_var"):
        registry.load(name, directory=tmp_path)


def test_registry_points_at_carvekits_files():
    assert registry.get_spec("cascadepsp").weights.hf_repo == "Carve/cascadepsp"
    assert registry.get_spec("cascadepsp").weights.repo_filename == "cascadepsp.pth"
    assert registry.get_spec("cascadepsp-carveset").weights.repo_filename == "cascadepsp_finetuned_carveset.pth"
    assert all(registry.get_spec(n).role == "refinement" for n in ("cascadepsp", "cascadepsp-carveset"))


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
