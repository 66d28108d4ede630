"""The device lane: every piece of device work of every job in flight runs on one thread, in order,
and network passes of different jobs that need the same (model, precision, size) share a forward.

Why one thread: a GPU runs one stream of kernels anyway, and on the CPU several jobs' torch ops in
parallel only fight over the same cores. Everything else a job does (S3, decoding, encoding) runs on
other threads meanwhile, so the device is kept busy while the next image is fetched.

Batching: a job submits one item under a key; the lane takes the oldest waiting item and every
other waiting item with its key, up to `batch_size`. When fewer are waiting and other jobs are still
on their way to the lane (`expect()` / `arrived()`), it waits up to `batch_wait` for company;
otherwise it runs at once, so a lone job never waits.

Cancellation: an item whose job has given up (its future cancelled) before the lane takes it is
dropped; work the lane has begun runs to its end (the job's own checks stop it at its next boundary).
`close()` stops the thread after the work in hand and fails whatever is still waiting.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from runpod.serverless.modules.rp_logger import RunPodLogger

BatchFn = Callable[[list[Any]], list[Any]]


class LaneClosed(RuntimeError):
    """Work submitted to, or still waiting on, a lane that has been closed."""


class BatchCountMismatch(RuntimeError):
    """A batch function returned a different number of results than it was given payloads."""


@dataclass
class _Item:
    key: Hashable | None  # None: a plain call, never batched
    payload: Any
    run: Callable  # plain: fn(payload) -> result; batched: fn([payloads]) -> [results]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    queued: float = field(default_factory=time.perf_counter)


class DeviceLane:
    def __init__(self, batch_size: int, batch_wait_s: float, log: Callable[[str], None] | None = None):
        self.batch_size = max(1, batch_size)
        self.batch_wait_s = max(0.0, batch_wait_s)
        self.log = log or RunPodLogger().info
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._expected = 0  # jobs that may still submit batchable work
        self._busy_s = 0.0  # time spent running work, for the busy fraction
        self.batches: Counter[int] = Counter()  # how many batches of each size ran, for tests and benchmarks
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="device-lane", daemon=True)
        self._thread.start()

    # -- what jobs call ----------------------------------------------------------------------------
    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` on the lane thread, after the work queued before it."""
        return await self._submit(None, args, lambda a: fn(*a))

    async def batched(self, key: Hashable, payload: Any, run_batch: BatchFn) -> Any:
        """`run_batch(payloads)` for this payload and others of the same key; returns this one's result."""
        return await self._submit(key, payload, run_batch)

    def expect(self) -> None:
        """A job is on its way to the lane: worth waiting for before running a small batch."""
        with self._cond:
            self._expected += 1

    def arrived(self) -> None:
        """That job has submitted its batchable work, or will not."""
        with self._cond:
            self._expected = max(0, self._expected - 1)
            self._cond.notify_all()

    @property
    def busy_seconds(self) -> float:
        """Time the lane has spent running work since it started (device busy time, on CUDA measured
        to the end of the work's kernels when the work synchronises, as the timed stages do)."""
        return self._busy_s

    def close(self, timeout_s: float | None = None) -> None:
        """Stop the lane: the work in hand finishes, every item still waiting fails with LaneClosed,
        and later submissions fail at once. Waits up to `timeout_s` for the thread to end."""
        with self._cond:
            self._closed = True
            waiting = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        _answer(waiting, [(False, LaneClosed("the device lane was closed before this work ran"))] * len(waiting))
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the lane thread --------------------------------------------------------------------------
    async def _submit(self, key: Hashable | None, payload: Any, run: Callable) -> Any:
        loop = asyncio.get_running_loop()
        item = _Item(key, payload, run, loop.create_future(), loop)
        with self._cond:
            if self._closed:
                raise LaneClosed("the device lane is closed")
            self._queue.append(item)
            self._cond.notify_all()
        return await item.future

    def _take(self) -> list[_Item] | None:
        """The next piece of work: one plain call, or a batch of items sharing a key; None once closed."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            first = self._queue[0]
            if first.key is None:
                return [self._queue.popleft()]
            deadline = first.queued + self.batch_wait_s
            while True:
                same = [i for i in self._queue if i.key == first.key]
                if len(same) >= self.batch_size or self._expected == 0 or self._closed:
                    break
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._cond.wait(timeout=left)
            batch = [i for i in self._queue if i.key == first.key][: self.batch_size]
            for item in batch:
                self._queue.remove(item)
            return batch

    def _loop(self) -> None:
        while (taken := self._take()) is not None:
            items = [i for i in taken if not i.future.cancelled()]
            if not items:
                continue
            start = time.perf_counter()
            try:
                outcome = [(True, r) for r in self._run(items)]
            except BaseException as exc:  # noqa: BLE001 - the failure is every member's answer
                outcome = [(False, exc)] * len(items)
            self._busy_s += time.perf_counter() - start
            _answer(items, outcome)

    def _run(self, items: list[_Item]) -> list[Any]:
        """The results of one piece of work, one per item (BatchCountMismatch when a batch function
        returns another number: every member fails rather than some waiting forever)."""
        if items[0].key is None:
            return [items[0].run(items[0].payload)]
        results = list(items[0].run([i.payload for i in items]))
        self.batches[len(items)] += 1
        if len(items) > 1:
            self.log(f"device lane: batch of {len(items)} for {items[0].key}")
        if len(results) != len(items):
            raise BatchCountMismatch(f"the batch function for {items[0].key} returned {len(results)} results "
                                     f"for {len(items)} payloads")
        return results


def _answer(items: list[_Item], outcome: list[tuple[bool, Any]]) -> None:
    for item, (ok, value) in zip(items, outcome, strict=True):
        try:
            item.loop.call_soon_threadsafe(_resolve, item.future, ok, value)
        except RuntimeError:  # the job's event loop has closed: nobody waits for this result
            pass


def _resolve(future: asyncio.Future, ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
