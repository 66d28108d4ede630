"""BackgroundMattingV2 speed: ms per HD (1920x1080) and 4K (3840x2160) frame, with RMBG-2.0 for comparison.

    PYTHONPATH=. python benchmarks/bench_matte.py [--device cpu] [--backbones mobilenetv2 resnet50] [--repeat 2]

Each backbone runs its preset (HD: backbone_scale 0.25, 80,000 sampled pixels; 4K: 0.125, 320,000) on
the Background-Matting sample pair (../shared/data/bgm/0001, 1920x1080; bilinearly enlarged for 4K),
the network alone (inputs already on the device), median of --repeat runs after one warm-up. The
weights are the parity oracle's stand-ins loaded through the real loader (same architecture and size
as the published files; ResNet-101 has no oracle, so it gets the same recipe over its own keys). The
refined block count is printed: it decides the refiner's cost, and the stand-in weights predict errors
almost everywhere, so the presets' caps (5,000 / 20,000 blocks) are reached: the worst case.
RMBG-2.0 runs on the same HD frame at its input size 1024x1024 (the oracle's stand-in).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import parity  # noqa: E402
from models import registry  # noqa: E402
from pipeline.matting.background import PRESETS, MatteParams, image_tensor, refine_params  # noqa: E402

SAMPLE = REPO / ".." / "shared" / "data" / "bgm"
SIZES = {"hd": (1080, 1920), "4k": (2160, 3840)}


def load_bmv2(backbone: str, device: str) -> torch.nn.Module:
    name = f"bmv2-{backbone}"
    if name in parity.checkpoint_oracles():
        return parity.load_oracle_model(parity.checkpoint_oracles()[name], name, 0, device, torch.float32)
    oracle = parity.oracle_module()  # the oracle's fill recipe over this network's own keys
    with torch.device("meta"):
        keys = registry.get_spec(name).build().state_dict()
    state = {k: oracle._fill(k, list(v.shape), 0, 0.85).float() if v.is_floating_point() else torch.zeros((), dtype=v.dtype)
             for k, v in keys.items()}
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(state, Path(tmp) / registry.get_spec(name).weights.filename)
        return registry.load(name, Path(tmp), device)


def sample_pair(size: tuple[int, int], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    pair = [image_tensor(np.asarray(Image.open(SAMPLE / f"0001_{n}.png").convert("RGB")), torch.device(device),
                         torch.float32) for n in ("img", "back")]
    if pair[0].shape[2:] != size:
        pair = [torch.nn.functional.interpolate(t, size, mode="bilinear", align_corners=False) for t in pair]
    return pair[0], pair[1]


def timed(fn, repeat: int, device: str) -> tuple[float, float, object]:
    """Median wall ms and the process's CPU ms (all threads) per call; on a shared machine the CPU time
    is the steadier figure, wall time there counts the other tenants too."""
    out = fn()  # warm-up
    walls, cpus = [], []
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        walls.append((time.perf_counter() - start) * 1000)
        cpus.append((time.process_time() - start_cpu) * 1000)
    return sorted(walls)[len(walls) // 2], sorted(cpus)[len(cpus) // 2], out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backbones", nargs="+", default=["mobilenetv2", "resnet50"],
                        choices=["mobilenetv2", "resnet50", "resnet101"])
    parser.add_argument("--presets", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-rmbg", action="store_true")
    args = parser.parse_args()
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{torch.get_num_threads()} threads"
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"on {args.device} ({where}), load average {load}, median of {args.repeat} after a warm-up")
    print("| network | frame | preset | refined 4x4 blocks | wall ms / frame | CPU ms / frame |\n|---|---|---|---|---|---|")
    for backbone in args.backbones:
        model = load_bmv2(backbone, args.device)
        for preset in args.presets:
            src, bgr = sample_pair(SIZES[preset], args.device)
            _, refine = refine_params(MatteParams(preset=preset), *SIZES[preset])
            with torch.inference_mode():
                ms, cpu_ms, out = timed(lambda: model(src, bgr, refine), args.repeat, args.device)
            size = "x".join(map(str, SIZES[preset][::-1]))
            print(f"| bmv2-{backbone} | {size} | {preset} ({refine.backbone_scale}, {PRESETS[preset].sample_pixels:,}) "
                  f"| {int(out.ref_sm.sum()):,} | {ms:.0f} | {cpu_ms:.0f} |", flush=True)
        del model
    if not args.no_rmbg:
        model = parity.load_oracle_model("rmbg-2.0", "briaai/RMBG-2.0", 0, args.device, torch.float32)
        src, _ = sample_pair(SIZES["hd"], args.device)
        x = torch.nn.functional.interpolate(src, (1024, 1024), mode="bilinear", align_corners=False, antialias=True)
        with torch.inference_mode():
            ms, cpu_ms, _ = timed(lambda: model(x), args.repeat, args.device)
        print(f"| briaai/RMBG-2.0 | 1920x1080 (network at 1024x1024) | - | - | {ms:.0f} | {cpu_ms:.0f} |")


if __name__ == "__main__":
    main()
