"""The worker's settings: every environment variable is read here, once, and passed down.

Each setting is a field of `Settings` with its default, its environment variable and its meaning
written once; `read_settings()`, the README's table and `.runpod/hub.json` (builder/hub_files.py) are made
from these fields.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from imaging.png import WRITERS, PngSettings

DEFAULT_MODEL = "briaai/RMBG-2.0"
PRECISIONS = ("auto", "float32", "float16", "bfloat16")
LOG_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
AUTO_DEVICE = "auto"  # DEVICE: cuda when a GPU is visible, else cpu

# Network families whose CPU forward is faster in channels_last (benchmarks/bench_memory_format.py,
# BENCHMARKS.md); the others keep NCHW on the CPU.
CPU_CHANNELS_LAST_FAMILIES = ("u2net",)

# Read by OpenMP (libgomp) once, when torch is imported, so they are set before that, not per job.
# PASSIVE: a thread that waits for the others at a barrier sleeps instead of spinning. On a CPU that
# other processes also use, spinning threads hold the cores that the straggling thread needs, and
# the u2netp forward went from about 0.8 s to 3-15 s; with PASSIVE it stays within 2x (BENCHMARKS.md).
OPENMP_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


class ConfigError(ValueError):
    """A setting has a value the worker cannot run with; it refuses to start."""


def _setting(default: Any, env: str, doc: str, kind: str = "str", choices: tuple[str, ...] = (),
             cuda_default: Any = None, scale: int = 1) -> Any:
    """A Settings field read from `env`. kind: str, int, float, flag (1/0), path, choice, names (a
    comma-separated list; "none" or empty: no name). `scale`
    multiplies a number as read (MODEL_CACHE_GB is read in GiB, kept in bytes)."""
    return field(default=default, metadata={"env": env, "doc": doc, "kind": kind, "choices": choices,
                                            "cuda_default": cuda_default, "scale": scale})


@dataclass(frozen=True)
class Settings:
    bucket: str | None = _setting(None, "S3_BUCKET", "the bucket; unset: a local folder stands in for it")
    local_bucket_dir: str = _setting("bucket", "LOCAL_BUCKET_DIR", "the local stand-in for the bucket "
                                     "(`ogs/`, `bgr/`, `img/` inside)")
    weights_dir: Path = _setting(Path("weights"), "WEIGHTS_DIR", "where weight files are looked up first "
                                 "(then the Hugging Face cache, offline)", "path")
    default_model: str = _setting(DEFAULT_MODEL, "DEFAULT_MODEL", "the model of jobs that name none")
    # As loaded, `device` is never "auto": read_settings() resolves it to cuda or cpu.
    device: str = _setting(AUTO_DEVICE, "DEVICE", "auto (cuda when a GPU is visible, else cpu), cuda, cuda:N or "
                           "cpu. A worker set to cuda without a usable GPU refuses to start")
    precision: str = _setting("auto", "PRECISION", "a job's precision when it names none: auto = bfloat16 "
                              "on CUDA, float32 on the CPU", "choice", PRECISIONS)
    allow_tf32: bool = _setting(False, "ALLOW_TF32", "let float32 networks run TF32 convolutions and "
                                "matmuls on CUDA (off: IEEE float32, what parity is checked in)", "flag")
    log_level: str = _setting("INFO", "LOG_LEVEL", "runpod's log level", "choice", LOG_LEVELS)
    # Limits, each refused with an error naming it before the expensive work starts.
    max_input_bytes: int = _setting(64 * 2**20, "MAX_INPUT_BYTES", "the input object's size, from S3's "
                                    "metadata, before downloading it", "int")
    max_image_pixels: int = _setting(64_000_000, "MAX_IMAGE_PIXELS", "an image's pixels, from its header, "
                                     "before decoding (decompression bombs too)", "int")
    max_output_pixels: int = _setting(100_000_000, "MAX_OUTPUT_PIXELS", "the output's pixels for tasks "
                                      "that enlarge (upscale, restore with upscale)", "int")
    max_frames: int = _setting(300, "MAX_FRAMES", "frames of an animated input", "int")
    max_total_pixels: int = _setting(200_000_000, "MAX_TOTAL_PIXELS", "all frames of an animated input "
                                     "together", "int")
    max_video_bytes: int = _setting(1024 * 2**20, "MAX_VIDEO_BYTES", "a video input's size, from S3's metadata "
                                    "(MAX_INPUT_BYTES stays the images' limit); streamed to a temporary file", "int")
    max_video_pixels: int = _setting(3840 * 2160, "MAX_VIDEO_PIXELS", "a video frame's pixels, from the header, "
                                     "and again on every decoded frame", "int")
    max_video_seconds: float = _setting(300.0, "MAX_VIDEO_SECONDS", "a video's duration, from the header, and "
                                        "again while decoding (also: at most 240 frames a second of it)", "float")
    max_job_input_bytes: int = _setting(64 * 2**10, "MAX_JOB_INPUT_BYTES", "the job's JSON input", "int")
    job_timeout_s: float = _setting(600.0, "JOB_TIMEOUT_S", "a job's wall time; past it the job answers an "
                                    "error and writes nothing", "float")
    # The serving engine.
    max_concurrency: int = _setting(2, "MAX_CONCURRENCY", "jobs in flight in one worker (runpod's "
                                    "concurrency_modifier); default 8 on CUDA, 2 on the CPU", "int", cuda_default=8)
    batch_size: int = _setting(4, "BATCH_SIZE", "images per forward, across the jobs in flight; default 8 "
                               "on CUDA, 4 on the CPU", "int", cuda_default=8)
    batch_wait_ms: float = _setting(10.0, "BATCH_WAIT_MS", "how long a forward waits for images of other "
                                    "jobs in flight (never when none is on its way)", "float")
    max_resident_models: int = _setting(0, "MAX_RESIDENT_MODELS", "a cap on resident networks; 0: by "
                                        "memory alone", "int")
    model_cache_bytes: int = _setting(0, "MODEL_CACHE_GB", "memory for resident networks, GiB; 0: half "
                                      "the device's memory", "float", scale=2**30)
    channels_last: bool = _setting(True, "CHANNELS_LAST", "networks in channels_last on CUDA", "flag")
    cpu_channels_last: tuple[str, ...] = _setting(CPU_CHANNELS_LAST_FAMILIES, "CPU_CHANNELS_LAST", "network "
                                                  "families run in channels_last on the CPU (comma-separated "
                                                  "model families, all or none): those measured faster", "names")
    cpu_threads: int = _setting(0, "CPU_THREADS", "torch's intra-op threads on the CPU; 0: torch's default "
                                "(one per core)", "int")
    gpu_jpeg: bool = _setting(True, "GPU_JPEG", "decode JPEG inputs on the GPU (nvJPEG) when on CUDA", "flag")
    compile: bool = _setting(False, "TORCH_COMPILE", "torch.compile the networks (needs a C compiler)", "flag")
    compile_mode: str = _setting("default", "TORCH_COMPILE_MODE", "torch.compile's mode: reduce-overhead "
                                 "replays CUDA graphs", "choice", ("default", "reduce-overhead", "max-autotune"))
    png_writer: str = _setting(PngSettings.writer, "PNG_WRITER", "the writer of RGB/RGBA PNG outputs: compact "
                               "(Paeth filter, zlib-ng run-length: 0.995-1.044x rembg's bytes in 0.13-0.17x its "
                               "CPU time on 12 MP cut-outs) or fast (Up filter, ISA-L level 1: a quarter of "
                               "compact's CPU time for 12-18 % more bytes)", "choice", WRITERS)
    png_threads: int = _setting(PngSettings.threads, "PNG_THREADS", "threads compressing one RGB/RGBA PNG, each "
                                "a strip of rows (the CPU time is the same; 1: on the job's thread)", "int")
    png_compress_level: int = _setting(PngSettings.compress_level, "PNG_COMPRESS_LEVEL", "zlib level of grey "
                                       "PNG (alpha matte) and APNG outputs (Pillow's encoder)", "int")
    png_filter_on_device: bool = _setting(PngSettings.filter_on_device, "PNG_FILTER_ON_DEVICE", "filter the rows "
                                          "of RGB/RGBA PNG outputs on the device, so that the host only deflates "
                                          "them (half the compact writer's host CPU); default on with CUDA, off "
                                          "on the CPU", "flag", cuda_default=True)
    s3_max_attempts: int = _setting(4, "S3_MAX_ATTEMPTS", "attempts in botocore's standard retry mode "
                                    "(throttling, 5xx, dropped connections)", "int")
    s3_connect_timeout_s: float = _setting(5.0, "S3_CONNECT_TIMEOUT_S", "S3 connect timeout", "float")
    s3_read_timeout_s: float = _setting(30.0, "S3_READ_TIMEOUT_S", "S3 read timeout", "float")
    on_runpod: bool = field(default=False, metadata={})  # runpod's job queue serves this worker

    @property
    def png(self) -> PngSettings:
        return PngSettings(self.png_writer, self.png_threads, self.png_compress_level, self.png_filter_on_device)


def env_spelling(value: Any) -> Any:
    """A default as its environment variable spells it: flags 1/0, name lists comma-separated (none when
    empty), paths as text; numbers and text as they are."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    return str(value) if isinstance(value, Path) else value


