"""python -m evaluation.evaluate: finding the pairs, measuring any alpha function, and the command end to end."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evaluation import evaluate as ev
from imaging.decode import DecodedImage
from tests.conftest import REPO, SHARED

ALPHAMATTING = SHARED / "data" / "alphamatting"


def save(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """One folder in the hires layout: a.png + a_alpha.png + a_trimap.png, b.png with no alpha."""
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:, 10:] = 200
    alpha = np.zeros((20, 30), np.uint8)
    alpha[:, 15:] = 255
    trimap = np.zeros((20, 30), np.uint8)
    trimap[:, 10:20] = 128
    trimap[:, 20:] = 255
    save(tmp_path / "a.png", rgb)
    save(tmp_path / "a_alpha.png", alpha)
    save(tmp_path / "a_trimap.png", trimap)
    save(tmp_path / "b.png", rgb)
    return tmp_path


def test_find_samples_in_one_folder(tiny):
    samples, skipped = ev.find_samples(tiny, tiny, "_alpha")
    assert [(s.name, s.image.name, s.alpha.name, s.trimap) for s in samples] == [("a", "a.png", "a_alpha.png", None)]
    assert skipped == ["a_trimap", "b"]  # without --trimaps, a trimap is one more picture with no alpha
    samples, _ = ev.find_samples(tiny, tiny, "_alpha", tiny, "_trimap")
    assert samples[0].trimap.name == "a_trimap.png"


def test_find_samples_in_the_alphamatting_layout():
    samples, skipped = ev.find_samples(ALPHAMATTING / "image", ALPHAMATTING / "alpha",
                                       trimaps=ALPHAMATTING / "trimap")
    assert len(samples) == 18 and not skipped
    assert samples[0].name == "GT01" and samples[0].trimap == ALPHAMATTING / "trimap" / "GT01.png"
    assert [s.name for s in ev.find_samples(ALPHAMATTING / "image", ALPHAMATTING / "alpha", limit=2)[0]] == \
        ["GT01", "GT02"]


def constant_method(value: int) -> ev.Method:
    def alpha_of(image: DecodedImage) -> torch.Tensor:
        width, height = image.size
        return torch.full((height, width), value, dtype=torch.uint8)

    return ev.Method(f"const{value}", alpha_of)


def test_any_alpha_function_can_be_measured(tiny):
    """The alpha function is a parameter: a perfect one has no error, an all-opaque one a known error."""
    samples, _ = ev.find_samples(tiny, tiny, "_alpha")
    truth = ev.read_grey(samples[0].alpha)
    perfect = ev.Method("perfect", lambda image: torch.from_numpy(truth.copy()))
    (row, alpha, image, true), = ev.evaluate(samples, perfect)
    assert row.errors == {"sad": 0.0, "mse": 0.0, "grad": 0.0, "conn": 0.0, "mad": 0.0, "iou": 1.0}
    assert (row.width, row.height) == (30, 20) and row.ms >= 0
    assert np.array_equal(alpha, truth) and np.array_equal(true, truth)

    (row, *_), = ev.evaluate(samples, constant_method(255), warmup=False)
    assert row.errors["sad"] == pytest.approx(20 * 15 / 1000)  # the 15 transparent columns are wrong
    assert row.errors["mad"] == pytest.approx(0.5)
    assert row.errors["iou"] == pytest.approx(0.5)


def test_trimaps_restrict_the_benchmark_errors(tiny):
    samples, _ = ev.find_samples(tiny, tiny, "_alpha", tiny, "_trimap")
    (row, *_), = ev.evaluate(samples, constant_method(255))
    # Unknown band: columns 10-19, wrong in 10-14: 100 pixels of 200.
    assert row.errors["sad"] == pytest.approx(100 / 1000)
    assert row.errors["mse"] == pytest.approx(0.5)
    assert row.errors["mad"] == pytest.approx(0.5)  # whole image, as without trimaps


def test_mean_row():
    rows = [ev.Row("m", "a", 1, 1, {k: 1.0 for k in ev.metrics.METRICS}, 10.0),
            ev.Row("m", "b", 1, 1, {k: 3.0 for k in ev.metrics.METRICS}, 30.0)]
    mean = ev.mean_row(rows)
    assert mean.image == "mean" and mean.ms == 20.0 and set(mean.errors.values()) == {2.0}


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "weights" / "u2netp.pth").is_file(), reason="needs ../shared/weights/u2netp.pth")
def test_command_end_to_end_with_real_u2netp(tmp_path):
    out, sheet = tmp_path / "out", tmp_path / "sheet.png"
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-m", "evaluation.evaluate", "--model", "u2netp",
         "--images", str(ALPHAMATTING / "image"), "--alphas", str(ALPHAMATTING / "alpha"),
         "--weights-dir", str(SHARED / "weights"), "--limit", "2", "--threads", "2",
         "--out", str(out), "--sheet", str(sheet)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("over the whole image" in line for line in lines if line.startswith("#"))
    rows = {line.split()[0]: line.split() for line in lines if line and not line.startswith(("#", "-", "image"))}
    assert set(rows) == {"GT01", "GT02", "mean"}
    for name in ("GT01", "GT02"):
        assert rows[name][1] == "u2netp" and len(rows[name]) == 10
        sad, mse, grad, conn, mad, iou, ms = map(float, rows[name][3:])
        assert 0 < sad < 50 and 0 < mad < 0.1 and 0.9 < iou <= 1 and ms > 0  # u2netp does well on these
    assert float(rows["mean"][2]) == pytest.approx((float(rows["GT01"][3]) + float(rows["GT02"][3])) / 2, abs=2e-3)

    for name, size in (("GT01", (800, 497)), ("GT02", (800, 524))):
        matte = Image.open(out / "u2netp" / f"{name}.png")
        assert matte.mode == "L" and matte.size == size
    with (out / "metrics.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["image"] for r in table] == ["GT01", "GT02", "mean"]
    assert table[0]["model"] == "u2netp" and table[0]["region"] == "whole image"
    assert float(table[0]["sad"]) == pytest.approx(float(rows["GT01"][3]), abs=1e-3)
    picture = Image.open(sheet)
    assert picture.format == "PNG" and picture.height > 2 * 160  # two rows of 160 pixels
