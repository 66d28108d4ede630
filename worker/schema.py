"""The job input: every key converted once, here, by its `Knob` (imaging/knobs.py) into the type its
code takes, then turned into a plain `Job`.

Every refusal names the key and what it allows; an unknown key lists the keys of the job's task, with
the nearest one when it looks like a typo.
"""
from __future__ import annotations

import difflib
import unicodedata
from dataclasses import dataclass, field, fields, replace
from typing import Any

from pipeline.carvekit.params import CARVEKIT, JOB_KNOBS, POSTS, PRES, default_of
from imaging.knobs import Knob, KnobError, quote
from imaging.options import OUTPUT_KNOBS, OutputOptions
from pipeline.matting.background import PRESETS, MatteParams
from models.bmv2 import REFINE_MODES
from pipeline.restoration.restore import RestoreParams
from pipeline.restoration.upscale import ALPHA_UPSAMPLERS, UpscaleParams
from worker import config
from worker.errors import InvalidInput

TASKS = ("remove_background", "mask", "restore", "upscale", "matte")
PRECISIONS = config.PRECISIONS
FOREGROUNDS = ("auto", "blur_fusion", "carvekit", "none")
MAX_ID_BYTES = 512
MAX_REFUSALS = 5  # an answer lists at most this many refusals (answers stay small)
# The model of a job that names none, per task (removal: the DEFAULT_MODEL setting).
TASK_MODELS = {"upscale": "realesrgan-x4plus", "restore": "gfpgan-v1.4", "matte": "bmv2-mobilenetv2"}
UPSCALE_MODELS = {2: "realesrgan-x2plus", 4: "realesrgan-x4plus"}  # `scale` picks the network by default
BG_UPSAMPLER = "realesrgan-x2plus"  # GFPGAN's inference script's background upsampler
BG_UPSAMPLER_TILE = 400  # ... and its --bg_tile
HEX_COLOUR = r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})"


def check_plain_key(value: str) -> None:
    """An id is a plain key below its prefix (ogs/, bgr/): nothing that could escape it."""
    if not value:
        raise ValueError("must not be empty")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        raise ValueError(f"longer than {MAX_ID_BYTES} bytes")
    if value.startswith("/"):
        raise ValueError("must not start with '/'")
    if "\\" in value:
        raise ValueError("must not contain a backslash")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in value):
        raise ValueError("must not contain control characters")
    if any(segment in ("..", ".", "") for segment in value.split("/")):
        raise ValueError("must not contain '..', '.' or empty path segments")


def validate_id(value: str, key: str = "id") -> str:
    try:
        check_plain_key(value)
    except ValueError as exc:
        raise InvalidInput(f"{key}: {exc}") from None
    return value


def _chain_knob(name: str, low: int, high: int, doc: str) -> Knob:
    return Knob(name, int, None, f"{doc} (default {default_of(name)})", bounds=(low, high), nullable=True)


_UPSCALE, _RESTORE, _MATTE = UpscaleParams(), RestoreParams(), MatteParams()

ID = Knob("id", str, None, "the image's key below ogs/", parse=check_plain_key)

