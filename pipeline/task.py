"""What a task is, stated once: `TaskSpec`, the descriptor that the job schema, the README's tables and
the worker read (pipeline/__init__.py holds the table of them); and `Control`, what a device program
may ask of the job that runs it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from torch import nn

from imaging.knobs import Knob
from imaging.options import OutputKind, OutputOptions
from models.spec import Role

HEX_COLOUR = r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})"

# A knob that more than one task takes is one object, here.
BG_COLOR = Knob("bg_color", str, None, "composite onto this colour (#RRGGBB or #RRGGBBAA) instead of transparency",
                pattern=HEX_COLOUR, pattern_doc="a colour #RRGGBB or #RRGGBBAA", nullable=True)


class Control(Protocol):
    """What a device program may ask of its job: whether to go on (`check` raises once the job is
    past its deadline), and to say how far it got. The worker's JobRun is one."""

    def check(self) -> None: ...

    def progress(self, message: str) -> None: ...


# A device program's networks, by registered name, resident on its device in the job's precision.
NetworkByName = Callable[[str], nn.Module]


@dataclass(frozen=True)
class TaskSpec:
    """One task: what it writes, which networks and knobs it takes, and how its knobs become the
    parameters its device program reads."""

    name: str
    output_name: str  # the file under img/<id>/, before the extension
    output_kind: OutputKind  # which output knobs apply (imaging/options.py)
    role: Role  # the role of the network a job's `model` names
    knobs: tuple[Knob, ...] = ()  # the task's own knobs (with `model`, `task`, `precision` and the output's)
    default_model: str | None = None  # None: the DEFAULT_MODEL setting
    # the default model when it depends on the job's knobs (upscale: `scale`); else `default_model`
    model_by_knobs: Callable[[dict[str, Any]], str] | None = None
    # the job's converted knob values (only those it set) as the task's parameter dataclass; None: none
    params: Callable[[dict[str, Any]], Any] | None = None
    output_fixed: dict[str, Any] = field(default_factory=dict)  # output options the task sets itself
    output_excluded: frozenset[str] = frozenset()  # output knobs of its kind that the task does not take

    @property
    def output_knobs(self) -> frozenset[str]:
        return OutputOptions.applies_to(self.output_kind) - self.output_excluded - set(self.output_fixed)

    def model_for(self, values: dict[str, Any], fallback: str) -> str:
        """The network of a job that names none (`fallback`: the DEFAULT_MODEL setting)."""
        if self.model_by_knobs is not None:
            return self.model_by_knobs(values)
        return self.default_model or fallback

    def parameters(self, values: dict[str, Any]) -> Any:
        return None if self.params is None else self.params(values)
