"""One module per task; `TASKS` maps a job's `task` to the coroutine that answers it."""
from __future__ import annotations

from typing import Awaitable, Callable

from worker.context import JobRun
from worker.tasks import matte, removal, restore, upscale

Task = Callable[[JobRun], Awaitable[dict]]

TASKS: dict[str, Task] = {
    "remove_background": removal.run,
    "mask": removal.run,
    "restore": restore.run,
    "upscale": upscale.run,
    "matte": matte.run,
}