# The knobs a job may carry. A knob left out (or null, where it takes null) takes its default: `model`
# the DEFAULT_MODEL setting (or the task's own), `precision` the PRECISION setting, the chain's knobs
# pipeline/carvekit/params.py's ChainParams (or carvekit's recommendation for the network), the others their
# dataclass's.
KNOBS: dict[str, Knob] = {knob.name: knob for knob in (
    Knob("model", str, None, "a registered model name (or a local BiRefNet weights folder); default per task",
         max_length=256, pattern=r"[^\x00-\x1f\x7f]+", pattern_doc="a model name (no control characters)"),
    Knob("task", str, "remove_background", "what the job makes (see Tasks)", choices=TASKS),
    Knob("precision", str, None, "default: the PRECISION setting; auto = bfloat16 on CUDA, float32 on CPU",
         choices=PRECISIONS, nullable=True),
    # background removal
    Knob("seg_mask_size", int, None, "network input size; default: the model's own (BiRefNet_dynamic: a multiple "
         "of 32 from 256 to 2304)", bounds=(32, 4096), nullable=True),
    Knob("foreground", str, "auto", "colour of the cut-out's edges: blur_fusion decontamination, carvekit's grey "
         "blend, or the photo's own pixels; auto = blur_fusion for BiRefNet models and the carvekit chain, none "
         "otherwise", choices=FOREGROUNDS),
    Knob("pre", str, "none", "carvekit's automatic network choice: autoscene (scene classifier) or auto (+ YOLOv4)",
         choices=PRES),
    Knob("post", str, None, f"carvekit's matte refinement; default cascade_fba for model {CARVEKIT}, else none",
         choices=POSTS, nullable=True),
    _chain_knob("matting_mask_size", 64, 4096, "FBA input size"),
    _chain_knob("refine_mask_size", 64, 4096, "CascadePSP input size"),
    _chain_knob("trimap_dilation", 0, 256, "unknown band radius in pixels; deeplabv3: 40"),
    _chain_knob("trimap_erosion", 0, 64, "erosion iterations of the sure foreground; deeplabv3: 20"),
    _chain_knob("trimap_prob_threshold", 0, 255, "mask values above it are sure foreground"),
    Knob("restore_faces", bool, False, "restore faces with GFPGAN v1.4 before the background is removed"),
    Knob("bg_color", str, None, "composite onto this colour (#RRGGBB or #RRGGBBAA) instead of transparency",
         pattern=HEX_COLOUR, pattern_doc="a colour #RRGGBB or #RRGGBBAA", nullable=True),
    # upscale
    Knob("scale", int, 4, "output scale; picks realesrgan-x2plus or -x4plus unless `model` names one (then "
         "resized as the original)", choices=(2, 4)),
    Knob("tile", int, _UPSCALE.tile, "tile size in input pixels, 0 = the whole image in one forward; device "
         "memory is bounded by the tile (the image stays in host memory)", bounds=(0, 4096)),
    Knob("tile_pad", int, _UPSCALE.tile_pad, "context around each tile", bounds=(0, 512)),
    Knob("pre_pad", int, _UPSCALE.pre_pad, "reflect padding at the right and bottom, removed afterwards",
         bounds=(0, 512)),
    Knob("alpha_upsampler", str, _UPSCALE.alpha_upsampler, "how a transparent image's alpha is enlarged: "
         "through the network, or OpenCV's bilinear resize", choices=ALPHA_UPSAMPLERS),
    # restore
    Knob("upscale", float, _RESTORE.upscale, "output scale of restore (the faces are restored at 512x512 and "
         "pasted back)", bounds=(1, 4)),
    Knob("only_center_face", bool, _RESTORE.only_center_face, "restore only the face nearest the image centre"),
    Knob("bg_upsampler", str, "none", f"enlarge the non-face regions with Real-ESRGAN ({BG_UPSAMPLER}, tile "
         f"{BG_UPSAMPLER_TILE}) instead of Lanczos; also restores an image with no face",
         choices=("none", "realesrgan")),
    Knob("noise_seed", int, None, "GFPGAN's per-layer noise: null = the checkpoint's stored noise "
         "(deterministic); an integer = fresh noise drawn from this seed (the published inference draws "
         "unseeded noise on every call)", bounds=(0, 2**31 - 1), nullable=True),
    # matte
    Knob("bgr_id", str, None, "the background plate's key below bgr/ (default: the job's id)",
         parse=check_plain_key, nullable=True),
    Knob("preset", str, _MATTE.preset, "hd (backbone_scale 0.25, 80,000 refined pixels) or 4k (0.125, "
         f"320,000); auto: 4k above {_MATTE.four_k_above_pixels} pixels", choices=("auto", *PRESETS)),
    Knob("refine_mode", str, _MATTE.refine_mode, "which 4x4 patches the refiner refines: the most uncertain "
         "sample_pixels (sampling), those above refine_threshold (thresholding), or all (full)",
         choices=REFINE_MODES),
    Knob("backbone_scale", float, None, "the coarse pass's scale (default: the preset's)",
         bounds=(0.03125, 0.5), nullable=True),
    Knob("sample_pixels", int, None, "pixels refined in sampling mode (default: the preset's)",
         bounds=(16, 16_000_000), nullable=True),
    Knob("refine_threshold", float, _MATTE.threshold, "error above which a patch is refined in thresholding mode",
         bounds=(0, 1)),
)} | OUTPUT_KNOBS

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
assert set().union(*TASK_KEYS.values()) == set(KNOBS)


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
    # the knobs of the restore, upscale and matte tasks, as their procedures' parameter dataclasses
    task_params: UpscaleJob | RestoreJob | MatteJob | None = None

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


def _task_params(task: str, values: dict) -> UpscaleJob | RestoreJob | MatteJob | None:
    """The task's own knobs as its procedure's parameter dataclass."""
    if task == "upscale":
        return UpscaleJob(UpscaleParams(tile=values.get("tile", _UPSCALE.tile),
                                        tile_pad=values.get("tile_pad", _UPSCALE.tile_pad),
                                        pre_pad=values.get("pre_pad", _UPSCALE.pre_pad),
                                        outscale=float(values.get("scale", KNOBS["scale"].default)),
                                        alpha_upsampler=values.get("alpha_upsampler", _UPSCALE.alpha_upsampler)))
    if task == "restore":
        params = replace(_RESTORE, upscale=values.get("upscale", _RESTORE.upscale),
                         only_center_face=values.get("only_center_face", _RESTORE.only_center_face))
        return RestoreJob(params, values.get("bg_upsampler") == "realesrgan", values.get("noise_seed"))
    if task == "matte":
        params = MatteParams(preset=values.get("preset", _MATTE.preset),
                             refine_mode=values.get("refine_mode", _MATTE.refine_mode),
                             backbone_scale=values.get("backbone_scale"), sample_pixels=values.get("sample_pixels"),
                             threshold=values.get("refine_threshold", _MATTE.threshold))
        return MatteJob(params, values.get("bgr_id"))
    return None


def _default_model(task: str, values: dict, defaults: config.Settings) -> str:
    if task == "upscale":
        return UPSCALE_MODELS[values.get("scale", KNOBS["scale"].default)]
    return TASK_MODELS.get(task, defaults.default_model)


def _options(values: dict, defaults: config.Settings) -> Options:
    """The converted values as Options; the checks that take several knobs together refuse here."""
    task = values["task"]
    output_knobs = {k: values.pop(k) for k in list(values) if k in OUTPUT_KNOBS}
    try:
        if task == "mask":
            output_knobs["channels"] = "alpha"
        output = OutputOptions(**output_knobs)
        output.check_background(task, values.get("bg_color"))
        task_params = _task_params(task, values)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    values.setdefault("model", _default_model(task, values, defaults))
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
