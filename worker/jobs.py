"""A job from input to answer: fetch, decode, segment, post-process, encode, store.

Several images (an S3 event's records) go through the network together: every image is fetched and
decoded first, the survivors are segmented in batches per (model, precision, size), then each is
finished and written on its own. A failure of one image is that image's answer only.
"""
from __future__ import annotations

import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from runpod.serverless.modules.rp_logger import RunPodLogger

from carvekit.chain import manual_plan, plans, post_process
from carvekit.params import CARVEKIT, ChainParams
from imaging.decode import DecodedImage, decode
from imaging.encode import PNG, encode_png
from imaging.postprocess import cutout, foreground_colour, full_size_alpha, keep_own_alpha
from imaging.segment import predict_mattes
from models import registry
from models.spec import ModelSpec
from worker import config, storage as storage_mod
from worker.cache import ModelCache, resolve_dtype
from worker.errors import InvalidInput, UnsupportedTask, error_answer, failure
from worker.events import parse_records
from worker.schema import Job, parse_event_options, parse_job

log = RunPodLogger()

OUTPUT_FILES = {"remove_background": "trans.png", "mask": "mask.png"}


def output_key(job: Job) -> str:
    return f"img/{job.id}/{OUTPUT_FILES[job.options.task]}"


@dataclass
class Work:
    """One image on its way through the pipeline."""

    job: Job
    plan: ChainParams | None = None
    spec: ModelSpec | None = None  # the segmentation network of the plan
    image: DecodedImage | None = None
    matte: torch.Tensor | None = None
    answer: dict | None = None  # set once finished, successfully or not
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, stage: str):
        start = time.perf_counter()
        yield
        self.timings[stage] = round((time.perf_counter() - start) * 1000, 1)

    def fail(self, exc: BaseException, request_id: str | None) -> None:
        result = failure(exc)
        self.answer = result.answer
        if result.internal:
            log.error(f"id={self.job.id}: {traceback.format_exc()}", request_id)
        else:
            log.warn(f"id={self.job.id}: {self.answer['error']}", request_id)


