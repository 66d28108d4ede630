"""No caller mistake is answered as an internal error (issue 17), as a property of the whole worker.

For every task and every knob it takes, hypothesis draws a value of every JSON type and edge (NaN,
1e309, -0.0, integral floats, 2**63, booleans, whitespace and newlines, unicode digits, lists, dicts,
null, the knob's own bounds and choices and their near misses) and one of a set of tiny and odd images
(1x1, 2x3, grey, RGBA, palette, 16-bit, a 2-frame GIF, a 2-page TIFF with pages of different sizes, a
small photo), and runs the job through `Worker.run` on a local-folder bucket. The answer is either a
written output that decodes to the size it reports, or a short string error that is no internal error
and no traceback, with nothing under img/<id>/; a refusal by the schema names the key.

Real u2netp and Real-ESRGAN x4plus weights (../shared/weights); the oracle's stand-ins for the face,
matting and x2 networks. Examples are bounded and derandomized (a fixed order, the same in CI), and
in-range sizes of the removal networks are drawn from the low end of their range: the top is valid
and only slow (a 4096-pixel u2netp forward on a CPU).
"""
from __future__ import annotations

import asyncio
import io
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imaging.knobs import Knob
from pipeline import TASKS
from tests.conftest import CAR, DEVICE, link_real_weights
from worker.config import Settings
from worker.errors import InvalidInput
from worker.jobs import Worker
from worker.schema import KNOBS, TASK_KEYS, parse_job

STAND_INS = ["retinaface-resnet50", "gfpgan-v1.4", "parsenet", "bmv2-mobilenetv2", "realesrgan-x2plus"]
# Examples per (task, knob): 6 keeps the file near 3 minutes of a 2-core CI box; PROPERTY_EXAMPLES=50
# hunts further (the examples stay derandomized: the same run gives the same examples).
EXAMPLES_PER_KNOB = int(os.environ.get("PROPERTY_EXAMPLES", "6"))
SHORT_ERROR = 1000  # characters: a few sentences (the longest today: an unknown model and the ~40 names allowed)
SLOW_AT_THE_TOP = {"seg_mask_size": 320, "matting_mask_size": 128, "refine_mask_size": 128}
# Knobs that only matter beside another: set it, so that the value is used, not refused for its absence.
COMPANIONS = {"crop_margin": {"crop": True}, "crop_threshold": {"crop": True}, "quality": {"format": "webp"},
              "refine_threshold": {"refine_mode": "thresholding"}, "tile_pad": {"tile": 2},
              "alpha_upsampler": {"tile": 0}}
JSON_EDGES = [None, True, False, 0, -1, 1, 2**63, -(2**63), 1e309, -1e309, math.nan, -0.0, 0.5, 2.0, 5e-324,
              1e-300, "", " ", "\n", "1", "true", "null", "\u0663", "\uff11\uff10", "x" * 5000, [], [1], {},
              {"a": 1}]


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _animation(frames: list[Image.Image], fmt: str) -> bytes:
    out = io.BytesIO()
    frames[0].save(out, format=fmt, save_all=True, append_images=frames[1:], duration=[100, 150])
    return out.getvalue()


def _images() -> dict[str, bytes]:
    photo = Image.open(CAR).convert("RGB").resize((24, 18))
    rgba = photo.resize((3, 2)).convert("RGBA")
    rgba.putalpha(Image.fromarray(np.array([[0, 128, 255], [255, 40, 0]], dtype=np.uint8)))
    sixteen = Image.fromarray(np.array([[0, 30000, 65535], [1000, 50000, 7]], dtype=np.uint16))
    return {
        "one": _png(photo.resize((1, 1))),
        "two-by-three": _png(photo.resize((2, 3))),
        "grey": _png(photo.resize((4, 3)).convert("L")),
        "rgba": _png(rgba),
        "palette": _png(photo.resize((3, 3)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)),
        "sixteen-bit": _png(sixteen),
        "animation": _animation([photo.resize((3, 2)), photo.rotate(90).resize((3, 2))], "GIF"),
        "pages": _animation([photo.resize((3, 2)), photo.resize((2, 3))], "TIFF"),
        "photo": _png(photo),
    }


IMAGES = _images()


