"""restore, upscale, matte, restore_faces, animated inputs and the output knobs end to end: handler.py
under runpod's local API server, a real HTTP S3 (moto), real Real-ESRGAN / u2netp weights and the
oracle's stand-ins for GFPGAN, RetinaFace, ParseNet and BackgroundMattingV2."""
from __future__ import annotations

import io

import kornia
import numpy as np
import pytest
import torch
from PIL import Image

from imaging.animation import decode_animation
from imaging.options import OUTPUT_KNOBS
from imaging.resample import cv2_resize_lanczos4
from models import registry
from tests.conftest import (
    CAR,
    SHARED,
    free_port,
    keys_under,
    link_real_weights,
    photo_bytes,
    runsync,
    serve_api,
    worker_env,
)

STAND_INS = ["retinaface-resnet50", "gfpgan-v1.4", "parsenet", "bmv2-mobilenetv2"]
BGM = SHARED / "data" / "bgm"


@pytest.fixture(scope="module")
def weights(tmp_path_factory, install_stand_ins):
    """The real weights of ../shared/weights beside the oracle's stand-ins for the face and matting networks."""
    return install_stand_ins(STAND_INS, link_real_weights(tmp_path_factory.mktemp("weights")))


@pytest.fixture(scope="module")
def api(s3_server, weights):
    import boto3

    name = f"tasks-{free_port()}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=name)
    car = Image.open(CAR).convert("RGB")
    objects = {
        "ogs/small": photo_bytes(car.crop((100, 150, 164, 198)), "PNG"),  # 64x48
        "ogs/face": photo_bytes(car.resize((160, 120)), "PNG"),  # the stand-in RetinaFace finds one face here
        "ogs/noface": photo_bytes(Image.open(SHARED / "data/alphamatting/image/GT01.png").convert("RGB")
                                  .resize((160, 120)), "PNG"),
        "ogs/large": photo_bytes(car.resize((1000, 800)), "JPEG"),
        "ogs/car": CAR.read_bytes(),
        "ogs/matte": (BGM / "0001_img.png").read_bytes(),
        "bgr/matte": (BGM / "0001_back.png").read_bytes(),
        "bgr/small-plate": photo_bytes(Image.open(BGM / "0001_back.png").resize((960, 540)), "PNG"),
        "bgr/text": b"not an image at all",
        "ogs/anim.gif": animation(car, "GIF"),
        "ogs/anim.webp": animation(car, "WEBP"),
    }
    for key, body in objects.items():
        client.put_object(Bucket=name, Key=key, Body=body)
    with serve_api(worker_env(s3_server, name, WEIGHTS_DIR=str(weights), MAX_OUTPUT_PIXELS="2000000")) as url:
        yield url, name, client


def animation(photo: Image.Image, fmt: str) -> bytes:
    """Four 96x64 frames panning across the photo, 120/80/200/100 ms, looping forever."""
    frames = [photo.crop((80 + 40 * i, 120, 272 + 40 * i, 248)).resize((96, 64)) for i in range(4)]
    out = io.BytesIO()
    frames[0].save(out, format=fmt, save_all=True, append_images=frames[1:], duration=[120, 80, 200, 100], loop=0,
                   **({"lossless": True} if fmt == "WEBP" else {}))
    return out.getvalue()


def read(client, bucket: str, key: str) -> Image.Image:
    return Image.open(io.BytesIO(client.get_object(Bucket=bucket, Key=key)["Body"].read()))


def completed(answer: dict) -> dict:
    assert answer["status"] == "COMPLETED", answer
    return answer["output"]


def refused(api, job: dict, message: str) -> None:
    url, name, client = api
    before = keys_under(client, name, "img/")
    answer = runsync(url, job)
    assert answer["status"] == "FAILED" and message in answer["error"], answer
    assert keys_under(client, name, "img/") == before