class Worker:
    def __init__(self, settings: config.Settings | None = None, storage=None, models: ModelCache | None = None):
        self.settings = settings or config.load()
        self.storage = storage or storage_mod.from_settings(self.settings)
        self.models = models or ModelCache(self.settings)

    def resolve(self, name: str) -> ModelSpec:
        """The segmentation network a plan names."""
        try:
            return registry.resolve(name, self.settings.weights_dir)
        except KeyError:
            allowed = ", ".join([CARVEKIT, *registry.segmentation_names()])
            raise InvalidInput(f"model: unknown model {name!r}; allowed: {allowed}, "
                               f"or a BiRefNet weights folder under WEIGHTS_DIR") from None

    # -- entry points --------------------------------------------------------------------------
    def run(self, raw_input, request_id: str | None = None) -> dict:
        """The answer to one job input: a single image, or an S3 notification's records."""
        try:
            if isinstance(raw_input, dict) and "Records" in raw_input:
                return self.run_event(raw_input, request_id)
            job = parse_job(raw_input, self.settings)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an answer
            answer = error_answer(exc)
            log.warn(f"rejected: {answer['error']}", request_id)
            return answer
        return self.process([job], request_id)[0]

    def run_event(self, raw_input: dict, request_id: str | None) -> dict:
        options = parse_event_options(raw_input, self.settings)
        records = parse_records(raw_input["Records"], self.settings.bucket)
        jobs = [Job(r.id, options) for r in records if r.id is not None]
        answers = iter(self.process(jobs, request_id))
        results = []
        for record in records:
            if record.id is None:
                results.append({"key": record.key, "skipped": record.skip_reason})
            else:
                results.append({"source": record.key, **next(answers)})
        answer: dict = {"results": results}
        if results and all("error" in r for r in results):
            answer["error"] = "every record failed: " + "; ".join(r["error"] for r in results)
        if any(r.pop("refresh_worker", False) for r in results):
            answer["refresh_worker"] = True  # a broken GPU: the platform replaces this worker
        return answer

    # -- the pipeline --------------------------------------------------------------------------
    def process(self, jobs: list[Job], request_id: str | None = None) -> list[dict]:
        works = [Work(job) for job in jobs]
        for work in works:
            self._fetch(work, request_id)
        groups: dict[tuple, list[Work]] = {}
        for work in works:
            if work.answer is None:
                o = work.job.options
                groups.setdefault((work.spec.name, o.precision, work.plan.seg_mask_size), []).append(work)
        for group in groups.values():
            self._segment(group, request_id)
        for work in works:
            if work.answer is None:
                self._finish(work, request_id)
        return [w.answer for w in works]

    def _fetch(self, work: Work, request_id: str | None) -> None:
        options = work.job.options
        try:
            if options.task not in OUTPUT_FILES:
                raise UnsupportedTask(
                    f"task: {options.task!r} is not served by this worker build; "
                    f"available: {', '.join(OUTPUT_FILES)}"
                )
            work.plan = manual_plan(options.model, options.chain_knobs())
            work.spec = self.resolve(work.plan.net)  # validates the model before any I/O
            with work.timed("get"):
                data = self.storage.get(f"ogs/{work.job.id}")
            with work.timed("decode"):
                work.image = decode(data, self.settings.max_image_pixels)
            if options.pre != "none":
                with work.timed("pre"):
                    work.plan = plans(self.models, [work.image.rgb], options.pre, options.model,
                                      options.chain_knobs())[0]
                    work.spec = self.resolve(work.plan.net)
            log.info(f"id={work.job.id}: {work.image.source_format} {work.image.size[0]}x{work.image.size[1]}, "
                     f"{work.spec.name}" + (f" + {work.plan.post}" if work.plan.post != "none" else ""),
                     request_id)
        except Exception as exc:  # noqa: BLE001
            work.fail(exc, request_id)

    def _segment(self, group: list[Work], request_id: str | None) -> None:
        first = group[0]
        try:
            dtype = resolve_dtype(first.job.options.precision, self.models.device)
            start = time.perf_counter()
            model = self.models.get(first.spec, dtype)
            loaded = time.perf_counter()
            mattes = predict_mattes(model, first.spec, [w.image.rgb for w in group], self.settings.batch_size,
                                    first.plan.seg_mask_size)
            done = time.perf_counter()
        except Exception as exc:  # noqa: BLE001
            for work in group:
                work.fail(exc, request_id)
            return
        for work, matte in zip(group, mattes):
            work.matte = matte
            work.timings["load_model"] = round((loaded - start) * 1000, 1)
            work.timings["model"] = round((done - loaded) * 1000 / len(group), 1)

    def _finish(self, work: Work, request_id: str | None) -> None:
        job, image = work.job, work.image
        try:
            rgb = torch.from_numpy(image.rgb).to(work.matte.device).permute(2, 0, 1)
            with work.timed("postprocess"):
                alpha = full_size_alpha(work.matte, image)
                alpha = keep_own_alpha(post_process(self.models, rgb, alpha, work.plan), image)
                if job.options.task == "mask":
                    pixels = alpha.cpu().numpy()
                else:
                    method = job.options.foreground
                    if method == "auto":
                        method = "blur_fusion" if work.plan.post != "none" else work.spec.default_foreground
                    pixels = cutout(foreground_colour(rgb, alpha, method), alpha, job.options.bg_color)
            with work.timed("encode"):
                data = encode_png(pixels, self.settings.png_compress_level)
            key = output_key(job)
            with work.timed("put"):
                self.storage.put(key, data, PNG)
        except Exception as exc:  # noqa: BLE001
            work.fail(exc, request_id)
            return
        finally:
            work.matte = None  # free device memory before the next image of the batch
        width, height = image.size
        work.answer = {
            "key": key,
            "bucket": self.storage.name,
            "width": width,
            "height": height,
            "model": work.spec.name,
            **({"post": work.plan.post} if work.plan.post != "none" else {}),
            **({"scene": work.plan.scene} if work.plan.scene else {}),
            "task": job.options.task,
            "timings_ms": work.timings,
        }
        log.info(f"id={job.id}: wrote {key} ({len(data)} bytes) {work.timings}", request_id)
