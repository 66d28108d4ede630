"""The job input: a JSON schema, checked for real (runpod's rp_validator skips the constraints of a
field that has a default), then turned into a plain `Job`.

Every refusal names the key and what it allows.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, fields
from typing import Any

from jsonschema import Draft202012Validator

from carvekit.params import CARVEKIT, JOB_KNOBS, POSTS, PRES, default_of
from worker import config
from worker.errors import InvalidInput

TASKS = ("remove_background", "mask", "restore", "upscale", "matte")
PRECISIONS = config.PRECISIONS
FOREGROUNDS = ("auto", "blur_fusion", "carvekit", "none")
MAX_ID_BYTES = 512


def _chain_knob(minimum: int, maximum: int, description: str, field: str) -> dict[str, Any]:
    return {"type": ["integer", "null"], "minimum": minimum, "maximum": maximum, "default": None,
            "description": f"{description} (default {default_of(field)})"}


# The knobs a job may carry. A knob left out (None) takes its default: `model` the DEFAULT_MODEL
# setting, `precision` the PRECISION setting, the chain's knobs carvekit/params.py's ChainParams
# (or carvekit's recommendation for the network).
OPTION_SCHEMA: dict[str, dict[str, Any]] = {
    "model": {"type": "string", "minLength": 1, "maxLength": 256,
              "description": "a registered model name or a local BiRefNet weights folder"},
    "task": {"enum": list(TASKS), "default": "remove_background"},
    "seg_mask_size": {"type": ["integer", "null"], "minimum": 32, "maximum": 4096, "default": None,
                      "description": "network input size; default: the model's own"},
    "foreground": {"enum": list(FOREGROUNDS), "default": "auto",
                   "description": "colour of the cut-out's edges: blur_fusion decontamination, carvekit's grey "
                                  "blend, or the photo's own pixels; auto = blur_fusion for BiRefNet models and "
                                  "the carvekit chain, none otherwise"},
    "pre": {"enum": list(PRES), "default": "none",
            "description": "carvekit's automatic network choice: autoscene (scene classifier) or auto (+ YOLOv4)"},
    "post": {"enum": list(POSTS) + [None], "default": None,
             "description": f"carvekit's matte refinement; default cascade_fba for model {CARVEKIT}, else none"},
    "matting_mask_size": _chain_knob(64, 4096, "FBA input size", "matting_mask_size"),
    "refine_mask_size": _chain_knob(64, 4096, "CascadePSP input size", "refine_mask_size"),
    "trimap_dilation": _chain_knob(0, 256, "unknown band radius in pixels; deeplabv3: 40", "trimap_dilation"),
    "trimap_erosion": _chain_knob(0, 64, "erosion iterations of the sure foreground; deeplabv3: 20",
                                  "trimap_erosion"),
    "trimap_prob_threshold": _chain_knob(0, 255, "mask values above it are sure foreground",
                                         "trimap_prob_threshold"),
    "bg_color": {"type": ["string", "null"], "pattern": "^#([0-9a-fA-F]{6}|[0-9a-fA-F]{8})$", "default": None,
                 "description": "composite onto this colour (#RRGGBB or #RRGGBBAA) instead of transparency"},
    "precision": {"enum": list(PRECISIONS) + [None], "default": None,
                  "description": "default: the PRECISION setting; auto = bfloat16 on CUDA, float32 on CPU"},
}

_EVERY_TASK = {"model", "task", "precision"}
_REMOVAL = _EVERY_TASK | {"seg_mask_size", "pre", "post", *JOB_KNOBS}
# Which knobs apply to which task: a knob set for a task it does not apply to is refused by name.
TASK_KEYS: dict[str, frozenset[str]] = {
    "remove_background": frozenset(_REMOVAL | {"foreground", "bg_color"}),
    "mask": frozenset(_REMOVAL),
    "restore": frozenset(_EVERY_TASK),
    "upscale": frozenset(_EVERY_TASK),
    "matte": frozenset(_EVERY_TASK | {"bg_color"}),
}

JOB_SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "string"}, **OPTION_SCHEMA},
    "required": ["id"],
    "additionalProperties": False,
}
EVENT_SCHEMA = {
    "type": "object",
    "properties": {"Records": {"type": "array"}, **OPTION_SCHEMA},
    "required": ["Records"],
    "additionalProperties": False,
}


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

    def chain_knobs(self) -> dict:
        """The carvekit chain knobs the job set (the others keep their defaults)."""
        return {name: getattr(self, name) for name in JOB_KNOBS if getattr(self, name) is not None}


@dataclass(frozen=True)
class Job:
    id: str
    options: Options


QUOTE_CHARS = 60  # an error quotes at most this much of a caller's value


def quote(value: Any) -> str:
    """A caller's value as an error quotes it: repr, cut to a short prefix (answers stay small)."""
    text = repr(value)
    return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS] + f"... ({len(text)} chars)"


