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
    ({"id": "a", "colour": "red"}, "unknown key 'colour'; allowed keys: id, model, task"),
    ({"id": "a", "task": "paint"}, "task: 'paint' is not allowed; allowed values: remove_background, mask"),
    ({"id": "a", "precision": "int8"}, "allowed values: auto, float32, float16, bfloat16"),
    ({"id": "a", "seg_mask_size": 10}, "seg_mask_size: 10 is out of range; allowed: 32..4096"),
    ({"id": "a", "seg_mask_size": "big"}, "seg_mask_size: 'big' has the wrong type"),
    ({"id": "a", "bg_color": "red"}, "bg_color: 'red' is not a colour"),
    ({"id": 5}, "id: 5 has the wrong type; expected string"),
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


def test_event_options():
    options = parse_event_options({"Records": [], "model": "u2netp", "task": "mask"}, DEFAULT)
    assert options.model == "u2netp" and options.task == "mask"
    with pytest.raises(InvalidInput, match="unknown key 'id'"):
        parse_event_options({"Records": [], "id": "x"}, DEFAULT)
