"""BatchNorm folding for inference: the one walker every family's network goes through after loading.

A family opts in by naming, on its network class, the (convolution, BatchNorm) pairs its modules hold
(`BATCHNORM_PAIRS`: attribute paths relative to any submodule, e.g. ("conv_s1", "bn_s1") or
("conv2d", "norm.norm")); adjacent Conv2d -> BatchNorm2d children of any Sequential inside an opted-in
network are folded as well. Each pair goes through torch's fuse_conv_bn_eval, which rewrites the
convolution as W * gamma / sqrt(var + eps) and (b - mean) * gamma / sqrt(var + eps) + beta: the same
function, one pass over memory less. The BatchNorm becomes an Identity, so the state dict keeps its
published keys until the registry folds after loading.
"""
from __future__ import annotations

from typing import Iterator

from torch import nn

Pair = tuple[str, str]  # (convolution path, BatchNorm path) relative to one module


def _child(module: nn.Module, path: str) -> nn.Module | None:
    try:
        return module.get_submodule(path)
    except AttributeError:  # a path this module does not have (e.g. an optional norm left as Identity)
        return None


def _sequential_pairs(module: nn.Module) -> Iterator[Pair]:
    if isinstance(module, nn.Sequential):
        names = [name for name, _ in module.named_children()]
        yield from zip(names, names[1:])


def fold_batchnorm(root: nn.Module) -> int:
    """Fold, in place, every BatchNorm2d of `root` that follows a Conv2d as root's class declares
    (`BATCHNORM_PAIRS`; a class without it is left alone). Inference only; returns how many were folded."""
    pairs: tuple[Pair, ...] | None = getattr(root, "BATCHNORM_PAIRS", None)
    if pairs is None:
        return 0
    folded = 0
    for module in list(root.modules()):
        for conv_path, bn_path in (*pairs, *_sequential_pairs(module)):
            conv, bn = _child(module, conv_path), _child(module, bn_path)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module.set_submodule(conv_path, nn.utils.fusion.fuse_conv_bn_eval(conv.eval(), bn.eval()))
                module.set_submodule(bn_path, nn.Identity())
                folded += 1
    return folded
