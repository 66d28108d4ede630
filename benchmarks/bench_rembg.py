"""Our u2netp job against rembg 2.0.86's remove() on this CPU: same photo, each side in its own
process, alternating, quiet and beside busy processes; prints medians, spread and ratios.

    PYTHONPATH=. python benchmarks/bench_rembg.py --rembg-python /tmp/rembg/bin/python \\
        --export-python /tmp/onnx/bin/python [--rounds 10] [--busy 1] [--before /path/to/old/checkout]

Ours is the worker's own code path from bytes to PNG bytes: `worker.jobs.Worker.run` on a
`{"id", "model": "u2netp"}` job, with the worker's settings (worker/config.py, as the environment
sets them) and an in-memory bucket, so the figure has no disk or network in it. rembg's is
`remove(bytes, session=new_session("u2netp"))`, its session reused. Both run the same network: rembg
downloads its u2netp.onnx from GitHub at run time, which cannot happen here, so the file is exported
from ../shared/weights/u2netp.pth (itself rebuilt from rembg's official u2netp.onnx) with
torch.onnx by --export-python (a Python with torch, onnx and onnxruntime; the export is checked
against our forward there) into --u2net-home, where rembg finds it (U2NET_HOME).

Each round times every side once per photo and condition, in an order that alternates between
rounds; "loaded" starts --busy processes spinning `while True: pass` for its half of the round.
The photos are ../shared/data/hires/GT04.jpg resized to 1224x816 and 4240x2832 (JPEG quality 92).
--before adds a third side: the same job from another checkout (e.g. the code before a change).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
PHOTO_SIZES = {"1MP": (1224, 816), "12MP": (4240, 2832)}

# Both servers answer on the stdout they were started with and send everything else printed
# (the worker's log lines, rembg's messages) to stderr.
REMBG_SERVER = """
import json, os, sys, time
answers = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
from rembg import new_session, remove
session = new_session("u2netp")
for path in sys.argv[1:]:
    remove(open(path, "rb").read(), session=session)  # warm-up
print(json.dumps({"ready": True}), file=answers, flush=True)
for line in sys.stdin:
    data = open(line.strip(), "rb").read()
    start = time.perf_counter()
    png = remove(data, session=session)
    print(json.dumps({"ms": (time.perf_counter() - start) * 1000, "bytes": len(png)}), file=answers, flush=True)
"""


class MemoryBucket:
    """The worker's Storage interface on a dict: the job reads and writes bytes, no disk, no network."""

    name = "memory"

    def __init__(self):
        self.objects: dict[str, bytes] = {}

    def get(self, key: str, max_bytes: int | None = None) -> bytes:  # the photos are within every limit
        return self.objects[key]

    def get_input(self, key: str, limits) -> bytes:  # photos only: never a video to spool
        return self.objects[key]

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = data


def serve_ours(photos: list[str]) -> None:
    """The worker in this process; answers one timed job per photo path read from stdin."""
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    from worker import config

    getattr(config, "prepare_process", lambda: None)()  # the entry point's OpenMP settings (handler.py)
    from worker.jobs import Worker

    env = {**os.environ, "DEVICE": "cpu", "WEIGHTS_DIR": str(SHARED / "weights")}
    bucket = MemoryBucket()
    worker = Worker(config.read_settings(env), storage=bucket)

    loop = asyncio.new_event_loop()  # one loop for every job, as runpod's serverless loop

    def job(path: str) -> dict:
        bucket.objects["ogs/photo"] = Path(path).read_bytes()
        start = time.perf_counter()
        answer = loop.run_until_complete(worker.run({"id": "photo", "model": "u2netp"}))
        ms = (time.perf_counter() - start) * 1000
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return {"ms": ms, "bytes": len(bucket.objects[answer["key"]]), "stages": answer["timings_ms"]}

    for path in photos:
        job(path)  # warm-up: the model loads, oneDNN makes its primitives
    print(json.dumps({"ready": True}), file=answers, flush=True)
    for line in sys.stdin:
        print(json.dumps(job(line.strip())), file=answers, flush=True)


def export_onnx(path: Path) -> None:
    """u2netp (real weights, through the registry) to ONNX, checked against our forward with ORT."""
    import numpy as np
    import onnxruntime
    import torch

    from models import registry

    model = registry.load("u2netp", weights_dir=SHARED / "weights")
    torch.onnx.export(model, torch.zeros(1, 3, 320, 320), str(path), input_names=["input.1"],
                      output_names=[f"d{i}" for i in range(7)], opset_version=11, dynamo=False,
                      dynamic_axes={"input.1": {0: "batch"}})
    x = torch.rand(1, 3, 320, 320, generator=torch.Generator().manual_seed(0)) * 4 - 2
    with torch.inference_mode():
        ours = model(x)[0].numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"input.1": x.numpy()})[0]
    print(f"exported {path}: ONNX Runtime vs torch, d0 max abs {np.abs(ours - theirs).max():.2e}")


