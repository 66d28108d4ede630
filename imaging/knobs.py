"""A job's knob: its name, the Python type its code takes, what it allows, its default and its doc, and
the one conversion of a caller's JSON value into that type.

The conversion is where a value enters: whatever it returns is what the code can take, and whatever it
refuses is a `KnobError` naming the knob and what it allows, quoting at most a short prefix of the value.
The rules, the same for every knob:
- booleans are only true/false, and are not numbers;
- an integer knob takes an integral number: 2.0 (what some JSON writers send for 2) becomes the int 2,
  2.5 is refused;
- a number knob takes integers and floats, as a float; NaN and the infinities are refused (JSON's 1e309
  reads as infinity);
- a string is taken as sent: nothing is stripped, a pattern must match the whole string (re.fullmatch,
  ASCII classes), a choice must be one of the choices exactly;
- null is the default where the knob says so (`nullable`), refused elsewhere.

It lives here, below every task's package, so that imaging/options.py declares its knobs with it too.
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable

from imaging.errors import CallerValueError

QUOTE_CHARS = 60  # an error quotes at most this much of a caller's value
MAX_ID_BYTES = 512  # a plain key (check_plain_key) is at most this long
JSON_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string"}


class KnobError(CallerValueError):
    """A caller's value that a knob refuses; the message names the knob and what it allows."""


def quote(value: Any) -> str:
    """A caller's value as an error quotes it: repr, cut to a short prefix (answers stay small)."""
    text = "null" if value is None else repr(value)
    return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS] + f"... ({len(text)} chars)"


@dataclass(frozen=True)
class Knob:
    name: str
    type: type  # bool, int, float or str: what the code takes
    default: Any  # None: chosen elsewhere (the doc says how)
    doc: str
    bounds: tuple[float, float] | None = None  # inclusive, for int and float
    choices: tuple | None = None
    pattern: str | None = None  # a string must match it whole
    pattern_doc: str = ""  # the pattern as errors and the README spell it, e.g. "#RRGGBB or #RRGGBBAA"
    max_length: int | None = None  # for strings, checked before anything else
    nullable: bool = False  # null is taken, as "the default"
    parse: Callable[[Any], Any] | None = None  # a further check of the converted value; raises ValueError
    needs: str | None = None  # a boolean knob that must be true for this one to be set

    def __post_init__(self) -> None:
        if self.type not in JSON_NAMES:
            raise TypeError(f"knob {self.name}: type must be one of {tuple(JSON_NAMES)}")
        if self.type is float and self.bounds is None:
            raise TypeError(f"knob {self.name}: a number knob needs bounds")

    def convert(self, value: Any) -> Any:
        """The caller's JSON value as this knob's type, or a KnobError."""
        if value is None:
            if self.nullable:
                return None
            raise self.refuse(value, f"is not allowed; expected {self.allowed()}")
        typed = self._typed(value)
        if self.choices is not None and typed not in self.choices:
            raise self.refuse(value, f"is not allowed; allowed values: {self._choice_list()}")
        if self.bounds is not None and not self.bounds[0] <= typed <= self.bounds[1]:
            raise self.refuse(value, f"is out of range; allowed: {self._range()}")
        if self.pattern is not None and not re.fullmatch(self.pattern, typed):
            raise self.refuse(value, f"is not {self.pattern_doc}")
        if self.parse is not None:
            try:
                self.parse(typed)
            except ValueError as exc:
                raise KnobError(self.name, str(exc)) from None
        return float(typed) + 0.0 if self.type is float else typed  # + 0.0: -0.0 becomes 0.0

    def _typed(self, value: Any) -> Any:
        """The value if it has the knob's type (an integral float for an int: as an int), else a refusal.
        Bounds are checked on this, before a float conversion could overflow (10**400)."""
        if isinstance(value, bool):
            if self.type is bool:
                return value
        elif self.type is int and isinstance(value, int):
            return value
        elif self.type is int and isinstance(value, float) and value.is_integer():
            return int(value)
        elif self.type is float and isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                raise self.refuse(value, f"is not a finite number; allowed: {self._range()}")
            return value
        elif self.type is str and isinstance(value, str):
            if self.max_length is not None and len(value) > self.max_length:
                raise self.refuse(value, f"is longer than {self.max_length} characters")
            return value
        raise self.refuse(value, f"has the wrong type; expected {self.allowed()}")

    def refuse(self, value: Any, why: str) -> KnobError:
        return KnobError(self.name, f"{quote(value)} {why}")

    def allowed(self) -> str:
        """What the knob takes, in words: its type and range, choices or pattern (the README's column)."""
        if self.choices is not None:
            return self._choice_list()
        text = JSON_NAMES[self.type]
        if self.bounds is not None:
            text += f" {self._range()}"
        if self.pattern_doc:
            text += f" {self.pattern_doc}"
        return text

    def _choice_list(self) -> str:
        return ", ".join(str(c) for c in self.choices)

    def _range(self) -> str:
        return f"{self.bounds[0]:g}..{self.bounds[1]:g}" if self.bounds else ""


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
