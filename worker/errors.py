"""One exception type per kind of caller mistake, and the one place that turns any failure into an answer.

The messages of caller errors go out verbatim; anything else is an internal fault: it is logged with
its traceback and answered with a short generic string.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from imaging.decode import ImageTooLarge, UndecodableImage
from imaging.errors import CallerValueError
from imaging.video import UndecodableVideo, VideoTooLarge
from models.registry import CheckpointMismatch, WeightsNotFound
from models.spec import SizeOutOfRange
from pipeline.matting.background import PlateSizeMismatch
from pipeline.segmentation.segment import WorkTooLarge


class JobError(Exception):
    """A failure whose message is meant for the caller."""


class InvalidInput(JobError):
    """The job's input breaks the schema: unknown key, bad value, bad id."""


class ImageNotFound(JobError):
    def __init__(self, key: str):
        super().__init__(f"no image at {key}")


class UnsupportedTask(JobError):
    """A task of the contract that this build does not serve."""


class StorageFailure(JobError):
    """The bucket could not be read or written after retries."""


class InputTooLarge(JobError):
    """The input object has more bytes than MAX_INPUT_BYTES."""


class OutputTooLarge(JobError):
    """The output would have more pixels than MAX_OUTPUT_PIXELS."""


class JobTimeout(JobError):
    """The job ran past JOB_TIMEOUT_S."""


# Exceptions raised below the service whose messages are written for the caller too.
CALLER_ERRORS = (JobError, CallerValueError, WeightsNotFound, UndecodableImage, ImageTooLarge, WorkTooLarge,
                 SizeOutOfRange, PlateSizeMismatch, UndecodableVideo, VideoTooLarge)


@dataclass(frozen=True)
class Failure:
    """What a failed job answers, and whether it was the worker's own fault (logged with a traceback)."""

    answer: dict
    internal: bool


def is_gpu_failure(exc: BaseException) -> bool:
    """Out of memory or a broken device: the platform should replace this worker."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        marker in text for marker in ("CUDA error", "CUBLAS_STATUS", "cuDNN error", "device-side assert")
    )


def failure(exc: BaseException) -> Failure:
    """The answer for a failed job: always a string under "error"."""
    if isinstance(exc, CALLER_ERRORS):
        return Failure({"error": str(exc)}, internal=False)
    if isinstance(exc, CheckpointMismatch):
        return Failure({"error": f"weight file does not match the model: {exc}"}, internal=True)
    if is_gpu_failure(exc):
        return Failure({"error": f"GPU failure ({type(exc).__name__}); this worker will be replaced",
                        "refresh_worker": True}, internal=True)
    return Failure({"error": f"internal error ({type(exc).__name__}); see the worker log"}, internal=True)

