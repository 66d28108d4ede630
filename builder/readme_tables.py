"""The README's reference tables, made from the code: the job's knobs per task (pipeline/'s descriptors, through worker/schema.py),
the settings (worker/config.py) and the registered models (models/). Nothing there is typed twice.

    python -m builder.readme_tables          # rewrite the generated blocks of README.md

Each table sits between `<!-- table:NAME -->` and `<!-- /table:NAME -->`; tests/builder checks that
the committed README holds what this writes.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from imaging.knobs import Knob
from models import registry
from models.spec import ReleaseAsset, WeightsSource
from pipeline import TASKS
from worker import config
from worker.schema import KNOBS, TASK_KEYS

REPO = Path(__file__).resolve().parents[1]
COMMON = ("model", "task", "precision")


def _values(knob: Knob) -> str:
    if knob.choices is not None:
        return ", ".join(f"`{v}`" for v in knob.choices)
    return knob.allowed()


def _default(knob: Knob) -> str:
    return "unset" if knob.default is None else f"`{knob.default}`"


def knobs_table(task: str) -> str:
    knobs = [knob for name, knob in KNOBS.items() if name in TASK_KEYS[task] and name not in COMMON]
    rows = [f"| `{k.name}` | {_values(k)} | {_default(k)} | {k.doc}"
            f"{f' (only with `{k.needs}`)' if k.needs else ''} |" for k in knobs]
    return "\n".join(["| key | values | default | meaning |", "|---|---|---|---|", *rows])


def settings_table() -> str:
    rows = [f"| `{name}` | {'unset' if default is None else f'`{config.env_spelling(default)}`'} | {doc} |"
            for name, default, doc in config.documented()]
    return "\n".join(["| variable | default | meaning |", "|---|---|---|", *rows])


def weights_source(source: WeightsSource) -> str:
    """Where builder/ takes a file from, in one table cell."""
    download = source.download
    if download is None:
        return f"placed by hand: {source.by_hand.where}" if source.by_hand else "placed by hand"
    if isinstance(download, ReleaseAsset):
        owner_repo, tag = download.url.removeprefix("https://github.com/").split("/releases/download/")
        cell = f"`{owner_repo}` release `{tag.split('/')[0]}` (SHA-256 checked)"
    elif download.revision:
        cell = f"`{download.repo}` @ `{download.revision[:7]}`"
    else:
        return f"`{download.repo}` (no revision pinned: not fetchable)"
    return cell + (f", converted by `{source.converter}`" if source.converter else "")


def models_table() -> str:
    rows = []
    for name in registry.names():
        spec = registry.get_spec(name)
        source = weights_source(spec.weights)
        size = "x".join(str(s) for s in spec.preprocess.size[::-1]) if spec.preprocess else ""
        rows.append(f"| `{name}` | {spec.role.replace('_', ' ')} | {size} | {spec.licence} | {source} |")
    return "\n".join(["| model | role | input (W x H) | licence | weights from |", "|---|---|---|---|---|", *rows])


def tables() -> dict[str, str]:
    found = {f"knobs-{task}": knobs_table(task) for task in TASKS}
    return {**found, "settings": settings_table(), "models": models_table()}


def render(readme: str) -> str:
    for name, table in tables().items():
        pattern = re.compile(rf"(<!-- table:{re.escape(name)} -->\n).*?(<!-- /table:{re.escape(name)} -->)", re.S)
        if not pattern.search(readme):
            raise SystemExit(f"README.md has no block <!-- table:{name} -->")
        readme = pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(2), readme)
    return readme


def main() -> int:
    path = REPO / "README.md"
    path.write_text(render(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
