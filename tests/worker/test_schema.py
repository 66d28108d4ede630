"""Job validation: every refusal names the key and what it allows."""
from __future__ import annotations

import pytest

from worker.config import Settings
from worker.errors import InvalidInput
from worker.schema import parse_event_options, parse_job

DEFAULT = Settings(default_model="briaai/RMBG-2.0")


def test_defaults():
    job = parse_job({"id": "a1b2c3"}, DEFAULT)
    assert job.id == "a1b2c3"
    assert job.options.model == "briaai/RMBG-2.0" and job.options.task == "remove_background"
    assert job.options.foreground == "auto" and job.options.bg_color is None


def test_nested_ids_are_plain_keys():
    assert parse_job({"id": "user 7/photo.jpg"}, DEFAULT).id == "user 7/photo.jpg"


@pytest.mark.parametrize("bad_id,reason", [
    ("", "empty"), ("../etc/passwd", "'..'"), ("a/../../b", "'..'"), ("/abs", "start with '/'"),
    ("a\\b", "backslash"), ("a\x00b", "control"), ("a\nb", "control"), ("x" * 513, "512 bytes"),
    ("a//b", "empty path"), ("é" * 257, "512 bytes"),
])
def test_bad_ids(bad_id, reason):
    with pytest.raises(InvalidInput, match=reason):
        parse_job({"id": bad_id}, DEFAULT)


@pytest.mark.parametrize("raw,message", [
    ({"id": "a", "colour": "red"}, "unknown key 'colour' (did you mean 'bg_color'?); task remove_background's "
                                   "keys: id, model, task, precision, seg_mask_size, foreground"),
    ({"id": "a", "task": "paint"}, "task: 'paint' is not allowed; allowed values: remove_background, mask"),
    ({"id": "a", "precision": "int8"}, "allowed values: auto, float32, float16, bfloat16"),
    ({"id": "a", "seg_mask_size": 10}, "seg_mask_size: 10 is out of range; allowed: 32..4096"),
    ({"id": "a", "seg_mask_size": "big"}, "seg_mask_size: 'big' has the wrong type"),
    ({"id": "a", "bg_color": "red"}, "bg_color: 'red' is not a colour"),
    ({"id": 5}, "id: 5 has the wrong type; expected string"),
    ({"id": "a", "bg_color": "#ffffff\n"}, "bg_color: '#ffffff\\n' is not a colour #RRGGBB or #RRGGBBAA"),
    ({"id": "a", "task": "mask\n"}, "task: 'mask\\n' is not allowed"),
    ({"id": "a", "model": "u2netp\n"}, "model: 'u2netp\\n' is not a model name (no control characters)"),
    ({"id": "a", "model": ""}, "model: '' is not a model name"),
    ({"id": "a", "seg_mask_size": True}, "seg_mask_size: True has the wrong type; expected integer 32..4096"),
    ({"id": "a", "seg_mask_size": 320.5}, "seg_mask_size: 320.5 has the wrong type"),
    ({"id": "a", "seg_mask_size": 2**63}, "seg_mask_size: 9223372036854775808 is out of range"),
    ({"id": "a", "task": "matte", "refine_threshold": float("nan")}, "refine_threshold: nan is not a finite number"),
    ({"id": "a", "task": "restore", "upscale": float("inf")}, "upscale: inf is not a finite number; allowed: 1..4"),
    ({"id": "a", "task": "upscale", "tile": [64]}, "tile: [64] has the wrong type; expected integer 0..4096"),
    ({"id": "a", "task": "upscale", "scale": 3.0}, "scale: 3.0 is not allowed; allowed values: 2, 4"),
    ({"id": "a", "restore_faces": 1}, "restore_faces: 1 has the wrong type; expected boolean"),
    ({"id": "a", "task": "matte", "bgr_id": "../x"}, "bgr_id: must not contain '..'"),
    ({"id": "a", "task": None}, "task: null is not allowed"),
    ({"id": "a", "crop_margin": "10px"}, "crop_margin: applies only with crop: true"),
    ({"id": "a", "crop": False, "crop_threshold": 10}, "crop_threshold: applies only with crop: true"),
    ({"id": "a", "feather": 5e-324}, "feather: 5e-324 is too small to blur anything"),
    ({"model": "u2net"}, "missing required key: 'id'"),
])
def test_bad_values_name_key_and_allowed(raw, message):
    with pytest.raises(InvalidInput) as err:
        parse_job(raw, DEFAULT)
    assert message in str(err.value)


