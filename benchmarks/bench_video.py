"""Video jobs on this CPU: frames/s end to end, peak memory by clip length, and matte flicker.

    PYTHONPATH=. python benchmarks/bench_video.py speed   [--heights 480 720] [--seconds 2]
    PYTHONPATH=. python benchmarks/bench_video.py memory  [--lengths 10 60] [--height 240]
    PYTHONPATH=. python benchmarks/bench_video.py flicker [--models u2netp isnet-general-use] [--frames 16]
    PYTHONPATH=. DEVICE=cuda python benchmarks/bench_video.py gpu [--model ZhengPeng7/BiRefNet_lite] [--seconds 1]

The clips: ../shared/data/hires/GT04.jpg's subject, cut out with its true alpha (GT04_alpha.png), over
the clean plate ../shared/data/bgm/0001_back.png, 16:9 at the asked height, H.264 at 25 frames/s. In the
"moving" scene the subject slides across the frame (a third of its width in a second); in the "static"
scene it stands still and each frame gets a little sensor-like noise (sigma 2), so that only the codec
and the noise change between frames. The jobs run through the worker (worker.jobs.Worker) on a local
folder bucket, as a caller's would: `speed` reports frames/s of the whole job and each stage's share of
its wall time (the stages overlap, so shares can add up to more than 100 %); `memory` runs each clip in
a child process and reports its peak RSS; `flicker` writes the mask task's matte as ProRes (10-bit, so
that the output codec adds next to nothing) and reports mean |alpha_t - alpha_t-1| / 255 per frame pair,
with the true alpha's own change beside it, and the error against the true alpha (MAD), for the raw
mattes and for the `smoothing` knob's motion-gated moving average of them (imaging/temporal.py).
`gpu` is benchmarks/gpu_check.sh's video phase (gpu_codecs(), gpu()).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
sys.path.insert(0, str(REPO))

from imaging.temporal import MatteSmoother  # noqa: E402
from imaging.video import VideoLimits, decode  # noqa: E402

RATE = 25
STAGES = ("get", "probe", "decode", "model", "postprocess", "encode", "put")


def _subject_and_plate(width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(subject colour, its true alpha in [0,1], background plate) as float32: GT04 and the bgm plate
    from ../shared, or, where ../shared is not there (the GPU machine), a striped disc over a gradient."""
    subject_h = int(height * 0.8)
    if (SHARED / "data" / "hires" / "GT04.jpg").exists():
        photo = Image.open(SHARED / "data" / "hires" / "GT04.jpg").convert("RGB")
        truth = Image.open(SHARED / "data" / "hires" / "GT04_alpha.png").convert("L")
        subject_w = round(photo.width * subject_h / photo.height)
        colour = np.asarray(photo.resize((subject_w, subject_h), Image.BILINEAR), dtype=np.float32)
        alpha = np.asarray(truth.resize((subject_w, subject_h), Image.BILINEAR), dtype=np.float32) / 255
        plate = np.asarray(Image.open(SHARED / "data" / "bgm" / "0001_back.png").convert("RGB")
                           .resize((width, height), Image.BILINEAR), dtype=np.float32)
        return colour, alpha, plate
    ys, xs = np.mgrid[:subject_h, :subject_h].astype(np.float32)
    alpha = np.clip(subject_h / 2 - np.hypot(xs - subject_h / 2, ys - subject_h / 2), 0, 1)
    colour = np.stack([200 + 40 * np.sin(xs / 7), 60 + 0 * xs, 40 + 30 * np.cos(ys / 5)], axis=-1)
    gy, gx = np.mgrid[:height, :width].astype(np.float32)
    plate = np.stack([gx / width * 255, gy / height * 255, 128 + 0 * gx], axis=-1)
    return colour, alpha, plate


def scene_frames(height: int, frames: int, moving: bool, seed: int = 0):
    """(RGB frame, true alpha) pairs of the scene (module docstring)."""
    width = round(height * 16 / 9 / 2) * 2
    colour, alpha, plate = _subject_and_plate(width, height)
    subject_h, subject_w = alpha.shape
    rng = np.random.default_rng(seed)
    top = height - subject_h
    for index in range(frames):
        left = int(width * 0.05 + (subject_w / 3) * index / RATE) if moving else int(width * 0.3)
        left = min(left, width - subject_w)
        full_alpha = np.zeros((height, width), np.float32)
        full_alpha[top:, left:left + subject_w] = alpha
        fg = np.zeros_like(plate)
        fg[top:, left:left + subject_w] = colour
        frame = fg * full_alpha[..., None] + plate * (1 - full_alpha[..., None])
        if not moving:
            frame = frame + rng.normal(0, 2, frame.shape)
        yield np.clip(frame, 0, 255).round().astype(np.uint8), full_alpha


def write_scene(path: Path, height: int, frames: int, moving: bool) -> list[np.ndarray]:
    """The scene as an H.264 MP4 (crf 18); the true alphas."""
    truths = []
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=RATE, options={"crf": "18", "preset": "veryfast"})
        stream.pix_fmt = "yuv420p"
        for index, (frame, truth) in enumerate(scene_frames(height, frames, moving)):
            if index == 0:
                stream.width, stream.height = frame.shape[1], frame.shape[0]
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = index
            out.mux(stream.encode(picture))
            truths.append(truth)
        out.mux(stream.encode(None))
    return truths


