"""The serving engine under load: N concurrent jobs of 1-12 MP photos against a real HTTP S3 (moto's
server on 127.0.0.1), in one worker, as runpod would hand them over.

    PYTHONPATH=. python benchmarks/bench_queue.py [--model u2netp] [--jobs 24] [--concurrency 8]
                                                  [--megapixels 1 4 12] [--device cuda] [--oracle]

Prints images/s, p50/p95 latency, the batch sizes the device lane formed, and the fraction of the
wall time the device lane was busy. --oracle runs a model from the parity oracle's stand-in weights
(e.g. briaai/RMBG-2.0, whose real weights are gated) installed in a temporary weights folder.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from worker import config  # noqa: E402
from worker.jobs import Worker  # noqa: E402


def photo_bytes(megapixels: float) -> bytes:
    source = Image.open(SHARED / "data" / "hires" / "GT04.jpg").convert("RGB")
    scale = (megapixels * 1e6 / (source.width * source.height)) ** 0.5
    image = source.resize((round(source.width * scale), round(source.height * scale)), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def start_s3():
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_DEFAULT_REGION": "us-east-1"}
    import os

    os.environ.update(env)
    boto3.client("s3").create_bucket(Bucket="bench")
    return server, boto3.client("s3")


async def run_jobs(worker: Worker, inputs: list[dict]) -> list[tuple[float, dict]]:
    async def one(n: int, job: dict) -> tuple[float, dict]:
        start = time.perf_counter()
        answer = await worker.run(job, f"bench-{n}")
        return time.perf_counter() - start, answer

    return await asyncio.gather(*(one(n, j) for n, j in enumerate(inputs)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="u2netp")
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--megapixels", type=float, nargs="+", default=[1, 4, 12])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--oracle", action="store_true", help="stand-in weights from the parity oracle")
    args = parser.parse_args()

    server, client = start_s3()
    try:
        photos = [photo_bytes(mp) for mp in args.megapixels]
        for n in range(args.jobs):
            client.put_object(Bucket="bench", Key=f"ogs/p{n}", Body=photos[n % len(photos)])
        weights = Path(tempfile.mkdtemp()) if args.oracle else SHARED / "weights"
        if args.oracle:
            import parity

            parity.install_oracle_weights([args.model], weights)
        settings = replace(config.load(), bucket="bench", device=args.device, weights_dir=weights,
                           max_concurrency=args.concurrency, precision=args.precision,
                           **({"batch_size": args.batch_size} if args.batch_size else {}))
        worker = Worker(settings)
        lane = worker.services.lane
        asyncio.run(run_jobs(worker, [{"id": "p0", "model": args.model}]))  # load the model, warm up
        lane.batches.clear()
        busy_before, start = lane.busy_seconds, time.perf_counter()
        results = asyncio.run(run_jobs(worker, [{"id": f"p{n}", "model": args.model} for n in range(args.jobs)]))
        wall = time.perf_counter() - start
        busy = lane.busy_seconds - busy_before
    finally:
        server.stop()
    failed = [a for _, a in results if "error" in a]
    latencies = sorted(t for t, _ in results)
    print(f"{args.jobs} jobs of {'/'.join(f'{m:g}' for m in args.megapixels)} MP, model {args.model}, "
          f"{worker.services.device.describe()}, MAX_CONCURRENCY {args.concurrency}, BATCH_SIZE "
          f"{settings.batch_size}, BATCH_WAIT_MS {settings.batch_wait_ms:g}")
    print("| images/s | p50 s | p95 s | batches (size: count) | device busy | failed |\n|---|---|---|---|---|---|")
    print(f"| {args.jobs / wall:.2f} | {statistics.median(latencies):.2f} | "
          f"{latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]:.2f} | "
          f"{dict(sorted(Counter(lane.batches).items()))} | {busy / wall:.0%} | {len(failed)} |")
    if failed:
        print("first failure:", failed[0]["error"])
    stages = Counter()
    for _, answer in results:
        for stage, ms in answer.get("timings_ms", {}).items():
            if stage != "batch":
                stages[stage] += ms / args.jobs
    print("mean stage ms:", {k: round(v, 1) for k, v in stages.items()})


if __name__ == "__main__":
    main()
