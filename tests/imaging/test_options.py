"""OutputOptions: each knob's check names the key, its Knobs carry the same defaults, margins parse."""
from __future__ import annotations

import re

import pytest

from imaging.options import OUTPUT_KNOBS, MarginValue, OutputOptions, parse_margin


@pytest.mark.parametrize("knobs,message", [
    ({"format": "bmp"}, "format: 'bmp' is not allowed; allowed values: png, webp, jpg, gif"),
    ({"grow": 101}, "grow: 101 is out of range; allowed: -100..100"),
    ({"feather": -1.0}, "feather: -1.0 is out of range"),
    ({"threshold": 0}, "threshold: 0 is out of range; allowed: 1..255"),
    ({"crop": "yes"}, "crop: 'yes' has the wrong type; expected boolean"),
    ({"grow": True}, "grow: True has the wrong type; expected integer"),
    ({"size": "4k"}, "size: '4k' is not allowed"),
    ({"crop_margin": "501px"}, "crop_margin: '501px': pixels must be a whole number 0..500"),
    ({"crop_margin": "1" * 60 + "px"}, "pixels must be a whole number 0..500"),  # float('1' * 400) is inf
    ({"crop_margin": "51%"}, "crop_margin: '51%': percent must be 0..50"),
    ({"crop_margin": "1px 2px 3px"}, "needs 1, 2 or 4 values"),
    ({"crop_margin": "-3px"}, "is not a margin"),
    ({"crop_margin": "\u0663px"}, "is not a margin"),  # an Arabic-Indic 3: \\d would take it
    ({"crop_margin": " 3px"}, "is not a margin"),  # nothing is stripped
    ({"crop_margin": "3px\n"}, "is not a margin"),
    ({"feather": 1e-300}, "feather: 1e-300 is too small to blur anything; use 0 (off) or 0.1..50"),
    ({"feather": float("nan")}, "feather: nan is not a finite number"),
    ({"grow": 2.5}, "grow: 2.5 has the wrong type; expected integer"),
    ({"quality": 80}, "quality: applies to webp and jpg only, not 'png'"),
])
def test_bad_values_name_the_key(knobs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        OutputOptions(**knobs)


def test_margins():
    assert parse_margin("10").top == MarginValue(10, "px")
    both = parse_margin("10% 30px")
    assert (both.top, both.right, both.bottom, both.left) == (MarginValue(10, "%"), MarginValue(30, "px"),
                                                              MarginValue(10, "%"), MarginValue(30, "px"))
    four = parse_margin("1px, 2px, 3px, 4.5%")
    assert [four.top.pixels(0), four.right.pixels(0), four.bottom.pixels(0), four.left.pixels(200)] == [1, 2, 3, 9]


def test_values_are_converted_to_the_type_the_code_takes():
    options = OutputOptions(grow=2.0, feather=1, threshold=128.0, crop_threshold=-0.0)
    assert (options.grow, options.threshold, options.crop_threshold) == (2, 128, 0)
    assert all(type(v) is int for v in (options.grow, options.threshold, options.crop_threshold))
    assert type(options.feather) is float


def test_a_cutout_to_jpg_needs_an_opaque_background_unless_only_the_matte_is_written():
    jpg = OutputOptions(format="jpg")
    jpg.check_background("cutout", "#ffffff")
    jpg.check_background("cutout", "#112233ff")
    for colour in (None, "#11223380"):
        with pytest.raises(ValueError, match="'jpg' has no transparency"):
            jpg.check_background("cutout", colour)
    OutputOptions(format="jpg", channels="alpha").check_background("cutout", None)
    jpg.check_background("image", None)  # upscale and restore drop the image's alpha


def test_knobs_agree_with_the_dataclass():
    assert list(OUTPUT_KNOBS) == [name for name in OutputOptions.__dataclass_fields__]
    assert OutputOptions(**{name: knob.default for name, knob in OUTPUT_KNOBS.items()}) == OutputOptions()
    assert OUTPUT_KNOBS["quality"].type is int and OUTPUT_KNOBS["quality"].nullable
    assert OUTPUT_KNOBS["feather"].type is float and OUTPUT_KNOBS["crop_margin"].needs == "crop"
    assert OutputOptions().crop_threshold == 32


def test_which_kinds_of_output_take_which_knobs():
    assert "channels" in OutputOptions.applies_to("cutout")
    assert "channels" not in OutputOptions.applies_to("alpha") and "crop" in OutputOptions.applies_to("alpha")
    assert OutputOptions.applies_to("image") == {"format", "quality"}
