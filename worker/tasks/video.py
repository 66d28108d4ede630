"""Video inputs of the cut-out tasks: a clip from `ogs/<id>` through the task's device work frame by
frame, into one video file at `img/<id>/`.

Three stages run at once, joined by bounded queues, so the frames alive at once are bounded by the
batch size and the queue depth, not by the clip's length:

    decode (a worker thread, one frame at a time) -> [QUEUE_DEPTH frames]
    -> device (BATCH_SIZE frames: the task's forward through the device lane, batched with other jobs'
       images, then each frame's post-processing on the lane) -> [QUEUE_DEPTH frames]
    -> encode (a worker thread, appending to a temporary file)

and then one upload of the file. At most 2 * QUEUE_DEPTH + BATCH_SIZE + 2 frames (the one being decoded
and the one being encoded) are alive at once; the answer reports the peak (`frames_in_memory_peak`).

`crop` needs one box over all frames, which a stream does not know before its last frame: it is refused
for clips (see README, Video). `size` is one scale for every frame and is applied as for images.
"""
from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from imaging.decode import DecodedImage
from imaging.encode import zero_invisible
from imaging.errors import CallerValueError
from imaging.options import parse_color
from imaging.output import to_host
from imaging.temporal import MatteSmoother
from imaging.video import CONTENT_TYPES, VideoFrame, VideoInfo, VideoLimits, VideoWriter, decode, probe
from worker.context import JobRun
from worker.tasks.common import answer, output_key

QUEUE_DEPTH = 4  # frames waiting between two stages
PROGRESS_EVERY_S = 3.0
SOURCE_FORMAT = "video"  # DecodedImage.source_format of a clip's frame

# The device work of a task on a batch of frames: each frame's output pixels (HxW grey, HxWx3 or HxWx4
# uint8), on the device; the encoder's thread brings them to the host.
FrameWork = Callable[[list[DecodedImage]], Awaitable[list[torch.Tensor]]]


def limits(run: JobRun) -> VideoLimits:
    settings = run.services.settings
    return VideoLimits(max_pixels=settings.max_video_pixels, max_seconds=settings.max_video_seconds)


def check_knobs(run: JobRun) -> None:
    """The knobs a clip cannot take, refused before any frame is decoded."""
    options = run.job.options
    if options.output.crop:
        raise CallerValueError("crop", "a video is not cropped (one box over every frame would need a second "
                                       "pass over the clip); crop the clip first, or leave crop unset")
    if options.restore_faces:
        raise CallerValueError("restore_faces", "not offered for video inputs")


async def open_clip(run: JobRun, path: Path) -> VideoInfo:
    """The clip's header, refused over MAX_VIDEO_PIXELS / MAX_VIDEO_SECONDS; its knobs checked."""
    check_knobs(run)
    info = await run.io("probe", probe, path, limits(run))
    run.info(f"video {info.codec} {info.width}x{info.height}, ~{info.frames} frames at {float(info.rate):.3g} "
             f"fps, {info.duration_s:.2f} s" + (f", audio {info.audio}" if info.audio else ""))
    return info


def smoother(run: JobRun) -> MatteSmoother | None:
    """The job's temporal smoothing of the matte (knob `smoothing`), None when off."""
    smoothing = run.job.options.output.smoothing
    return MatteSmoother(smoothing) if smoothing > 0 else None


def as_image(frame: VideoFrame) -> DecodedImage:
    return DecodedImage(frame.rgb, frame.alpha, SOURCE_FORMAT)


def first_frame(path: Path, frame_limits: VideoLimits) -> DecodedImage:
    """The clip's first frame, as a still (`frames: "first"`, and the plan of carvekit's automatic modes)."""
    return as_image(next(decode(path, frame_limits, first_only=True)))