# --- upscale ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_upscale_is_the_real_esrgan_procedure(api, weights):
    url, name, client = api
    out = completed(runsync(url, {"id": "small", "task": "upscale"}))
    assert out["key"] == "img/small/upscaled.png" and (out["width"], out["height"]) == (256, 192)
    assert out["model"] == "realesrgan-x4plus"
    got = np.asarray(read(client, name, out["key"]))
    small = np.asarray(Image.open(CAR).convert("RGB").crop((100, 150, 164, 198)))
    # RealESRGANer.enhance for an 8-bit RGB image at the CLI's defaults (no tiles, no pre-padding, outscale
    # = the network's 4), written out: x/255, one forward, clamp to [0, 1], round(x * 255).
    model = registry.load("realesrgan-x4plus", weights)
    with torch.inference_mode():
        y = model(torch.from_numpy(small.copy()).permute(2, 0, 1)[None].float() / 255)
    expected = (y[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_upscale_by_two_with_the_x4_network_resizes_as_the_original(api):
    url, name, client = api
    out = completed(runsync(url, {"id": "small", "task": "upscale", "scale": 2, "model": "realesrgan-x4plus",
                                  "format": "webp"}))
    assert out["key"] == "img/small/upscaled.webp" and (out["width"], out["height"]) == (128, 96)
    assert read(client, name, out["key"]).format == "WEBP"


@pytest.mark.parametrize("job,message", [
    ({"task": "upscale", "scale": 3}, "scale: 3 is not allowed; allowed values: 2, 4"),
    ({"task": "upscale", "tile": -1}, "tile: -1 is out of range"),
    ({"task": "upscale", "model": "u2netp"}, "model: 'u2netp' is not a upscaler network; allowed: realesrgan-"),
    ({"task": "upscale", "upscale": 2}, "upscale: does not apply to task 'upscale'"),
    ({"task": "restore", "upscale": 9}, "upscale: 9 is out of range; allowed: 1..4"),
    ({"task": "restore", "model": "gfpgan-v9"}, "model: 'gfpgan-v9' is not a face restorer network"),
    ({"task": "restore", "scale": 4}, "scale: does not apply to task 'restore'"),
])
def test_bad_knobs_are_clear_errors_that_write_nothing(api, job, message):
    refused(api, {"id": "small", **job}, message)


def test_outputs_over_the_pixel_limit_are_refused_before_any_work(api):
    refused(api, {"id": "large", "task": "upscale"},
            "output too large: 1000x800 at scale 4 is 4000x3200 = 12800000 pixels, the limit (MAX_OUTPUT_PIXELS) "
            "is 2000000")
    refused(api, {"id": "large", "task": "restore", "upscale": 2}, "output too large: 1000x800 at scale 2")


# --- restore ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_restore_pastes_onto_the_lanczos_enlargement(api):
    """GFPGANer at the CLI's defaults (upscale 2, no background upsampler): the photo enlarged with
    cv2.resize INTER_LANCZOS4, each restored face blended in under ParseNet's face mask, and outside
    that mask the enlargement's pixels exactly. The stand-in RetinaFace finds one face here, but the
    stand-in ParseNet labels none of its pixels as face (hair, background: classes facexlib's mask
    leaves out), so every pixel is the enlargement's. (Restoring and pasting a face are checked
    against facexlib's and GFPGAN's code in tests/pipeline/restoration; the resize against OpenCV's in
    BENCHMARKS.md, "OpenCV reproductions".)"""
    url, name, client = api
    out = completed(runsync(url, {"id": "face", "task": "restore"}))
    assert out["key"] == "img/face/restored.png" and (out["width"], out["height"]) == (320, 240)
    assert out["faces_found"] == 1 and out["model"] == "gfpgan-v1.4"
    got = np.asarray(read(client, name, out["key"]).convert("RGB"))
    photo = np.asarray(Image.open(CAR).convert("RGB").resize((160, 120))).copy()
    enlarged = cv2_resize_lanczos4(torch.from_numpy(photo).permute(2, 0, 1), (240, 320)).permute(1, 2, 0).numpy()
    assert np.array_equal(got, enlarged)


def test_restore_without_a_face_returns_the_image_enlarged(api):
    url, name, client = api
    out = completed(runsync(url, {"id": "noface", "task": "restore", "upscale": 1}))
    assert out["faces_found"] == 0
    got = np.asarray(read(client, name, out["key"]).convert("RGB"))
    source = np.asarray(Image.open(SHARED / "data/alphamatting/image/GT01.png").convert("RGB").resize((160, 120)))
    assert np.array_equal(got, source)  # upscale 1, no face, no background upsampler: unchanged


@pytest.mark.slow
def test_seeded_noise_is_reproducible_and_differs_from_the_stored_noise(api):
    url, name, client = api
    images = []
    for seed in (7, 7, None):
        job = {"id": "face", "task": "restore", "upscale": 1, **({"noise_seed": seed} if seed is not None else {})}
        out = completed(runsync(url, job))
        images.append(np.asarray(read(client, name, out["key"])))
    assert np.array_equal(images[0], images[1]) and not np.array_equal(images[0], images[2])


@pytest.mark.slow
def test_remove_background_with_restore_faces(api):
    url, name, client = api
    out = completed(runsync(url, {"id": "face", "model": "u2netp", "restore_faces": True}))
    assert out["faces_restored"] == 1 and out["key"] == "img/face/trans.png"
    assert read(client, name, out["key"]).mode == "RGBA"


# --- matte -----------------------------------------------------------------------------------------

def test_matte_against_its_plate(api):
    url, name, client = api
    out = completed(runsync(url, {"id": "matte", "task": "matte"}))
    assert out["key"] == "img/matte/trans.png" and out["preset"] == "hd" and out["model"] == "bmv2-mobilenetv2"
    image = read(client, name, out["key"])
    assert image.mode == "RGBA" and image.size == (1920, 1080)
    rgba = np.asarray(image)
    alpha = rgba[..., 3]
    # inference_images.py's cut-out: cat([fgr * (pha != 0), pha]), so no colour where alpha is 0
    assert 0 < (alpha == 0).sum() < alpha.size and not rgba[alpha == 0, :3].any()
    # the README's confidence, counted on the written matte (the job has no matte knobs)
    foreground, uncertain = (alpha >= 230).mean(), ((alpha > 25) & (alpha < 230)).mean()
    assert out["confidence"] == pytest.approx(foreground / (foreground + uncertain), abs=1e-4)
    assert (out["foreground"], out["uncertain"]) == pytest.approx((foreground, uncertain), abs=1e-4)


@pytest.mark.parametrize("job,message", [
    ({"id": "car", "task": "matte"}, "no background plate at bgr/car"),
    ({"id": "matte", "task": "matte", "bgr_id": "small-plate"},
     "the background plate is 960x540 but the image is 1920x1080"),
    ({"id": "matte", "task": "matte", "bgr_id": "text"}, "cannot decode image"),
    ({"id": "matte", "task": "matte", "bgr_id": "../x"}, "bgr_id: must not contain '..'"),
    ({"id": "matte", "task": "matte", "refine_mode": "magic"}, "refine_mode: 'magic' is not allowed"),
])
def test_bad_plates_are_clear_errors_that_write_nothing(api, job, message):
    refused(api, job, message)


# --- animated inputs and the output knobs (real u2netp) -------------------------------------------------

@pytest.mark.parametrize("key,fmt,expected_format", [("anim.gif", "webp", "WEBP"), ("anim.webp", "png", "PNG")])
def test_animated_input_gives_an_animated_output(api, key, fmt, expected_format):
    url, name, client = api
    out = completed(runsync(url, {"id": key, "model": "u2netp", "format": fmt}))
    assert out["frames"] == 4 and out["key"] == f"img/{key}/trans.{fmt}"
    data = client.get_object(Bucket=name, Key=out["key"])["Body"].read()
    assert Image.open(io.BytesIO(data)).format == expected_format
    written = decode_animation(data, 10**8)
    assert len(written.frames) == 4 and written.durations == [120, 80, 200, 100] and written.loop == 0
    assert all(frame.alpha is not None and frame.alpha.min() == 0 for frame in written.frames)


def test_first_frame_only(api):
    url, name, client = api
    out = completed(runsync(url, {"id": "anim.gif", "model": "u2netp", "frames": "first"}))
    assert "frames" not in out and getattr(read(client, name, out["key"]), "n_frames", 1) == 1


def alpha_of(client, name, key) -> np.ndarray:
    return np.asarray(read(client, name, key).convert("RGBA"))[..., 3].astype(int)


@pytest.mark.slow
def test_output_knobs_on_a_real_photo(api):
    url, name, client = api
    plain = completed(runsync(url, {"id": "car", "model": "isnet-general-use", "seg_mask_size": 512}))
    alpha = alpha_of(client, name, plain["key"])
    assert 0.5 < plain["confidence"] <= 1 and set(plain) >= {"foreground", "uncertain"}

    hard = completed(runsync(url, {"id": "car", "model": "isnet-general-use", "seg_mask_size": 512,
                                   "threshold": 128, "format": "webp"}))
    hard_alpha = alpha_of(client, name, hard["key"])
    assert set(np.unique(hard_alpha)) <= {0, 255} and np.array_equal(hard_alpha == 255, alpha >= 128)

    grown = completed(runsync(url, {"id": "car", "model": "isnet-general-use", "seg_mask_size": 512, "threshold": 128,
                                    "grow": 5, "format": "webp"}))
    assert (alpha_of(client, name, grown["key"]) == 255).sum() > (hard_alpha == 255).sum()

    cropped = completed(runsync(url, {"id": "car", "model": "isnet-general-use", "seg_mask_size": 512, "crop": True,
                                      "crop_margin": "10px", "size": "preview"}))
    box = cropped["crop"]
    ys, xs = np.nonzero(alpha > OUTPUT_KNOBS["crop_threshold"].default)
    assert (box["left"], box["top"]) == (xs.min() - 10, ys.min() - 10)
    assert cropped["width"] * cropped["height"] <= 250_000

    jpg = completed(runsync(url, {"id": "car", "model": "isnet-general-use", "seg_mask_size": 512, "format": "jpg",
                                  "bg_color": "#ffffff"}))
    assert jpg["key"] == "img/car/trans.jpg" and read(client, name, jpg["key"]).mode == "RGB"

    matte = completed(runsync(url, {"id": "car", "model": "isnet-general-use", "seg_mask_size": 512,
                                    "channels": "alpha", "feather": 3}))
    feathered = np.asarray(read(client, name, matte["key"])).astype(int)
    # feather 3: a Gaussian blur of sigma 3 px of the same matte, its edge replicated (kornia's blur with
    # a 4-sigma kernel; the worker's shorter kernel and rounding stay within 2)
    blurred = kornia.filters.gaussian_blur2d(torch.from_numpy(alpha)[None, None].float(), (25, 25), (3.0, 3.0),
                                             border_type="replicate")[0, 0].numpy()
    assert feathered.shape == alpha.shape and np.abs(feathered - blurred).max() <= 2
    assert np.abs(feathered - alpha).max() > 50  # the blur moved the hard edges, not only rounding


@pytest.mark.parametrize("job,message", [
    ({"format": "jpg"}, "format: 'jpg' has no transparency; set an opaque bg_color"),
    ({"format": "bmp"}, "format: 'bmp' is not allowed; allowed values: png, webp, jpg, gif"),
    ({"grow": 500}, "grow: 500 is out of range; allowed: -100..100"),
    ({"crop_margin": "ten"}, "crop_margin: 'ten' is not a margin"),
    ({"quality": 80}, "quality: applies to webp and jpg only"),
    ({"task": "mask", "channels": "rgba"}, "channels: does not apply to task 'mask'"),
])
def test_bad_output_knobs_are_clear_errors(api, job, message):
    refused(api, {"id": "car", "model": "u2netp", **job}, message)


