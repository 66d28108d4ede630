"""Video inputs through the job API, on a local bucket with the real u2netp weights: every output format
read back as a player reads it, the matte following the subject like the image job's, audio kept, and
every limit or bad input answered with a clear error and nothing written."""
from __future__ import annotations

import io
import statistics
import struct

import numpy as np
import pytest
from PIL import Image

from imaging.video import VideoLimits, decode
from tests.clips import read_back, write_clip
from tests.worker.tasks.conftest import Bucket, encoded
from worker.tasks.video import QUEUE_DEPTH

PTS_MS = [0, 40, 80, 150, 190, 300]  # a variable frame rate
ROOMY = VideoLimits(max_pixels=10**8, max_seconds=3600)


def put_clip(bucket: Bucket, name: str, tmp_path, **kwargs) -> list:
    """The clip at ogs/<name>; its frames as decoded (what the image job would see)."""
    path = write_clip(tmp_path / f"{name}.clip", container=kwargs.pop("container", "mp4"), **kwargs)
    bucket.put(f"ogs/{name}", path.read_bytes())
    return list(decode(path, ROOMY))


def written_times(bucket: Bucket, key: str) -> dict:
    return read_back(bucket.root / key)


@pytest.mark.parametrize("knobs, key, alpha", [
    ({}, "img/clip/trans.webm", True),
    ({"video_format": "mov"}, "img/clip/trans.mov", True),
    ({"video_format": "mp4", "bg_color": "#00ff00"}, "img/clip/trans.mp4", False),
])
def test_a_clip_gives_a_video_with_its_frames_times_and_audio(bucket, tmp_path, knobs, key, alpha):
    put_clip(bucket, "clip", tmp_path, pts=PTS_MS)
    answer = bucket.run({"id": "clip", "model": "u2netp", **knobs})
    assert answer["key"] == key and bucket.written() == [key], answer
    assert (answer["frames"], answer["width"], answer["height"]) == (6, 96, 64)
    assert answer["duration"] == pytest.approx(0.3 + 1 / answer["fps"], abs=1e-3)
    assert {"decode", "model", "postprocess", "encode", "put"} <= set(answer["timings_ms"])
    back = written_times(bucket, key)
    assert back["times"] == pytest.approx([t / 1000 for t in PTS_MS], abs=1e-3)
    assert back["audio"] in ("opus", "aac")
    alphas = [frame[..., 3] for frame in back["frames"]]
    if alpha:  # the disc is the subject: opaque over it, transparent in the corners
        assert all(a[32, 48 - 24:48 + 24].max() > 200 and a[:8, :8].max() < 60 for a in alphas[1:-1])
    else:
        assert all(a.min() == 255 for a in alphas)
        corner = back["frames"][0][:6, :6, :3].reshape(-1, 3).mean(axis=0)
        assert corner[1] > 200 and corner[0] < 60 and corner[2] < 60  # composited on green


def test_the_matte_follows_the_subject_as_the_image_job_sees_it(bucket, tmp_path):
    """Per frame, the clip's matte against the image job's on the same decoded frame; with temporal
    smoothing too (its motion gate keeps the moving subject from trailing)."""
    frames = put_clip(bucket, "clip", tmp_path, frames=6, width=128, height=80, audio=False)
    image_mattes = []
    for index, frame in enumerate(frames):
        bucket.put(f"ogs/still{index}", encoded(Image.fromarray(frame.rgb)))
        still = bucket.run({"id": f"still{index}", "model": "u2netp", "task": "mask"})
        image_mattes.append(np.array(bucket.read(still["key"])) >= 128)
    for smoothing in (0, 0.7):
        answer = bucket.run({"id": "clip", "model": "u2netp", "task": "mask", "smoothing": smoothing})
        assert answer["key"] == "img/clip/mask.webm", answer
        video_mattes = [frame[..., 0] >= 128 for frame in read_back(bucket.root / answer["key"])["frames"]]
        ious = [(a & b).sum() / max((a | b).sum(), 1) for a, b in zip(image_mattes, video_mattes)]
        assert len(video_mattes) == 6 and statistics.median(ious) >= 0.9, (smoothing, ious)


def test_rotation_odd_sizes_and_one_frame(bucket, tmp_path):
    put_clip(bucket, "turned", tmp_path, frames=2, rotation=90, audio=False)
    answer = bucket.run({"id": "turned", "model": "u2netp", "task": "mask"})
    assert (answer["width"], answer["height"]) == (64, 96), answer
    put_clip(bucket, "odd", tmp_path, frames=3, width=65, height=47, codec="libvpx-vp9", container="webm",
             audio=False)
    answer = bucket.run({"id": "odd", "model": "u2netp", "video_format": "mp4", "bg_color": "#ffffff"})
    assert answer["frames"] == 3 and read_back(bucket.root / answer["key"])["frames"][0].shape == (48, 66, 4)
    assert (answer["width"], answer["height"]) == (66, 48)  # the answer gives the written file's size
    answer = bucket.run({"id": "odd", "model": "u2netp", "video_format": "mov"})
    assert answer["frames"] == 3 and (answer["width"], answer["height"]) == (65, 47)  # as it is
    put_clip(bucket, "one", tmp_path, frames=1)
    answer = bucket.run({"id": "one", "model": "u2netp"})
    assert answer["frames"] == 1 and len(read_back(bucket.root / answer["key"])["frames"]) == 1


