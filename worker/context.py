"""What a task works with: the worker's services, and one job in flight (its timings, progress,
deadline, cancellation and the one write that commits its answer).

Every stage of a job runs off the event loop (`io` on a worker thread, `on_device` on the lane) and is
recorded with the thread it ran on and that thread's CPU time. A job past its deadline is stopped:
stages not yet begun do not start, and long stages (tiles, frames) call `check()` between steps;
`settled()` tells the worker when the stage still running has returned, so its slot is held until then.
"""
from __future__ import annotations

import asyncio
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from runpod.serverless.modules.rp_logger import RunPodLogger

from imaging.png import offloaded_cpu_seconds
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


@dataclass(frozen=True)
class StageRecord:
    """One run of a stage: where it ran and what it cost (`cpu_ms`: that thread's CPU time)."""

    stage: str
    thread: int  # threading.get_ident() of the thread it ran on
    device: bool  # device-lane work, as opposed to host work on a worker thread
    wall_ms: float
    cpu_ms: float


@dataclass
class JobRun:
    job: Job
    services: Services
    request_id: str | None = None
    runpod_job: dict | None = None  # the job as runpod gave it, for progress updates
    timings: dict[str, float] = field(default_factory=dict)
    timed_out: bool = False
    committing: bool = False
    stages: list[StageRecord] = field(default_factory=list)
    _stopped: threading.Event = field(default_factory=threading.Event)
    _active: int = 0  # stages running now, on any thread
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = field(default_factory=list)

    # -- logging and progress ---------------------------------------------------------------------
    def info(self, message: str) -> None:
        log.info(f"id={self.job.id}: {message}", self.request_id)

    def progress(self, message: str) -> None:
        """Long jobs report progress: to runpod when it serves the worker, to the log always."""
        self.info(f"progress: {message}")
        if self.services.settings.on_runpod and self.runpod_job is not None:
            from runpod.serverless import progress_update

            progress_update(self.runpod_job, message)

    # -- cancellation -----------------------------------------------------------------------------
    def stop(self) -> None:
        """The job is past its deadline: no stage starts from now on, and `check()` raises."""
        self.timed_out = True
        self._stopped.set()

    def check(self) -> None:
        """Between the steps of a long stage (a tile, a frame): JobTimeout once the job is stopped."""
        if self._stopped.is_set():
            raise JobTimeout(self.timeout_message())

    @contextmanager
    def running(self) -> Iterator[None]:
        """Around work of this job on any thread (a stage, its share of a batch): it is counted as
        running, so the worker holds the job's slot until it returns; it does not begin once stopped."""
        with self._lock:
            self._active += 1
        try:
            self.check()
            yield
        finally:
            with self._lock:
                self._active -= 1
                waiters = self._waiters if self._active == 0 else []
                if waiters:
                    self._waiters = []
            for loop, future in waiters:
                try:
                    loop.call_soon_threadsafe(_wake, future)
                except RuntimeError:  # that event loop has closed: nobody waits any more
                    pass

    async def settled(self) -> None:
        """Return once no work of this job is running on any thread."""
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._active == 0:
                    return
                future = loop.create_future()
                self._waiters.append((loop, future))
            await future

    # -- running stages ---------------------------------------------------------------------------
    @contextmanager
    def timed(self, stage: str, device: bool = False) -> Iterator[None]:
        """Run a stage here: counted as running, timed (added up when it runs several times) and
        recorded with this thread and its CPU time. A device stage waits for its queued kernels before
        the clock stops, so its time is its own, not the next stage's (CUDA)."""
        with self.running():
            start, cpu_start = time.perf_counter(), self._thread_cpu()
            yield
            if device:
                synchronize(self.services.device.device)
            wall_ms = (time.perf_counter() - start) * 1000
            self.stages.append(StageRecord(stage, threading.get_ident(), device, wall_ms,
                                           (self._thread_cpu() - cpu_start) * 1000))
            self.timings[stage] = round(wall_ms + self.timings.get(stage, 0.0), 1)

    @staticmethod
    def _thread_cpu() -> float:
        """This thread's CPU seconds, with what the PNG writer's strip threads did for it."""
        return time.thread_time() + offloaded_cpu_seconds()

    async def io(self, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Host work (storage, decoding, encoding, device-to-host copies) on a worker thread."""
        def timed_call():
            with self.timed(stage):
                return fn(*args)

        return await asyncio.to_thread(timed_call)

    async def on_device(self, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Device work on the device lane, after the work queued before it."""
        def timed_call(*a):
            with self.timed(stage, device=True):
                return fn(*a)

        return await self.services.lane.call(timed_call, *args)

    # -- the answer's one write -------------------------------------------------------------------
    async def commit(self, key: str, data: bytes, content_type: str) -> None:
        """Write the output (one PUT). Past the deadline nothing is written; once the write has begun
        the job is let finish, so an answered timeout never leaves an output behind."""
        self.check()
        self.committing = True
        await self.io("put", self.services.storage.put, key, data, content_type)

    async def commit_file(self, key: str, path: Path, content_type: str) -> None:
        """commit() for an output written to a file (a video): one managed upload (storage.put_file)."""
        self.check()
        self.committing = True
        await self.io("put", self.services.storage.put_file, key, path, content_type)

    def timeout_message(self) -> str:
        return (f"job timed out: it ran past JOB_TIMEOUT_S = {self.services.settings.job_timeout_s:g} s; "
                "nothing was written")


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
