"""The device lane on its own: batches, a batch function's wrong count, cancellation of waiting work,
close(), and the bounded record of batch sizes. Threads are coordinated with events, not sleeps."""
from __future__ import annotations

import asyncio
import threading

import pytest

from worker.lane import BatchCountMismatch, DeviceLane, LaneClosed


def quiet_lane(batch_size: int = 4, batch_wait_s: float = 0.0) -> DeviceLane:
    return DeviceLane(batch_size, batch_wait_s, log=lambda message: None)


def blocker() -> tuple[threading.Event, threading.Event, callable]:
    """A plain call that holds the lane thread until released: (started, release, fn)."""
    started, release = threading.Event(), threading.Event()

    def hold() -> str:
        started.set()
        assert release.wait(10)
        return "held"

    return started, release, hold


async def wait_for(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 10)


def test_items_of_one_key_share_a_batch_and_sizes_are_counted():
    lane = quiet_lane(batch_size=4)
    started, release, hold = blocker()
    seen: list[list[int]] = []

    def double(payloads: list[int]) -> list[int]:
        seen.append(payloads)
        return [2 * p for p in payloads]

    async def main():
        held = asyncio.ensure_future(lane.call(hold))
        await wait_for(started)  # the lane is busy: the next items queue up together
        doubled = [asyncio.ensure_future(lane.batched("k", n, double)) for n in range(6)]
        await asyncio.sleep(0)  # let every submission reach the queue
        release.set()
        return await held, await asyncio.gather(*doubled)

    try:
        held, doubled = asyncio.run(main())
    finally:
        lane.close()
    assert held == "held" and doubled == [0, 2, 4, 6, 8, 10]
    assert seen == [[0, 1, 2, 3], [4, 5]]
    assert lane.batches == {4: 1, 2: 1} and max(lane.batches) == 4


def test_a_batch_function_returning_too_few_results_fails_every_member():
    lane = quiet_lane()
    started, release, hold = blocker()

    async def main():
        held = asyncio.ensure_future(lane.call(hold))
        await wait_for(started)
        members = [asyncio.ensure_future(lane.batched("k", n, lambda payloads: payloads[:1])) for n in range(3)]
        await asyncio.sleep(0)
        release.set()
        await held
        return await asyncio.gather(*members, return_exceptions=True)

    try:
        outcomes = asyncio.run(asyncio.wait_for(main(), 30))  # an error, not a hang
    finally:
        lane.close()
    assert all(isinstance(o, BatchCountMismatch) for o in outcomes), outcomes
    assert "returned 1 results for 3 payloads" in str(outcomes[0])


def test_cancelled_waiting_work_is_dropped_and_running_work_finishes():
    lane = quiet_lane()
    started, release, hold = blocker()
    ran: list[str] = []

    async def main():
        held = asyncio.ensure_future(lane.call(hold))
        await wait_for(started)
        dropped = asyncio.ensure_future(lane.call(ran.append, "dropped"))
        kept = asyncio.ensure_future(lane.call(ran.append, "kept"))
        await asyncio.sleep(0)
        dropped.cancel()
        held.cancel()  # already running: it runs to its end, nobody takes its result
        release.set()
        await kept
        return dropped.cancelled()

    try:
        assert asyncio.run(main())
    finally:
        lane.close()
    assert ran == ["kept"]


def test_close_fails_waiting_work_and_later_calls_and_ends_the_thread():
    lane = quiet_lane()
    started, release, hold = blocker()

    async def main():
        held = asyncio.ensure_future(lane.call(hold))
        await wait_for(started)
        waiting = asyncio.ensure_future(lane.call(lambda: "never"))
        await asyncio.sleep(0)
        closing = threading.Thread(target=lane.close)
        closing.start()
        with pytest.raises(LaneClosed, match="closed before this work ran"):
            await waiting
        release.set()  # the work in hand finishes and is answered
        assert await held == "held"
        await asyncio.to_thread(closing.join, 10)
        with pytest.raises(LaneClosed, match="the device lane is closed"):
            await lane.call(lambda: "too late")

    asyncio.run(asyncio.wait_for(main(), 30))
    assert lane.closed and not lane._thread.is_alive()


def test_close_while_waiting_for_batch_company_ends_at_once():
    lane = quiet_lane(batch_size=4, batch_wait_s=60)
    lane.expect()  # another job is on its way: the lane would wait up to a minute for it

    async def main():
        lone = asyncio.ensure_future(lane.batched("k", 1, lambda payloads: payloads))
        await asyncio.sleep(0)
        await asyncio.to_thread(lane.close, 10)
        return await asyncio.gather(lone, return_exceptions=True)

    outcome = asyncio.run(asyncio.wait_for(main(), 30))
    assert not lane._thread.is_alive()
    assert isinstance(outcome[0], LaneClosed)  # still queued while the lane waited: failed by the close
