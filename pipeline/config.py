"""The worker's settings, read from the environment once per job (tests change them per process)."""
from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_MODEL = "briaai/RMBG-2.0"


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass(frozen=True)
class Settings:
    bucket: str | None  # S3_BUCKET; None means the local folder stands in for the bucket
    local_bucket_dir: str  # LOCAL_BUCKET_DIR
    default_model: str  # DEFAULT_MODEL
    max_image_pixels: int  # MAX_IMAGE_PIXELS: larger images (and decompression bombs) are refused
    device: str  # DEVICE: "cuda" when available, else "cpu"
    precision: str  # PRECISION: "auto" = bfloat16 on CUDA, float32 on CPU
    png_compress_level: int  # PNG_COMPRESS_LEVEL: 1 measured fastest for its size (BENCHMARKS.md)
    batch_size: int  # BATCH_SIZE: images per forward when a job or an S3 event has several
    max_resident_models: int  # MAX_RESIDENT_MODELS kept in memory, least recently used evicted
    s3_max_attempts: int  # S3_MAX_ATTEMPTS for botocore's standard retry mode
    channels_last: bool  # CHANNELS_LAST
    compile: bool  # TORCH_COMPILE


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load() -> Settings:
    env = os.environ
    return Settings(
        bucket=env.get("S3_BUCKET") or None,
        local_bucket_dir=env.get("LOCAL_BUCKET_DIR", "bucket"),
        default_model=env.get("DEFAULT_MODEL", DEFAULT_MODEL),
        max_image_pixels=_int("MAX_IMAGE_PIXELS", 64_000_000),
        device=env.get("DEVICE") or _default_device(),
        precision=env.get("PRECISION", "auto"),
        png_compress_level=_int("PNG_COMPRESS_LEVEL", 1),
        batch_size=_int("BATCH_SIZE", 4),
        max_resident_models=_int("MAX_RESIDENT_MODELS", 2),
        s3_max_attempts=_int("S3_MAX_ATTEMPTS", 6),
        channels_last=env.get("CHANNELS_LAST", "1") == "1",
        compile=env.get("TORCH_COMPILE", "0") == "1",
    )
