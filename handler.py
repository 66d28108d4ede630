"""RunPod serverless entry point: parse, dispatch, answer. The work is in worker/.

The handler is async, so several jobs are in flight in one worker (MAX_CONCURRENCY, runpod's
concurrency_modifier); the device, the float32 policy and the settings are checked at start-up,
and a worker that cannot run as configured exits with the reason instead of failing every job.
"""
from __future__ import annotations

import sys

from worker import config

config.prepare_process()  # OpenMP's settings, before anything imports torch

import runpod  # noqa: E402
from runpod.serverless.modules.rp_logger import RunPodLogger  # noqa: E402

from worker.device import check_gpu  # noqa: E402
from worker.jobs import Worker  # noqa: E402

log = RunPodLogger()
_worker: Worker | None = None


def worker() -> Worker:
    """One Worker per process, made at start-up, so that networks stay resident between jobs."""
    global _worker
    if _worker is None:
        _worker = Worker()
    return _worker


async def handler(job: dict) -> dict:
    """`{"key": ...}` on success, `{"error": "<string>"}` on failure (the README's "The answer")."""
    return await worker().run(job.get("input"), job.get("id"), job)


def concurrency(_current: int) -> int:
    return worker().settings.max_concurrency


def gpu_fitness() -> None:
    """runpod's start-up fitness check: a worker meant for a GPU fails it when the GPU is unusable."""
    device = worker().services.device.device
    if device.type == "cuda":
        check_gpu(device)


def start() -> None:
    try:
        settings = config.read_settings()
        RunPodLogger().set_level(settings.log_level)
        _worker_ready = worker()
    except config.ConfigError as exc:
        log.error(f"cannot start: {exc}")
        sys.exit(2)
    log.info(f"worker ready: {_worker_ready.services.device.describe()}, MAX_CONCURRENCY "
             f"{settings.max_concurrency}, BATCH_SIZE {settings.batch_size}")
    runpod.serverless.register_fitness_check(gpu_fitness)
    runpod.serverless.start({"handler": handler, "concurrency_modifier": concurrency})


if __name__ == "__main__":
    start()
