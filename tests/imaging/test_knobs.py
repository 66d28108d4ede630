"""Knob: one conversion from a caller's JSON value to the type the code takes, refusals naming the knob."""
from __future__ import annotations

import math

import pytest

from imaging.knobs import Knob, KnobError, quote

COUNT = Knob("count", int, 0, "how many", bounds=(0, 100))
RATIO = Knob("ratio", float, 1.0, "how much", bounds=(0, 4))
FLAG = Knob("flag", bool, False, "whether")
COLOUR = Knob("colour", str, None, "a colour", pattern=r"#[0-9a-f]{6}", pattern_doc="a colour #rrggbb",
              nullable=True)
MODE = Knob("mode", str, "a", "which", choices=("a", "b"))


@pytest.mark.parametrize("knob,value,expected", [
    (COUNT, 7, 7), (COUNT, 7.0, 7), (COUNT, -0.0, 0), (COUNT, 100, 100),
    (RATIO, 2, 2.0), (RATIO, 0.5, 0.5), (RATIO, -0.0, 0.0),
    (FLAG, True, True), (FLAG, False, False),
    (COLOUR, "#00ff00", "#00ff00"), (COLOUR, None, None),
    (MODE, "b", "b"),
])
def test_takes_its_values_as_its_type(knob, value, expected):
    got = knob.convert(value)
    assert got == expected and type(got) is type(expected)
    if isinstance(got, float):
        assert math.copysign(1, got) == 1  # -0.0 comes back as 0.0


@pytest.mark.parametrize("knob,value,message", [
    (COUNT, True, "count: True has the wrong type; expected integer 0..100"),
    (COUNT, 2.5, "count: 2.5 has the wrong type"),
    (COUNT, float("nan"), "count: nan has the wrong type"),
    (COUNT, float("inf"), "count: inf has the wrong type"),
    (COUNT, 2**63, "count: 9223372036854775808 is out of range; allowed: 0..100"),
    (COUNT, "7", "count: '7' has the wrong type"),
    (COUNT, [7], "count: [7] has the wrong type"),
    (COUNT, None, "count: null is not allowed; expected integer 0..100"),
    (RATIO, float("nan"), "ratio: nan is not a finite number; allowed: 0..4"),
    (RATIO, float("-inf"), "ratio: -inf is not a finite number"),
    (RATIO, 10**400, "is out of range; allowed: 0..4"),  # not an OverflowError
    (RATIO, False, "ratio: False has the wrong type; expected number"),
    (FLAG, 1, "flag: 1 has the wrong type; expected boolean"),
    (FLAG, "true", "flag: 'true' has the wrong type"),
    (COLOUR, "#00ff00\n", "colour: '#00ff00\\n' is not a colour #rrggbb"),  # fullmatch: `$` would take it
    (COLOUR, " #00ff00", "is not a colour #rrggbb"),
    (COLOUR, {"r": 0}, "colour: {'r': 0} has the wrong type; expected string"),
    (MODE, "b ", "mode: 'b ' is not allowed; allowed values: a, b"),
    (MODE, "B", "mode: 'B' is not allowed"),
])
def test_refusals_name_the_knob_and_what_it_allows(knob, value, message):
    with pytest.raises(KnobError) as err:
        knob.convert(value)
    assert message in str(err.value)


def test_a_parse_check_is_named_after_the_knob():
    def even(value: int) -> None:
        if value % 2:
            raise ValueError(f"{value} is odd")

    knob = Knob("even", int, 0, "an even count", bounds=(0, 10), parse=even)
    assert knob.convert(4.0) == 4
    with pytest.raises(KnobError, match="^even: 3 is odd$"):
        knob.convert(3)


def test_long_values_are_quoted_as_a_short_prefix():
    with pytest.raises(KnobError) as err:
        MODE.convert("x" * 100_000)
    assert len(str(err.value)) < 200 and "(100002 chars)" in str(err.value)
    assert quote(None) == "null"


def test_a_number_knob_needs_bounds():
    with pytest.raises(TypeError, match="needs bounds"):
        Knob("free", float, 0.0, "unbounded")
