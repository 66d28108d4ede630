"""The serving engine through runpod's real local API server against a real HTTP S3: many jobs in
flight at once, mixed models, tasks, good and bad inputs; batches across jobs; limits; a dead S3."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from tests.conftest import CAR, free_port, keys_under, photo_bytes, read_png, runsync, serve_api, worker_env


def test_concurrent_mixed_jobs_each_get_their_own_answer(s3_server, bucket, tmp_path):
    name, client = bucket
    photo = Image.open(CAR).convert("RGB").resize((200, 150))
    for key in ("p0", "p1", "p2", "p3", "p4"):
        client.put_object(Bucket=name, Key=f"ogs/{key}", Body=photo_bytes(photo.rotate(int(key[1]) * 7), "PNG"))
    client.put_object(Bucket=name, Key="ogs/text", Body=b"plain text, not an image")
    client.put_object(Bucket=name, Key="ogs/huge", Body=b"\0" * 300_000)
    jobs = {
        "a": ({"id": "p0", "model": "u2netp"}, "img/p0/trans.png"),
        "b": ({"id": "p1", "model": "u2netp", "task": "mask"}, "img/p1/mask.png"),
        "c": ({"id": "p2", "model": "u2netp"}, "img/p2/trans.png"),
        "d": ({"id": "p3", "model": "isnet-general-use", "seg_mask_size": 256, "task": "mask"}, "img/p3/mask.png"),
        "e": ({"id": "p4", "model": "u2netp", "bg_color": "#00ff00"}, "img/p4/trans.png"),
        "f": ({"id": "text", "model": "u2netp"}, "cannot decode image"),
        "g": ({"id": "nothing", "model": "u2netp"}, "no image at ogs/nothing"),
        "h": ({"id": "p0", "task": "mask", "bg_color": "#ffffff"}, "bg_color: does not apply to task 'mask'"),
        "i": ({"id": "huge", "model": "u2netp"}, "the limit (MAX_INPUT_BYTES) is 200000"),
    }
    log = tmp_path / "worker.log"
    env = worker_env(s3_server, name, MAX_CONCURRENCY="6", BATCH_WAIT_MS="3000", MAX_INPUT_BYTES="200000")
    with serve_api(env, log) as url, ThreadPoolExecutor(len(jobs)) as pool:
        futures = {tag: pool.submit(runsync, url, job) for tag, (job, _) in jobs.items()}
        answers = {tag: future.result() for tag, future in futures.items()}
        # the worker goes on after all of it
        after = runsync(url, {"id": "p0", "model": "u2netp", "task": "mask"})
    for tag, (job, expected) in jobs.items():
        answer = answers[tag]
        if expected.startswith("img/"):
            assert answer["status"] == "COMPLETED" and answer["output"]["key"] == expected, (tag, answer)
        else:
            assert answer["status"] == "FAILED" and expected in answer["error"], (tag, answer)
    assert after["status"] == "COMPLETED"
    written = sorted(keys_under(client, name, "img/"))
    assert written == sorted([e for _, e in jobs.values() if e.startswith("img/")] + [after["output"]["key"]])
    # each answer is its own image's: the cut-outs differ as the rotated photos do
    alphas = [np.asarray(read_png(client, name, f"img/{k}/trans.png"))[..., 3] for k in ("p0", "p2")]
    assert (alphas[0] != alphas[1]).any()
    green = np.asarray(read_png(client, name, "img/p4/trans.png"))
    assert green.shape[2] == 3
    batch_lines = [line for line in log.read_text().splitlines() if "device lane: batch of" in line]
    assert batch_lines, "no batch across jobs was formed"
    sizes = {a["output"]["timings_ms"]["batch"] for a in answers.values() if a["status"] == "COMPLETED"
             and "u2netp" == a["output"]["model"]}
    assert max(sizes) > 1


def test_a_dead_s3_endpoint_is_a_clear_error_in_bounded_time(s3_server, bucket):
    name, _ = bucket
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = worker_env({**s3_server, "AWS_ENDPOINT_URL": dead}, name, S3_CONNECT_TIMEOUT_S="1",
                     S3_MAX_ATTEMPTS="2")
    with serve_api(env) as url:
        for _ in range(2):  # and the worker goes on answering
            start = time.perf_counter()
            answer = runsync(url, {"id": "anything", "model": "u2netp"})
            assert answer["status"] == "FAILED" and answer["error"].startswith(
                f"cannot read s3://{name}/ogs/anything"), answer
            assert time.perf_counter() - start < 60
