"""The job orchestration in process, on a temporary local bucket: concurrency and cross-job batching,
the deadline and its commit rule, the limits, and the model cache under a chain with its defaults."""
from __future__ import annotations

import asyncio
import io
import threading
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from tests.conftest import DEVICE, SHARED
from worker.config import Settings
from worker.jobs import Worker
from worker.storage import LocalStorage

CAR = SHARED / "data" / "rembg" / "car-1.jpg"


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def bucket(tmp_path):
    (tmp_path / "ogs").mkdir()
    photo = Image.open(CAR).convert("RGB").resize((160, 120))
    for name in ("a", "b", "c", "d"):
        (tmp_path / "ogs" / name).write_bytes(png_bytes(photo))
    return tmp_path


def settings_for(bucket, **changes) -> Settings:
    base = Settings(local_bucket_dir=str(bucket), weights_dir=SHARED / "weights", device=DEVICE,
                    default_model="u2netp", batch_wait_ms=2000, max_concurrency=4)
    return replace(base, **changes)


def outputs(bucket) -> list[str]:
    img = bucket / "img"
    return sorted(str(p.relative_to(bucket)) for p in img.rglob("*") if p.is_file()) if img.exists() else []


def run_all(worker: Worker, inputs: list[dict]) -> list[dict]:
    async def main():
        return await asyncio.gather(*(worker.run(i, f"req-{n}") for n, i in enumerate(inputs)))

    return asyncio.run(main())


def test_concurrent_jobs_share_one_forward_and_equal_single_runs(bucket):
    """Four jobs in flight: their images go through the network together, and each answer's matte
    equals the one the job gets alone (within the documented batch tolerance, here exactly equal
    after 8-bit quantisation or off by 1)."""
    worker = Worker(settings_for(bucket))
    answers = run_all(worker, [{"id": n, "task": "mask"} for n in "abcd"])
    assert [a["key"] for a in answers] == [f"img/{n}/mask.png" for n in "abcd"]
    assert max(worker.services.lane.batches) > 1, worker.services.lane.batches
    assert {a["timings_ms"]["batch"] for a in answers} >= {max(worker.services.lane.batches)}
    batched = np.asarray(Image.open(bucket / "img" / "a" / "mask.png")).astype(int)
    alone = Worker(settings_for(bucket, batch_size=1))
    assert run_all(alone, [{"id": "a", "task": "mask"}])[0]["timings_ms"]["batch"] == 1
    single = np.asarray(Image.open(bucket / "img" / "a" / "mask.png")).astype(int)
    assert np.abs(batched - single).max() <= 1


def test_mixed_good_and_bad_jobs_each_get_their_own_answer(bucket):
    (bucket / "ogs" / "text").write_bytes(b"not an image")
    worker = Worker(settings_for(bucket))
    inputs = [{"id": "a"}, {"id": "text"}, {"id": "b", "task": "mask"}, {"id": "nope"},
              {"id": "c", "model": "no-such-model"}, {"id": "d", "task": "mask", "bg_color": "#ffffff"}]
    answers = run_all(worker, inputs)
    assert answers[0]["key"] == "img/a/trans.png"
    assert "cannot decode image" in answers[1]["error"]
    assert answers[2]["key"] == "img/b/mask.png"
    assert answers[3]["error"] == "no image at ogs/nope"
    assert "model: unknown model 'no-such-model'" in answers[4]["error"]
    assert "bg_color: does not apply to task 'mask'" in answers[5]["error"]
    assert outputs(bucket) == ["img/a/trans.png", "img/b/mask.png"]


class GatedBucket(LocalStorage):
    """A bucket whose read or write of one key waits until the test opens its gate, as a stalled
    network would: `entered` is set when the call has begun, `returned` when it has come back."""

    def __init__(self, root, gated: str, key: str | None = None):
        super().__init__(root)
        self.gated, self.key = gated, key  # "get" or "put"; the key it holds (None: any)
        self.gate, self.entered, self.returned = threading.Event(), threading.Event(), threading.Event()
        self.puts: list[str] = []

    def _hold(self, call: str, key: str) -> bool:
        if call != self.gated or self.key not in (None, key):
            return False
        self.entered.set()
        assert self.gate.wait(timeout=120), "the test never opened the gate"
        return True

    def _read(self, read, key, *args):
        held = self._hold("get", key)
        try:
            return read(key, *args)
        finally:
            if held:
                self.returned.set()

    def get(self, key, max_bytes=None):
        return self._read(super().get, key, max_bytes)

    def get_input(self, key, limits):
        return self._read(super().get_input, key, limits)

    def put(self, key, data, content_type):
        self.puts.append(key)
        held = self._hold("put", key)
        super().put(key, data, content_type)
        if held:
            self.returned.set()


def test_a_job_past_its_deadline_answers_an_error_and_writes_nothing(bucket):
    storage = GatedBucket(bucket, "get", "ogs/a")
    worker = Worker(settings_for(bucket, job_timeout_s=1.0), storage=storage)

    async def main():
        answer = await worker.run({"id": "a"}, "req-0")
        storage.gate.set()  # the abandoned read returns now; asyncio.run waits for its thread
        return answer

    answer = asyncio.run(main())
    assert storage.entered.is_set() and storage.returned.is_set()
    assert answer["error"] == "job timed out: it ran past JOB_TIMEOUT_S = 1 s; nothing was written"
    assert storage.puts == [] and outputs(bucket) == []  # the read came back to a cancelled job
    assert run_all(worker, [{"id": "nope"}])[0]["error"] == "no image at ogs/nope"  # the worker goes on


