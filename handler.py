"""RunPod serverless entry point: parse, dispatch, answer. The work is in worker/."""
from __future__ import annotations

from worker import config

config.prepare_process()  # OpenMP's settings, before anything imports torch

import runpod  # noqa: E402

from worker.jobs import Worker  # noqa: E402

_worker: Worker | None = None


def worker() -> Worker:
    """One Worker per process, made on the first job, so that networks stay resident between jobs."""
    global _worker
    if _worker is None:
        _worker = Worker()
    return _worker


def handler(job: dict) -> dict:
    """`{"key": ...}` on success, `{"error": "<string>"}` on failure (see CONTRACT.md)."""
    return worker().run(job.get("input"), job.get("id"))


if __name__ == "__main__":
    runpod.serverless.start({"handler": handler})
