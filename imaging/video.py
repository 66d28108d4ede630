"""Video clips in and out, with PyAV (FFmpeg's libraries): sniff, probe, decode frame by frame, encode.

Decoding yields one frame at a time (uint8 RGB, its alpha, its timestamp), with the stream's rotation
applied, so a caller holds only the frames it keeps. VP8/VP9 go through libvpx's decoders: FFmpeg's
native ones drop the alpha that WebM carries beside the colour. The limits are checked from the header
(`probe`) and again on every decoded frame, since a header can lie about its size and duration.

Encoding writes to a file as frames come, with the input's timestamps in the input's time base (the
muxer rounds them to its own, e.g. 1 ms in WebM), and the input's audio copied through, or re-encoded
where the container cannot hold it (Opus in WebM, AAC in MOV/MP4):
- webm: VP9 `yuva420p`, alpha kept (the default);
- mov: ProRes 4444 `yuva444p10le`, alpha kept, for editors;
- mp4: H.264 `yuv420p`, no alpha: frames come composited on an opaque colour.
A grey frame (a matte) is written as the luma of a 4:2:0 video, chroma neutral.

On a GPU (`hardware=True`), H.264/HEVC inputs are decoded by NVDEC and MP4 outputs encoded by NVENC
(`h264_nvenc`) where FFmpeg can open them; anything else, and any machine where they fail to open, uses
the CPU codecs above (VP9 with alpha and ProRes have no NVENC encoder).

Sizes: H.264's 4:2:0 needs even sizes, so an odd width or height is padded with one column or row of
`pad_value` (the bg_color the frames were composited on, or 0 for a matte) on the right or bottom:
every pixel of the input is kept, and the extra one is background. VP9 and ProRes take odd sizes as
they are.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.codec.hwaccel import HWAccel

VIDEO_FORMATS = ("webm", "mov", "mp4")
CONTENT_TYPES = {"webm": "video/webm", "mov": "video/quicktime", "mp4": "video/mp4"}
# A decoded clip may not have more frames than its duration limit at this rate: a stream whose
# timestamps stand still would otherwise never reach MAX_VIDEO_SECONDS.
MAX_FRAME_RATE = 240
# Decoders that keep the alpha of WebM's VP8/VP9 (stored beside the colour as block additions).
ALPHA_DECODERS = {"vp9": "libvpx-vp9", "vp8": "libvpx"}
# ISO base media brands of still images (AVIF, HEIF), which share MP4's ftyp box but are not clips.
STILL_BRANDS = (b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1")

VIDEO_CODECS = {
    "webm": ("libvpx-vp9", "yuva420p", {"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0",
                                        "row-mt": "1", "auto-alt-ref": "0"}),
    "mov": ("prores_ks", "yuva444p10le", {"profile": "4", "vendor": "apl0"}),
    "mp4": ("libx264", "yuv420p", {"preset": "veryfast", "crf": "20"}),
}
GREY_PIXEL_FORMAT = {"webm": "yuv420p", "mov": "yuv444p10le", "mp4": "yuv420p"}
# Audio codecs each container holds as they are; any other is re-encoded to the second element.
AUDIO_COPY = {
    "webm": ({"opus", "vorbis"}, "libopus"),
    "mov": ({"aac", "mp3", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le"}, "aac"),
    "mp4": ({"aac", "mp3", "alac", "opus"}, "aac"),
}
EVEN_SIZES = ("mp4",)  # 4:2:0 encoders that refuse odd sizes
NVENC = ("h264_nvenc", {"preset": "p4", "rc": "vbr", "cq": "23"})  # mp4 on a GPU
NVDEC_CODECS = ("h264", "hevc")  # inputs decoded by NVDEC on a GPU


class UndecodableVideo(ValueError):
    """Not a clip we can read: truncated, damaged, or without a video stream (the message is for the caller)."""


class VideoTooLarge(ValueError):
    """Over MAX_VIDEO_PIXELS or MAX_VIDEO_SECONDS, from the header or while decoding (for the caller)."""


def sniff(head: bytes) -> str | None:
    """The container of a clip from its first bytes ("mp4" for MP4/MOV, "matroska" for MKV/WebM,
    "avi"), or None for anything else (images included)."""
    if head[4:8] == b"ftyp" and head[8:12] not in STILL_BRANDS:
        return "mp4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free") and len(head) >= 8:  # QuickTime without ftyp
        return "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


@dataclass(frozen=True)
class VideoLimits:
    max_pixels: int  # per frame
    max_seconds: float

    @property
    def max_frames(self) -> int:
        return int(self.max_seconds * MAX_FRAME_RATE) + 1


@dataclass(frozen=True)
class VideoInfo:
    """A clip as its header describes it."""

    codec: str
    width: int  # as stored; the decoded frames are rotated as the stream says
    height: int
    time_base: Fraction
    rate: Fraction  # the average frame rate
    duration_s: float
    frames: int  # from the header, or estimated from duration and rate
    audio: str | None  # the audio codec, None when silent


@dataclass
class VideoFrame:
    rgb: np.ndarray  # HxWx3 uint8, rotated for display
    alpha: np.ndarray | None  # HxW uint8, None when the frame is opaque
    pts: int  # in VideoInfo.time_base, as the input has it

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        return self.rgb.shape[1], self.rgb.shape[0]


@functools.cache
def nvenc_available() -> bool:
    """Whether FFmpeg can open NVENC's H.264 encoder here (a GPU and its driver)."""
    try:
        context = av.CodecContext.create(NVENC[0], "w")
        context.width, context.height, context.pix_fmt, context.time_base = 64, 64, "yuv420p", Fraction(1, 25)
        context.open()
        return True
    except av.FFmpegError:
        return False


