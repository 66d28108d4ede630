"""The task pipelines: one module per task, each with its descriptor (pipeline/task.py) and its device
programs; the chains they run are rooms here (carvekit/, restoration/, matting/, segmentation/).

`TASKS` is the one table of tasks: the job schema, the README's tables and the worker read it.
"""
from __future__ import annotations

from pipeline.matte import MATTE
from pipeline.removal import MASK, REMOVE_BACKGROUND
from pipeline.restore import RESTORE
from pipeline.task import TaskSpec
from pipeline.upscale import UPSCALE

TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (REMOVE_BACKGROUND, MASK, RESTORE, UPSCALE, MATTE)}
