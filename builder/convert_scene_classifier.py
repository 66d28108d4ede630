"""Convert carvekit's scene classifier to files the worker can load without unpickling code.

carvekit publishes `scene_classifier.pth` (Carve/scene_classifier) as a torch.save of
{"model": <torchvision DenseNet-161 module>, "class_to_idx": {...}}: loading it runs pickle, which
can execute arbitrary code. This runs once, at image build time, on the pinned and checksummed
download, and writes
  scene_classifier.safetensors  the module's state dict (tensors only)
  scene_classifier.json         {"class_to_idx": {...}}
then checks that models/scene_classifier.py, loaded from those files through the registry, computes
what the pickled module computes.

    python -m builder.convert_scene_classifier SRC.pth [OUT_DIR]   (OUT_DIR defaults to WEIGHTS_DIR)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from models import registry
from worker import config

NAME = "scene_classifier"


def convert(source: Path, out_dir: Path) -> tuple[Path, Path]:
    """Write the safetensors and class-map files for the pickled module at `source`; return their paths."""
    # The only place weights_only=False is allowed: a build-time step on a pinned file.
    published = torch.load(source, map_location="cpu", weights_only=False)
    model: nn.Module = published["model"]
    class_to_idx = {str(name): int(index) for name, index in published["class_to_idx"].items()}
    spec = registry.get_spec(NAME)
    weights = out_dir / spec.weights.filename
    class_map = out_dir / spec.extra["class_map"]
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: value.detach().contiguous() for key, value in model.state_dict().items()}, str(weights))
    class_map.write_text(json.dumps({"class_to_idx": class_to_idx}, indent=1, sort_keys=True) + "\n")
    verify(model, out_dir)
    return weights, class_map


def verify(original: nn.Module, out_dir: Path) -> None:
    """Our network, loaded from the converted file, must give the pickled module's logits."""
    ours = registry.load(NAME, weights_dir=out_dir)
    original = original.float().eval()
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected, actual = original(x), ours(x)
    if not torch.allclose(actual, expected, rtol=1e-4, atol=1e-5):
        raise RuntimeError(
            f"converted scene classifier differs from the published module: "
            f"max |diff| = {float((actual - expected).abs().max()):.3g}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m builder.convert_scene_classifier", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="carvekit's scene_classifier.pth")
    parser.add_argument("out_dir", type=Path, nargs="?", help="output folder (default: WEIGHTS_DIR)")
    args = parser.parse_args(argv)
    for path in convert(args.source, args.out_dir or config.read_settings().weights_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