def test_frames_first_gives_a_still(bucket, tmp_path):
    put_clip(bucket, "clip", tmp_path, frames=3, audio=False)
    answer = bucket.run({"id": "clip", "model": "u2netp", "frames": "first"})
    assert answer["key"] == "img/clip/trans.png" and bucket.read(answer["key"]).size == (96, 64)
    cropped = bucket.run({"id": "clip", "model": "u2netp", "frames": "first", "crop": True})  # a still crops
    assert bucket.read(cropped["key"]).size[0] < 96, cropped


def test_frames_alive_at_once_are_bounded_by_the_batch_and_the_queues(tmp_path, task_weights):
    bucket = Bucket(tmp_path, task_weights, batch_size=2)
    put_clip(bucket, "long", tmp_path, frames=40, width=32, height=32, audio=False)
    answer = bucket.run({"id": "long", "model": "u2netp", "task": "mask", "seg_mask_size": 64})
    assert answer["frames"] == 40
    assert answer["frames_in_memory_peak"] <= 2 * QUEUE_DEPTH + 2 + 2, answer
    assert max(bucket.worker.services.lane.batches) == 2  # the frames share the lane's batched forwards


def _lying_duration(data: bytes, seconds: float) -> bytes:
    """A WebM whose header says it lasts `seconds` (Segment Info's Duration, EBML id 0x4489)."""
    at = data.index(b"\x44\x89\x88")
    return data[:at + 3] + struct.pack(">d", seconds * 1000) + data[at + 11:]


def test_limits_and_damaged_clips_are_clear_errors_with_nothing_written(tmp_path, task_weights):
    bucket = Bucket(tmp_path, task_weights, max_video_pixels=96 * 64, max_video_seconds=0.5,
                    max_video_bytes=200_000)
    put_clip(bucket, "big", tmp_path, frames=2, width=128, height=64, audio=False)
    assert "the limit (MAX_VIDEO_PIXELS) is 6144" in bucket.refused({"id": "big", "model": "u2netp"})
    put_clip(bucket, "long", tmp_path, frames=20, audio=False)
    assert "the limit (MAX_VIDEO_SECONDS) is 0.5" in bucket.refused({"id": "long", "model": "u2netp"})
    liar = write_clip(tmp_path / "liar.webm", frames=20, codec="libvpx-vp9", container="webm", audio=False)
    bucket.put("ogs/liar", _lying_duration(liar.read_bytes(), 0.1))
    assert "video too long: 0.52 s at frame 14" in bucket.refused({"id": "liar", "model": "u2netp"})
    clip = write_clip(tmp_path / "cut.mp4", frames=4)
    bucket.put("ogs/cut", clip.read_bytes()[: len(clip.read_bytes()) // 2])
    assert bucket.refused({"id": "cut", "model": "u2netp"}).startswith("the video cannot be read")
    bucket.put("ogs/huge", clip.read_bytes() + bytes(200_000))
    assert "the limit (MAX_VIDEO_BYTES) is 200000" in bucket.refused({"id": "huge", "model": "u2netp"})


def test_knobs_a_clip_cannot_take_are_refused_by_name(bucket, tmp_path):
    put_clip(bucket, "clip", tmp_path, frames=2, audio=False)
    assert bucket.refused({"id": "clip", "model": "u2netp", "crop": True}).startswith("crop: a video is not cropped")
    assert bucket.refused({"id": "clip", "model": "u2netp", "video_format": "mp4"}).startswith(
        "video_format: 'mp4' has no transparency; set an opaque bg_color")
    assert bucket.refused({"id": "clip", "model": "u2netp", "restore_faces": True}).startswith("restore_faces:")


def test_matte_of_a_clip_against_a_still_plate_and_a_video_plate_refused(bucket, tmp_path):
    frames = put_clip(bucket, "clip", tmp_path, frames=3, audio=False)
    plate = frames[0].rgb.copy()
    bucket.put("bgr/clip", encoded(Image.fromarray(plate)))
    answer = bucket.run({"id": "clip", "task": "matte"})
    assert answer["key"] == "img/clip/trans.webm" and answer["frames"] == 3, answer
    assert len(read_back(bucket.root / answer["key"])["frames"]) == 3
    bucket.put("bgr/moving", (tmp_path / "clip.clip").read_bytes())
    assert bucket.refused({"id": "clip", "task": "matte", "bgr_id": "moving"}).startswith(
        "bgr/moving: the background plate is a video")


def test_images_still_pass_through_as_before(bucket):
    bucket.put("ogs/photo", encoded(Image.new("RGB", (40, 30), (200, 30, 30))))
    answer = bucket.run({"id": "photo", "model": "u2netp", "video_format": "mov"})
    assert answer["key"] == "img/photo/trans.png" and "frames" not in answer
    assert io.BytesIO((bucket.root / answer["key"]).read_bytes()).read(4) == b"\x89PNG"
