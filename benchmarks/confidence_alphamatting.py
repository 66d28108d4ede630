"""Does the confidence figure flag u2netp's bad mattes? Confidence against error on alphamatting.com.

    PYTHONPATH=. python benchmarks/confidence_alphamatting.py

Real u2netp weights on the 18 photos of ../shared/data/alphamatting, each matte compared with the
true alpha (MAD, IoU at 0.5). Prints one row per photo, sorted by confidence, and the Spearman rank
correlation of confidence with IoU (a useful figure correlates positively).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
sys.path.insert(0, str(REPO))

from evaluation.metrics import iou, mad, unit_alpha  # noqa: E402
from imaging.confidence import matte_confidence  # noqa: E402
from imaging.decode import decode  # noqa: E402
from models import registry  # noqa: E402
from pipeline.segmentation.postprocess import full_size_alpha  # noqa: E402
from pipeline.segmentation.segment import predict_mattes  # noqa: E402


def ranks(values: list[float]) -> np.ndarray:
    return np.argsort(np.argsort(values)).astype(float)


def main() -> None:
    model = registry.load("u2netp", weights_dir=SHARED / "weights")
    spec = registry.get_spec("u2netp")
    rows = []
    for path in sorted((SHARED / "data" / "alphamatting" / "image").glob("*.png")):
        image = decode(path.read_bytes(), 10**9)
        alpha = full_size_alpha(predict_mattes(model, spec, [image.rgb], batch_size=1)[0], image)
        truth = torch.from_numpy(np.array(Image.open(SHARED / "data" / "alphamatting" / "alpha" / path.name).convert("L")))
        figures = matte_confidence(alpha)
        pred, true = unit_alpha(alpha), unit_alpha(truth)
        rows.append((path.stem, figures.confidence, figures.uncertain, iou(pred, true), mad(pred, true)))
    print("| photo | confidence | uncertain | IoU@0.5 | MAD |")
    print("|---|---|---|---|---|")
    for name, confidence, uncertain, overlap, error in sorted(rows, key=lambda r: r[1]):
        print(f"| {name} | {confidence:.3f} | {uncertain:.3f} | {overlap:.3f} | {error:.4f} |")
    confidences, overlaps = [r[1] for r in rows], [r[3] for r in rows]
    rho = np.corrcoef(ranks(confidences), ranks(overlaps))[0, 1]
    print(f"Spearman rank correlation of confidence with IoU over {len(rows)} photos: {rho:.2f}")


if __name__ == "__main__":
    main()
