"""Animated inputs decode to displayed frames with timing and looping; animated outputs round-trip."""
from __future__ import annotations

import io
import weakref

import numpy as np
import pytest
from PIL import Image

from imaging.animation import AnimationLimits, AnimationTooLarge, decode_animation, frame_count
from imaging.decode import ImageTooLarge, decode
from imaging.encode import check_frame_count, encode_animation, encode_frames, zero_invisible
from imaging.errors import CallerValueError
from imaging.options import OutputOptions

PIXELS = 10**8
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (230, 230, 40)]


def _frames(count: int = 4, transparent: bool = True) -> list[np.ndarray]:
    """RGBA frames of flat colours (so a GIF palette holds them exactly): a plain background, a square
    that moves, and (optionally) a hole that opens on odd frames."""
    frames = []
    for i in range(count):
        frame = np.zeros((40, 64, 4), np.uint8)
        frame[...] = (*COLOURS[3], 255)
        frame[8:20, 4 + 12 * i:16 + 12 * i] = (*COLOURS[i % 3], 255)
        if transparent and i % 2:
            frame[26:, :24] = 0
        frames.append(frame)
    return frames


def _rgba(decoded) -> np.ndarray:
    alpha = decoded.alpha if decoded.alpha is not None else np.full(decoded.rgb.shape[:2], 255, np.uint8)
    return np.dstack([decoded.rgb, alpha])


def _pillow_animation(frames, fmt, **kwargs) -> bytes:
    images = [Image.fromarray(f) for f in frames]
    out = io.BytesIO()
    images[0].save(out, format=fmt, save_all=True, append_images=images[1:], **kwargs)
    return out.getvalue()


def test_gif_frames_are_whole_canvases_as_displayed():
    """Pillow's writer stores only each frame's changed rectangle: decoding must composite them."""
    frames = _frames(transparent=False)
    data = _pillow_animation(frames, "GIF", duration=[100, 200, 300, 400], loop=0)
    animation = decode_animation(data, PIXELS)
    assert animation.source_format == "GIF" and animation.animated
    assert animation.durations == [100, 200, 300, 400] and animation.loop == 0
    for decoded, frame in zip(animation.frames, frames):
        assert np.array_equal(_rgba(decoded), frame)


def test_gif_transparency_with_restore_to_background():
    frames = _frames()
    palette_frames = [Image.fromarray(f[..., :3]).quantize(8) for f in frames]
    for image, frame in zip(palette_frames, frames):
        indices = np.asarray(image).copy()
        indices[frame[..., 3] == 0] = 255
        image.frombytes(indices.tobytes())
    out = io.BytesIO()
    palette_frames[0].save(out, format="GIF", save_all=True, append_images=palette_frames[1:], duration=50,
                           disposal=2, transparency=255)
    animation = decode_animation(out.getvalue(), PIXELS)
    assert animation.loop == 1  # no NETSCAPE extension: plays once
    for decoded, frame in zip(animation.frames, frames):  # the colour under a transparent pixel is moot
        assert np.array_equal(zero_invisible(_rgba(decoded)), frame)


@pytest.mark.parametrize("fmt,kwargs", [("PNG", {}), ("WEBP", {"lossless": True})])
def test_apng_and_webp_frames_and_timing(fmt, kwargs):
    frames = [zero_invisible(f) for f in _frames()]
    data = _pillow_animation(frames, fmt, duration=[40, 80, 120, 160], loop=3, **kwargs)
    animation = decode_animation(data, PIXELS)
    assert animation.durations == [40, 80, 120, 160] and animation.loop == 3
    for decoded, frame in zip(animation.frames, frames):
        assert np.array_equal(_rgba(decoded), frame)


def test_apng_default_image_is_not_a_frame():
    cover = np.full((40, 64, 4), 9, np.uint8)
    frames = _frames(2)
    data = _pillow_animation([cover, *frames], "PNG", default_image=True, duration=[70, 90])
    animation = decode_animation(data, PIXELS)
    assert len(animation.frames) == 2 and animation.durations == [70, 90]
    assert np.array_equal(_rgba(animation.frames[0]), frames[0])


def test_first_frame_flag_and_stills_give_one_frame():
    data = _pillow_animation(_frames(), "GIF", duration=100)
    first = decode_animation(data, PIXELS, first_frame_only=True)
    assert len(first.frames) == 1 and not first.animated
    assert np.array_equal(first.frames[0].rgb, decode(data, PIXELS).rgb)
    still = io.BytesIO()
    Image.fromarray(_frames(1)[0]).save(still, format="PNG")
    decoded = decode_animation(still.getvalue(), PIXELS)
    assert len(decoded.frames) == 1 and decoded.durations == [0]


