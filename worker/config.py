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


@dataclass(frozen=True)
class Settings:
    bucket: str | None = None  # S3_BUCKET; None means the local folder stands in for the bucket
    local_bucket_dir: str = "bucket"  # LOCAL_BUCKET_DIR
    weights_dir: Path = Path("weights")  # WEIGHTS_DIR: where weight files are looked up first
    default_model: str = DEFAULT_MODEL  # DEFAULT_MODEL
    max_image_pixels: int = 64_000_000  # MAX_IMAGE_PIXELS: larger images (and decompression bombs) are refused
    device: str = "cpu"  # DEVICE: "cuda" when available, else "cpu"
    precision: str = "auto"  # PRECISION: a job's precision when it names none; auto = bfloat16 on CUDA, float32 on CPU
    png_compress_level: int = 1  # PNG_COMPRESS_LEVEL: 1 measured fastest for its size (BENCHMARKS.md)
    batch_size: int = 4  # BATCH_SIZE: images per forward when a job or an S3 event has several
    max_resident_models: int = 6  # MAX_RESIDENT_MODELS kept in memory, least recently used evicted
    s3_max_attempts: int = 6  # S3_MAX_ATTEMPTS for botocore's standard retry mode
    channels_last: bool = True  # CHANNELS_LAST (applied on CUDA)
    compile: bool = False  # TORCH_COMPILE


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load(env: dict | None = None) -> Settings:
    """Settings from the environment (or `env`); a malformed value is a ConfigError naming it."""
    env = os.environ if env is None else env
    defaults = Settings()
    return Settings(
        bucket=env.get("S3_BUCKET") or None,
        local_bucket_dir=env.get("LOCAL_BUCKET_DIR") or defaults.local_bucket_dir,
        weights_dir=Path(env.get("WEIGHTS_DIR") or defaults.weights_dir).expanduser(),
        default_model=env.get("DEFAULT_MODEL") or defaults.default_model,
        max_image_pixels=_int(env, "MAX_IMAGE_PIXELS", defaults.max_image_pixels),
        device=env.get("DEVICE") or _default_device(),
        precision=_choice(env, "PRECISION", defaults.precision, PRECISIONS),
        png_compress_level=_int(env, "PNG_COMPRESS_LEVEL", defaults.png_compress_level),
        batch_size=_int(env, "BATCH_SIZE", defaults.batch_size),
        max_resident_models=_int(env, "MAX_RESIDENT_MODELS", defaults.max_resident_models),
        s3_max_attempts=_int(env, "S3_MAX_ATTEMPTS", defaults.s3_max_attempts),
        channels_last=_flag(env, "CHANNELS_LAST", defaults.channels_last),
        compile=_flag(env, "TORCH_COMPILE", defaults.compile),
    )