def worker_for(folder: Path, oracle: list[str] | None = None, **settings):
    """A worker on a local bucket in `folder`: the real weights of ../shared, or with `oracle` the
    parity oracle's stand-ins of those models (for speed only)."""
    from worker.config import read_settings
    from worker.jobs import Worker

    weights = SHARED / "weights"
    if oracle:
        import parity

        weights = folder / "weights"
        weights.mkdir(parents=True, exist_ok=True)
        parity.install_oracle_weights(oracle, weights)
    base = replace(read_settings(), local_bucket_dir=str(folder / "bucket"), weights_dir=weights)
    return Worker(replace(base, **settings))


def run_job(worker, folder: Path, clip: Path, job: dict) -> tuple[dict, float]:
    target = folder / "bucket" / "ogs" / job["id"]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(clip.read_bytes())
    start = time.perf_counter()
    answer = asyncio.run(worker.run(job, "bench"))
    return answer, time.perf_counter() - start


def speed(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        worker = worker_for(folder)
        warm = folder / "warm.mp4"
        write_scene(warm, 120, 4, True)
        run_job(worker, folder, warm, {"id": "warm", "model": args.model})
        for height in args.heights:
            clip = folder / f"{height}.mp4"
            write_scene(clip, height, int(args.seconds * RATE), True)
            answer, wall = run_job(worker, folder, clip, {"id": f"h{height}", "model": args.model})
            timings = answer["timings_ms"]
            shares = {stage: f"{timings.get(stage, 0) / 10 / wall:.0f}%" for stage in STAGES}
            print(json.dumps({"height": height, "size": f"{answer['width']}x{answer['height']}",
                              "frames": answer["frames"], "wall_s": round(wall, 2),
                              "fps": round(answer["frames"] / wall, 2), "shares_of_wall": shares,
                              "frames_in_memory_peak": answer["frames_in_memory_peak"]}))


def memory_child(args) -> None:
    """One clip in this process; prints its peak RSS."""
    folder = Path(args.folder)
    worker = worker_for(folder, batch_size=4)
    answer, wall = run_job(worker, folder, Path(args.clip), {"id": "clip", "model": "u2netp", "task": "mask",
                                                             "seg_mask_size": args.seg_size})
    assert "error" not in answer, answer
    print(json.dumps({"frames": answer["frames"], "wall_s": round(wall, 1),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                      "frames_in_memory_peak": answer["frames_in_memory_peak"]}))


def memory(args) -> None:
    for seconds in args.lengths:
        with tempfile.TemporaryDirectory() as tmp:
            clip = Path(tmp) / "clip.mp4"
            write_scene(clip, args.height, int(seconds * RATE), True)
            child = subprocess.run([sys.executable, __file__, "memory-child", "--clip", str(clip), "--folder", tmp,
                                    "--seg-size", str(args.seg_size)], capture_output=True, text=True,
                                   env={**os.environ, "PYTHONPATH": str(REPO)})
            figures = child.stdout.strip().splitlines()[-1] if child.returncode == 0 else child.stderr[-2000:]
            print(f"{seconds} s at {args.height}p: {figures}")


def smooth(mattes: list[np.ndarray], frames: list[np.ndarray], smoothing: float) -> list[np.ndarray]:
    """The mattes through the worker's own smoother (imaging/temporal.py), frame by frame."""
    smoother = MatteSmoother(smoothing)
    return [smoother(torch.from_numpy(matte), torch.from_numpy(frame).permute(2, 0, 1)).numpy()
            for matte, frame in zip(mattes, frames)]


def flicker_figures(mattes: list[np.ndarray], truths: list[np.ndarray]) -> dict:
    mattes = [m.astype(np.float32) / 255 for m in mattes]
    change = np.mean([np.abs(b - a).mean() for a, b in zip(mattes, mattes[1:])])
    true_change = np.mean([np.abs(b - a).mean() for a, b in zip(truths, truths[1:])])
    mad = np.mean([np.abs(m - t).mean() for m, t in zip(mattes, truths)])
    return {"flicker": round(float(change), 5), "true_change": round(float(true_change), 5),
            "mad_vs_truth": round(float(mad), 4)}


def flicker(args) -> None:
    limits = VideoLimits(10**9, 10**6)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        worker = worker_for(folder)
        for moving in (False, True):
            clip = folder / "scene.mp4"
            truths = write_scene(clip, args.height, args.frames, moving)
            frames = [frame.rgb for frame in decode(clip, limits)]
            for model in args.models:
                answer, wall = run_job(worker, folder, clip, {"id": "scene", "model": model, "task": "mask",
                                                              "video_format": "mov"})
                with av.open(str(folder / "bucket" / answer["key"])) as written:
                    mattes = [f.to_ndarray(format="gray") for f in written.decode(video=0)]
                rows = {"raw": flicker_figures(mattes, truths)}
                for smoothing in (0.5, 0.7, 0.9):
                    rows[f"smoothing {smoothing}"] = flicker_figures(smooth(mattes, frames, smoothing), truths)
                scene = "moving" if moving else "static"
                for name, figures in rows.items():
                    print(json.dumps({"scene": scene, "model": model, "variant": name, **figures,
                                      "s_per_frame": round(wall / len(frames), 2)}))


def _rate(frames: int, seconds: float) -> float:
    return round(frames / max(seconds, 1e-9), 1)


def gpu_codecs(clip: Path, folder: Path) -> None:
    """Decode and encode frames/s of a clip, the GPU's codecs beside the CPU's."""
    from imaging.video import VideoWriter, nvenc_available, probe

    limits = VideoLimits(10**9, 10**6)
    info = probe(clip, limits)
    print(json.dumps({"nvenc_available": nvenc_available(), "clip": f"{info.width}x{info.height}",
                      "frames": info.frames}))
    for hardware in (False, True):
        start = time.perf_counter()
        frames = [frame.rgb for frame in decode(clip, limits, hardware=hardware)]
        print(json.dumps({"decode": "nvdec (where it opens)" if hardware else "cpu",
                          "fps": _rate(len(frames), time.perf_counter() - start)}))
    for fmt, hardware in (("mp4", False), ("mp4", True), ("webm", False), ("mov", False)):
        start = time.perf_counter()
        with VideoWriter(folder / f"enc.{fmt}", fmt, info.time_base, info.rate, hardware=hardware) as writer:
            for index, rgb in enumerate(frames):
                writer.write(rgb, index * int(1 / (info.rate * info.time_base)))
        print(json.dumps({"encode": fmt, "codec": "h264_nvenc" if writer.nvenc else "cpu",
                          "fps": _rate(len(frames), time.perf_counter() - start)}))


def gpu(args) -> None:
    """The GPU check's video phase: codecs at 1080p, then jobs end to end with stand-in weights:
    a segmentation model at 1080p, BMV2 at HD and 4K. frames/s of the job and of the network alone
    (frames over the summed `model` stage)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = {}
        for height in (1080, 2160):
            clips[height] = folder / f"{height}.mp4"
            write_scene(clips[height], height, int(args.seconds * RATE), True)
        gpu_codecs(clips[1080], folder)
        worker = worker_for(folder, oracle=[args.model, "bmv2-mobilenetv2"])
        plate = Image.fromarray(next(scene_frames(1080, 1, False))[0])
        jobs = [(f"{args.model} 1080p", clips[1080], {"model": args.model, "video_format": "mp4",
                                                      "bg_color": "#00ff00"}),
                ("bmv2 HD", clips[1080], {"task": "matte", "video_format": "mp4", "bg_color": "#00ff00"}),
                ("bmv2 4K", clips[2160], {"task": "matte", "video_format": "mp4", "bg_color": "#00ff00"})]
        for name, clip, job in jobs:
            bucket = folder / "bucket"
            (bucket / "bgr").mkdir(parents=True, exist_ok=True)
            height = 2160 if "4K" in name else 1080
            plate.resize((round(height * 16 / 9 / 2) * 2, height)).save(bucket / "bgr" / "clip", format="PNG")
            run_job(worker, folder, clip, {"id": "clip", **job})  # warm-up: loads, compiles kernels
            answer, wall = run_job(worker, folder, clip, {"id": "clip", **job})
            assert "error" not in answer, answer
            print(json.dumps({"job": name, "frames": answer["frames"], "fps_end_to_end": _rate(answer["frames"], wall),
                              "fps_network": _rate(answer["frames"], answer["timings_ms"]["model"] / 1000),
                              "timings_ms": answer["timings_ms"]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    fast = commands.add_parser("speed")
    fast.add_argument("--heights", type=int, nargs="+", default=[480, 720])
    fast.add_argument("--seconds", type=float, default=2)
    fast.add_argument("--model", default="u2netp")
    mem = commands.add_parser("memory")
    mem.add_argument("--lengths", type=float, nargs="+", default=[10, 60])
    mem.add_argument("--height", type=int, default=240)
    mem.add_argument("--seg-size", type=int, default=96, help="u2netp's input size (small: the time is the clip's)")
    child = commands.add_parser("memory-child")
    child.add_argument("--clip")
    child.add_argument("--folder")
    child.add_argument("--seg-size", type=int)
    flick = commands.add_parser("flicker")
    flick.add_argument("--models", nargs="+", default=["u2netp", "isnet-general-use"])
    flick.add_argument("--frames", type=int, default=16)
    flick.add_argument("--height", type=int, default=240)
    on_gpu = commands.add_parser("gpu")
    on_gpu.add_argument("--model", default="ZhengPeng7/BiRefNet_lite")
    on_gpu.add_argument("--seconds", type=float, default=1)
    args = parser.parse_args()
    {"speed": speed, "memory": memory, "memory-child": memory_child, "flicker": flicker, "gpu": gpu}[args.command](args)


if __name__ == "__main__":
    main()
