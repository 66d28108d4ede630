"""The codec layer: sniffing, probing, decoding with rotation and limits, and every output format read
back as a player reads it (VP9's alpha through libvpx)."""
from __future__ import annotations

import struct
from fractions import Fraction

import numpy as np
import pytest

from imaging.video import (VIDEO_FORMATS, UndecodableVideo, VideoLimits, VideoTooLarge, VideoWriter, decode,
                           pad_even, probe, sniff)
from tests.clips import read_back, scene, write_clip

ROOMY = VideoLimits(max_pixels=10**7, max_seconds=60)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clips") / "subject.mp4")


def test_sniff_tells_clips_from_images(tmp_path, clip):
    assert sniff(clip.read_bytes()[:16]) == "mp4"
    webm = write_clip(tmp_path / "a.webm", frames=2, codec="libvpx-vp9", audio=False, container="webm")
    assert sniff(webm.read_bytes()[:16]) == "matroska"
    assert sniff(b"RIFF\x00\x00\x00\x00AVI LIST") == "avi"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") is None
    assert sniff(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00") is None  # a still AVIF shares MP4's box
    assert sniff(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR") is None


def test_probe_reads_the_header(clip):
    info = probe(clip, ROOMY)
    assert (info.codec, info.width, info.height, info.frames, info.audio) == ("h264", 96, 64, 6, "aac")
    assert info.rate == 25


def test_decode_keeps_timestamps_and_pixels(clip):
    frames = list(decode(clip, ROOMY))
    info = probe(clip, ROOMY)
    assert [float(f.pts * info.time_base) for f in frames] == pytest.approx([i / 25 for i in range(6)])
    for index, frame in enumerate(frames):
        expected, subject = scene(96, 64, index, 6)
        assert frame.alpha is None and frame.rgb.shape == (64, 96, 3)
        assert np.abs(frame.rgb[subject].astype(int) - expected[subject]).mean() < 12  # H.264 is lossy


def test_rotation_metadata_is_applied(tmp_path):
    turned = write_clip(tmp_path / "r.mp4", frames=2, rotation=90, audio=False)
    frame = next(decode(turned, ROOMY))
    assert frame.rgb.shape == (96, 64, 3)
    expected = np.rot90(scene(96, 64, 0, 2)[0])  # counter-clockwise, as FFmpeg's autorotate shows it
    assert np.abs(frame.rgb.astype(int) - expected).mean() < 12


@pytest.mark.parametrize("limits, message", [
    (VideoLimits(max_pixels=96 * 64 - 1, max_seconds=60), "MAX_VIDEO_PIXELS"),
    (VideoLimits(max_pixels=10**7, max_seconds=0.1), "MAX_VIDEO_SECONDS"),
])
def test_header_over_a_limit_is_refused(clip, limits, message):
    with pytest.raises(VideoTooLarge, match=message):
        probe(clip, limits)
    with pytest.raises(VideoTooLarge, match=message):
        list(decode(clip, limits))


def _patch_matroska_duration(data: bytes, seconds: float) -> bytes:
    """The WebM with its Segment Info's Duration (EBML id 0x4489, an 8-byte float in ms) set to `seconds`."""
    at = data.index(b"\x44\x89\x88")
    return data[:at + 3] + struct.pack(">d", seconds * 1000) + data[at + 11:]


def test_a_lying_duration_is_caught_while_decoding(tmp_path):
    clip = write_clip(tmp_path / "long.webm", frames=20, codec="libvpx-vp9", audio=False, container="webm")
    liar = tmp_path / "liar.webm"
    liar.write_bytes(_patch_matroska_duration(clip.read_bytes(), 0.1))
    limits = VideoLimits(max_pixels=10**7, max_seconds=0.5)
    assert probe(liar, limits).duration_s == pytest.approx(0.1)  # the header passes
    with pytest.raises(VideoTooLarge, match=r"video too long: 0\.52 s at frame 14.*MAX_VIDEO_SECONDS"):
        list(decode(liar, limits))


def test_truncated_and_foreign_bytes_are_clear_errors(tmp_path, clip):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: len(clip.read_bytes()) // 2])  # moov, at the end, is gone
    with pytest.raises(UndecodableVideo, match="the video cannot be read"):
        probe(cut, ROOMY)
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 4)
    with pytest.raises(UndecodableVideo):
        list(decode(noise, ROOMY))


def _cutouts(frames, width, height):
    """RGBA frames: the scene's colour, the subject opaque, the rest transparent."""
    out = []
    for index in range(frames):
        rgb, subject = scene(width, height, index, frames)
        out.append(np.dstack([rgb, subject.astype(np.uint8) * 255]))
    return out


@pytest.mark.parametrize("fmt", VIDEO_FORMATS)
def test_each_format_keeps_frames_times_audio_and_alpha_where_promised(tmp_path, fmt):
    pts = [0, 40, 80, 150, 190, 300]  # a variable frame rate, ms
    source = write_clip(tmp_path / "vfr.mp4", pts=pts)
    info = probe(source, ROOMY)
    frames = list(decode(source, ROOMY))
    cutouts = _cutouts(len(frames), 65, 47)  # odd sizes
    path = tmp_path / f"out.{fmt}"
    with VideoWriter(path, fmt, info.time_base, info.rate, audio_from=source, pad_value=(255, 255, 255)) as writer:
        for frame, cutout in zip(frames, cutouts):
            writer.write(cutout[..., :3] if fmt == "mp4" else cutout, frame.pts)
    back = read_back(path)
    assert back["times"] == pytest.approx([p / 1000 for p in pts], abs=1e-3)
    assert back["audio"] == {"webm": "opus", "mov": "aac", "mp4": "aac"}[fmt]
    shape = (48, 66) if fmt == "mp4" else (47, 65)  # H.264 pads odd sizes with pad_value
    assert all(f.shape[:2] == shape for f in back["frames"])
    if fmt == "mp4":
        assert back["pixel_formats"] == {"yuv420p"}
        luma = back["frames"][0][..., :3] @ np.array([0.299, 0.587, 0.114])  # full resolution in 4:2:0
        assert luma[47].min() > 225 and luma[:, 65].min() > 225  # the padded row and column, white
        return
    # ProRes 4444 is written in 10 bits; FFmpeg's decoder gives it in 12.
    assert back["pixel_formats"] == {"webm": {"yuva420p"}, "mov": {"yuva444p12le"}}[fmt]
    for got, sent in zip(back["frames"], cutouts):
        subject = sent[..., 3] == 255
        assert (got[..., 3][subject] > 200).mean() > 0.97 and (got[..., 3][~subject] < 55).mean() > 0.97


def test_a_grey_matte_video(tmp_path):
    matte = np.zeros((40, 64), np.uint8)
    matte[10:30, 20:40] = 255
    with VideoWriter(tmp_path / "m.webm", "webm", Fraction(1, 1000), Fraction(25)) as writer:
        writer.write(matte, 0)
    back = read_back(tmp_path / "m.webm")
    grey = back["frames"][0][..., :3].astype(int)
    assert back["pixel_formats"] == {"yuv420p"} and len(back["frames"]) == 1
    assert np.abs(grey - matte[..., None]).mean() < 6 and np.abs(grey[..., 0] - grey[..., 2]).max() < 12


def test_pad_even():
    odd = np.ones((3, 5, 4), np.uint8)
    padded = pad_even(odd, (9, 9, 9, 0))
    assert padded.shape == (4, 6, 4) and (padded[3] == (9, 9, 9, 0)).all() and (padded[:3, :5] == 1).all()
    assert pad_even(np.ones((2, 4), np.uint8), 0).shape == (2, 4)


@pytest.mark.parametrize("width", [50, 66])  # widths where PyAV's yuva420p -> rgba loses the last columns
def test_an_alpha_webm_input_decodes_with_its_alpha(tmp_path, width):
    cutouts = _cutouts(3, width, 40)
    with VideoWriter(tmp_path / "in.webm", "webm", Fraction(1, 1000), Fraction(25)) as writer:
        for index, cutout in enumerate(cutouts):
            writer.write(cutout, index * 40)
    frames = list(decode(tmp_path / "in.webm", ROOMY))
    assert len(frames) == 3 and all(f.alpha is not None for f in frames)
    for frame, sent in zip(frames, cutouts):
        subject = sent[..., 3] == 255
        assert (frame.alpha[subject] > 200).mean() > 0.97 and (frame.alpha[~subject] < 55).mean() > 0.97
        assert np.abs(frame.rgb[subject].astype(int) - sent[..., :3][subject]).mean() < 12


def test_a_one_frame_clip_and_first_only(tmp_path, clip):
    single = write_clip(tmp_path / "one.mp4", frames=1)
    assert probe(single, ROOMY).frames == 1 and len(list(decode(single, ROOMY))) == 1
    assert len(list(decode(clip, ROOMY, first_only=True))) == 1


def test_hardware_codecs_fall_back_to_the_cpu_where_they_do_not_open(tmp_path, clip):
    """On a machine without a usable GPU, NVDEC and NVENC fail to open: the CPU codecs do the work."""
    frames = list(decode(clip, ROOMY, hardware=True))
    assert len(frames) == 6
    with VideoWriter(tmp_path / "o.mp4", "mp4", Fraction(1, 1000), Fraction(25), hardware=True) as writer:
        for index, frame in enumerate(frames):
            writer.write(frame.rgb, index * 40)
    assert read_back(tmp_path / "o.mp4")["codec"] == "h264" and len(read_back(tmp_path / "o.mp4")["frames"]) == 6
