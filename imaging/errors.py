"""The error for a caller's value that the work cannot take, raised at any layer from imaging/ up.

A value may pass the job schema and still be impossible for one image: a pad larger than a tiny
image, a format that cannot hold the input's frames, a plate that does not decode. Code that knows
the value comes from the caller raises `CallerValueError` naming it; worker/errors.py answers its
message verbatim. Any other ValueError stays an internal error (with its traceback in the log).
"""
from __future__ import annotations


class CallerValueError(ValueError):
    """`key` is what the caller chose: a job key ("format", "pre_pad"), or an input object
    ("bgr/<id>"). The message starts with it, so every answer names what to change."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
