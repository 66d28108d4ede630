"""The Dockerfile read as data, so that the hub files and the image dry run (tests/builder) take the
image's environment, files and build steps from it instead of repeating them.

Only what this repo's Dockerfile uses is understood: comments, line continuations, `ENV k=v ...`,
`ARG name="default"`, `COPY src... dest` and `RUN [--mount=...] command`.
"""
from __future__ import annotations

import shlex
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[1] / "Dockerfile"


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        pending = ""
    return found


def _assignments(arguments: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in shlex.split(arguments))


def env(path: Path = DOCKERFILE) -> dict[str, str]:
    """The environment the image's CMD runs in: every ENV line, later ones winning."""
    found: dict[str, str] = {}
    for keyword, arguments in instructions(path):
        if keyword == "ENV":
            found.update(_assignments(arguments))
    return found


def arg_default(name: str, path: Path = DOCKERFILE) -> str:
    for keyword, arguments in instructions(path):
        if keyword == "ARG" and arguments.startswith(f"{name}="):
            return _assignments(arguments)[name]
    raise KeyError(f"{path} declares no ARG {name} with a default")


def copies(path: Path = DOCKERFILE) -> list[tuple[list[str], str]]:
    """([sources], destination) of every COPY, relative to the build context and WORKDIR."""
    found = []
    for keyword, arguments in instructions(path):
        if keyword == "COPY":
            *sources, destination = shlex.split(arguments)
            found.append((sources, destination))
    return found


def runs(path: Path = DOCKERFILE) -> list[str]:
    """The shell command of every RUN, without its --mount options."""
    found = []
    for keyword, arguments in instructions(path):
        if keyword == "RUN":
            words = arguments.split(" ")
            found.append(" ".join(w for w in words if not w.startswith("--mount=")).strip())
    return found
