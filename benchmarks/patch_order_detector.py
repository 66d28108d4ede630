"""Does `models.birefnet_folder.guess_patch_order` tell the patch order from trained weights?

    PYTHONPATH=. python benchmarks/patch_order_detector.py [--size 256] [--steps 240] [--batch 2] [--lr 1e-3]

No real BiRefNet weights are reachable offline, so this trains the part of the network the detector reads:
the image-tile encoders ipt_blk5..ipt_blk2 (models.birefnet.SimpleConvs on image_tiles, as the decoder feeds
them), each with a small head predicting the downsampled matte, on the real photos and mattes of
../shared/data, in three runs: current order, legacy order, and legacy then current (a legacy-trained
checkpoint fine-tuned with today's code, as ToonOut was). At each checkpoint it prints the detector's
verdict and R^2 figures, and for comparison the colour coherence (mean correlation of the weights of one
tile's R, G and B channels) under each layout. The oracle's random stand-ins are checked too: they must
stay undecided.
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import parity  # noqa: E402
from models.birefnet import SimpleConvs, image_tiles  # noqa: E402
from models.birefnet_folder import DETECTOR_BLOCKS, channel_places, guess_patch_order  # noqa: E402
from models.spec import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

DATA = REPO / ".." / "shared" / "data"
GRIDS = {"ipt_blk5": 32, "ipt_blk4": 16, "ipt_blk3": 8, "ipt_blk2": 4}  # tiles per side at 1/32 .. 1/4


def photos_and_mattes() -> list[tuple[torch.Tensor, torch.Tensor]]:
    pairs = [(p, DATA / "alphamatting" / "alpha" / p.name) for p in sorted((DATA / "alphamatting" / "image").iterdir())]
    pairs += [(DATA / "carvekit" / "cat.jpg", DATA / "carvekit" / "cat_mask.png"),
              (DATA / "hires" / "GT04.jpg", DATA / "hires" / "GT04_alpha.png"),
              (DATA / "pymatting" / "lemur.png", DATA / "pymatting" / "lemur_alpha.png")]
    # rembg's birefnet-general-lite cut-outs: another program's output, good enough as a training target here.
    pairs += [(p, p.with_suffix(".birefnet-general-lite.png")) for p in sorted((DATA / "rembg").glob("*.jpg"))]
    loaded = []
    for image_path, matte_path in pairs:
        image = Image.open(image_path).convert("RGB")
        image.thumbnail((1024, 1024))
        matte = Image.open(matte_path)
        matte = (matte.getchannel("A") if matte.mode == "RGBA" else matte.convert("L")).resize(image.size)
        loaded.append((torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255,
                       torch.from_numpy(np.array(matte)).float()[None] / 255))
    return loaded


def batch(pairs, count: int, size: int, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    images, mattes = [], []
    for _ in range(count):
        image, matte = pairs[rng.randrange(len(pairs))]
        height, width = image.shape[1:]
        side = rng.randint(min(height, width) // 2, min(height, width))
        top, left = rng.randint(0, height - side), rng.randint(0, width - side)
        crop = [F.interpolate(t[None, :, top:top + side, left:left + side], size=(size, size), mode="bilinear",
                              antialias=True)[0] for t in (image, matte)]
        if rng.random() < 0.5:
            crop = [t.flip(-1) for t in crop]
        images.append((crop[0] - mean) / std)
        mattes.append(crop[1])
    return torch.stack(images), torch.stack(mattes)


class TileEncoders(nn.Module):
    """ipt_blk5..ipt_blk2 as the decoder builds them (BiRefNet_lite's widths), each with a matte head."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleDict({b: SimpleConvs(3 * g * g, 32) for b, g in GRIDS.items()})
        self.heads = nn.ModuleDict({b: nn.Sequential(nn.ReLU(), nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(),
                                                     nn.Conv2d(16, 1, 1)) for b in GRIDS})
        self.legacy_patch_order = False

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        side = x.shape[-1]
        return {b: self.heads[b](self.blocks[b](image_tiles(x, (side // g, side // g), self.legacy_patch_order)))
                for b, g in GRIDS.items()}


def colour_coherence(weight: torch.Tensor, legacy_order: bool) -> float:
    """Mean correlation of the weights of one tile's three colour channels, under a layout."""
    places = channel_places(weight.shape[1], legacy_order)
    tiles = weight.shape[1] // 3
    grid = math.isqrt(tiles)
    channel = torch.empty(weight.shape[1], dtype=torch.long)
    channel[places[:, 0] * tiles + places[:, 1] * grid + places[:, 2]] = torch.arange(weight.shape[1])
    v = weight.detach().double().transpose(0, 1).flatten(1)[channel.reshape(3, tiles)]
    v = v - v.mean(-1, keepdim=True)
    v = v / v.norm(dim=-1, keepdim=True)
    return float(((v[0] * v[1]).sum(-1) + (v[0] * v[2]).sum(-1) + (v[1] * v[2]).sum(-1)).mean() / 3)


def report(label: str, weights: dict[str, torch.Tensor]) -> None:
    guess = guess_patch_order(weights)
    coherence = ", ".join(f"{b} {colour_coherence(weights[b], False):.3f}/{colour_coherence(weights[b], True):.3f}"
                          for b in DETECTOR_BLOCKS)
    print(f"{label}: {guess.describe()}; colour coherence current/legacy {coherence}", flush=True)


def train(pairs, phases: list[tuple[bool, int]], args) -> None:
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    model = TileEncoders()
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    name = " then ".join(f"{'legacy' if legacy else 'current'} x{steps}" for legacy, steps in phases)
    done, start = 0, time.perf_counter()
    report(f"[{name}] step 0", {b: model.blocks[b].conv1.weight for b in DETECTOR_BLOCKS})
    for legacy, steps in phases:
        model.legacy_patch_order = legacy
        for _ in range(steps):
            images, mattes = batch(pairs, args.batch, args.size, rng)
            loss = sum(F.binary_cross_entropy_with_logits(logits, F.adaptive_avg_pool2d(mattes, logits.shape[-2:]))
                       for logits in model(images).values())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            done += 1
            if done in args.report_at:
                report(f"[{name}] step {done} ({time.perf_counter() - start:.0f} s, loss {loss.item():.3f})",
                       {b: model.blocks[b].conv1.weight for b in DETECTOR_BLOCKS})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="training crop side (multiple of 128)")
    parser.add_argument("--steps", type=int, default=240)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", nargs="+", choices=("current", "legacy", "finetune"),
                        default=["current", "legacy", "finetune"])
    args = parser.parse_args()
    args.report_at = {10, args.steps // 4, args.steps, args.steps + args.steps // 2}
    torch.set_num_threads(2)
    oracle = parity.oracle_module()
    for folder in ("birefnet-lite", "birefnet-general"):
        state = oracle.checkpoint(folder)
        report(f"[oracle stand-in {folder}]", {b: state[f"decoder.{b}.conv1.weight"] for b in DETECTOR_BLOCKS})
    pairs = photos_and_mattes()
    print(f"{len(pairs)} photos, crops {args.size}px, batch {args.batch}, AdamW lr {args.lr}", flush=True)
    runs = {"current": [(False, args.steps)], "legacy": [(True, args.steps)],
            "finetune": [(True, args.steps), (False, args.steps // 2)]}
    for run in args.runs:
        train(pairs, runs[run], args)


if __name__ == "__main__":
    main()