@dataclass
class _Alive:
    """Frames decoded and not yet written: the memory a stream holds."""

    now: int = 0
    peak: int = 0

    def add(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def remove(self) -> None:
        self.now -= 1


@dataclass
class _Written:
    frames: int = 0
    size: tuple[int, int] = (0, 0)  # (width, height) of the written frames
    first_pts: int | None = None
    last_pts: int = 0


class _Stream:
    """One clip's decode -> device -> encode stages (module docstring)."""

    def __init__(self, run: JobRun, path: Path, info: VideoInfo, work: FrameWork, out_path: Path):
        self.run, self.path, self.info, self.work, self.out_path = run, path, info, work, out_path
        self.batch_size = run.services.settings.batch_size
        self.decoded: asyncio.Queue = asyncio.Queue(QUEUE_DEPTH)
        self.made: asyncio.Queue = asyncio.Queue(QUEUE_DEPTH)
        self.alive, self.written = _Alive(), _Written()
        self.hardware = run.services.device.device.type == "cuda"  # NVDEC / NVENC where they open
        self.frames = decode(path, limits(run), hardware=self.hardware)
        self.writer: VideoWriter | None = None
        self.finished = False  # the writer has closed the file
        self.reported = time.monotonic()

    async def _decode(self) -> None:
        while (frame := await self.run.io("decode", next, self.frames, None)) is not None:
            self.alive.add()
            await self.decoded.put(frame)
        await self.decoded.put(None)

    async def _device(self) -> None:
        ended = False
        while not ended:
            batch: list[VideoFrame] = []
            while len(batch) < self.batch_size:
                frame = await self.decoded.get()
                if frame is None:
                    ended = True
                    break
                batch.append(frame)
            if batch:
                outputs = await self.work([as_image(frame) for frame in batch])
                for frame, pixels in zip(batch, outputs, strict=True):
                    await self.made.put((pixels, frame.pts))
                del batch, outputs
        await self.made.put(None)

    async def _encode(self) -> None:
        while (item := await self.made.get()) is not None:
            pixels, pts = item
            if self.writer is None:
                self.writer = await self.run.io("encode", self._open_writer)
            await self.run.io("encode", self._write, pixels, pts)
            self.written.size = self.writer.size  # the file's: an odd size padded for H.264 included
            del pixels, item
            self.alive.remove()
            self._wrote(pts)
        if self.writer is not None:
            await self.run.io("encode", self.writer.close)
            self.finished = True

    def _write(self, pixels: torch.Tensor, pts: int) -> None:
        """On the encoder's thread: the frame's one device-to-host copy, then the encoder."""
        pixels = to_host(pixels)
        if not self.run.job.options.output.keep_invisible_rgb:
            pixels = zero_invisible(pixels)  # invisible colour costs bits and can bleed in 4:2:0
        self.writer.write(pixels, pts)

    def _open_writer(self) -> VideoWriter:
        options = self.run.job.options
        bg_color = options.bg_color
        pad = parse_color(bg_color)[:3] if bg_color and options.output.channels == "rgba" else 0
        return VideoWriter(self.out_path, options.output.video_format, self.info.time_base, self.info.rate,
                           audio_from=self.path, pad_value=pad, hardware=self.hardware)

    def _wrote(self, pts: int) -> None:
        written = self.written
        written.frames += 1
        written.first_pts = pts if written.first_pts is None else written.first_pts
        written.last_pts = pts
        if time.monotonic() - self.reported >= PROGRESS_EVERY_S:
            self.reported = time.monotonic()
            self.run.progress(f"{written.frames}/{self.info.frames} frames")

    async def run_stages(self) -> None:
        """The three stages at once; the first failure stops the others, and returns once none of this
        job's work is still running on a thread (so the files can be closed and deleted)."""
        tasks = [asyncio.ensure_future(stage()) for stage in (self._decode, self._device, self._encode)]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.run.settled()
            self.frames.close()
            if self.writer is not None and not self.finished:
                self.writer.abort()

    def figures(self) -> dict:
        """frames, fps, duration (from the first frame's time to the last one's end) and the peak."""
        written, info = self.written, self.info
        span = float((written.last_pts - (written.first_pts or 0)) * info.time_base) + 1 / float(info.rate)
        return {"frames": written.frames, "fps": round(float(info.rate), 3), "duration": round(span, 3),
                "frames_in_memory_peak": self.alive.peak}


async def stream(run: JobRun, path: Path, info: VideoInfo, work: FrameWork, model: str, **extra) -> dict:
    """The clip through `work` into img/<id>/<name>.<video_format>, one upload; the answer."""
    fmt = run.job.options.output.video_format
    folder = Path(tempfile.mkdtemp(prefix="video-out-"))
    try:
        out_path = folder / f"out.{fmt}"
        clip = _Stream(run, path, info, work, out_path)
        await clip.run_stages()
        key = output_key(run, fmt)
        await run.commit_file(key, out_path, CONTENT_TYPES[fmt])
        run.info(f"wrote {key} ({out_path.stat().st_size} bytes) {run.timings}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    width, height = clip.written.size  # a clip without frames is refused by decode()
    return answer(run, key, width, height, model, video_format=fmt, **clip.figures(), **extra)


@contextlib.contextmanager
def deleted_after(data: bytes | Path):
    """A spooled input file is deleted when the job is done with it, whatever happens."""
    try:
        yield data
    finally:
        if isinstance(data, Path):
            data.unlink(missing_ok=True)
