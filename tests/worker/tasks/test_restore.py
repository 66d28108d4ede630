"""The restore task: every missing weight file named at once, tiny images with the background
upsampler, and the colour under fully transparent pixels kept."""
from __future__ import annotations

import numpy as np
from PIL import Image

from tests.worker.tasks.conftest import Bucket, encoded


def test_every_missing_weight_file_is_named_at_once(tmp_path):
    (tmp_path / "weights").mkdir()
    bucket = Bucket(tmp_path / "bucket", tmp_path / "weights")
    bucket.put("ogs/photo", encoded(Image.new("RGB", (8, 8))))
    error = bucket.refused({"id": "photo", "task": "restore", "bg_upsampler": "realesrgan"})
    assert error.startswith("weights for 4 models this job needs are missing: 'gfpgan-v1.4' (GFPGANv1.4.pth), "
                            "'retinaface-resnet50' (detection_Resnet50_Final.pth), 'parsenet' (parsing_parsenet.pth), "
                            "'realesrgan-x2plus' (RealESRGAN_x2plus.pth)"), error
    assert "python -m builder.fetch_weights gfpgan-v1.4 retinaface-resnet50 parsenet realesrgan-x2plus" in error


def test_a_tiny_image_with_the_background_upsampler(bucket):
    bucket.put("ogs/dot", encoded(Image.new("RGBA", (1, 1), (10, 20, 30, 0))))
    answer = bucket.run({"id": "dot", "task": "restore", "bg_upsampler": "realesrgan"})
    assert (answer["width"], answer["height"]) == (2, 2) == bucket.read(answer["key"]).size, answer


def test_the_colour_under_transparent_pixels_is_kept(bucket):
    """No face and upscale 1: GFPGANer returns the image as it is, and so does the task, the colour
    under alpha 0 included."""
    y, x = np.mgrid[0:24, 0:32]
    rgba = np.dstack([x * 8, y * 10, np.full_like(x, 90), np.where(x < 10, 0, 255)]).astype(np.uint8)
    bucket.put("ogs/rgba", encoded(Image.fromarray(rgba, "RGBA")))
    answer = bucket.run({"id": "rgba", "task": "restore", "upscale": 1})
    assert answer["faces_found"] == 0, answer
    assert np.array_equal(np.asarray(bucket.read(answer["key"])), rgba)
