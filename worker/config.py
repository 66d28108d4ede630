"""The worker's settings: every environment variable is read here, once, and passed down."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "briaai/RMBG-2.0"
PRECISIONS = ("auto", "float32", "float16", "bfloat16")

# Network families whose CPU forward is faster in channels_last (benchmarks/bench_memory_format.py,
# BENCHMARKS.md); the others keep NCHW on the CPU.
CPU_CHANNELS_LAST_FAMILIES = ("u2net",)

# Read by OpenMP (libgomp) once, when torch is imported, so they are set before that, not per job.
# PASSIVE: a thread that waits for the others at a barrier sleeps instead of spinning. On a CPU that
# other processes also use, spinning threads hold the cores that the straggling thread needs, and
# the u2netp forward went from about 0.5 s to 3-15 s; with PASSIVE it stays within 2x (BENCHMARKS.md).
OPENMP_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


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


def _families(env: dict, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated list of network families; "all" or "none" as themselves."""
    value = env.get(name)
    if value is None:
        return default
    value = value.strip()
    if value in ("", "none"):
        return ()
    if value == "all":
        return ("all",)
    return tuple(part.strip() for part in value.split(",") if part.strip())


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
    channels_last: bool = True  # CHANNELS_LAST: every network in channels_last on CUDA
    # CPU_CHANNELS_LAST: families run in channels_last on the CPU (comma-separated, "all" or "none")
    cpu_channels_last: tuple[str, ...] = CPU_CHANNELS_LAST_FAMILIES
    cpu_threads: int = 0  # CPU_THREADS: torch's intra-op threads; 0 keeps torch's default (one per core)
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
        cpu_channels_last=_families(env, "CPU_CHANNELS_LAST", defaults.cpu_channels_last),
        cpu_threads=_int(env, "CPU_THREADS", defaults.cpu_threads),
        compile=_flag(env, "TORCH_COMPILE", defaults.compile),
    )


def prepare_process(env: dict | None = None) -> bool:
    """Put OPENMP_DEFAULTS into the environment (a value already set wins) before torch is imported.

    Call it first thing in a process's entry point. False when torch was already imported: OpenMP
    has read its settings by then, and the defaults would not take effect.
    """
    env = os.environ if env is None else env
    for name, value in OPENMP_DEFAULTS.items():
        env.setdefault(name, value)
    return "torch" not in sys.modules