@pytest.mark.parametrize("raw", [None, [], "id", 3])
def test_input_must_be_an_object(raw):
    with pytest.raises(InvalidInput, match="JSON object"):
        parse_job(raw, DEFAULT)


def test_values_come_as_the_type_the_code_takes():
    job = parse_job({"id": "a", "task": "upscale", "tile": 64.0, "scale": 2.0, "format": "jpg", "quality": 80.0},
                    DEFAULT)
    params = job.options.task_params.params
    assert (params.tile, params.outscale, job.options.output.quality) == (64, 2.0, 80)
    assert type(params.tile) is int and type(job.options.output.quality) is int
    assert job.options.model == "realesrgan-x2plus"  # scale 2.0 picks the x2 network as 2 does
    matte = parse_job({"id": "a", "task": "matte", "backbone_scale": 0.25, "sample_pixels": 1e4,
                       "refine_threshold": -0.0}, DEFAULT).options.task_params.params
    assert type(matte.sample_pixels) is int and str(matte.threshold) == "0.0"
    restore = parse_job({"id": "a", "task": "restore", "upscale": 3, "noise_seed": 7.0}, DEFAULT).options.task_params
    assert restore.params.upscale == 3.0 and type(restore.params.upscale) is float and type(restore.noise_seed) is int


def test_jpg_for_upscale_and_restore_needs_no_background_but_a_cutout_does():
    for task in ("upscale", "restore"):
        assert parse_job({"id": "a", "task": task, "format": "jpg"}, DEFAULT).options.output.format == "jpg"
    assert parse_job({"id": "a", "task": "mask", "format": "jpg"}, DEFAULT).options.output.channels == "alpha"
    for job in ({"id": "a", "format": "jpg"}, {"id": "a", "task": "matte", "format": "jpg", "bg_color": "#ffffff80"}):
        with pytest.raises(InvalidInput, match="'jpg' has no transparency; set an opaque bg_color"):
            parse_job(job, DEFAULT)


def test_unknown_keys_list_the_task_s_keys_and_the_nearest_one():
    with pytest.raises(InvalidInput) as err:
        parse_job({"id": "a", "task": "upscale", "tiles": 64}, DEFAULT)
    message = str(err.value)
    assert message.startswith("unknown key 'tiles' (did you mean 'tile'?); task upscale's keys: id, model, task")
    assert "bg_color" not in message and "alpha_upsampler" in message
    with pytest.raises(InvalidInput, match=r"^unknown key 'bg_colour' \(did you mean 'bg_color'\?\); task "):
        parse_job({"id": "a", "bg_colour": "#ffffff"}, DEFAULT)
    with pytest.raises(InvalidInput, match=r"^unknown key 'zzz'; task mask's keys"):  # nothing near
        parse_job({"id": "a", "task": "mask", "zzz": 1}, DEFAULT)


def test_an_unknown_task_is_said_first():
    with pytest.raises(InvalidInput) as err:
        parse_job({"id": "a", "bg_colour": "#ffffff", "task": "paint"}, DEFAULT)
    first, second = str(err.value).split("; unknown key ")
    assert first.startswith("task: 'paint' is not allowed; allowed values: remove_background")
    assert second == "'bg_colour' (did you mean 'bg_color'?)"


def test_many_refusals_are_cut_short():
    with pytest.raises(InvalidInput) as err:
        parse_job({"id": "a", **{f"key{n}": n for n in range(1000)}}, DEFAULT)
    assert str(err.value).count("unknown key") == 5 and str(err.value).endswith("; and 995 more")


def test_event_options():
    options = parse_event_options({"Records": [], "model": "u2netp", "task": "mask"}, DEFAULT)
    assert options.model == "u2netp" and options.task == "mask"
    with pytest.raises(InvalidInput, match="unknown key 'id'"):
        parse_event_options({"Records": [], "id": "x"}, DEFAULT)