def _describe(error) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "input"
    schema = error.schema
    value = quote(error.instance)
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema["properties"]))
        allowed = ", ".join(error.schema["properties"])
        return f"unknown key {', '.join(quote(k) for k in unknown[:5])}; allowed keys: {allowed}"
    if error.validator == "required":
        return f"missing required key: {error.message.split()[0]}"
    if error.validator == "enum":
        allowed = ", ".join(str(v) for v in schema["enum"] if v is not None)
        return f"{key}: {value} is not allowed; allowed values: {allowed}"
    if error.validator == "pattern" and key == "bg_color":
        return f"bg_color: {value} is not a colour; use #RRGGBB or #RRGGBBAA"
    if error.validator in ("minimum", "maximum"):
        return f"{key}: {value} is out of range; allowed: {schema['minimum']}..{schema['maximum']}"
    if error.validator == "type":
        wanted = schema["type"] if isinstance(schema["type"], str) else " or ".join(schema["type"])
        return f"{key}: {value} has the wrong type; expected {wanted}"
    if error.validator in ("maxLength", "minLength"):
        return f"{key}: {value} must be {schema.get('minLength', 0)}..{schema.get('maxLength')} characters"
    return f"{key}: {error.message[:200]}"


def _check(instance: Any, schema: dict) -> None:
    if not isinstance(instance, dict):
        raise InvalidInput("input must be a JSON object")
    errors = sorted(Draft202012Validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        raise InvalidInput("; ".join(_describe(e) for e in errors))


def validate_id(value: str) -> str:
    """An id is a plain key below ogs/: nothing that could escape that prefix."""
    if not value:
        raise InvalidInput("id: must not be empty")
    if len(value.encode("utf-8")) > MAX_ID_BYTES:
        raise InvalidInput(f"id: longer than {MAX_ID_BYTES} bytes")
    if value.startswith("/"):
        raise InvalidInput("id: must not start with '/'")
    if "\\" in value:
        raise InvalidInput("id: must not contain a backslash")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value):
        raise InvalidInput("id: must not contain control characters")
    if any(segment in ("..", ".", "") for segment in value.split("/")):
        raise InvalidInput("id: must not contain '..', '.' or empty path segments")
    return value


def _options(raw: dict, defaults: config.Settings) -> Options:
    known = {f.name for f in fields(Options)}
    values = {k: v for k, v in raw.items() if k in known and v is not None}
    task = values.get("task", Options.task)
    misplaced = sorted(set(values) - TASK_KEYS[task])
    if misplaced:
        raise InvalidInput(f"{', '.join(misplaced)}: does not apply to task {task!r}; "
                           f"its keys: {', '.join(sorted(TASK_KEYS[task]))}")
    values.setdefault("model", defaults.default_model)
    values.setdefault("precision", defaults.precision)
    return Options(**values)


def parse_job(raw: Any, defaults: config.Settings) -> Job:
    _check(raw, JOB_SCHEMA)
    return Job(validate_id(raw["id"]), _options(raw, defaults))


def parse_event_options(raw: Any, defaults: config.Settings) -> Options:
    """The options that come with an S3 notification forwarded as the job input."""
    _check(raw, EVENT_SCHEMA)
    return _options(raw, defaults)