def documented() -> list[tuple[str, Any, str]]:
    """(environment variable, default, meaning) of every setting, for the README and the hub file."""
    return [(f.metadata["env"], f.default, f.metadata["doc"]) for f in fields(Settings) if f.metadata]


def in_environment(env: dict, gpu_visible: bool) -> list[tuple[str, Any, str]]:
    """(environment variable, value, meaning) of every setting as a worker started in `env` runs with
    it, in the environment's units; DEVICE as configured ("auto" is a value, resolved at start)."""
    settings = read_settings(env, gpu_visible)

    def value(f) -> Any:
        if f.name == "device":
            return env.get("DEVICE") or AUTO_DEVICE
        return getattr(settings, f.name) / f.metadata["scale"] if f.metadata["scale"] != 1 else getattr(settings, f.name)

    return [(f.metadata["env"], value(f), f.metadata["doc"]) for f in fields(Settings) if f.metadata]


def _parse(env_name: str, value: str, kind: str, choices: tuple[str, ...]) -> Any:
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    except ValueError:
        raise ConfigError(f"{env_name}={value!r} is not {'an integer' if kind == 'int' else 'a number'}") from None
    if kind == "flag":
        if value not in ("0", "1"):
            raise ConfigError(f"{env_name}={value!r}: use 1 or 0")
        return value == "1"
    if kind == "choice" and value not in choices:
        raise ConfigError(f"{env_name}={value!r}: allowed values are {', '.join(choices)}")
    if kind == "path":
        return Path(value).expanduser()
    if kind == "names":
        names = tuple(part.strip() for part in value.split(",") if part.strip())
        return () if names in ((), ("none",)) else names
    return value


