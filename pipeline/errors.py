"""One exception type per kind of caller mistake, and the one place that turns any failure into an answer.

The messages of `JobError` subclasses are written for the caller and go out verbatim; anything else is
an internal fault: it is logged with its traceback and answered with a short generic string.
"""
from __future__ import annotations

import torch

from models.registry import CheckpointMismatch, WeightsNotFound


class JobError(Exception):
    """A failure whose message is meant for the caller."""


class InvalidInput(JobError):
    """The job's input breaks the schema: unknown key, bad value, bad id."""


class ImageNotFound(JobError):
    def __init__(self, key: str):
        super().__init__(f"no image at {key}")


class UndecodableImage(JobError):
    """Not an image, a truncated file, or a format we cannot read."""


class ImageTooLarge(JobError):
    """More pixels than MAX_IMAGE_PIXELS (decompression bombs included)."""


class UnsupportedTask(JobError):
    """A task of the contract that this build does not serve."""


class StorageFailure(JobError):
    """The bucket could not be read or written after retries."""


def is_gpu_failure(exc: BaseException) -> bool:
    """Out of memory or a broken device: the platform should replace this worker."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        marker in text for marker in ("CUDA error", "CUBLAS_STATUS", "cuDNN error", "device-side assert")
    )


def error_answer(exc: BaseException) -> dict:
    """The answer for a failed job: always a string under "error"."""
    if isinstance(exc, (JobError, WeightsNotFound)):
        return {"error": str(exc)}
    if isinstance(exc, CheckpointMismatch):
        return {"error": f"weight file does not match the model: {exc}"}
    if is_gpu_failure(exc):
        return {"error": f"GPU failure ({type(exc).__name__}); this worker will be replaced", "refresh_worker": True}
    return {"error": f"internal error ({type(exc).__name__}); see the worker log"}
