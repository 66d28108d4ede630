"""Network inputs: each checkpoint's recipe (the exact-recipe tests against real photos live with the models)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from models import registry
from pipeline.segmentation.preprocess import _STRIPS_FROM_PIXELS, network_batch, threaded_pil_resize
from tests.conftest import SHARED


def test_deeplabv3_keeps_the_aspect_ratio_like_carvekits_thumbnail():
    rgb = (np.random.default_rng(0).random((600, 1600, 3)) * 255).astype(np.uint8)
    recipe = registry.get_spec("deeplabv3").preprocess
    x = network_batch([rgb], recipe, torch.device("cpu"), torch.float32)
    expected = Image.fromarray(rgb)
    expected.thumbnail((1024, 1024), Image.Resampling.BICUBIC, reducing_gap=2.0)
    assert x.shape == (1, 3, expected.size[1], expected.size[0]) == (1, 3, 384, 1024)
    pixels = np.asarray(expected, dtype=np.float64) / 255
    mean, std = np.asarray(recipe.mean), np.asarray(recipe.std)
    assert torch.allclose(x[0], torch.from_numpy(((pixels - mean) / std).transpose(2, 0, 1)).float())


def test_small_images_are_not_enlarged_by_a_thumbnail():
    rgb = np.zeros((100, 50, 3), np.uint8)
    x = network_batch([rgb], registry.get_spec("deeplabv3").preprocess, torch.device("cpu"), torch.float32)
    assert x.shape == (1, 3, 100, 50)


def test_stretch_recipes_give_the_network_size():
    rgb = np.zeros((100, 50, 3), np.uint8)
    x = network_batch([rgb, rgb], registry.get_spec("u2netp").preprocess, torch.device("cpu"), torch.float32)
    assert x.shape == (2, 3, 320, 320)


def test_batches_are_split_to_fit_memory_and_refused_when_one_does_not(monkeypatch):
    """BiRefNet's scratch memory at seg_mask_size 4096 is ~13 GB an image: a batch is split to fit the
    free memory, and an input that cannot fit even alone is a clear caller error, not an OOM."""
    import pytest

    from pipeline.segmentation import segment
    from models.birefnet import BiRefNet

    per_image = BiRefNet.workspace_bytes(1, 4096, 4096)
    assert 12 * 2**30 < per_image < 14 * 2**30
    model = torch.nn.Linear(1, 1)
    model.workspace_bytes = BiRefNet.workspace_bytes
    monkeypatch.setattr(segment, "free_bytes", lambda device: int(2.5 * per_image / segment.WORKSPACE_SHARE))
    assert segment.fitting_batch(model, torch.device("cpu"), 4, (4096, 4096)) == 2
    monkeypatch.setattr(segment, "free_bytes", lambda device: per_image // 2)
    with pytest.raises(segment.WorkTooLarge, match="seg_mask_size: a 4096x4096 network input needs about"):
        segment.fitting_batch(model, torch.device("cpu"), 4, (4096, 4096))
    assert segment.fitting_batch(torch.nn.Linear(1, 1), torch.device("cpu"), 4, (4096, 4096)) == 4


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A real photo above the size from which threaded_pil_resize splits the work into strips."""
    image = Image.open(SHARED / "data" / "hires" / "GT04.jpg").convert("RGB")
    assert image.width * image.height >= _STRIPS_FROM_PIXELS
    return image


@pytest.mark.parametrize("rotate", [False, True])  # portrait: Pillow 13 runs the vertical pass first
@pytest.mark.parametrize("size", [(320, 320), (1024, 1024), (333, 517), (3000, 97)])
@pytest.mark.parametrize("resample", [Image.Resampling.LANCZOS, Image.Resampling.BICUBIC])
def test_strip_resize_equals_one_pillow_resize(photo, rotate, size, resample):
    image = photo.transpose(Image.Transpose.ROTATE_90) if rotate else photo
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ours = np.asarray(threaded_pil_resize(image, size, resample))
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(ours, np.asarray(image.resize(size, resample)))
