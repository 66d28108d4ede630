"""The one place failures become answers: a caller's value the work cannot take is answered verbatim,
naming its key; any other ValueError is an internal error."""
from __future__ import annotations

from imaging.errors import CallerValueError
from worker.errors import failure


def test_a_callers_value_is_answered_naming_its_key():
    result = failure(CallerValueError("pre_pad", "512 is too large"))
    assert result.answer == {"error": "pre_pad: 512 is too large"} and not result.internal


def test_any_other_value_error_is_internal():
    result = failure(ValueError("Expected size 3 but got size 0"))
    assert result.answer == {"error": "internal error (ValueError); see the worker log"} and result.internal