def _open(path: Path | str, hardware: bool = False) -> av.container.InputContainer:
    if hardware:
        try:  # NVDEC where FFmpeg can open it; frames come back to host memory
            return av.open(str(path), "r", hwaccel=HWAccel("cuda", allow_software_fallback=True))
        except av.FFmpegError:
            pass
    try:
        return av.open(str(path), "r")
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise UndecodableVideo(f"the video cannot be read: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _video_stream(container) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise UndecodableVideo("the video cannot be read: it has no video stream")
    return container.streams.video[0]


def _too_large(width: int, height: int, limits: VideoLimits, where: str) -> None:
    if width * height > limits.max_pixels:
        raise VideoTooLarge(f"video too large: {width}x{height} = {width * height} pixels per frame{where}, "
                            f"the limit (MAX_VIDEO_PIXELS) is {limits.max_pixels}")


def _too_long(seconds: float, limits: VideoLimits, where: str) -> None:
    if seconds > limits.max_seconds:
        raise VideoTooLarge(f"video too long: {seconds:.2f} s{where}, the limit (MAX_VIDEO_SECONDS) is "
                            f"{limits.max_seconds:g}")


def probe(path: Path | str, limits: VideoLimits) -> VideoInfo:
    """The clip's header, refused when it is over a limit (before any frame is decoded)."""
    with _open(path) as container:
        stream = _video_stream(container)
        ctx = stream.codec_context
        if not ctx.width or not ctx.height:
            raise UndecodableVideo("the video cannot be read: its stream has no frame size")
        _too_large(ctx.width, ctx.height, limits, "")
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        if stream.duration is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0  # unknown (a live WebM): enforced while decoding
        _too_long(duration, limits, "")
        frames = stream.frames or max(1, round(duration * rate))
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return VideoInfo(ctx.name, ctx.width, ctx.height, Fraction(stream.time_base), Fraction(rate), duration,
                         frames, audio)


def _codec_of(path: Path | str) -> str:
    with _open(path) as container:
        return _video_stream(container).codec_context.name


def _displayed(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """A decoded frame's RGB and alpha (None when opaque) as numpy, rotated as its display matrix says
    (counter-clockwise by `frame.rotation` degrees, what FFmpeg's autorotate does)."""
    has_alpha = any(component.is_alpha for component in frame.format.components)
    # Not "rgba": PyAV's yuv(a)420p -> rgba leaves the last columns of some widths (50, 66) zero;
    # its gbrap comes back as RGBA, right at every width.
    pixels = frame.to_ndarray(format="gbrap" if has_alpha else "rgb24")
    turns = round((frame.rotation or 0) / 90) % 4
    if turns:
        pixels = np.ascontiguousarray(np.rot90(pixels, turns))
    if not has_alpha:
        return pixels, None
    alpha = np.ascontiguousarray(pixels[..., 3])
    return np.ascontiguousarray(pixels[..., :3]), (None if alpha.min() == 255 else alpha)


def decode(path: Path | str, limits: VideoLimits, first_only: bool = False,
           hardware: bool = False) -> Iterator[VideoFrame]:
    """Every frame of the clip in presentation order (the first only with `first_only`), one at a time;
    H.264/HEVC through NVDEC with `hardware` where it opens.
    VideoTooLarge as soon as a frame is over MAX_VIDEO_PIXELS, past MAX_VIDEO_SECONDS from the first
    frame, or past that duration's frames at MAX_FRAME_RATE; UndecodableVideo for damaged data or a
    clip without frames."""
    with _open(path, hardware and _codec_of(path) in NVDEC_CODECS) as container:
        stream = _video_stream(container)
        decoder_name = ALPHA_DECODERS.get(stream.codec_context.name)
        decoder = av.CodecContext.create(decoder_name, "r") if decoder_name else stream.codec_context
        decoder.thread_type = "AUTO"
        time_base, start, count = stream.time_base, None, 0
        try:
            for packet in container.demux(stream):
                for frame in decoder.decode(packet if packet.size else None):
                    pts = frame.pts if frame.pts is not None else count
                    start = pts if start is None else start
                    count += 1
                    _too_large(frame.width, frame.height, limits, f" (frame {count})")
                    _too_long(float((pts - start) * time_base), limits, f" at frame {count}")
                    if count > limits.max_frames:
                        raise VideoTooLarge(f"video too long: over {limits.max_frames} frames, the limit "
                                            f"(MAX_VIDEO_SECONDS at {MAX_FRAME_RATE} frames/s) is "
                                            f"{limits.max_frames}")
                    rgb, alpha = _displayed(frame)
                    yield VideoFrame(rgb, alpha, pts)
                    if first_only:
                        return
        except av.FFmpegError as exc:
            raise UndecodableVideo(f"the video cannot be decoded: {_reason(exc)}") from None
        if count == 0:
            raise UndecodableVideo("the video cannot be decoded: no frame in it (truncated?)")


class _AudioPass:
    """The input's first audio stream, copied or re-encoded into the output, its packets muxed up to
    the time of each video frame so that the file is interleaved as it is written."""

    def __init__(self, source: Path | str, output, fmt: str):
        self.input = av.open(str(source), "r")
        if not self.input.streams.audio:
            self.input.close()
            self.input = None
            return
        stream = self.input.streams.audio[0]
        copied, codec = AUDIO_COPY[fmt]
        self.copy = stream.codec_context.name in copied
        self.source = stream
        if self.copy:
            self.stream = output.add_stream_from_template(stream)
        else:
            rate = stream.codec_context.sample_rate if codec != "libopus" else 48000
            self.stream = output.add_stream(codec, rate=rate, layout=stream.codec_context.layout.name)
        self.output = output
        self.packets = self.input.demux(stream)
        self.pending = None  # a demuxed packet that lies after the last video time asked for

    def until(self, seconds: float | None) -> None:
        """Mux the audio up to `seconds` (None: all of it)."""
        if self.input is None:
            return
        while True:
            packet = self.pending or next(self.packets, None)
            self.pending = None
            if packet is None:
                self._flush()
                return
            if packet.pts is not None and seconds is not None and float(packet.pts * packet.time_base) > seconds:
                self.pending = packet
                return
            self._mux(packet)

    def _mux(self, packet) -> None:
        if self.copy:
            if packet.size:
                packet.stream = self.stream
                self.output.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None  # the encoder counts samples itself (resampled and re-framed)
            self.output.mux(self.stream.encode(frame))

    def _flush(self) -> None:
        if not self.copy and self.stream is not None:
            self.output.mux(self.stream.encode(None))
        self.stream = None
        self.input.close()
        self.input = None

    def close(self) -> None:
        if self.input is not None:
            self.input.close()
            self.input = None


class VideoWriter:
    """A clip written to `path` frame by frame: write(pixels, pts), then close(). `pixels` is HxW grey,
    HxWx3 RGB or HxWx4 RGBA uint8, the same kind and size for every frame; pts in `time_base`.
    `pad_value` fills the padding of odd sizes where the format needs even ones (module docstring)."""

    def __init__(self, path: Path | str, fmt: str, time_base: Fraction, rate: Fraction,
                 audio_from: Path | str | None = None, pad_value: int | tuple[int, ...] = 0,
                 hardware: bool = False):
        if fmt not in VIDEO_FORMATS:
            raise ValueError(f"unknown video format {fmt!r}")
        self.fmt, self.time_base, self.rate, self.pad_value = fmt, Fraction(time_base), Fraction(rate), pad_value
        self.nvenc = hardware and fmt == "mp4" and nvenc_available()
        self.output = av.open(str(path), "w", format=fmt)
        self.stream = None
        self.size: tuple[int, int] | None = None  # (width, height) of the written frames, padding included
        self.audio = _AudioPass(audio_from, self.output, fmt) if audio_from is not None else None

    def _start(self, pixels: np.ndarray) -> None:
        codec, pixel_format, options = VIDEO_CODECS[self.fmt]
        if self.nvenc:
            codec, options = NVENC
        if pixels.ndim == 2:
            pixel_format = GREY_PIXEL_FORMAT[self.fmt]
        height, width = pixels.shape[:2]
        self.size = (width, height)
        self.stream = self.output.add_stream(codec, rate=self.rate, options=dict(options))
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, pixel_format
        self.stream.codec_context.time_base = self.time_base
        self.stream.time_base = self.time_base

    def write(self, pixels: np.ndarray, pts: int) -> None:
        if self.fmt in EVEN_SIZES:
            pixels = pad_even(pixels, self.pad_value)
        if self.stream is None:
            self._start(pixels)
        layout = {2: "gray", 3: "rgb24", 4: "rgba"}[pixels.ndim if pixels.ndim == 2 else pixels.shape[2]]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format=layout)
        frame.pts, frame.time_base = pts, self.time_base
        if self.audio is not None:
            self.audio.until(float(pts * self.time_base))
        self.output.mux(self.stream.encode(frame))

    def close(self) -> None:
        """Flush the encoder and the audio, and finish the file."""
        try:
            if self.stream is not None:
                self.output.mux(self.stream.encode(None))
            if self.audio is not None:
                self.audio.until(None)
        finally:
            self.abort()

    def abort(self) -> None:
        """Close the files without finishing them (the caller deletes the output)."""
        if self.audio is not None:
            self.audio.close()
        with contextlib.suppress(av.FFmpegError):  # a half-written file may not close cleanly
            self.output.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind, *_) -> None:
        self.close() if kind is None else self.abort()


def pad_even(pixels: np.ndarray, value: int | tuple[int, ...]) -> np.ndarray:
    """`pixels` with one column (row) of `value` added on the right (bottom) when its width (height) is odd."""
    height, width = pixels.shape[:2]
    pad_h, pad_w = height % 2, width % 2
    if not pad_h and not pad_w:
        return pixels
    padded = np.empty((height + pad_h, width + pad_w, *pixels.shape[2:]), dtype=pixels.dtype)
    padded[...] = value
    padded[:height, :width] = pixels
    return padded

