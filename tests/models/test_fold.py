"""models.fold: the one BatchNorm folding every family's network goes through after loading."""
from __future__ import annotations

import torch
from torch import nn

from models.fold import fold_batchnorm


class Block(nn.Module):
    def __init__(self, channels: int, norm: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=not norm)
        # a BatchNorm one level down, as ParseNet's `norm.norm`
        self.bn = nn.Sequential(nn.BatchNorm2d(channels)) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class Net(nn.Module):
    BATCHNORM_PAIRS = (("conv", "bn.0"),)

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.BatchNorm2d(8))  # a BatchNorm after a ReLU is not a convolution's
        self.blocks = nn.Sequential(Block(8, norm=True), Block(8, norm=False), Block(8, norm=True))
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


class Undeclared(Net):
    BATCHNORM_PAIRS = None


def _trained(net: nn.Module) -> nn.Module:
    """Non-trivial statistics and affine parameters, as a trained file has."""
    torch.manual_seed(0)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    return net.eval()


def _batchnorms(net: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def test_declared_pairs_and_sequential_neighbours_are_folded_and_the_function_kept():
    net = _trained(Net())
    x = torch.randn(2, 3, 16, 16)
    keys = set(net.state_dict())
    with torch.inference_mode():
        before = net(x)
        assert fold_batchnorm(net) == 3  # stem's first, and the two Blocks with a norm
        after = net(x)
    assert _batchnorms(net) == 1  # the one after the ReLU stays
    assert isinstance(net.stem[3], nn.BatchNorm2d) and isinstance(net.blocks[1].bn, nn.Identity)
    assert "stem.1.running_mean" in keys and "stem.1.running_mean" not in net.state_dict()
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_folding_twice_folds_nothing_more():
    net = _trained(Net())
    fold_batchnorm(net)
    assert fold_batchnorm(net) == 0


def test_a_network_that_declares_nothing_is_left_alone():
    net = _trained(Undeclared())
    count = _batchnorms(net)
    assert fold_batchnorm(net) == 0 and _batchnorms(net) == count
