"""The serving engine under load: N concurrent jobs of 1-12 MP photos against a real HTTP S3 (moto's
server on 127.0.0.1), in one worker, as runpod would hand them over.

    PYTHONPATH=. python benchmarks/bench_queue.py [--model u2netp] [--jobs 24] [--concurrency 8]
                                                  [--megapixels 1 4 12] [--device cuda] [--oracle]
                                                  [--simulate-forward-ms 8] [--png-writer compact|fast]
                                                  [--png-filter-on-device 0|1]

Each size is a run of its own (one warm-up job first): images/s, p50/p95 latency, the batch sizes
the device lane formed, the fraction of the wall time the lane was busy, and the host CPU per image
of each host stage (its thread's CPU time, time.thread_time, as the stage runner records it) and
per megapixel. --oracle runs a model from the parity oracle's stand-in weights (e.g. briaai/RMBG-2.0,
whose real weights are gated) installed in a temporary weights folder. --simulate-forward-ms N
replaces each segmentation forward by a sleep of N ms per image on the lane thread (the output is
the network's real output for that input shape, computed once), so the host path can be measured
against a GPU's pace on a machine without one. Wall figures depend on the machine's load (printed);
CPU figures do not. --png-filter-on-device 1 filters the PNG rows in the device program (the default
on CUDA): on the CPU that work lands on the lane thread, as it would on the GPU, and leaves the host
stages' figures.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
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

from torch.utils._pytree import tree_map  # noqa: E402

from models.spec import ModelSpec  # noqa: E402
from worker import config  # noqa: E402
from worker.context import JobRun  # noqa: E402
from worker.jobs import Worker  # noqa: E402


class SimulatedForward(torch.nn.Module):
    """A network whose forward sleeps `ms` per image and returns the real network's output for the
    first input of that shape (so the mattes, and what encoding them costs, stay real)."""

    def __init__(self, net: torch.nn.Module, ms: float, outputs: dict):
        super().__init__()
        self.net, self.ms, self.outputs = net, ms, outputs

    def forward(self, x: torch.Tensor):
        shape = tuple(x.shape[1:])
        if shape not in self.outputs:
            self.outputs[shape] = self.net(x[:1])
        time.sleep(self.ms / 1000 * x.shape[0])
        return tree_map(lambda t: t.repeat(x.shape[0], *[1] * (t.dim() - 1)), self.outputs[shape])


def simulate_forwards(worker: Worker, ms: float) -> None:
    """Every segmentation network the worker's cache hands out, as a SimulatedForward."""
    cache, outputs = worker.services.models, {}
    real_get = cache.get

    def get(spec: ModelSpec, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
        model = real_get(spec, dtype)
        return SimulatedForward(model, ms, outputs.setdefault(spec.name, {})) if spec.role == "segmentation" else model

    cache.get = get


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


def host_cpu(runs: list[JobRun]) -> Counter:
    """Mean host CPU-ms per job of each host stage (device-lane stages are the device's time)."""
    per_stage: Counter = Counter()
    for run in runs:
        for record in run.stages:
            if not record.device:
                per_stage[record.stage] += record.cpu_ms / len(runs)
    return per_stage


def run_size(worker: Worker, client, megapixels: float, args) -> dict:
    """One warm-up job, then `args.jobs` jobs of one photo size at once; the figures of the latter."""
    client.put_object(Bucket="bench", Key="ogs/photo", Body=photo_bytes(megapixels))
    job = {"id": "photo", "model": args.model, **({"format": args.format} if args.format else {})}
    asyncio.run(run_jobs(worker, [job]))
    lane, runs = worker.services.lane, []
    worker.observe = runs.append
    lane.batches.clear()
    busy_before, start = lane.busy_seconds, time.perf_counter()
    results = asyncio.run(run_jobs(worker, [job] * args.jobs))
    wall = time.perf_counter() - start
    worker.observe = None
    latencies = sorted(t for t, _ in results)
    cpu = host_cpu(runs)
    actual_mp = results[0][1].get("width", 0) * results[0][1].get("height", 0) / 1e6 or megapixels
    return {"mp": actual_mp, "images_s": args.jobs / wall, "p50": statistics.median(latencies),
            "p95": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
            "batches": dict(sorted(lane.batches.items())), "busy": (lane.busy_seconds - busy_before) / wall,
            "failed": [a for _, a in results if "error" in a], "cpu": cpu, "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="u2netp")
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--megapixels", type=float, nargs="+", default=[1, 4, 12])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--format", default=None, help="the jobs' output format (default: the worker's)")
    parser.add_argument("--png-filter-on-device", choices=["0", "1"], default=None,
                        help="PNG_FILTER_ON_DEVICE of the worker (default: the setting's)")
    parser.add_argument("--png-writer", choices=["compact", "fast"], default=None,
                        help="PNG_WRITER of the worker (default: the setting's)")
    parser.add_argument("--simulate-forward-ms", type=float, default=None,
                        help="sleep this long per image instead of each segmentation forward")
    parser.add_argument("--oracle", action="store_true", help="stand-in weights from the parity oracle")
    args = parser.parse_args()

    server, client = start_s3()
    try:
        scratch = tempfile.TemporaryDirectory()  # the stand-in weights, removed as the script ends
        weights = Path(scratch.name) if args.oracle else SHARED / "weights"
        if args.oracle:
            import parity

            parity.install_oracle_weights([args.model], weights)
        settings = replace(config.read_settings(), bucket="bench", device=args.device, weights_dir=weights,
                           max_concurrency=args.concurrency, precision=args.precision,
                           **({"batch_size": args.batch_size} if args.batch_size else {}),
                           **({"png_writer": args.png_writer} if args.png_writer else {}),
                           **({"png_filter_on_device": args.png_filter_on_device == "1"}
                              if args.png_filter_on_device else {}))
        worker = Worker(settings)
        if args.simulate_forward_ms is not None:
            simulate_forwards(worker, args.simulate_forward_ms)
        rows = [run_size(worker, client, mp, args) for mp in args.megapixels]
        worker.close()
    finally:
        server.stop()
    forward = (f"forward simulated: {args.simulate_forward_ms:g} ms/image" if args.simulate_forward_ms is not None
               else "real forward")
    print(f"{args.jobs} jobs per size, model {args.model}, {forward}, {worker.services.device.describe()}, "
          f"MAX_CONCURRENCY {args.concurrency}, BATCH_SIZE {settings.batch_size}, BATCH_WAIT_MS "
          f"{settings.batch_wait_ms:g}, PNG_WRITER {settings.png_writer}, PNG_FILTER_ON_DEVICE "
          f"{int(settings.png_filter_on_device)}, {os.cpu_count()} CPUs")
    print("| MP | images/s | p50 s | p95 s | batches (size: count) | lane busy | load avg | failed |\n"
          "|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mp']:.1f} | {r['images_s']:.2f} | {r['p50']:.2f} | {r['p95']:.2f} | {r['batches']} | "
              f"{r['busy']:.0%} | {r['load']:.1f} | {len(r['failed'])} |")
    stages = sorted({stage for r in rows for stage in r["cpu"]})
    print("\nhost CPU-ms per image (per MP in brackets), by stage:\n")
    print("| MP | " + " | ".join(stages) + " | host total | total per MP |\n|---" * 1 + "|---" * (len(stages) + 2) + "|")
    for r in rows:
        cells = [f"{r['cpu'].get(s, 0):.0f} ({r['cpu'].get(s, 0) / r['mp']:.0f})" for s in stages]
        total = sum(r["cpu"].values())
        print(f"| {r['mp']:.1f} | " + " | ".join(cells) + f" | {total:.0f} | **{total / r['mp']:.0f}** |")
    for r in rows:
        if r["failed"]:
            print(f"first failure at {r['mp']:.1f} MP:", r["failed"][0]["error"])


if __name__ == "__main__":
    main()
