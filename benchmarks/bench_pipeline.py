"""Time each stage of the u2netp job path on this machine, and rembg's remove() beside it.

    PYTHONPATH=. python benchmarks/bench_pipeline.py [--rembg-python /path/to/venv/bin/python]

Stages: S3 get and put against a real HTTP S3 (moto's server on 127.0.0.1), decode, pre-process,
model, post-process, PNG encode, for a ~1 MP and a ~12 MP photo made from ../shared/data/hires.
Then PNG zlib levels on the 12 MP cut-out. With --rembg-python (a venv with rembg 2.0.86), the same
photos go through rembg's remove() with a reused u2netp session, whose ONNX file is exported here
from the same u2netp weights, so both run the same network.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
sys.path.insert(0, str(REPO))

from imaging.decode import decode  # noqa: E402
from imaging.encode import encode_png  # noqa: E402
from imaging.output import cutout, to_host  # noqa: E402
from models import registry  # noqa: E402
from pipeline.segmentation.postprocess import full_size_alpha  # noqa: E402
from pipeline.segmentation.preprocess import network_batch  # noqa: E402
from worker.storage import S3Storage  # noqa: E402

REMBG_SCRIPT = """
import sys, time, json
from rembg import new_session, remove
session = new_session("u2netp")
out = {}
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    remove(data, session=session)  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter(); remove(data, session=session); times.append(time.perf_counter() - start)
    out[path] = sorted(times)[1]
print(json.dumps(out))
"""


def photos(folder: Path) -> dict[str, Path]:
    source = Image.open(SHARED / "data" / "hires" / "GT04.jpg").convert("RGB")
    made = {}
    for label, size in (("1MP", (1224, 816)), ("12MP", (4240, 2832))):
        path = folder / f"photo-{label}.jpg"
        source.resize(size, Image.Resampling.BICUBIC).save(path, quality=92)
        made[label] = path
    return made


def timed(fn, repeat: int = 3):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def stage_times(store: S3Storage, key: str, model, spec) -> dict[str, float]:
    row = {}
    row["s3 get"], data = timed(lambda: store.get(key))
    row["decode"], image = timed(lambda: decode(data, 10**9))
    row["pre-process"], batch = timed(lambda: network_batch([image.rgb], spec.preprocess, torch.device("cpu"),
                                                            torch.float32))
    with torch.inference_mode():
        row["model"], outputs = timed(lambda: model(batch))
    matte = spec.to_matte(outputs)

    def post():
        alpha = full_size_alpha(matte, image)
        return to_host(cutout(torch.from_numpy(image.rgb).permute(2, 0, 1), alpha, None))

    row["post-process"], pixels = timed(post)
    row["encode"], png = timed(lambda: encode_png(pixels))
    row["s3 put"], _ = timed(lambda: store.put(key.replace("ogs/", "img/") + "/trans.png", png, "image/png"))
    row["total"] = sum(row.values())
    return row, pixels


def png_levels(pixels) -> list[tuple[int, float, int]]:
    """Pillow's default strategy at each zlib level, on the cut-out's own colour (Pillow's Z_RLE
    ignores the level; benchmarks/bench_png.py compares it with these)."""
    def pillow_png(level: int) -> bytes:
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="PNG", compress_level=level)
        return out.getvalue()

    rows = []
    for level in (0, 1, 3, 6, 9):
        ms, data = timed(lambda: pillow_png(level), repeat=1 if level == 9 else 3)
        rows.append((level, ms, len(data)))
    return rows


def export_onnx(model, folder: Path) -> Path:
    path = folder / "u2netp.onnx"
    torch.onnx.export(model, torch.zeros(1, 3, 320, 320), str(path), input_names=["input.1"],
                      output_names=[f"d{i}" for i in range(7)], opset_version=11, dynamo=False,
                      dynamic_axes={"input.1": {0: "batch"}})
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rembg-python", help="python of a venv with rembg[cpu]==2.0.86")
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer

    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ENDPOINT_URL": "http://127.0.0.1:5123"})
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=5123, verbose=False)
    server.start()
    store = S3Storage("bench")
    store.client.create_bucket(Bucket="bench")
    spec = registry.get_spec("u2netp")
    model = registry.load("u2netp", weights_dir=SHARED / "weights")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        made = photos(Path(tmp))
        results, pixels = {}, None
        for label, path in made.items():
            store.put(f"ogs/{label}", path.read_bytes(), "image/jpeg")
            results[label], pixels = stage_times(store, f"ogs/{label}", model, spec)
        print("\n| stage (ms, median of 3) | " + " | ".join(results) + " |")
        print("|---|" + "---|" * len(results))
        for stage in next(iter(results.values())):
            print(f"| {stage} | " + " | ".join(f"{results[label][stage]:.0f}" for label in results) + " |")
        print("\n| PNG zlib level (12 MP RGBA) | encode ms | size MB |\n|---|---|---|")
        for level, ms, size in png_levels(pixels):
            print(f"| {level} | {ms:.0f} | {size / 1e6:.1f} |")
        if args.rembg_python:
            home = Path(tmp) / "u2net"
            home.mkdir()
            export_onnx(model, home)
            script = Path(tmp) / "rembg_bench.py"
            script.write_text(REMBG_SCRIPT)
            done = subprocess.run([args.rembg_python, str(script), *map(str, made.values())], capture_output=True,
                                  text=True, env={**os.environ, "U2NET_HOME": str(home)})
            if done.returncode:
                print(done.stderr)
            else:
                rembg = json.loads(done.stdout.strip().splitlines()[-1])
                print("\n| photo | ours, whole path ms | rembg remove() ms | ratio |\n|---|---|---|---|")
                for label, path in made.items():
                    ours, theirs = results[label]["total"], rembg[str(path)] * 1000
                    print(f"| {label} | {ours:.0f} | {theirs:.0f} | {ours / theirs:.2f} |")
    server.stop()


if __name__ == "__main__":
    main()
