"""The upscale task on inputs at the edges: tiny images, pads wider than the image, odd tiles for the
x2 network, and the colour under fully transparent pixels."""
from __future__ import annotations

import numpy as np
from PIL import Image

from models import registry
from pipeline.restoration.upscale import UpscaleParams, upscale
from tests.worker.tasks.conftest import encoded


def test_tiny_images_and_pads_wider_than_the_image_are_upscaled(bucket):
    bucket.put("ogs/dot", encoded(Image.new("RGB", (1, 1), (200, 30, 30))))
    bucket.put("ogs/strip", encoded(Image.new("RGBA", (3, 1), (10, 200, 30, 128))))
    for job, size in [({"id": "dot", "scale": 2}, (2, 2)), ({"id": "dot", "pre_pad": 512}, (4, 4)),
                      ({"id": "strip", "scale": 2}, (6, 2)), ({"id": "strip", "pre_pad": 7, "tile": 2}, (12, 4))]:
        answer = bucket.run({"task": "upscale", **job})
        assert (answer["width"], answer["height"]) == size == bucket.read(answer["key"]).size, (job, answer)


def test_tiles_the_x2_network_cannot_take_are_refused_naming_the_knob(bucket):
    bucket.put("ogs/photo", encoded(Image.new("RGB", (8, 8))))
    assert bucket.refused({"id": "photo", "task": "upscale", "scale": 2, "tile": 3}) == (
        "tile: 3 is not a multiple of 2, which the x2 network needs; use 4")
    assert bucket.refused({"id": "photo", "task": "upscale", "scale": 2, "tile": 4, "tile_pad": 5}).startswith(
        "tile_pad: 5 is not a multiple of 2")


def test_the_colour_under_transparent_pixels_is_kept(bucket, task_weights):
    """As RealESRGANer: the colour the network gives under alpha 0 is written, not zeroed."""
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (6, 8, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[:3, :4, 3] = 0
    bucket.put("ogs/rgba", encoded(Image.fromarray(rgba, "RGBA")))
    answer = bucket.run({"id": "rgba", "task": "upscale", "alpha_upsampler": "linear"})
    written = np.asarray(bucket.read(answer["key"]))
    expected = upscale(registry.load("realesrgan-x4plus", task_weights), rgba, 4,
                       UpscaleParams(alpha_upsampler="linear"))
    invisible = written[..., 3] == 0
    assert invisible.sum() > 0 and written[invisible][:, :3].max() > 0
    assert np.abs(written[invisible].astype(int) - expected[invisible].astype(int)).max() <= 1
