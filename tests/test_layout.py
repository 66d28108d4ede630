"""The layout's rule (README, Layout): imports only go down, handler.py -> worker/ -> pipeline/ ->
imaging/ -> models/; and the job schema's keys come from pipeline/'s one table of tasks."""
from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest

from imaging.knobs import Knob
from pipeline import TASKS
from tests.conftest import REPO
from worker.config import Settings
from worker.errors import InvalidInput
from worker.schema import KNOBS, TASK_KEYS, parse_job, task_keys

# What each package may not import: everything above it.
ABOVE = {
    "models": {"imaging", "pipeline", "worker", "handler"},
    "imaging": {"pipeline", "worker", "handler"},
    "pipeline": {"worker", "handler"},
    "worker": {"handler"},
}


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports, at any depth of its code (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(ABOVE))
def test_imports_only_go_down(package):
    offences = [f"{path.relative_to(REPO)} imports {sorted(imported_packages(path) & ABOVE[package])}"
                for path in sorted((REPO / package).rglob("*.py")) if imported_packages(path) & ABOVE[package]]
    assert not offences
    assert list((REPO / package).rglob("*.py")), "the scan found the package's modules"


def test_the_scan_sees_an_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from worker.schema import KNOBS\n    import pipeline.task\n")
    assert imported_packages(module) == {"worker", "pipeline"}


def test_the_chains_are_rooms_of_pipeline():
    for room in ("carvekit", "restoration", "matting", "segmentation"):
        assert (REPO / "pipeline" / room / "__init__.py").exists()
        assert not (REPO / room).exists(), f"{room}/ is back at the top"


def test_the_schema_keys_are_the_descriptors():
    assert TASK_KEYS == task_keys(TASKS)
    for name, spec in TASKS.items():
        assert {knob.name for knob in spec.knobs} | spec.output_knobs <= TASK_KEYS[name]
        assert all(KNOBS[knob.name] is knob for knob in spec.knobs)


def test_a_knob_added_to_a_descriptor_is_a_key_of_its_task_only():
    extra = Knob("extra_test_knob", int, 1, "a knob only this test declares", bounds=(0, 9))
    tasks = {**TASKS, "upscale": replace(TASKS["upscale"], knobs=(*TASKS["upscale"].knobs, extra))}
    keys = task_keys(tasks)
    assert "extra_test_knob" in keys["upscale"]
    assert all("extra_test_knob" not in keys[name] for name in TASKS if name != "upscale")
    assert keys["restore"] == TASK_KEYS["restore"]


def test_every_task_is_answered_by_the_descriptors_defaults():
    settings = Settings()
    for name, spec in TASKS.items():
        job = parse_job({"id": "a", "task": name}, settings)
        assert job.options.model == (spec.default_model or settings.default_model)
        assert (job.options.task_params is None) == (spec.params is None)
    with pytest.raises(InvalidInput, match="does not apply to task 'upscale'"):
        parse_job({"id": "a", "task": "upscale", "bgr_id": "b"}, settings)
