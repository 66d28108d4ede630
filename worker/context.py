"""What a task works with: the worker's services, and one job in flight (its timings, progress,
deadline and the one write that commits its answer)."""
from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from runpod.serverless.modules.rp_logger import RunPodLogger

from worker.cache import ModelCache
from worker.config import Settings
from worker.device import DeviceInfo, synchronize
from worker.errors import JobTimeout
from worker.lane import DeviceLane
from worker.schema import Job
from worker.storage import Storage

log = RunPodLogger()


@dataclass
class Services:
    """Made once per worker process and shared by every job."""

    settings: Settings
    device: DeviceInfo
    storage: Storage
    models: ModelCache
    lane: DeviceLane


@dataclass
class JobRun:
    job: Job
    services: Services
    request_id: str | None = None
    runpod_job: dict | None = None  # the job as runpod gave it, for progress updates
    timings: dict[str, float] = field(default_factory=dict)
    timed_out: bool = False
    committing: bool = False

    # -- logging and progress ---------------------------------------------------------------------
    def info(self, message: str) -> None:
        log.info(f"id={self.job.id}: {message}", self.request_id)

    def progress(self, message: str) -> None:
        """Long jobs report progress: to runpod when it serves the worker, to the log always."""
        self.info(f"progress: {message}")
        if self.services.settings.on_runpod and self.runpod_job is not None:
            from runpod.serverless import progress_update

            progress_update(self.runpod_job, message)

    # -- running stages ---------------------------------------------------------------------------
    @contextmanager
    def timed(self, stage: str, device: bool = False) -> Iterator[None]:
        """Time a stage (added up when it runs several times). A device stage waits for its queued
        kernels before the clock stops, so its time is its own, not the next stage's (CUDA)."""
        start = time.perf_counter()
        yield
        if device:
            synchronize(self.services.device.device)
        self.timings[stage] = round((time.perf_counter() - start) * 1000 + self.timings.get(stage, 0.0), 1)

    async def io(self, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Host work (storage, decoding, encoding) on a worker thread, timed."""
        def timed_call():
            with self.timed(stage):
                return fn(*args)

        return await asyncio.to_thread(timed_call)

    async def on_device(self, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Device work on the device lane, after the work queued before it, timed there."""
        def timed_call(*a):
            with self.timed(stage, device=True):
                return fn(*a)

        return await self.services.lane.call(timed_call, *args)

    # -- the answer's one write -------------------------------------------------------------------
    async def commit(self, key: str, data: bytes, content_type: str) -> None:
        """Write the output (one PUT). Past the deadline nothing is written; once the write has begun
        the job is let finish, so an answered timeout never leaves an output behind."""
        if self.timed_out:
            raise JobTimeout(self.timeout_message())
        self.committing = True
        await self.io("put", self.services.storage.put, key, data, content_type)

    def timeout_message(self) -> str:
        return (f"job timed out: it ran past JOB_TIMEOUT_S = {self.services.settings.job_timeout_s:g} s; "
                "nothing was written")
