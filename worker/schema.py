"""The job input: a JSON schema, checked for real (runpod's rp_validator skips the constraints of a
field that has a default), then turned into a plain `Job`.

Every refusal names the key and what it allows.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field, fields, replace
from typing import Any

from jsonschema import Draft202012Validator

from carvekit.params import CARVEKIT, JOB_KNOBS, POSTS, PRES, default_of
from imaging.options import OutputOptions
from matting.background import PRESETS, MatteParams
from models.bmv2 import REFINE_MODES
from restoration.restore import RestoreParams
from restoration.upscale import ALPHA_UPSAMPLERS, UpscaleParams
from worker import config
from worker.errors import InvalidInput

TASKS = ("remove_background", "mask", "restore", "upscale", "matte")
PRECISIONS = config.PRECISIONS
FOREGROUNDS = ("auto", "blur_fusion", "carvekit", "none")
MAX_ID_BYTES = 512
# The model of a job that names none, per task (removal: the DEFAULT_MODEL setting).
TASK_MODELS = {"upscale": "realesrgan-x4plus", "restore": "gfpgan-v1.4", "matte": "bmv2-mobilenetv2"}
UPSCALE_MODELS = {2: "realesrgan-x2plus", 4: "realesrgan-x4plus"}  # `scale` picks the network by default
BG_UPSAMPLER = "realesrgan-x2plus"  # GFPGAN's inference script's background upsampler
BG_UPSAMPLER_TILE = 400  # ... and its --bg_tile


def _chain_knob(minimum: int, maximum: int, description: str, field: str) -> dict[str, Any]:
    return {"type": ["integer", "null"], "minimum": minimum, "maximum": maximum, "default": None,
            "description": f"{description} (default {default_of(field)})"}


def _nullable(entry: dict) -> dict:
    return {**entry, "type": [entry["type"], "null"], "default": None}


_UPSCALE, _RESTORE, _MATTE = UpscaleParams(), RestoreParams(), MatteParams()

# The knobs a job may carry. A knob left out (or null) takes its default: `model` the DEFAULT_MODEL
# setting (or the task's own), `precision` the PRECISION setting, the chain's knobs carvekit/params.py's
# ChainParams (or carvekit's recommendation for the network), the others their dataclass's.
OPTION_SCHEMA: dict[str, dict[str, Any]] = {
    "model": {"type": "string", "minLength": 1, "maxLength": 256,
              "description": "a registered model name (or a local BiRefNet weights folder); default per task"},
    "task": {"enum": list(TASKS), "default": "remove_background"},
    "precision": {"enum": list(PRECISIONS) + [None], "default": None,
                  "description": "default: the PRECISION setting; auto = bfloat16 on CUDA, float32 on CPU"},
    # background removal
    "seg_mask_size": {"type": ["integer", "null"], "minimum": 32, "maximum": 4096, "default": None,
                      "description": "network input size; default: the model's own (BiRefNet_dynamic: a "
                                     "multiple of 32 from 256 to 2304)"},
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
    "restore_faces": {"type": "boolean", "default": False,
                      "description": "restore faces with GFPGAN v1.4 before the background is removed"},
    "bg_color": {"type": ["string", "null"], "pattern": "^#([0-9a-fA-F]{6}|[0-9a-fA-F]{8})$", "default": None,
                 "description": "composite onto this colour (#RRGGBB or #RRGGBBAA) instead of transparency"},
    # upscale
    "scale": {"enum": [2, 4], "default": 4, "description": "output scale; picks realesrgan-x2plus or -x4plus "
                                                         "unless `model` names one (then resized as the original)"},
    "tile": {"type": "integer", "minimum": 0, "maximum": 4096, "default": _UPSCALE.tile,
             "description": "tile size in input pixels, 0 = the whole image in one forward; device memory is "
                            "bounded by the tile (the image stays in host memory)"},
    "tile_pad": {"type": "integer", "minimum": 0, "maximum": 512, "default": _UPSCALE.tile_pad,
                 "description": "context around each tile"},
    "pre_pad": {"type": "integer", "minimum": 0, "maximum": 512, "default": _UPSCALE.pre_pad,
                "description": "reflect padding at the right and bottom, removed afterwards"},
    "alpha_upsampler": {"enum": list(ALPHA_UPSAMPLERS), "default": _UPSCALE.alpha_upsampler,
                        "description": "how a transparent image's alpha is enlarged: through the network, or "
                                       "OpenCV's bilinear resize"},
    # restore
    "upscale": {"type": "number", "minimum": 1, "maximum": 4, "default": _RESTORE.upscale,
                "description": "output scale of restore (the faces are restored at 512x512 and pasted back)"},
    "only_center_face": {"type": "boolean", "default": _RESTORE.only_center_face,
                         "description": "restore only the face nearest the image centre"},
    "bg_upsampler": {"enum": ["none", "realesrgan"], "default": "none",
                     "description": f"enlarge the non-face regions with Real-ESRGAN ({BG_UPSAMPLER}, tile "
                                    f"{BG_UPSAMPLER_TILE}) instead of Lanczos; also restores an image with no face"},
    "noise_seed": {"type": ["integer", "null"], "minimum": 0, "maximum": 2**31 - 1, "default": None,
                   "description": "GFPGAN's per-layer noise: null = the checkpoint's stored noise (deterministic); "
                                  "an integer = fresh noise drawn from this seed (the published inference "
                                  "draws unseeded noise on every call)"},
    # matte
    "bgr_id": {"type": ["string", "null"], "default": None,
               "description": "the background plate's key below bgr/ (default: the job's id)"},
    "preset": {"enum": ["auto", *PRESETS], "default": _MATTE.preset,
               "description": "hd (backbone_scale 0.25, 80,000 refined pixels) or 4k (0.125, 320,000); auto: 4k "
                              f"above {_MATTE.four_k_above_pixels} pixels"},
    "refine_mode": {"enum": list(REFINE_MODES), "default": _MATTE.refine_mode,
                    "description": "which 4x4 patches the refiner refines: the most uncertain sample_pixels "
                                   "(sampling), those above refine_threshold (thresholding), or all (full)"},
    "backbone_scale": _nullable({"type": "number", "minimum": 0.03125, "maximum": 0.5,
                                 "description": "the coarse pass's scale (default: the preset's)"}),
    "sample_pixels": _nullable({"type": "integer", "minimum": 16, "maximum": 16_000_000,
                                "description": "pixels refined in sampling mode (default: the preset's)"}),
    "refine_threshold": {"type": "number", "minimum": 0, "maximum": 1, "default": _MATTE.threshold,
                         "description": "error above which a patch is refined in thresholding mode"},
    # the output (imaging/options.py)
    **OutputOptions.schema(),
}

_EVERY_TASK = {"model", "task", "precision"}
_REMOVAL = _EVERY_TASK | {"seg_mask_size", "pre", "post", "restore_faces", *JOB_KNOBS}
# Which knobs apply to which task: a knob set for a task it does not apply to is refused by name.
TASK_KEYS: dict[str, frozenset[str]] = {
    "remove_background": frozenset(_REMOVAL | {"foreground", "bg_color"} | OutputOptions.applies_to("remove_background")),
    "mask": frozenset(_REMOVAL | OutputOptions.applies_to("mask")),
    "restore": frozenset(_EVERY_TASK | {"upscale", "only_center_face", "bg_upsampler", "noise_seed"}
                         | OutputOptions.applies_to("restore")),
    "upscale": frozenset(_EVERY_TASK | {"scale", "tile", "tile_pad", "pre_pad", "alpha_upsampler"}
                         | OutputOptions.applies_to("upscale")),
    "matte": frozenset(_EVERY_TASK | {"bgr_id", "preset", "refine_mode", "backbone_scale", "sample_pixels",
                                      "refine_threshold", "bg_color"}
                       | (OutputOptions.applies_to("matte") - {"frames"})),
}
assert set().union(*TASK_KEYS.values()) == set(OPTION_SCHEMA)

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
class UpscaleJob:
    params: UpscaleParams


@dataclass(frozen=True)
class RestoreJob:
    params: RestoreParams
    bg_upsampler: bool
    noise_seed: int | None


@dataclass(frozen=True)
class MatteJob:
    params: MatteParams
    bgr_id: str | None


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
    # the knobs of the restore, upscale and matte tasks, checked by their own dataclasses
    task_params: UpscaleJob | RestoreJob | MatteJob | None = None

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


def validate_id(value: str, key: str = "id") -> str:
    """An id is a plain key below its prefix (ogs/, bgr/): nothing that could escape it."""
    if not value:
        raise InvalidInput(f"{key}: must not be empty")
    if len(value.encode("utf-8")) > MAX_ID_BYTES:
        raise InvalidInput(f"{key}: longer than {MAX_ID_BYTES} bytes")
    if value.startswith("/"):
        raise InvalidInput(f"{key}: must not start with '/'")
    if "\\" in value:
        raise InvalidInput(f"{key}: must not contain a backslash")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value):
        raise InvalidInput(f"{key}: must not contain control characters")
    if any(segment in ("..", ".", "") for segment in value.split("/")):
        raise InvalidInput(f"{key}: must not contain '..', '.' or empty path segments")
    return value


def _task_params(task: str, values: dict) -> UpscaleJob | RestoreJob | MatteJob | None:
    """The task's own knobs as its procedure's parameter dataclass (which checks them too)."""
    if task == "upscale":
        return UpscaleJob(UpscaleParams(tile=values.get("tile", _UPSCALE.tile),
                                        tile_pad=values.get("tile_pad", _UPSCALE.tile_pad),
                                        pre_pad=values.get("pre_pad", _UPSCALE.pre_pad),
                                        outscale=float(values.get("scale", 4)),
                                        alpha_upsampler=values.get("alpha_upsampler", _UPSCALE.alpha_upsampler)))
    if task == "restore":
        params = replace(_RESTORE, upscale=float(values.get("upscale", _RESTORE.upscale)),
                         only_center_face=values.get("only_center_face", _RESTORE.only_center_face))
        return RestoreJob(params, values.get("bg_upsampler", "none") == "realesrgan", values.get("noise_seed"))
    if task == "matte":
        params = MatteParams(preset=values.get("preset", _MATTE.preset),
                             refine_mode=values.get("refine_mode", _MATTE.refine_mode),
                             backbone_scale=values.get("backbone_scale"), sample_pixels=values.get("sample_pixels"),
                             threshold=values.get("refine_threshold", _MATTE.threshold))
        bgr_id = values.get("bgr_id")
        return MatteJob(params, None if bgr_id is None else validate_id(bgr_id, "bgr_id"))
    return None


def _default_model(task: str, values: dict, defaults: config.Settings) -> str:
    if task == "upscale":
        return UPSCALE_MODELS[values.get("scale", 4)]
    return TASK_MODELS.get(task, defaults.default_model)


def _options(raw: dict, defaults: config.Settings) -> Options:
    values = {k: v for k, v in raw.items() if k in OPTION_SCHEMA and v is not None}
    task = values.get("task", Options.task)
    misplaced = sorted(set(values) - TASK_KEYS[task])
    if misplaced:
        raise InvalidInput(f"{', '.join(misplaced)}: does not apply to task {task!r}; "
                           f"its keys: {', '.join(sorted(TASK_KEYS[task]))}")
    output_knobs = {k: values.pop(k) for k in list(values) if k in OutputOptions.schema()}
    try:
        if task == "mask":
            output_knobs["channels"] = "alpha"
        output = OutputOptions(**output_knobs)
        output.check_background(values.get("bg_color"))
        task_params = _task_params(task, values)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    values.setdefault("model", _default_model(task, values, defaults))
    values.setdefault("precision", defaults.precision)
    own = {f.name for f in fields(Options)}
    return Options(**{k: v for k, v in values.items() if k in own}, output=output, task_params=task_params)


def parse_job(raw: Any, defaults: config.Settings) -> Job:
    _check(raw, JOB_SCHEMA)
    return Job(validate_id(raw["id"]), _options(raw, defaults))


def parse_event_options(raw: Any, defaults: config.Settings) -> Options:
    """The options that come with an S3 notification forwarded as the job input."""
    _check(raw, EVENT_SCHEMA)
    return _options(raw, defaults)
