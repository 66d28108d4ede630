"""The families that the worker runs in channels_last on the CPU (CPU_CHANNELS_LAST's default) pass
their parity cases in that memory format too, through the same loader."""
from __future__ import annotations

import pytest
import torch

import parity
from models import registry
from worker.config import CPU_CHANNELS_LAST_FAMILIES

CHANNELS_LAST_CHECKPOINTS = sorted(name for name in parity.checkpoint_oracles()
                                   if registry.get_spec(name).family in CPU_CHANNELS_LAST_FAMILIES)


def test_the_policy_covers_registered_checkpoints():
    assert CHANNELS_LAST_CHECKPOINTS


@pytest.mark.parametrize("name", CHANNELS_LAST_CHECKPOINTS)
def test_parity_cases_in_channels_last(name):
    oracle_name = parity.checkpoint_oracles()[name]
    target = parity.targets()[oracle_name]
    manifest = parity.oracle_module().manifest(oracle_name)
    cases = torch.load(parity.parity_dir() / oracle_name / "cases.pt", weights_only=True)
    models: dict[int, torch.nn.Module] = {}
    with torch.inference_mode():
        for index, case in enumerate(cases):
            ctx = parity.Context(manifest, parity.case_seed(case, None), torch.device("cpu"), torch.float32)
            if ctx.seed not in models:
                model = parity.load_oracle_model(oracle_name, name, ctx.seed, "cpu", torch.float32)
                models[ctx.seed] = model.to(memory_format=torch.channels_last)
            for output, figures, passed in target.runner(models[ctx.seed], case, ctx):
                assert passed, f"{name} case {index} {output}: {figures}"
