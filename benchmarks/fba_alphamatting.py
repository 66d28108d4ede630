"""FBA matting with the true trimaps of ../shared/data/alphamatting: proves the wiring end to end.

    python -m benchmarks.fba_alphamatting [--oracle] [--mask-size 2048] [--device cpu] [--limit N]

Runs carvekit.fba_matting.fba_alpha on each photo with its user trimap (0 bg, 128 unknown, 255 fg)
and prints SAD (sum of |alpha - truth| / 255 / 1000) and MSE over the unknown region, plus seconds
per image. --oracle uses the parity stand-in checkpoint (random weights: the numbers then only show
that everything runs and that known regions are respected); otherwise the real `fba` weights.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models import registry
from pipeline.carvekit.fba_matting import MASK_SIZE, fba_alpha

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "alphamatting"


def load_sample(data_dir: Path, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 image [1,3,H,W], trimap [1,1,H,W] and true alpha [1,1,H,W] of one alphamatting photo."""
    image = np.array(Image.open(data_dir / "image" / name).convert("RGB"))
    # The trimaps are palette PNGs: convert through the palette, as carvekit's convert_image does.
    trimap = np.array(Image.open(data_dir / "trimap" / name).convert("L"))
    alpha = np.array(Image.open(data_dir / "alpha" / name).convert("L"))
    return (torch.from_numpy(image).permute(2, 0, 1)[None], torch.from_numpy(trimap)[None, None],
            torch.from_numpy(alpha)[None, None])


def evaluate(model: torch.nn.Module, data_dir: Path = DATA_DIR, mask_size: int = MASK_SIZE,
             limit: int | None = None) -> list[dict[str, float | str]]:
    rows = []
    for path in sorted((data_dir / "image").glob("*.png"))[:limit]:
        image, trimap, truth = load_sample(data_dir, path.name)
        start = time.perf_counter()
        alpha = fba_alpha(model, image, trimap, mask_size).cpu()
        seconds = time.perf_counter() - start
        unknown = trimap == 128
        error = (alpha.double() - truth.double()) / 255
        rows.append({
            "name": path.stem,
            "megapixels": image.shape[-2] * image.shape[-1] / 1e6,
            "sad": float(error[unknown].abs().sum() / 1000),
            "mse": float((error[unknown] ** 2).mean()),
            "known_bg_zero": float((alpha[trimap == 0] == 0).float().mean()),
            "seconds": seconds,
        })
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oracle", action="store_true", help="parity stand-in weights instead of the real ones")
    parser.add_argument("--mask-size", type=int, default=MASK_SIZE)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    if args.oracle:
        from parity import load_oracle_model

        model = load_oracle_model("fba-matting", "fba", seed=0, device=args.device, dtype=torch.float32)
    else:
        model = registry.load("fba", device=args.device)
    for row in evaluate(model, args.data, args.mask_size, args.limit):
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    main()
