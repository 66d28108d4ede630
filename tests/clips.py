"""Small synthetic video clips for the tests, written with PyAV: a subject (a disc) moving over a
textured background, with a tone as audio, at a constant or a variable frame rate, with or without
rotation metadata."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AUDIO_RATE = 44100


def scene(width: int, height: int, index: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame `index` of the moving-disc scene: (HxWx3 uint8 RGB, HxW bool subject mask). The disc
    crosses the frame left to right over `frames` frames, over a checkerboard with stripes."""
    ys, xs = np.mgrid[:height, :width]
    background = np.where(((xs // 8) + (ys // 8)) % 2 == 0, 70, 150).astype(np.uint8)
    rgb = np.stack([background, (background + xs * 3 % 40).astype(np.uint8), 255 - background], axis=-1)
    radius = min(width, height) * 0.3
    cx = radius + (width - 2 * radius) * (index / max(frames - 1, 1))
    subject = (xs - cx) ** 2 + (ys - height / 2) ** 2 <= radius**2
    rgb[subject] = (230, 60, 40)
    return rgb, subject


def write_clip(path: Path, frames: int = 6, width: int = 96, height: int = 64, pts: list[int] | None = None,
               time_base: Fraction = Fraction(1, 1000), rotation: int = 0, audio: bool = True,
               codec: str = "libx264", container: str | None = None) -> Path:
    """A clip of the scene. pts: each frame's timestamp in `time_base` (default: 25 frames/s)."""
    pts = pts if pts is not None else [round(i / 25 / time_base) for i in range(frames)]
    with av.open(str(path), "w", format=container) as out:
        video = out.add_stream(codec, rate=25)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = time_base
        video.time_base = time_base
        if rotation:
            video.set_display_rotation(rotation)
        sound = out.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio else None
        for index, stamp in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(scene(width, height, index, len(pts))[0], format="rgb24")
            frame.pts, frame.time_base = stamp, time_base
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            seconds = float((pts[-1] + 1) * time_base) + 0.1
            for start in range(0, int(seconds * AUDIO_RATE), 1024):
                tone = np.sin(2 * np.pi * 440 * (start + np.arange(1024)) / AUDIO_RATE).astype(np.float32)
                chunk = av.AudioFrame.from_ndarray(tone[None], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = AUDIO_RATE, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def _rgba(frame: av.VideoFrame) -> np.ndarray:
    """HxWx4 uint8, through gbrap or rgb24: PyAV's yuv(a)420p -> rgba leaves the last columns of some
    widths (50, 66) zero."""
    if any(component.is_alpha for component in frame.format.components):
        return frame.to_ndarray(format="gbrap")
    rgb = frame.to_ndarray(format="rgb24")
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


def read_back(path: Path) -> dict:
    """What a clip holds, as a player reads it: frames (RGBA arrays, alpha via libvpx for VP9), their
    times in seconds, the video codec and pixel format, the audio codec."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        name = stream.codec_context.name
        decoder = av.CodecContext.create("libvpx-vp9", "r") if name == "vp9" else stream.codec_context
        frames, times, formats = [], [], set()
        for packet in container.demux(stream):
            for frame in decoder.decode(packet if packet.size else None):
                formats.add(frame.format.name)
                frames.append(_rgba(frame))
                times.append(float(frame.pts * stream.time_base))
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
    return {"frames": frames, "times": times, "codec": name, "pixel_formats": formats, "audio": audio}