def resolve_device(value: str, gpu_visible: bool | None = None) -> str:
    """DEVICE as the worker runs it: "auto" becomes cuda when a GPU is visible (asking torch unless
    `gpu_visible` says), else cpu; any other value is kept (device.prepare checks it)."""
    if value != AUTO_DEVICE:
        return value
    if gpu_visible is None:
        import torch

        gpu_visible = torch.cuda.is_available()
    return "cuda" if gpu_visible else "cpu"


def read_settings(env: dict | None = None, gpu_visible: bool | None = None) -> Settings:
    """Settings from the environment (or `env`); a malformed value is a ConfigError naming it.
    `gpu_visible` stands in for torch's answer where DEVICE is auto (the hub files ask about a GPU
    worker on a machine without one)."""
    env = os.environ if env is None else env
    device = resolve_device(env.get("DEVICE") or AUTO_DEVICE, gpu_visible)
    values: dict[str, Any] = {"device": device, "on_runpod": bool(env.get("RUNPOD_WEBHOOK_GET_JOB"))}
    for f in fields(Settings):
        meta = f.metadata
        if not meta or f.name == "device":
            continue
        raw = env.get(meta["env"])
        if raw or (raw is not None and meta["kind"] == "names"):  # an empty list of names means none
            value = _parse(meta["env"], raw, meta["kind"], meta["choices"])
            values[f.name] = int(value * meta["scale"]) if meta["scale"] != 1 else value
        elif meta["cuda_default"] is not None and device.startswith("cuda"):
            values[f.name] = meta["cuda_default"]
    return Settings(**values)


def prepare_process(env: dict | None = None) -> bool:
    """Put OPENMP_DEFAULTS into the environment (a value already set wins) before torch is imported.
    Call it first thing in a process's entry point. False when torch was already imported: OpenMP
    has read its settings by then, and the defaults would not take effect."""
    env = os.environ if env is None else env
    for name, value in OPENMP_DEFAULTS.items():
        env.setdefault(name, value)
    return "torch" not in sys.modules
