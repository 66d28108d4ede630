"""The removal tasks on inputs at the edges: multi-page TIFFs, animations a format cannot hold, chain
knobs the chain cannot run with, several missing weight files (real u2netp)."""
from __future__ import annotations

import weakref

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline import removal
from pipeline.segmentation.postprocess import foreground_colour
from tests.conftest import CAR, SHARED
from tests.worker.tasks.conftest import Bucket, encoded


def two_frames(fmt: str) -> bytes:
    frames = [Image.new("RGB", (6, 4), colour) for colour in ("red", "blue")]
    return encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)


def test_a_multi_page_tiff_gives_its_first_page_as_a_still(bucket):
    rng = np.random.default_rng(0)
    first = Image.fromarray(rng.integers(0, 256, (4, 6, 3), dtype=np.uint8))
    pages = [first, Image.new("RGB", (9, 7), "blue")]  # pages of different sizes
    bucket.put("ogs/pages.tif", encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:]))
    bucket.put("ogs/first.png", encoded(first))
    answer = bucket.run({"id": "pages.tif", "task": "mask"})
    assert (answer["width"], answer["height"]) == (6, 4) and "frames" not in answer, answer
    written = bucket.read(answer["key"])
    assert getattr(written, "n_frames", 1) == 1
    alone = bucket.run({"id": "first.png", "task": "mask"})
    assert np.array_equal(np.asarray(written), np.asarray(bucket.read(alone["key"])))


def test_animations_stay_animations(bucket):
    bucket.put("ogs/anim.gif", two_frames("GIF"))
    answer = bucket.run({"id": "anim.gif", "task": "mask"})
    assert answer["frames"] == 2 and bucket.read(answer["key"]).n_frames == 2


def test_an_animation_as_jpg_is_refused_before_any_network_runs(bucket):
    bucket.put("ogs/anim.gif", two_frames("GIF"))
    message = ("format: 'jpg' cannot hold an animation (the input has 2 frames); use png (APNG), webp or gif, "
               "or frames='first'")
    assert bucket.refused({"id": "anim.gif", "format": "jpg", "bg_color": "#ffffff"}) == message
    assert bucket.refused({"id": "anim.gif", "task": "mask", "format": "jpg"}) == message
    assert sum(bucket.worker.services.lane.batches.values()) == 0  # no forward ran
    answer = bucket.run({"id": "anim.gif", "task": "mask", "format": "jpg", "frames": "first"})
    assert answer["key"] == "img/anim.gif/mask.jpg"


def test_a_refine_mask_size_without_a_crop_step_is_refused_before_the_work(bucket):
    bucket.put("ogs/photo", encoded(Image.new("RGB", (8, 8))))
    assert bucket.refused({"id": "photo", "model": "u2netp", "post": "cascade_fba", "refine_mask_size": 64}) == (
        "refine_mask_size: 64 leaves no step between CascadePSP's local crops (size // 2 - 32); use at least 66")
    assert sum(bucket.worker.services.lane.batches.values()) == 0


def test_every_missing_weight_file_of_a_chain_is_named_at_once(tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "u2netp.pth").symlink_to(SHARED / "weights" / "u2netp.pth")
    bucket = Bucket(tmp_path / "bucket", weights)
    bucket.put("ogs/photo", encoded(Image.new("RGB", (8, 8))))
    error = bucket.refused({"id": "photo", "model": "u2netp", "post": "cascade_fba", "restore_faces": True})
    assert error.startswith("weights for 5 models this job needs are missing: 'cascadepsp-carveset' "
                            "(cascadepsp_finetuned_carveset.pth), 'fba' (fba_matting.pth), 'retinaface-resnet50' "
                            "(detection_Resnet50_Final.pth), 'gfpgan-v1.4' (GFPGANv1.4.pth), 'parsenet' "
                            "(parsing_parsenet.pth)"), error
    assert ("fetch them with: python -m builder.fetch_weights cascadepsp-carveset fba retinaface-resnet50 "
            "gfpgan-v1.4 parsenet") in error


@pytest.mark.parametrize("fmt", ["gif", "png"])
def test_an_animation_holds_one_frame_of_float_colour_at_a_time(bucket, monkeypatch, fmt):
    """The colour pass runs frame by frame after every matte is known: the real foreground_colour,
    watched for how many of its float results are alive at once."""
    live = most_live = 0

    def released():
        nonlocal live
        live -= 1

    def watched(rgb, alpha, method):
        nonlocal live, most_live
        colour = foreground_colour(rgb, alpha, method)
        assert colour.dtype == torch.float32
        weakref.finalize(colour, released)
        live += 1
        most_live = max(most_live, live)
        return colour

    monkeypatch.setattr(removal, "foreground_colour", watched)
    frames = [Image.new("RGB", (24, 16), colour) for colour in ("red", "blue", "green", "white", "black", "grey")]
    for frame, left in zip(frames, range(0, 18, 3)):
        frame.paste((250, 200, 0), (left, 4, left + 6, 12))
    bucket.put("ogs/anim.gif", encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100))
    answer = bucket.run({"id": "anim.gif", "format": fmt, "foreground": "blur_fusion", "crop": True})
    assert answer["frames"] == 6 and (answer["width"], answer["height"]) == bucket.read(answer["key"]).size
    assert most_live == 1 and live == 0


@pytest.mark.parametrize("job", [{}, {"crop": True, "size": "preview"}, {"bg_color": "#336699"},
                                 {"keep_invisible_rgb": True}, {"channels": "alpha"}, {"format": "webp"}])
def test_a_cutout_filtered_on_the_device_is_the_host_written_one(tmp_path, task_weights, job):
    """PNG_FILTER_ON_DEVICE (on by default with CUDA) moves the filter, not a pixel: the file decodes to
    what the host path writes, and the lane runs the filter only for an RGB/RGBA PNG."""
    photo = encoded(Image.open(CAR).convert("RGB").resize((300, 200)), "JPEG")
    answers, pixels = {}, {}
    for on_device in (False, True):
        bucket = Bucket(tmp_path / str(on_device), task_weights, png_filter_on_device=on_device)
        bucket.put("ogs/photo", photo)
        answers[on_device] = bucket.run({"id": "photo", "model": "u2netp", **job})
        pixels[on_device] = np.asarray(bucket.read(answers[on_device]["key"]))
    assert np.array_equal(pixels[True], pixels[False])
    filters = [("png_filter" in answers[on_device]["timings_ms"]) for on_device in (False, True)]
    assert filters == [False, job.get("format", "png") == "png" and "channels" not in job], answers
