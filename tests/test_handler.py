"""The worker end to end, as RunPod runs it: handler.py in a subprocess, against a real HTTP S3."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import requests
from PIL import Image

from tests.conftest import (
    CAR,
    REPO,
    SHARED,
    free_port,
    keys_under,
    photo_bytes,
    png_filter_types,
    read_png,
    run_local,
    runsync,
    serve_api,
    worker_env,
)


def test_local_mode_writes_the_cutout(s3_server, bucket):
    name, client = bucket
    client.put_object(Bucket=name, Key="ogs/car 1", Body=CAR.read_bytes())
    done = run_local(worker_env(s3_server, name), {"id": "car 1", "model": "u2netp"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "car 1" in done.stdout and "local_test" in done.stdout  # job id on the log lines
    image = read_png(client, name, "img/car 1/trans.png")
    original = Image.open(CAR)
    assert image.mode == "RGBA" and image.size == original.size
    alpha = np.asarray(image)[..., 3] >= 128
    reference = np.asarray(Image.open(SHARED / "data" / "rembg" / "car-1.u2netp.png"))[..., 3] >= 128
    assert (alpha & reference).sum() / (alpha | reference).sum() > 0.98  # rembg's own u2netp cut-out
    # the colour channels are the photo's own where visible, zeroed under fully transparent pixels
    pixels, photo = np.asarray(image), np.asarray(original.convert("RGB"))
    visible = pixels[..., 3] > 0
    assert np.array_equal(pixels[visible][:, :3], photo[visible]) and not pixels[~visible][:, :3].any()
    png = client.get_object(Bucket=name, Key="img/car 1/trans.png")["Body"].read()
    assert png_filter_types(png) == {4}  # our compact writer's Paeth rows (Pillow's choice varies per row)


def test_local_mode_turns_a_clip_in_s3_into_an_alpha_video(s3_server, bucket, tmp_path):
    from tests.clips import read_back, write_clip

    name, client = bucket
    clip = write_clip(tmp_path / "clip.mp4", frames=4)
    client.put_object(Bucket=name, Key="ogs/clip", Body=clip.read_bytes())
    done = run_local(worker_env(s3_server, name), {"id": "clip", "model": "u2netp", "video_format": "mov"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert keys_under(client, name, "img/") == ["img/clip/trans.mov"]
    head = client.head_object(Bucket=name, Key="img/clip/trans.mov")
    assert head["ContentType"] == "video/quicktime"
    (tmp_path / "out.mov").write_bytes(client.get_object(Bucket=name, Key="img/clip/trans.mov")["Body"].read())
    back = read_back(tmp_path / "out.mov")
    assert len(back["frames"]) == 4 and back["pixel_formats"] == {"yuva444p12le"} and back["audio"] == "aac"


def test_local_mode_failure_exits_1_and_writes_nothing(s3_server, bucket):
    name, client = bucket
    done = run_local(worker_env(s3_server, name), {"id": "nothing-here", "model": "u2netp"})
    assert done.returncode == 1
    assert "no image at ogs/nothing-here" in done.stdout + done.stderr
    assert keys_under(client, name, "img/") == []


@pytest.mark.slow
def test_default_model_without_weights_is_a_clear_error(s3_server, bucket):
    name, client = bucket
    client.put_object(Bucket=name, Key="ogs/car", Body=CAR.read_bytes())
    done = run_local(worker_env(s3_server, name), {"id": "car"})
    assert done.returncode == 1
    out = done.stdout + done.stderr
    assert "weights for model 'briaai/RMBG-2.0' are missing" in out
    assert "python -m builder.fetch_weights briaai/RMBG-2.0" in out
    assert "gated repo: accept its licence, CC BY-NC 4.0" in out and "HF_TOKEN" in out
    assert "segmentation models whose weights are here: u2netp, isnet-general-use" in out
    assert "Traceback" not in out


@pytest.mark.slow
def test_test_input_json_in_working_directory(s3_server, bucket, tmp_path):
    name, client = bucket
    client.put_object(Bucket=name, Key="ogs/from-file", Body=CAR.read_bytes())
    (tmp_path / "test_input.json").write_text(json.dumps({"input": {"id": "from-file", "model": "u2netp",
                                                                    "task": "mask"}}))
    done = subprocess.run([sys.executable, str(REPO / "handler.py")], env=worker_env(s3_server, name),
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    mask = read_png(client, name, "img/from-file/mask.png")
    assert mask.mode == "L" and mask.size == Image.open(CAR).size


# --- the API server: one worker process, many jobs ---------------------------------------------------

@pytest.fixture(scope="module")
def api(s3_server):
    import boto3

    name = f"api-bucket-{free_port()}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=name)
    with serve_api(worker_env(s3_server, name, MAX_IMAGE_PIXELS="4000000")) as url:
        yield url, name, client


def bad_inputs() -> dict[str, tuple[bytes, str]]:
    """Objects the worker must refuse with a clear error (each name -> bytes, expected message)."""
    jpeg = CAR.read_bytes()
    return {
        "text": (b"hello, I am not an image", "cannot decode image"),
        "empty": (b"", "cannot decode image"),
        "truncated": (jpeg[: len(jpeg) // 3], "cannot decode image"),
        "bomb": (photo_bytes(Image.new("L", (5000, 5000)), "PNG"), "image too large"),
        "fake-png": (b"\x89PNG\r\n\x1a\n" + os.urandom(64), "cannot decode image"),
    }


def good_inputs() -> dict[str, bytes]:
    photo = Image.open(CAR).convert("RGB")
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.new("L", photo.size, 200))
    frames = [photo, photo.rotate(90)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[0x0112] = 8
    return {
        "cmyk.jpg": photo_bytes(photo.convert("CMYK"), "JPEG"),
        "progressive.jpg": photo_bytes(photo, "JPEG", progressive=True),
        "rotated.jpg": photo_bytes(photo, "JPEG", exif=exif),
        "grey.png": photo_bytes(photo.convert("L"), "PNG"),
        "grey16.png": photo_bytes(Image.fromarray(np.asarray(photo.convert("L")).astype(np.uint16) * 257), "PNG"),
        "palette.png": photo_bytes(photo.convert("P"), "PNG"),
        "alpha.png": photo_bytes(rgba, "PNG"),
        "photo.webp": photo_bytes(photo, "WEBP"),
        "anim.gif": gif.getvalue(),
        "photo.bmp": photo_bytes(photo, "BMP"),
        "photo.tiff": photo_bytes(photo, "TIFF"),
        # pages of different sizes: not an animation, the first page is the image
        "pages.tiff": photo_bytes(photo, "TIFF", save_all=True, append_images=[photo.resize((31, 17))]),
        "tiny.png": photo_bytes(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG"),
    }


@pytest.mark.slow
def test_bad_images_answer_errors_and_the_worker_goes_on(api):
    url, name, client = api
    for key, (data, message) in bad_inputs().items():
        client.put_object(Bucket=name, Key=f"ogs/bad/{key}", Body=data)
        answer = runsync(url, {"id": f"bad/{key}", "model": "u2netp"})
        assert answer["status"] == "FAILED", (key, answer)
        assert isinstance(answer["error"], str) and message in answer["error"], (key, answer)
        assert "Traceback" not in answer["error"]
    assert keys_under(client, name, "img/") == []
    client.put_object(Bucket=name, Key="ogs/after-bad", Body=CAR.read_bytes())
    answer = runsync(url, {"id": "after-bad", "model": "u2netp"})
    assert answer["status"] == "COMPLETED" and answer["output"]["key"] == "img/after-bad/trans.png"


@pytest.mark.slow
@pytest.mark.parametrize("job_input,message", [
    ({"id": "../x", "model": "u2netp"}, "id: must not contain '..'"),
    ({"id": "/x"}, "id: must not start with '/'"),
    ({"id": "x", "model": "sam2"}, "model: unknown model 'sam2'; allowed: "),
    ({"id": "x", "task": "paint"}, "task: 'paint' is not allowed; allowed values:"),
    ({"id": "x", "model": "u2netp", "task": "restore"}, "model: 'u2netp' is not a face restorer network; allowed: "),
    ({"id": "x", "speed": "fast"}, "unknown key 'speed'"),
    ({"id": "missing", "model": "u2netp"}, "no image at ogs/missing"),
])
def test_bad_jobs_answer_errors(api, job_input, message):
    url, name, client = api
    before = keys_under(client, name, "img/")  # what earlier tests of this module wrote
    answer = runsync(url, job_input)
    assert answer["status"] == "FAILED" and message in answer["error"], answer
    assert keys_under(client, name, "img/") == before


@pytest.mark.slow
def test_inputs_it_must_survive_give_correct_cutouts(api):
    url, name, client = api
    for key, data in good_inputs().items():
        client.put_object(Bucket=name, Key=f"ogs/good/{key}", Body=data)
        answer = runsync(url, {"id": f"good/{key}", "model": "u2netp"})
        assert answer["status"] == "COMPLETED", (key, answer)
        out = read_png(client, name, f"img/good/{key}/trans.png")
        expected = (1, 1) if key == "tiny.png" else Image.open(CAR).size
        if key == "rotated.jpg":
            expected = expected[::-1]
        assert out.mode == "RGBA" and out.size == expected, key
        assert (answer["output"]["width"], answer["output"]["height"]) == expected
    alpha = np.asarray(read_png(client, name, "img/good/alpha.png/trans.png"))[..., 3]
    assert alpha.max() <= 200  # the image's own alpha caps the matte


@pytest.mark.slow
def test_bg_color_and_mask_task(api):
    url, name, client = api
    client.put_object(Bucket=name, Key="ogs/colour", Body=CAR.read_bytes())
    answer = runsync(url, {"id": "colour", "model": "u2netp", "bg_color": "#00ff00"})
    assert answer["status"] == "COMPLETED", answer
    out = read_png(client, name, "img/colour/trans.png")
    assert out.mode == "RGB"
    mask = runsync(url, {"id": "colour", "model": "u2netp", "task": "mask"})
    alpha = np.asarray(read_png(client, name, mask["output"]["key"]))
    pixels = np.asarray(out).astype(int)
    background = alpha == 0
    assert (pixels[background] == [0, 255, 0]).all()


def s3_record(bucket_name: str, key: str) -> dict:
    from urllib.parse import quote_plus

    return {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket_name}, "object": {"key": quote_plus(key, safe="/")}}}


@pytest.mark.slow
def test_s3_event_with_several_records(api):
    url, name, client = api
    for key in ("ev/one", "ev/two two"):
        client.put_object(Bucket=name, Key=f"ogs/{key}", Body=CAR.read_bytes())
    records = [s3_record(name, "ogs/ev/one"), s3_record(name, "ogs/ev/two two"),
               s3_record(name, "img/ev/one/trans.png"), s3_record(name, "ogs/ev/absent")]
    answer = runsync(url, {"Records": records, "model": "u2netp"})
    assert answer["status"] == "COMPLETED", answer
    results = answer["output"]["results"]
    assert results[0]["key"] == "img/ev/one/trans.png" and results[1]["key"] == "img/ev/two two/trans.png"
    assert "outside ogs/" in results[2]["skipped"]
    assert results[3]["error"] == "no image at ogs/ev/absent"
    assert set(keys_under(client, name, "img/ev/")) == {"img/ev/one/trans.png", "img/ev/two two/trans.png"}


@pytest.mark.slow
def test_forwarder_posts_to_the_endpoint(api, monkeypatch):
    url, name, client = api
    from forwarder.lambda_function import lambda_handler

    client.put_object(Bucket=name, Key="ogs/fwd/a b", Body=CAR.read_bytes())
    monkeypatch.setenv("RUNPOD_ENDPOINT_URL", url)
    monkeypatch.setenv("JOB_OPTIONS", json.dumps({"model": "u2netp"}))
    result = lambda_handler({"Records": [s3_record(name, "ogs/fwd/a b"), s3_record(name, "other/x")]})
    assert [s["id"] for s in result["submitted"]] == ["fwd/a b"] and result["failed"] == []
    job_id = result["submitted"][0]["job"]
    status = requests.post(f"{url}/status/{job_id}", timeout=300).json()  # the local server runs it now
    assert status["status"] == "COMPLETED", status
    assert read_png(client, name, "img/fwd/a b/trans.png").size == Image.open(CAR).size


@pytest.mark.slow
def test_rmbg_default_model_on_oracle_checkpoint(s3_server, bucket, tmp_path, install_stand_ins):
    """The default model end to end: the oracle's RMBG-2.0 stand-in saved as model.safetensors."""
    import torch

    import torch.nn.functional as F

    from models import registry

    name, client = bucket
    spec = registry.get_spec("briaai/RMBG-2.0")
    install_stand_ins([spec.name], tmp_path)
    photo = Image.open(CAR).convert("RGB").resize((240, 180))
    client.put_object(Bucket=name, Key="ogs/rmbg", Body=photo_bytes(photo, "PNG"))
    done = run_local(worker_env(s3_server, name, WEIGHTS_DIR=str(tmp_path)), {"id": "rmbg"})
    assert done.returncode == 0, done.stdout + done.stderr
    out = read_png(client, name, "img/rmbg/trans.png")
    assert out.mode == "RGBA" and out.size == photo.size
    # RMBG-2.0's model card, written out: bilinear resize to 1024x1024, ImageNet normalisation, the last
    # output's sigmoid (model(x)[-1] there; our forward returns that output alone), bilinear back to the
    # photo's size, x255 (rounded here as the worker does).
    model = registry.load("briaai/RMBG-2.0", weights_dir=tmp_path)
    x = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(1024, 1024), mode="bilinear", align_corners=False, antialias=True)
    x = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.inference_mode():
        matte = model(x).sigmoid()
    matte = F.interpolate(matte, size=photo.size[::-1], mode="bilinear", align_corners=False)[0, 0]
    expected = (matte * 255).round()
    got = torch.from_numpy(np.asarray(out)[..., 3].copy())
    assert (got.int() - expected.int()).abs().max() <= 1
