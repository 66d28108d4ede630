"""The worker's settings: every environment variable is read here, once, and passed down."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "briaai/RMBG-2.0"
PRECISIONS = ("auto", "float32", "float16", "bfloat16")


class ConfigError(ValueError):
    """A setting has a value the worker cannot run with; it refuses to start."""


def _int(env: dict, name: str, default: int) -> int:
    value = env.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not an integer") from None


def _flag(env: dict, name: str, default: bool) -> bool:
    value = env.get(name)
    if not value:
        return default
    if value not in ("0", "1"):
        raise ConfigError(f"{name}={value!r}: use 1 or 0")
    return value == "1"


def _choice(env: dict, name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in allowed:
        raise ConfigError(f"{name}={value!r}: allowed values are {', '.join(allowed)}")
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")


@dataclass(frozen=True)
class Settings:
    """Every setting of the worker with its default; the environment variable is named beside it."""

    bucket: str | None = None  # S3_BUCKET; None means the local folder stands in for the bucket
    local_bucket_dir: str = "bucket"  # LOCAL_BUCKET_DIR
    weights_dir: Path = Path("weights")  # WEIGHTS_DIR: where weight files are looked up first
    default_model: str = DEFAULT_MODEL  # DEFAULT_MODEL
    device: str = "cpu"  # DEVICE: "cuda" when a GPU is visible, else "cpu"
    precision: str = "auto"  # PRECISION: a job's precision when it names none; auto = bfloat16 on CUDA, float32 on CPU
    allow_tf32: bool = False  # ALLOW_TF32: TF32 convolutions/matmuls for float32 networks (off: IEEE float32)
    log_level: str = "INFO"  # LOG_LEVEL: runpod's logger level
    # Limits, each refused with an error naming it before the expensive work starts.
    max_input_bytes: int = 64 * 2**20  # MAX_INPUT_BYTES: the input object's size, from S3's metadata
    max_image_pixels: int = 64_000_000  # MAX_IMAGE_PIXELS: from the header, before decoding (bombs too)
    max_output_pixels: int = 100_000_000  # MAX_OUTPUT_PIXELS: for tasks that enlarge (upscale, restore)
    max_frames: int = 300  # MAX_FRAMES: frames of an animated input
    max_total_pixels: int = 200_000_000  # MAX_TOTAL_PIXELS: all frames of an animated input together
    max_job_input_bytes: int = 64 * 2**10  # MAX_JOB_INPUT_BYTES: the job's JSON input
    job_timeout_s: float = 600.0  # JOB_TIMEOUT_S: a job past it answers an error and writes nothing
    # The serving engine.
    max_concurrency: int = 2  # MAX_CONCURRENCY: jobs in flight in one worker (default 8 on CUDA, 2 on CPU)
    batch_size: int = 4  # BATCH_SIZE: images per forward, across the jobs in flight
    batch_wait_ms: float = 10.0  # BATCH_WAIT_MS: how long a forward waits for company from other jobs
    max_resident_models: int = 0  # MAX_RESIDENT_MODELS: a cap on resident networks; 0: by memory alone
    model_cache_bytes: int = 0  # MODEL_CACHE_GB: memory for resident networks; 0: half the device's memory
    channels_last: bool = True  # CHANNELS_LAST (applied on CUDA)
    compile: bool = False  # TORCH_COMPILE
    png_compress_level: int = 1  # PNG_COMPRESS_LEVEL: 1 measured fastest for its size (BENCHMARKS.md)
    s3_max_attempts: int = 4  # S3_MAX_ATTEMPTS for botocore's standard retry mode
    s3_connect_timeout_s: float = 5.0  # S3_CONNECT_TIMEOUT_S
    s3_read_timeout_s: float = 30.0  # S3_READ_TIMEOUT_S
    on_runpod: bool = False  # whether runpod's job queue serves this worker (RUNPOD_WEBHOOK_GET_JOB set)


def _float(env: dict, name: str, default: float) -> float:
    value = env.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load(env: dict | None = None) -> Settings:
    """Settings from the environment (or `env`); a malformed value is a ConfigError naming it."""
    env = os.environ if env is None else env
    d = Settings()
    device = env.get("DEVICE") or _default_device()
    on_cuda = device.startswith("cuda")
    cache_gb = _float(env, "MODEL_CACHE_GB", 0.0)
    return Settings(
        bucket=env.get("S3_BUCKET") or None,
        local_bucket_dir=env.get("LOCAL_BUCKET_DIR") or d.local_bucket_dir,
        weights_dir=Path(env.get("WEIGHTS_DIR") or d.weights_dir).expanduser(),
        default_model=env.get("DEFAULT_MODEL") or d.default_model,
        device=device,
        precision=_choice(env, "PRECISION", d.precision, PRECISIONS),
        allow_tf32=_flag(env, "ALLOW_TF32", d.allow_tf32),
        log_level=_choice(env, "LOG_LEVEL", d.log_level, LOG_LEVELS),
        max_input_bytes=_int(env, "MAX_INPUT_BYTES", d.max_input_bytes),
        max_image_pixels=_int(env, "MAX_IMAGE_PIXELS", d.max_image_pixels),
        max_output_pixels=_int(env, "MAX_OUTPUT_PIXELS", d.max_output_pixels),
        max_frames=_int(env, "MAX_FRAMES", d.max_frames),
        max_total_pixels=_int(env, "MAX_TOTAL_PIXELS", d.max_total_pixels),
        max_job_input_bytes=_int(env, "MAX_JOB_INPUT_BYTES", d.max_job_input_bytes),
        job_timeout_s=_float(env, "JOB_TIMEOUT_S", d.job_timeout_s),
        max_concurrency=_int(env, "MAX_CONCURRENCY", 8 if on_cuda else d.max_concurrency),
        batch_size=_int(env, "BATCH_SIZE", 8 if on_cuda else d.batch_size),
        batch_wait_ms=_float(env, "BATCH_WAIT_MS", d.batch_wait_ms),
        max_resident_models=_int(env, "MAX_RESIDENT_MODELS", d.max_resident_models),
        model_cache_bytes=int(cache_gb * 2**30),
        channels_last=_flag(env, "CHANNELS_LAST", d.channels_last),
        compile=_flag(env, "TORCH_COMPILE", d.compile),
        png_compress_level=_int(env, "PNG_COMPRESS_LEVEL", d.png_compress_level),
        s3_max_attempts=_int(env, "S3_MAX_ATTEMPTS", d.s3_max_attempts),
        s3_connect_timeout_s=_float(env, "S3_CONNECT_TIMEOUT_S", d.s3_connect_timeout_s),
        s3_read_timeout_s=_float(env, "S3_READ_TIMEOUT_S", d.s3_read_timeout_s),
        on_runpod=bool(env.get("RUNPOD_WEBHOOK_GET_JOB")),
    )