def test_limits_are_checked_before_decoding_and_name_the_value():
    data = _pillow_animation(_frames(), "GIF", duration=100)
    with pytest.raises(AnimationTooLarge, match="4 frames, the limit is 3"):
        decode_animation(data, PIXELS, AnimationLimits(max_frames=3))
    with pytest.raises(AnimationTooLarge, match="4 frames of 64x40 = 10240 pixels, the limit is 10000"):
        decode_animation(data, PIXELS, AnimationLimits(max_total_pixels=10_000))
    with pytest.raises(ImageTooLarge, match="64x40 = 2560 pixels, the limit is 2000"):
        decode_animation(data, 2000)
    assert issubclass(AnimationTooLarge, ImageTooLarge)  # the worker answers it as a caller error


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_lossless_animation_round_trip(fmt):
    frames = _frames()
    durations, plays = [30, 60, 90, 120], 2
    encoded = encode_animation(frames, durations, plays, OutputOptions(format=fmt))
    assert encoded.extension == fmt
    animation = decode_animation(encoded.data, PIXELS)
    assert animation.source_format == {"png": "PNG", "webp": "WEBP"}[fmt]
    assert animation.durations == durations and animation.loop == plays
    for decoded, frame in zip(animation.frames, frames):
        assert np.array_equal(_rgba(decoded), zero_invisible(frame))


@pytest.mark.parametrize("plays", [0, 1, 5])
def test_gif_round_trip_keeps_timing_plays_and_one_bit_alpha(plays):
    frames = _frames()
    for frame in frames:
        frame[30:34, 40:44, 3] = 100  # half transparent: below the 1-bit cut
    encoded = encode_animation(frames, [100, 200, 300, 400], plays, OutputOptions(format="gif"))
    animation = decode_animation(encoded.data, PIXELS)
    assert animation.durations == [100, 200, 300, 400] and animation.loop == plays
    for decoded, frame in zip(animation.frames, frames):
        rgba = _rgba(decoded)
        assert np.array_equal(rgba[..., 3] == 255, frame[..., 3] >= 128)
        assert np.array_equal(rgba[rgba[..., 3] == 255, :3], frame[rgba[..., 3] == 255, :3])


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_frame_count_from_the_header_is_what_decoding_gives(fmt):
    data = _pillow_animation(_frames(), fmt, duration=100)
    assert frame_count(data, PIXELS) == len(decode_animation(data, PIXELS).frames) == 4
    with pytest.raises(ImageTooLarge):
        frame_count(data, 100)


def test_pages_of_a_tiff_are_not_an_animation():
    """A multi-page TIFF, its pages of different sizes, is its first page as a still (as decode gives it)."""
    pages = [Image.fromarray(_frames(1)[0][..., :3]), Image.new("RGB", (90, 70), "blue")]
    out = io.BytesIO()
    pages[0].save(out, format="TIFF", save_all=True, append_images=pages[1:])
    assert Image.open(io.BytesIO(out.getvalue())).n_frames == 2
    decoded = decode_animation(out.getvalue(), PIXELS)
    assert len(decoded.frames) == 1 and decoded.source_format == "TIFF" and frame_count(out.getvalue(), PIXELS) == 1
    assert np.array_equal(decoded.frames[0].rgb, np.asarray(pages[0]))


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_alpha_channel_animation(fmt):
    mattes = [f[..., 3] for f in _frames()]
    animation = decode_animation(encode_animation(mattes, [50] * 4, 0, OutputOptions(format=fmt)).data, PIXELS)
    assert [np.array_equal(d.rgb[..., 0], m) for d, m in zip(animation.frames, mattes)] == [True] * 4


def test_refusals_and_single_frames():
    with pytest.raises(CallerValueError, match=r"^format: 'jpg' cannot hold an animation \(the input has 4 frames\)"):
        encode_animation(_frames(), [50] * 4, 0, OutputOptions(format="jpg", channels="alpha"))
    with pytest.raises(CallerValueError, match="^format: 'jpg' cannot hold an animation"):
        check_frame_count(2, OutputOptions(format="jpg", channels="alpha"))
    check_frame_count(1, OutputOptions(format="jpg", channels="alpha"))
    check_frame_count(2, OutputOptions(format="gif"))
    single = encode_frames(_frames(1), [0], 0, OutputOptions())
    assert getattr(Image.open(io.BytesIO(single.data)), "n_frames", 1) == 1


class _LiveFrames:
    """Frames made one at a time, counting how many of them are still alive (referenced) at once."""

    def __init__(self, frames: list[np.ndarray]):
        self.frames, self.live, self.most_live = frames, 0, 0

    def _released(self) -> None:
        self.live -= 1

    def __iter__(self):
        for frame in self.frames:
            made = frame.copy()
            weakref.finalize(made, self._released)
            self.live += 1
            self.most_live = max(self.most_live, self.live)
            yield made
            del made


def test_a_gif_takes_its_frames_one_at_a_time_from_a_generator():
    frames = _LiveFrames(_frames(8))
    streamed = encode_animation(iter(frames), [100] * 8, 0, OutputOptions(format="gif"))
    assert frames.most_live == 2 and frames.live == 0  # the frame being converted and the one before, of 8
    assert streamed.data == encode_animation(_frames(8), [100] * 8, 0, OutputOptions(format="gif")).data


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_apng_and_webp_take_a_generator_too(fmt):
    expected = encode_animation(_frames(), [50] * 4, 0, OutputOptions(format=fmt)).data
    assert encode_animation(iter(_LiveFrames(_frames())), [50] * 4, 0, OutputOptions(format=fmt)).data == expected


@pytest.mark.parametrize("count, message", [(3, "^3 frames but 4 durations"), (5, "^more than 4 frames but 4 durations")])
def test_frames_and_durations_must_match_in_number(count, message):
    with pytest.raises(ValueError, match=message):
        encode_animation(iter(_frames(count)), [50] * 4, 0, OutputOptions(format="gif"))