@pytest.fixture(scope="module")
def worker(tmp_path_factory, install_stand_ins) -> tuple[Worker, Path]:
    weights = install_stand_ins(STAND_INS, link_real_weights(tmp_path_factory.mktemp("weights")))
    bucket = tmp_path_factory.mktemp("bucket")
    for prefix in ("ogs", "bgr"):  # each image is its own (matching) background plate
        (bucket / prefix).mkdir()
        for name, data in IMAGES.items():
            (bucket / prefix / name).write_bytes(data)
    settings = Settings(local_bucket_dir=str(bucket), weights_dir=weights, device=DEVICE, default_model="u2netp",
                        batch_wait_ms=0, max_concurrency=1, job_timeout_s=120)
    return Worker(settings), bucket


def _number_edges(knob: Knob) -> list:
    low, high = knob.bounds
    top = SLOW_AT_THE_TOP.get(knob.name, high)
    edges = [low, top, low - 1, high + 1, float(low), float(top), low + 0.5, str(low), math.nextafter(high, math.inf)]
    if knob.type is float:
        edges += [math.nextafter(low, -math.inf), low + 5e-324, (low + high) / 2]
    return edges


def _edges(knob: Knob) -> list:
    """The values nearest what the knob allows: its bounds and their neighbours, its choices and
    their look-alikes."""
    if knob.choices is not None:
        near = [c for choice in knob.choices if isinstance(choice, str)
                for c in (choice + "\n", " " + choice, choice.upper())]
        return [*knob.choices, *near, *(float(c) for c in knob.choices if isinstance(c, int))]
    if knob.bounds is not None:
        return _number_edges(knob)
    return {
        "bg_color": ["#ffffff", "#11223380", "#ffffff\n", "#fff", "red", "#\uff46\uff46\uff46\uff46\uff46\uff46"],
        "crop_margin": ["10px", "10% 5px", "1px 2px 3px 4px", "500px", "501px", "50%", "51%", "1,2", "0.5px",
                        "\u0663px", " 10px", "10px\n", "1e3px", "1" * 400 + "px"],
        "model": ["u2netp", "realesrgan-x4plus", "realesrgan-x2plus", "gfpgan-v1.4", "bmv2-mobilenetv2", "u2netp\n",
                  "../x", "/etc", "ZhengPeng7/BiRefNet", "tracer_b7"],
        "bgr_id": ["photo", "one", "nope", "../x", "a/", "/x", "a\\b"],
    }.get(knob.name, [])


def _json() -> st.SearchStrategy:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12))
    return st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=4), scalars, max_size=2))


def values_for(knob: Knob) -> st.SearchStrategy:
    edges = _edges(knob) + JSON_EDGES
    if knob.bounds is not None:
        low, high = knob.bounds
        near = st.floats(low - 1, high + 1) if knob.type is float else st.integers(low - 2, min(high, 999) + 2)
        return st.one_of(st.sampled_from(edges), near, _json())
    return st.one_of(st.sampled_from(edges), _json())


def _check_answer(answer: dict, bucket: Path, image_id: str) -> None:
    produced = bucket / "img" / image_id
    if "error" in answer:
        error = answer["error"]
        assert isinstance(error, str) and 0 < len(error) <= SHORT_ERROR, answer
        assert "internal error" not in error and "Traceback" not in error, answer
        assert not produced.exists() or not any(produced.iterdir()), (answer, list(produced.iterdir()))
        return
    written = bucket / answer["key"]
    assert answer["key"].startswith(f"img/{image_id}/") and written.is_file(), answer
    with Image.open(written) as output:
        output.load()
        if "width" in answer:
            assert output.size == (answer["width"], answer["height"]), (answer, output.size)


# The quick subset (-m "not slow") keeps the mask task's knobs; the full suite runs every task's.
CASES = [pytest.param(task, name, marks=() if task == "mask" else pytest.mark.slow)
         for task in TASKS for name in KNOBS if name in TASK_KEYS[task] and name != "task"]


@pytest.mark.parametrize("task,name", CASES)
def test_no_value_of_a_knob_is_an_internal_error(worker, task, name):
    service, bucket = worker

    @settings(max_examples=EXAMPLES_PER_KNOB, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(value=values_for(KNOBS[name]), image_id=st.sampled_from(sorted(IMAGES)))
    def property_holds(value, image_id):
        job = {"id": image_id, "task": task, **COMPANIONS.get(name, {}), name: value}
        if task in ("remove_background", "mask") and name != "model":
            job["model"] = "u2netp"
        shutil.rmtree(bucket / "img", ignore_errors=True)
        try:
            parse_job(job, service.settings)
        except InvalidInput as exc:
            assert name in str(exc), (job, str(exc))
        _check_answer(asyncio.run(service.run(job, "property")), bucket, image_id)

    property_holds()