class Side:
    """A server process answering {"ms": ...} per photo path written to its stdin."""

    def __init__(self, label: str, command: list[str], env: dict):
        self.label = label
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self._read()  # {"ready": true} once warmed up

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.label} exited with {self.process.wait()}")
        return json.loads(line)

    def time(self, path: Path) -> dict:
        self.process.stdin.write(f"{path}\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def make_photos(folder: Path) -> dict[str, Path]:
    from PIL import Image

    source = Image.open(SHARED / "data" / "hires" / "GT04.jpg").convert("RGB")
    made = {}
    for label, size in PHOTO_SIZES.items():
        made[label] = folder / f"GT04-{label}.jpg"
        source.resize(size, Image.Resampling.BICUBIC).save(made[label], quality=92)
    return made


def start_busy(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.kill()
        process.wait()


def spread(values: list[float]) -> str:
    """median [p25-p75] of milliseconds."""
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return f"{q[1]:.0f} [{q[0]:.0f}-{q[2]:.0f}]"


def report(results: dict, sides: list[str]) -> None:
    print("\nmedian [p25-p75] ms per job over the rounds; ratio = median of the per-round ours/rembg")
    print("| photo | condition | " + " | ".join(sides) + " | " + " | ".join(f"{s} / rembg" for s in sides
                                                                         if s != "rembg") + " |")
    print("|---|---|" + "---|" * (2 * len(sides) - 1))
    for (photo, condition), by_side in results.items():
        cells = [spread([r["ms"] for r in by_side[s]]) for s in sides]
        ratios = []
        for side in sides:
            if side == "rembg":
                continue
            per_round = [a["ms"] / b["ms"] for a, b in zip(by_side[side], by_side["rembg"])]
            ratios.append(f"{statistics.median(per_round):.2f} ({min(per_round):.2f}-{max(per_round):.2f})")
        print(f"| {photo} | {condition} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    print("\nour job's stages, median ms (timings_ms of the answer; encode = PNG, PNG_WRITER)")
    for side in sides:
        if side == "rembg":
            continue
        for (photo, condition), by_side in results.items():
            stages = by_side[side][0].get("stages", {})
            medians = {k: statistics.median(r["stages"][k] for r in by_side[side]) for k in stages}
            total = statistics.median(r["ms"] for r in by_side[side])
            share = medians.get("encode", 0) / total if total else 0
            print(f"{side} {photo} {condition}: " + ", ".join(f"{k} {v:.0f}" for k, v in medians.items())
                  + f"; encode {share:.0%} of the job")
    print("\nPNG bytes per photo (the same in every round and condition)")
    for photo in dict.fromkeys(photo for photo, _ in results):
        by_side = next(by for (p, _), by in results.items() if p == photo)
        sizes = {side: by_side[side][0]["bytes"] for side in sides}
        print(f"{photo}: " + ", ".join(f"{s} {b / 1e6:.2f} MB" for s, b in sizes.items()) + "; "
              + ", ".join(f"{s} / rembg {b / sizes['rembg']:.3f}" for s, b in sizes.items() if s != "rembg"))


def run(args: argparse.Namespace) -> None:
    home = Path(args.u2net_home)
    home.mkdir(parents=True, exist_ok=True)
    onnx_file = home / "u2netp.onnx"
    if not onnx_file.is_file():
        subprocess.run([args.export_python, __file__, "--export", str(onnx_file)], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        photos = make_photos(Path(tmp))
        paths = [str(p) for p in photos.values()]
        env = {**os.environ, "U2NET_HOME": str(home)}
        servers = [Side("ours", [sys.executable, __file__, "--serve", *paths], {**env, "BENCH_REPO": str(REPO)})]
        if args.before:
            servers.append(Side("before", [sys.executable, __file__, "--serve", *paths],
                                {**env, "BENCH_REPO": str(Path(args.before).resolve())}))
        servers.append(Side("rembg", [args.rembg_python, "-c", REMBG_SERVER, *paths], env))
        conditions = ["quiet"] + (["loaded"] if args.busy else [])
        results: dict = {(photo, c): {s.label: [] for s in servers} for photo in photos for c in conditions}
        print(f"{time.strftime('%Y-%m-%d %H:%M')} load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs, "
              f"{args.rounds} rounds, busy processes when loaded: {args.busy}", flush=True)
        for round_index in range(args.rounds):
            order = servers if round_index % 2 == 0 else servers[::-1]
            for condition in conditions:
                busy = start_busy(args.busy) if condition == "loaded" else []
                try:
                    for photo, path in photos.items():
                        for server in order:
                            results[(photo, condition)][server.label].append(server.time(path))
                finally:
                    stop(busy)
            print(f"round {round_index + 1}: load average {os.getloadavg()[0]:.1f}", flush=True)
        for server in servers:
            server.close()
    report(results, [s.label for s in servers])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rembg-python", help="python of a venv with rembg[cpu]==2.0.86")
    parser.add_argument("--export-python", default=sys.executable,
                        help="python with torch, onnx and onnxruntime that can import this repo")
    parser.add_argument("--u2net-home", default=str(Path(tempfile.gettempdir()) / "bench-rembg-u2net"),
                        help="rembg's U2NET_HOME; u2netp.onnx is exported into it when missing")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--busy", type=int, default=1, help="busy processes beside the jobs when loaded (0: quiet only)")
    parser.add_argument("--before", help="another checkout whose worker runs as a third side")
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--export", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, os.environ.get("BENCH_REPO", str(REPO)))
    if args.serve:
        serve_ours(args.serve)
    elif args.export:
        export_onnx(Path(args.export))
    else:
        if not args.rembg_python:
            parser.error("--rembg-python is required")
        run(args)


if __name__ == "__main__":
    main()
