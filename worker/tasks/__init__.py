"""One module per task: the service around its pipeline (fetch, decode, the device program on the lane,
encode, write). `RUNNERS` maps each of pipeline.TASKS to the coroutine that answers its jobs."""
from __future__ import annotations

from typing import Awaitable, Callable

from pipeline import TASKS
from worker.context import JobRun
from worker.tasks import matte, removal, restore, upscale

Task = Callable[[JobRun], Awaitable[dict]]

RUNNERS: dict[str, Task] = {
    "remove_background": removal.run,
    "mask": removal.run,
    "restore": restore.run,
    "upscale": upscale.run,
    "matte": matte.run,
}
assert RUNNERS.keys() == TASKS.keys()
