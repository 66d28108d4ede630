"""The job input: a JSON schema, checked for real (runpod's rp_validator skips the constraints of a
field that has a default), then turned into a plain `Job`.

Every refusal names the key and what it allows.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, fields
from typing import Any

from jsonschema import Draft202012Validator

from pipeline.errors import InvalidInput

TASKS = ("remove_background", "mask", "restore", "upscale", "matte")
PRECISIONS = ("auto", "float32", "float16", "bfloat16")
FOREGROUNDS = ("auto", "blur_fusion", "carvekit", "none")
PRES = ("none", "autoscene", "auto")
POSTS = ("none", "fba", "cascade_fba")
MAX_ID_BYTES = 512

# The knobs every job may carry, with their defaults. `model` defaults to the DEFAULT_MODEL setting.
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
             "description": "carvekit's matte refinement; default cascade_fba for model carvekit, else none"},
    "matting_mask_size": {"type": ["integer", "null"], "minimum": 64, "maximum": 4096, "default": None,
                          "description": "FBA input size (default 2048)"},
    "refine_mask_size": {"type": ["integer", "null"], "minimum": 64, "maximum": 4096, "default": None,
                         "description": "CascadePSP input size (default 900)"},
    "trimap_dilation": {"type": ["integer", "null"], "minimum": 0, "maximum": 256, "default": None,
                        "description": "unknown band radius in pixels (default 30; deeplabv3 40)"},
    "trimap_erosion": {"type": ["integer", "null"], "minimum": 0, "maximum": 64, "default": None,
                       "description": "erosion iterations of the sure foreground (default 5; deeplabv3 20)"},
    "trimap_prob_threshold": {"type": ["integer", "null"], "minimum": 0, "maximum": 255, "default": None,
                              "description": "mask values above it are sure foreground (default 231)"},
    "bg_color": {"type": ["string", "null"], "pattern": "^#([0-9a-fA-F]{6}|[0-9a-fA-F]{8})$", "default": None,
                 "description": "composite onto this colour (#RRGGBB or #RRGGBBAA) instead of transparency"},
    "precision": {"enum": list(PRECISIONS), "default": "auto",
                  "description": "auto = bfloat16 on CUDA, float32 on CPU"},
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
    seg_mask_size: int | None = None
    foreground: str = "auto"
    bg_color: str | None = None
    precision: str = "auto"
    pre: str = "none"
    post: str | None = None
    matting_mask_size: int | None = None
    refine_mask_size: int | None = None
    trimap_dilation: int | None = None
    trimap_erosion: int | None = None
    trimap_prob_threshold: int | None = None


@dataclass(frozen=True)
class Job:
    id: str
    options: Options


def _describe(error) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "input"
    schema = error.schema
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema["properties"]))
        allowed = ", ".join(error.schema["properties"])
        return f"unknown key {', '.join(map(repr, unknown))}; allowed keys: {allowed}"
    if error.validator == "required":
        return f"missing required key: {error.message.split()[0]}"
    if error.validator == "enum":
        return f"{key}: {error.instance!r} is not allowed; allowed values: {', '.join(str(v) for v in schema['enum'] if v is not None)}"
    if error.validator == "pattern" and key == "bg_color":
        return f"bg_color: {error.instance!r} is not a colour; use #RRGGBB or #RRGGBBAA"
    if error.validator in ("minimum", "maximum"):
        return f"{key}: {error.instance!r} is out of range; allowed: {schema['minimum']}..{schema['maximum']}"
    if error.validator == "type":
        wanted = schema["type"] if isinstance(schema["type"], str) else " or ".join(schema["type"])
        return f"{key}: {error.instance!r} has the wrong type; expected {wanted}"
    return f"{key}: {error.message}"


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


def _options(raw: dict, default_model: str) -> Options:
    known = {f.name for f in fields(Options)}
    values = {k: v for k, v in raw.items() if k in known}
    values.setdefault("model", default_model)
    return Options(**values)


def parse_job(raw: Any, default_model: str) -> Job:
    _check(raw, JOB_SCHEMA)
    return Job(validate_id(raw["id"]), _options(raw, default_model))


def parse_event_options(raw: Any, default_model: str) -> Options:
    """The options that come with an S3 notification forwarded as the job input."""
    _check(raw, EVENT_SCHEMA)
    return _options(raw, default_model)
