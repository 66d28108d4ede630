"""The confidence figure on constructed mattes and on real u2netp mattes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from imaging.confidence import matte_confidence
from imaging.decode import decode
from models import registry
from pipeline.segmentation.postprocess import full_size_alpha
from pipeline.segmentation.segment import predict_mattes
from tests.conftest import SHARED


def _disc(soft_rim: int) -> torch.Tensor:
    """A disc of radius 40 on 100x100 whose alpha falls linearly to 0 over `soft_rim` pixels."""
    yy, xx = torch.meshgrid(torch.arange(100.0), torch.arange(100.0), indexing="ij")
    distance = torch.hypot(yy - 50, xx - 50)
    ramp = ((40 - distance) / max(soft_rim, 1e-9)).clamp(0, 1) if soft_rim else (distance <= 40).float()
    return ramp.mul(255).round().to(torch.uint8)


def test_constructed_mattes():
    hard = matte_confidence(_disc(0))
    assert hard.confidence == 1.0 and hard.uncertain == 0.0
    assert hard.foreground == pytest.approx(float((_disc(0) == 255).float().mean()))
    soft = matte_confidence(_disc(10))
    # alpha = round(25.5 * (40 - d)) at distance d: >= 230 (foreground) for d <= 31, 26..229 (uncertain)
    # for 31 < d <= 39, so the areas are pi 31^2 = 3019 and pi (39^2 - 31^2) = 1759 pixels (of 10,000;
    # the pixels counted inside those circles come within 1 % of the areas)
    foreground, uncertain = math.pi * 31**2, math.pi * (39**2 - 31**2)
    assert soft.foreground == pytest.approx(foreground / 10_000, rel=0.015)
    assert soft.uncertain == pytest.approx(uncertain / 10_000, rel=0.015)
    assert soft.confidence == pytest.approx(foreground / (foreground + uncertain), rel=0.015)
    assert 0.5 < soft.confidence < hard.confidence
    assert matte_confidence(torch.full((50, 50), 128, dtype=torch.uint8)).confidence == 0.0


def test_empty_matte_scores_zero_with_no_foreground():
    empty = matte_confidence(torch.zeros(1, 64, 64, dtype=torch.uint8))
    assert (empty.confidence, empty.foreground, empty.uncertain) == (0.0, 0.0, 0.0)


def test_frames_add_up():
    frames = torch.stack([_disc(0), torch.zeros(100, 100, dtype=torch.uint8)])
    both = matte_confidence(frames)
    assert both.confidence == 1.0 and both.foreground == pytest.approx(matte_confidence(_disc(0)).foreground / 2)


def test_noise_matte_scores_badly():
    noise = torch.randint(0, 256, (256, 256), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    figures = matte_confidence(noise)
    assert figures.confidence < 0.2 and figures.uncertain > 0.7


@pytest.fixture(scope="module")
def u2netp():
    return registry.load("u2netp", weights_dir=SHARED / "weights")


def _real_matte(model, rgb: np.ndarray, image) -> torch.Tensor:
    return full_size_alpha(predict_mattes(model, registry.get_spec("u2netp"), [rgb], batch_size=1)[0], image)


def test_real_subject_scores_well_and_a_noise_photo_badly(u2netp):
    """car-1: a clean product shot, measured 0.915. Random noise as the photo: what the network finds
    is soft everywhere, measured 0.00003 (a soft fifth of the image, next to nothing clearly foreground)."""
    photo = decode((SHARED / "data" / "rembg" / "car-1.jpg").read_bytes(), 10**9)
    car = matte_confidence(_real_matte(u2netp, photo.rgb, photo))
    assert car.confidence > 0.85 and car.foreground > 0.1
    noise = np.random.default_rng(0).integers(0, 256, photo.rgb.shape, dtype=np.uint8)
    unsure = matte_confidence(_real_matte(u2netp, noise, photo))
    assert unsure.confidence < 0.2
