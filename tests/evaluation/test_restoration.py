"""python -m evaluation.restoration: the degraded copy, the measurement, and the command end to end
(real Real-ESRGAN weights for upscale; oracle stand-ins for the face networks of restore)."""
from __future__ import annotations

import csv
import dataclasses
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from evaluation import fidelity
from evaluation import restoration as ev
from imaging.resample import matlab_resize
from tests.conftest import DEVICE, REPO, SHARED, link_real_weights

PHOTO = SHARED / "data" / "upscale" / "gt01.png"


def crop_of_photo(height: int, width: int) -> torch.Tensor:
    pixels = np.array(Image.open(PHOTO).convert("RGB"))[:height, :width]
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)


def test_mod_crop_drops_the_last_rows_and_columns():
    x = torch.arange(7 * 10).view(1, 7, 10)
    assert torch.equal(ev.mod_crop(x, 4), x[:, :4, :8])
    assert torch.equal(ev.mod_crop(x, 1), x)


def test_scale_alone_is_basicsrs_bicubic_lr_image():
    original = crop_of_photo(32, 40)
    assert torch.equal(ev.degrade(original, ev.Degradation(scale=4)), matlab_resize(original, 0.25))
    with pytest.raises(ValueError, match="multiple of the scale"):
        ev.degrade(original[:, :31], ev.Degradation(scale=4))


def test_every_step_of_the_degradation_is_applied_and_the_noise_is_seeded():
    original = crop_of_photo(48, 48)
    plain = ev.degrade(original, ev.Degradation(scale=2))
    steps = [dataclasses.replace(ev.RESTORE_DEGRADATION, **off) for off in
             ({}, {"blur": 0.0}, {"noise": 0.0}, {"jpeg": 0})]
    copies = [ev.degrade(original, d) for d in steps]
    assert all(c.shape == (3, 24, 24) and c.dtype == torch.uint8 for c in copies)
    assert len({c.numpy().tobytes() for c in [plain, *copies]}) == 5  # each step changes the copy
    again = ev.degrade(original, ev.RESTORE_DEGRADATION)
    other_seed = ev.degrade(original, dataclasses.replace(ev.RESTORE_DEGRADATION, seed=1))
    assert torch.equal(again, copies[0]) and not torch.equal(other_seed, copies[0])


@pytest.mark.parametrize("text,message", [("scale=2.5", "right kind"), ("sharpness=3", "name=value"),
                                          ("noise", "name=value"), ("jpeg=101", "jpeg quality"),
                                          ("blur=-1", "blur and noise")])
def test_bad_degradations_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        ev.parse_degradation(text, ev.RESTORE_DEGRADATION)


def test_parse_degradation_changes_only_what_it_names():
    d = ev.parse_degradation(" noise=2.5, seed=7 ", ev.RESTORE_DEGRADATION)
    assert d == dataclasses.replace(ev.RESTORE_DEGRADATION, noise=2.5, seed=7)


def test_the_bicubic_procedure_scores_the_baseline(tmp_path):
    Image.open(PHOTO).convert("RGB").crop((0, 0, 42, 37)).save(tmp_path / "a.png")
    Image.open(PHOTO).convert("RGB").crop((10, 5, 50, 45)).save(tmp_path / "b.png")
    degradation, measure = ev.Degradation(scale=2, noise=3.0), ev.Measure(crop_border=2)
    bicubic = lambda degraded: ev.Output(ev.bicubic_enlargement(degraded, 2))  # noqa: E731
    results = list(ev.evaluate(ev.files_by_stem(tmp_path), bicubic, degradation, measure, torch.device("cpu")))
    assert [r.image for r, _ in results] == ["a", "b"]
    row, pictures = results[0]
    assert (row.width, row.height) == (42, 36)  # mod-cropped
    assert row.psnr == row.bicubic_psnr and row.ssim == row.bicubic_ssim
    original = torch.from_numpy(pictures.original).permute(2, 0, 1)
    output = torch.from_numpy(pictures.output).permute(2, 0, 1)
    assert row.psnr == fidelity.psnr(original, output, crop_border=2)
    assert 15 < row.psnr < 40 and 0 < row.ssim < 1
    mean = ev.mean_row([r for r, _ in results])
    assert mean.psnr == pytest.approx((results[0][0].psnr + results[1][0].psnr) / 2)


