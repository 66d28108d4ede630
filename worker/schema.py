"""The job input: every key converted once, here, by its `Knob` (imaging/knobs.py) into the type its
code takes, then turned into a plain `Job`.

Every refusal names the key and what it allows; an unknown key lists the keys of the job's task, with
the nearest one when it looks like a typo.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields
from typing import Any

from imaging.knobs import Knob, KnobError, check_plain_key, quote
from imaging.options import OUTPUT_KNOBS, OutputOptions
from pipeline import TASKS
from pipeline.carvekit.params import JOB_KNOBS
from pipeline.task import TaskSpec
from worker import config
from worker.errors import InvalidInput

PRECISIONS = config.PRECISIONS
MAX_REFUSALS = 5  # an answer lists at most this many refusals (answers stay small)


def validate_id(value: str, key: str = "id") -> str:
    try:
        check_plain_key(value)
    except ValueError as exc:
        raise InvalidInput(f"{key}: {exc}") from None
    return value


ID = Knob("id", str, None, "the image's key below ogs/", parse=check_plain_key)

# The knobs every task takes. A knob left out (or null, where it takes null) takes its default: `model`
# the task's own (or the DEFAULT_MODEL setting), `precision` the PRECISION setting, a task's knobs their
# descriptor's (pipeline/).
COMMON_KNOBS = (
    Knob("model", str, None, "a registered model name (or a local BiRefNet weights folder); default per task",
         max_length=256, pattern=r"[^\x00-\x1f\x7f]+", pattern_doc="a model name (no control characters)"),
    Knob("task", str, "remove_background", "what the job makes (see Tasks)", choices=tuple(TASKS)),
    Knob("precision", str, None, "default: the PRECISION setting; auto = bfloat16 on CUDA, float32 on CPU",
         choices=PRECISIONS, nullable=True),
)


def _every_knob() -> dict[str, Knob]:
    """The common knobs, every task's own (in the order of pipeline.TASKS) and the output's; a knob
    that several tasks take is one and the same."""
    knobs: dict[str, Knob] = {}
    for knob in (*COMMON_KNOBS, *(k for spec in TASKS.values() for k in spec.knobs), *OUTPUT_KNOBS.values()):
        assert knobs.setdefault(knob.name, knob) is knob, f"two knobs named {knob.name}"
    return knobs


KNOBS: dict[str, Knob] = _every_knob()


def task_keys(tasks: dict[str, TaskSpec]) -> dict[str, frozenset[str]]:
    """The keys each task takes: the common knobs, its descriptor's own and its output kind's."""
    return {name: frozenset({knob.name for knob in (*COMMON_KNOBS, *spec.knobs)} | spec.output_knobs)
            for name, spec in tasks.items()}


# Which knobs apply to which task: a knob set for a task it does not apply to is refused by name.
TASK_KEYS = task_keys(TASKS)
assert set().union(*TASK_KEYS.values()) == set(KNOBS)


@dataclass(frozen=True)
class Options:
    model: str
    task: str = "remove_background"
    precision: str = "auto"
    seg_mask_size: int | None = None
    foreground: str = "auto"
    bg_color: str | None = None
    pre: str = "none"
    post: str | None = None
    matting_mask_size: int | None = None
    refine_mask_size: int | None = None
    trimap_dilation: int | None = None
    trimap_erosion: int | None = None
    trimap_prob_threshold: int | None = None
    restore_faces: bool = False
    output: OutputOptions = field(default_factory=OutputOptions)
    # the task's own knobs as its descriptor's parameter dataclass (restore, upscale, matte), else None
    task_params: Any = None

    def chain_knobs(self) -> dict:
        """The carvekit chain knobs the job set (the others keep their defaults)."""
        return {name: getattr(self, name) for name in JOB_KNOBS if getattr(self, name) is not None}


@dataclass(frozen=True)
class Job:
    id: str
    options: Options


def _refused(errors: list[str]) -> InvalidInput:
    shown = "; ".join(errors[:MAX_REFUSALS])
    more = len(errors) - MAX_REFUSALS
    return InvalidInput(shown + (f"; and {more} more" if more > 0 else ""))


def _not_taken(key: Any, task: str | None, takes: dict[str, Knob], listed: bool) -> str:
    """The refusal of a key the task does not take: another task's knob, or an unknown key with the
    nearest known one (a typo) and, unless `listed` already, the task's keys."""
    if key in KNOBS:  # (with an unknown task, every knob is taken)
        return f"{key}: does not apply to task {task!r}; its keys: {', '.join(sorted(TASK_KEYS[task]))}"
    near = difflib.get_close_matches(key, list(takes), n=1) if isinstance(key, str) else []
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    listing = f"; task {task}'s keys: {', '.join(takes)}" if task is not None and not listed else ""
    return f"unknown key {quote(key)}{hint}{listing}"


def _convert(raw: Any, fixed: dict[str, Knob]) -> dict[str, Any]:
    """Every key of the input through its knob (`fixed`: the required ones, e.g. id): the values the
    job set, null ones left out, with `task`; or one InvalidInput listing the refusals, the task's first."""
    if not isinstance(raw, dict):
        raise InvalidInput("input must be a JSON object")
    errors: list[str] = []
    task: str | None = KNOBS["task"].default
    if "task" in raw:
        try:
            task = KNOBS["task"].convert(raw["task"])
        except KnobError as exc:
            errors.append(str(exc))
            task = None
    takes = {**fixed, **{name: knob for name, knob in KNOBS.items() if task is None or name in TASK_KEYS[task]}}
    errors += [f"missing required key: {name!r}" for name in fixed if name not in raw]
    values: dict[str, Any] = {}
    listed = False  # the task's keys: listed with the first unknown key only
    for key, value in raw.items():
        if key == "task":
            continue
        if key not in takes:
            errors.append(_not_taken(key, task, takes, listed))
            listed = listed or key not in KNOBS
            continue
        try:
            converted = takes[key].convert(value)
        except KnobError as exc:
            errors.append(str(exc))
            continue
        if converted is not None:
            values[key] = converted
    errors += [f"{key}: applies only with {takes[key].needs}: true" for key in values
               if takes[key].needs and not values.get(takes[key].needs)]
    if errors:
        raise _refused(errors)
    return {**values, "task": task}


def _options(values: dict, defaults: config.Settings) -> Options:
    """The converted values as Options; the checks that take several knobs together refuse here."""
    spec = TASKS[values["task"]]
    output_knobs = {k: values.pop(k) for k in list(values) if k in OUTPUT_KNOBS}
    try:
        output = OutputOptions(**output_knobs, **spec.output_fixed)
        output.check_background(spec.output_kind, values.get("bg_color"))
        task_params = spec.parameters(values)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    values.setdefault("model", spec.model_for(values, defaults.default_model))
    values.setdefault("precision", defaults.precision)
    own = {f.name for f in fields(Options)}
    return Options(**{k: v for k, v in values.items() if k in own}, output=output, task_params=task_params)


def parse_job(raw: Any, defaults: config.Settings) -> Job:
    values = _convert(raw, {"id": ID})
    return Job(values.pop("id"), _options(values, defaults))


def parse_event_options(raw: Any, defaults: config.Settings) -> Options:
    """The options that come with an S3 notification forwarded as the job input (its Records are
    parse_records's)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("Records"), list):
        raise InvalidInput("Records: must be a list of S3 event records")
    return _options(_convert({k: v for k, v in raw.items() if k != "Records"}, {}), defaults)
