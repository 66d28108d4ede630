"""A job from input to answer: parse, dispatch to its task, bound it in time, answer.

Several jobs are in flight at once (MAX_CONCURRENCY): their storage, decoding and encoding run on
threads while the device lane runs the networks, and the lane batches images of different jobs
that need the same forward. An S3 notification's records are jobs of their own on the same path.
A failure of one job (or record) is that one's answer only.

A job past JOB_TIMEOUT_S is answered at its deadline, but its slot is given back only when the stage
it was running has returned (a stopped job starts no other), so the work running at once never
exceeds MAX_CONCURRENCY jobs' worth, however slow a stage.
"""
from __future__ import annotations

import asyncio
import json
import traceback
from typing import Callable

from runpod.serverless.modules.rp_logger import RunPodLogger

from worker import config
from worker import storage as storage_mod
from worker.cache import ModelCache
from worker.context import JobRun, Services
from worker.device import DeviceInfo, prepare
from worker.errors import InvalidInput, JobTimeout, UnsupportedTask, failure
from worker.events import parse_records
from worker.lane import DeviceLane
from worker.schema import Job, parse_event_options, parse_job
from worker.tasks import RUNNERS

log = RunPodLogger()

def _reject(message: str, request_id: str | None) -> dict:
    log.warn(f"rejected: {message}", request_id)
    return {"error": message}


class Worker:
    def __init__(self, settings: config.Settings | None = None, storage=None, device: DeviceInfo | None = None):
        settings = settings or config.read_settings()
        device = device or prepare(settings)
        self.services = Services(
            settings=settings,
            device=device,
            storage=storage or storage_mod.from_settings(settings),
            models=ModelCache(settings, budget_bytes=device.memory_bytes // 2),
            lane=DeviceLane(settings.batch_size, settings.batch_wait_ms / 1000),
        )
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._releasing: set[asyncio.Task] = set()  # timed-out jobs whose slot waits for their last stage
        self.observe: Callable[[JobRun], None] | None = None  # sees every finished run (tests, benchmarks)

    @property
    def settings(self) -> config.Settings:
        return self.services.settings

    def slots(self) -> asyncio.Semaphore:
        """MAX_CONCURRENCY jobs at a time (one semaphore per event loop: tests run several loops)."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.settings.max_concurrency))
        return self._slots[1]

    def close(self) -> None:
        """Stop the device lane (work still waiting on it fails); the worker serves no more jobs."""
        self.services.lane.close()

    # -- entry points ----------------------------------------------------------------------------
    async def run(self, raw_input, request_id: str | None = None, runpod_job: dict | None = None) -> dict:
        """The answer to one job input: a single image, or an S3 notification's records."""
        size = len(json.dumps(raw_input, default=str))
        if size > self.settings.max_job_input_bytes:
            return _reject(f"job input too large: {size} bytes, the limit (MAX_JOB_INPUT_BYTES) is "
                           f"{self.settings.max_job_input_bytes}", request_id)
        try:
            if isinstance(raw_input, dict) and "Records" in raw_input:
                return await self.run_event(raw_input, request_id, runpod_job)
            job = parse_job(raw_input, self.settings)
        except InvalidInput as exc:
            return _reject(str(exc), request_id)
        return await self._run_job(job, request_id, runpod_job)

    async def run_event(self, raw_input: dict, request_id: str | None, runpod_job: dict | None) -> dict:
        options = parse_event_options(raw_input, self.settings)
        records = parse_records(raw_input["Records"], self.settings.bucket)
        answers = iter(await asyncio.gather(*(self._run_job(Job(r.id, options), request_id, runpod_job)
                                              for r in records if r.id is not None)))
        results = []
        for record in records:
            if record.id is None:
                results.append({"key": record.key, "skipped": record.skip_reason})
            else:
                results.append({"source": record.key, **next(answers)})
        answer: dict = {"results": results}
        if results and all("error" in r for r in results):
            answer["error"] = "every record failed: " + "; ".join(r["error"] for r in results)
        if any(r.pop("refresh_worker", False) for r in results):
            answer["refresh_worker"] = True  # a broken GPU: the platform replaces this worker
        return answer

    # -- one job ---------------------------------------------------------------------------------
    async def _run_job(self, job: Job, request_id: str | None, runpod_job: dict | None) -> dict:
        run = JobRun(job, self.services, request_id, runpod_job)
        slots = self.slots()
        await slots.acquire()
        task = asyncio.ensure_future(self._answer(run))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.settings.job_timeout_s)
        except BaseException:  # the caller gave up on this job (its event loop is shutting down)
            task.cancel()
            slots.release()
            raise
        if task not in done and not run.committing:
            run.stop()
            task.cancel()
            releasing = asyncio.ensure_future(self._release_when_settled(run, task, slots))
            self._releasing.add(releasing)
            releasing.add_done_callback(self._releasing.discard)
            log.warn(f"id={job.id}: {run.timeout_message()}", request_id)
            return failure(JobTimeout(run.timeout_message())).answer
        try:  # done, or the output is being written: let the job finish and answer
            return await task
        finally:
            slots.release()
            self._observe(run)

    async def _release_when_settled(self, run: JobRun, task: asyncio.Task, slots: asyncio.Semaphore) -> None:
        """The slot of a timed-out job, given back once its coroutine and the stage it had running end."""
        try:
            await asyncio.wait({task})
            await run.settled()
        finally:
            slots.release()
            self._observe(run)

    def _observe(self, run: JobRun) -> None:
        if self.observe is not None:
            self.observe(run)

    async def _answer(self, run: JobRun) -> dict:
        try:
            task = RUNNERS.get(run.job.options.task)
            if task is None:
                raise UnsupportedTask(f"task: {run.job.options.task!r} is not served by this worker build; "
                                      f"available: {', '.join(RUNNERS)}")
            return await task(run)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes an answer
            result = failure(exc)
            if result.internal:
                log.error(f"id={run.job.id}: {traceback.format_exc()}", run.request_id)
            else:
                log.warn(f"id={run.job.id}: {result.answer['error']}", run.request_id)
            return result.answer