def run_command(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "evaluation.restoration", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_upscale_command_with_the_real_weights(tmp_path):
    images = tmp_path / "originals"
    images.mkdir()
    Image.open(PHOTO).convert("RGB").crop((0, 0, 50, 43)).save(images / "gt01.png")
    weights = link_real_weights(tmp_path / "weights")
    out, sheet = tmp_path / "out", tmp_path / "sheet.png"
    done = run_command("--task", "upscale", "--images", str(images), "--weights-dir", str(weights),
                       "--device", DEVICE, "--precision", "float32", "--out", str(out), "--sheet", str(sheet),
                       "--no-warmup")
    assert done.returncode == 0, done.stderr
    assert "realesrgan-x4plus (float32)" in done.stdout and "MATLAB bicubic /4" in done.stdout
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["image"] for r in rows] == ["gt01", "mean"]
    original = torch.from_numpy(np.array(Image.open(images / "gt01.png"))[:40, :48].copy()).permute(2, 0, 1)
    output = torch.from_numpy(np.array(Image.open(out / "realesrgan-x4plus" / "gt01.png"))).permute(2, 0, 1)
    assert output.shape == original.shape
    assert float(rows[0]["psnr"]) == pytest.approx(fidelity.psnr(original, output, crop_border=4), abs=1e-4)
    assert float(rows[0]["ssim"]) == pytest.approx(fidelity.ssim(original, output, crop_border=4), abs=1e-6)
    assert 15 < float(rows[0]["psnr"]) < 45 and math.isfinite(float(rows[0]["psnr_bicubic"]))
    degraded = np.array(Image.open(out / "degraded" / "gt01.png"))
    assert degraded.shape == (10, 12, 3)
    assert Image.open(sheet).size[1] > 256


@pytest.mark.slow
def test_restore_command_counts_faces(tmp_path, install_stand_ins):
    images = tmp_path / "originals"
    images.mkdir()
    Image.open(PHOTO).convert("RGB").crop((0, 0, 64, 64)).save(images / "face.png")
    weights = tmp_path / "weights"
    install_stand_ins(["retinaface-resnet50", "gfpgan-v1.4", "parsenet"], weights)
    done = run_command("--task", "restore", "--images", str(images), "--weights-dir", str(weights),
                       "--device", DEVICE, "--precision", "float32", "--out", str(tmp_path / "out"), "--no-warmup")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((tmp_path / "out" / "metrics.csv").open()))
    assert rows[0]["faces"].isdigit() and rows[0]["degradation"].startswith("Gaussian blur sigma 1.5")
    restored = np.array(Image.open(tmp_path / "out" / "gfpgan-v1.4" / "face.png"))
    assert restored.shape == (64, 64, 3)


@pytest.mark.parametrize("args,message", [
    (["--task", "upscale", "--model", "gfpgan-v1.4"], "not a registered upscaler"),
    (["--task", "upscale", "--degrade", "scale=2"], "enlarges by 4"),
    (["--task", "restore", "--degrade", "noise"], "name=value"),
])
def test_bad_arguments_are_clear_errors(tmp_path, capsys, args, message):
    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    code = ev.main(["--images", str(tmp_path), "--weights-dir", str(link_real_weights(tmp_path / "w")),
                    "--device", "cpu", *args])
    assert code == 2 and message in capsys.readouterr().err


def test_pattern_picks_the_originals_out_of_a_folder(tmp_path):
    for name in ("gt01.png", "gt01.RealESRGAN_x4plus.tile0.png", "gt05.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert list(ev.files_by_stem(tmp_path)) == ["gt01.RealESRGAN_x4plus.tile0", "gt01", "gt05"]
    assert list(ev.files_by_stem(tmp_path, "gt0?.png")) == ["gt01"]
    assert list(ev.files_by_stem(tmp_path, "gt0[15].[jp]*")) == ["gt01", "gt05"]
