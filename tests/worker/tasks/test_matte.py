"""The matte task's answers: plate errors name the plate, the answer's size is the written file's."""
from __future__ import annotations

import numpy as np
from PIL import Image

from tests.conftest import CAR
from tests.worker.tasks.conftest import Bucket, encoded


def pair(bucket: Bucket, name: str, size: tuple[int, int]) -> None:
    plate = Image.open(CAR).convert("RGB").resize(size)
    image = np.array(plate)
    image[size[1] // 4: 3 * size[1] // 4, size[0] // 3: 2 * size[0] // 3] = 230
    bucket.put(f"ogs/{name}", encoded(Image.fromarray(image)))
    bucket.put(f"bgr/{name}", encoded(plate))


def test_plate_errors_name_the_plate(bucket):
    pair(bucket, "photo", (40, 30))
    bucket.put("bgr/text", b"not an image")
    bucket.put("bgr/other-size", encoded(Image.new("RGB", (30, 40))))
    assert bucket.refused({"id": "photo", "task": "matte", "bgr_id": "text"}) == (
        "bgr/text: the background plate: cannot decode image: not an image format this worker reads")
    assert bucket.refused({"id": "photo", "task": "matte", "bgr_id": "other-size"}).startswith(
        "bgr/other-size: the background plate is 30x40 but the image is 40x30")
    assert bucket.refused({"id": "photo", "task": "matte", "bgr_id": "nothing"}).startswith(
        "no background plate at bgr/nothing")


def test_a_plate_over_the_pixel_limit_names_the_plate(tmp_path, task_weights):
    bucket = Bucket(tmp_path, task_weights, max_image_pixels=1200)
    bucket.put("ogs/photo", encoded(Image.new("RGB", (40, 30))))
    bucket.put("bgr/photo", encoded(Image.new("RGB", (50, 30))))
    assert bucket.refused({"id": "photo", "task": "matte"}) == (
        "bgr/photo: the background plate: image too large: 50x30 = 1500 pixels, the limit is 1200")


def test_the_answer_reports_the_written_files_size(bucket):
    pair(bucket, "photo", (800, 600))  # 0.48 MP: size=preview (0.25 MP) scales it down
    answer = bucket.run({"id": "photo", "task": "matte", "size": "preview"})
    written = bucket.read(answer["key"])
    assert (answer["width"], answer["height"]) == written.size and written.size[0] < 800


def test_tiny_images_are_matted_with_every_preset(bucket):
    pair(bucket, "dot", (1, 1))
    for knobs in ({"preset": "4k"}, {"backbone_scale": 0.03125}):
        answer = bucket.run({"id": "dot", "task": "matte", **knobs})
        assert (answer["width"], answer["height"]) == (1, 1) == bucket.read(answer["key"]).size, answer


def test_a_matte_filtered_on_the_device_is_the_host_written_one(tmp_path, task_weights):
    written = []
    for on_device in (False, True):
        bucket = Bucket(tmp_path / str(on_device), task_weights, png_filter_on_device=on_device)
        pair(bucket, "photo", (160, 120))
        answer = bucket.run({"id": "photo", "task": "matte"})
        assert ("png_filter" in answer["timings_ms"]) == on_device, answer
        written.append(np.asarray(bucket.read(answer["key"])))
    assert written[0].shape == (120, 160, 4) and np.array_equal(written[0], written[1])
