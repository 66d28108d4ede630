"""Which colour should a cut-out carry at its edges? carvekit's grey blend, blur-fusion, or the photo's own.

    PYTHONPATH=. python benchmarks/compare_foreground.py

Composites with a known answer: each ../shared/data/alphamatting photo F with its true alpha A over
another photo of the set B (I = A*F + (1-A)*B), and pymatting's synthetic test image (exact F, B, A).
Each method turns (I, A) into a cut-out colour C; the cut-out is then placed on white and on black,
as a caller would, and compared with the true composite A*F + (1-A)*N. Figures: mean absolute error
(0-255 scale) over the pixels where 0 < A < 1 (the edges, where the methods differ) and over all.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
sys.path.insert(0, str(REPO))

from pipeline.segmentation.postprocess import foreground_colour  # noqa: E402

METHODS = ("none", "carvekit", "blur_fusion")


def load(path: Path, size=None, mode="RGB") -> np.ndarray:
    image = Image.open(path).convert(mode)
    return np.asarray(image.resize(size, Image.Resampling.BICUBIC) if size else image)


def composites():
    folder = SHARED / "data" / "alphamatting"
    names = sorted(p.name for p in (folder / "image").glob("*.png"))
    for i, name in enumerate(names):
        fg = load(folder / "image" / name)
        alpha = load(folder / "alpha" / name, mode="L")
        size = (fg.shape[1], fg.shape[0])
        bg = load(folder / "image" / names[(i + 7) % len(names)], size)
        yield name, fg, bg, alpha
    synthetic = SHARED / "data" / "pymatting"
    yield ("pymatting test", load(synthetic / "test_foreground.png"), load(synthetic / "test_background.png"),
           load(synthetic / "test_alpha.png", mode="L"))


def errors(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> dict[str, tuple[float, float]]:
    a = alpha.astype(np.float64)[..., None] / 255
    image = np.round(a * fg + (1 - a) * bg).astype(np.uint8)
    rgb = torch.from_numpy(image).permute(2, 0, 1)
    alpha_t = torch.from_numpy(alpha.copy())
    edge = (alpha > 0) & (alpha < 255)
    result = {}
    for method in METHODS:
        colour = foreground_colour(rgb, alpha_t, method)
        colour = colour.float() / 255 if colour.dtype == torch.uint8 else colour.float()
        colour = colour.permute(1, 2, 0).numpy().astype(np.float64) * 255
        edge_err, all_err = [], []
        for new_bg in (255.0, 0.0):
            ours = a * colour + (1 - a) * new_bg
            truth = a * fg + (1 - a) * new_bg
            diff = np.abs(ours - truth).mean(axis=2)
            edge_err.append(diff[edge].mean())
            all_err.append(diff.mean())
        result[method] = (float(np.mean(edge_err)), float(np.mean(all_err)))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    print("| composite | " + " | ".join(f"{m} edge / all" for m in METHODS) + " |")
    print("|---|" + "---|" * len(METHODS))
    totals = {m: [] for m in METHODS}
    for name, fg, bg, alpha in composites():
        row = errors(fg, bg, alpha)
        for method in METHODS:
            totals[method].append(row[method])
        print(f"| {name} | " + " | ".join(f"{row[m][0]:.2f} / {row[m][1]:.3f}" for m in METHODS) + " |", flush=True)
    print("| **mean** | " + " | ".join(
        f"**{np.mean([t[0] for t in totals[m]]):.2f} / {np.mean([t[1] for t in totals[m]]):.3f}**" for m in METHODS) + " |")


if __name__ == "__main__":
    main()