def test_a_deadline_during_the_write_lets_the_write_finish_and_answers_success(bucket):
    """Once the one PUT has begun the job is not abandoned: an answered timeout never leaves an
    output behind, and a written output is never answered as a timeout."""
    storage = GatedBucket(bucket, "put", "img/b/trans.png")
    worker = Worker(settings_for(bucket), storage=storage)
    warm = run_all(worker, [{"id": "a"}])[0]
    before_put = sum(v for k, v in warm["timings_ms"].items() if k not in ("put", "batch", "load_model")) / 1000
    deadline = 3 * before_put + 2  # reached during the write, not before it (the machine may be loaded)
    worker.services.settings = replace(worker.settings, job_timeout_s=deadline)

    async def main():
        job = asyncio.ensure_future(worker.run({"id": "b"}, "req-1"))
        assert await asyncio.to_thread(storage.entered.wait, 120), "the write never began"
        # the deadline counts from the job's start, before the write began: it has passed after this
        await asyncio.sleep(deadline)
        storage.gate.set()
        return await job

    answer = asyncio.run(main())
    assert answer.get("key") == "img/b/trans.png", answer
    assert answer["timings_ms"]["put"] > deadline * 1000
    assert outputs(bucket) == ["img/a/trans.png", "img/b/trans.png"]


def test_limits_are_refused_before_the_work(bucket):
    worker = Worker(settings_for(bucket, max_input_bytes=1000, max_job_input_bytes=400))
    big, long_input = run_all(worker, [{"id": "a"}, {"id": "a", "model": "x" * 500}])
    assert big["error"].startswith("input too large: ogs/a is ")
    assert "the limit (MAX_INPUT_BYTES) is 1000" in big["error"]
    assert long_input["error"].startswith("job input too large:") and "MAX_JOB_INPUT_BYTES" in long_input["error"]
    assert outputs(bucket) == []


def test_an_error_quotes_only_a_short_prefix_of_a_callers_value(bucket):
    worker = Worker(settings_for(bucket, max_job_input_bytes=2**22))
    answer = run_all(worker, [{"id": "a", "task": "x" * 1_000_000}])[0]
    assert "task: 'xxxx" in answer["error"] and len(answer["error"]) < 300


@pytest.mark.slow
def test_carvekit_chain_keeps_its_networks_resident_with_the_default_cache(bucket, tmp_path, install_stand_ins):
    """carvekit's default chain needs three networks; with the default settings a second job loads none."""
    weights = tmp_path / "weights"
    install_stand_ins(["tracer_b7", "cascadepsp-carveset", "fba"], weights)
    worker = Worker(replace(settings_for(bucket), weights_dir=weights, default_model="carvekit"))
    small = {"seg_mask_size": 320, "refine_mask_size": 256, "matting_mask_size": 256}
    first = run_all(worker, [{"id": "a", **small}])[0]
    assert first["post"] == "cascade_fba", first
    assert worker.services.models.loads == 3
    run_all(worker, [{"id": "b", **small}])
    assert worker.services.models.loads == 3  # nothing reloaded


class StalledReadBucket(LocalStorage):
    """A bucket whose read of ogs/a waits for the test's gate; it marks when any other read begins."""

    def __init__(self, root):
        super().__init__(root)
        self.gate, self.other_read = threading.Event(), threading.Event()

    def _wait(self, key):
        if key == "ogs/a":
            assert self.gate.wait(60)
        else:
            self.other_read.set()

    def get(self, key, max_bytes=None):
        self._wait(key)
        return super().get(key, max_bytes)

    def get_input(self, key, limits):
        self._wait(key)
        return super().get_input(key, limits)


def test_a_timed_out_job_holds_its_slot_until_its_running_stage_returns_and_starts_no_other(bucket):
    """MAX_CONCURRENCY 1: job a's read hangs past the deadline. a is answered at the deadline, but b
    starts only once a's read has returned, and a runs no stage after it (nothing decoded, written)."""
    storage = StalledReadBucket(bucket)
    worker = Worker(settings_for(bucket, max_concurrency=1), storage=storage)
    assert run_all(worker, [{"id": "c", "task": "mask"}])[0]["key"] == "img/c/mask.png"  # the network loaded
    storage.other_read.clear()
    worker.services.settings = replace(worker.settings, job_timeout_s=8.0)  # ample for b on a loaded machine
    runs = {}
    worker.observe = lambda run: runs.setdefault(run.job.id, run)

    async def main():
        a = asyncio.ensure_future(worker.run({"id": "a"}))
        await asyncio.sleep(0)  # a takes the one slot
        b = asyncio.ensure_future(worker.run({"id": "b", "task": "mask"}))
        timed_out = await a
        b_started_early = await asyncio.to_thread(storage.other_read.wait, 1.0)
        storage.gate.set()
        return timed_out, b_started_early, await b

    timed_out, b_started_early, answer_b = asyncio.run(main())
    assert timed_out["error"].startswith("job timed out")
    assert not b_started_early
    assert answer_b["key"] == "img/b/mask.png"
    assert [s.stage for s in runs["a"].stages] == ["get"]
    assert outputs(bucket) == ["img/b/mask.png", "img/c/mask.png"]


def test_close_stops_the_lane_and_later_jobs_fail_clearly(bucket):
    worker = Worker(settings_for(bucket))
    assert run_all(worker, [{"id": "a", "task": "mask"}])[0]["key"] == "img/a/mask.png"
    worker.close()
    answer = run_all(worker, [{"id": "b", "task": "mask"}])[0]
    assert "error" in answer and outputs(bucket) == ["img/a/mask.png"]
