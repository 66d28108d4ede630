"""OutputOptions: each knob's check names the key, the schema carries the same bounds, margins parse."""
from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from imaging.options import MarginValue, OutputOptions, parse_margin


@pytest.mark.parametrize("knobs,message", [
    ({"format": "bmp"}, "format: 'bmp' is not allowed; allowed values: png, webp, jpg, gif"),
    ({"grow": 101}, "grow: 101 is out of range; allowed: -100..100"),
    ({"feather": -1.0}, "feather: -1.0 is out of range"),
    ({"threshold": 0}, "threshold: 0 is out of range; allowed: 1..255"),
    ({"crop": "yes"}, "crop: 'yes' has the wrong type; expected boolean"),
    ({"grow": True}, "grow: True has the wrong type; expected integer"),
    ({"size": "4k"}, "size: '4k' is not allowed"),
    ({"crop_margin": "501px"}, "crop_margin: '501px'; pixels must be a whole number 0..500"),
    ({"crop_margin": "51%"}, "crop_margin: '51%'; percent must be 0..50"),
    ({"crop_margin": "1px 2px 3px"}, "needs 1, 2 or 4 values"),
    ({"crop_margin": "-3px"}, "is not a margin"),
    ({"quality": 80}, "quality: applies to webp and jpg only, not 'png'"),
])
def test_bad_values_name_the_key(knobs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        OutputOptions(**knobs)


def test_margins():
    assert parse_margin("10").top == MarginValue(10, "px")
    both = parse_margin("10% 30px")
    assert (both.top, both.right, both.bottom, both.left) == (MarginValue(10, "%"), MarginValue(30, "px"),
                                                              MarginValue(10, "%"), MarginValue(30, "px"))
    four = parse_margin("1px, 2px, 3px, 4.5%")
    assert [four.top.pixels(0), four.right.pixels(0), four.bottom.pixels(0), four.left.pixels(200)] == [1, 2, 3, 9]


def test_jpg_needs_an_opaque_background_unless_only_the_matte_is_written():
    jpg = OutputOptions(format="jpg")
    jpg.check_background("#ffffff")
    jpg.check_background("#112233ff")
    for colour in (None, "#11223380"):
        with pytest.raises(ValueError, match="'jpg' has no transparency"):
            jpg.check_background(colour)
    OutputOptions(format="jpg", channels="alpha").check_background(None)


def test_schema_is_valid_json_schema_and_agrees_with_the_dataclass():
    schema = {"type": "object", "properties": OutputOptions.schema(), "additionalProperties": False}
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    defaults = {name: entry["default"] for name, entry in schema["properties"].items()}
    assert OutputOptions(**defaults) == OutputOptions()
    assert not list(validator.iter_errors(defaults))
    assert list(validator.iter_errors({"grow": 101})) and list(validator.iter_errors({"format": "bmp"}))
    assert schema["properties"]["quality"]["type"] == ["integer", "null"]
    assert schema["properties"]["feather"]["type"] == "number"


def test_which_tasks_take_which_knobs():
    assert "channels" in OutputOptions.applies_to("remove_background")
    assert "channels" not in OutputOptions.applies_to("mask") and "crop" in OutputOptions.applies_to("mask")
    assert OutputOptions.applies_to("upscale") == {"format", "quality"}
