"""Per-stage time of carvekit's chain (tracer_b7 + cascade_fba) on a ~2 MP photo, carvekit's default sizes.

    PYTHONPATH=. python benchmarks/bench_chain.py [--device cuda] [--seg-mask-size 960] [--refine-mask-size 900]
                                                  [--matting-mask-size 2048]

The networks carry the parity oracle's stand-in weights (same architectures and sizes as the real
files), loaded through the real loader. With random weights CascadePSP's local step may skip crops
that real weights would refine (it refines only crops that are 10-90 % foreground), so its figure is
a lower bound; the global step, trimap, FBA and foreground figures are what real weights cost.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
sys.path.insert(0, str(REPO))

import parity
from imaging.decode import decode  # noqa: E402
from models import registry  # noqa: E402
from pipeline.carvekit.cascadepsp import refine  # noqa: E402
from pipeline.carvekit.chain import MATTER, REFINER  # noqa: E402
from pipeline.carvekit.fba_matting import fba_alpha  # noqa: E402
from pipeline.carvekit.trimap import make_trimap  # noqa: E402
from pipeline.segmentation.postprocess import foreground_colour, full_size_alpha  # noqa: E402
from pipeline.segmentation.segment import predict_mattes  # noqa: E402

WEIGHTS = ["tracer_b7", REFINER, MATTER]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seg-mask-size", type=int, default=960)
    parser.add_argument("--refine-mask-size", type=int, default=900)
    parser.add_argument("--matting-mask-size", type=int, default=2048)
    args = parser.parse_args()
    device = torch.device(args.device)

    def sync() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        parity.install_oracle_weights(WEIGHTS, Path(tmp))
        models = {name: registry.load(name, Path(tmp), device, torch.float32) for name in WEIGHTS}
    photo = Image.open(SHARED / "data" / "hires" / "GT04.jpg").convert("RGB").resize((1800, 1268))
    path = Path(tempfile.mkstemp(suffix=".jpg")[1])
    photo.save(path, quality=92)
    image = decode(path.read_bytes(), 10**9)
    print(f"{image.size[0]}x{image.size[1]} on {device} ({torch.get_num_threads()} threads), "
          f"seg {args.seg_mask_size}, refine {args.refine_mask_size}, matting {args.matting_mask_size}")
    times = {}
    start = sync()
    with torch.inference_mode():
        matte = predict_mattes(models["tracer_b7"], registry.get_spec("tracer_b7"), [image.rgb], 1,
                               args.seg_mask_size)[0]
        alpha = full_size_alpha(matte, image)
        times["segmentation (tracer_b7)"], start = sync() - start, sync()
        rgb = torch.from_numpy(image.rgb).to(device).permute(2, 0, 1)
        mask = refine(models[REFINER], rgb[None], alpha[None, None], mask_size=args.refine_mask_size)
        times["CascadePSP refine (global + local)"], start = sync() - start, sync()
        trimap = make_trimap(mask)
        times["trimap"], start = sync() - start, sync()
        alpha = fba_alpha(models[MATTER], rgb[None], trimap, mask_size=args.matting_mask_size)[0, 0]
        times["FBA matting"], start = sync() - start, sync()
        foreground_colour(rgb, alpha, "blur_fusion")
        times["blur-fusion foreground"] = sync() - start
    print("| stage | seconds |\n|---|---|")
    for stage, seconds in times.items():
        print(f"| {stage} | {seconds:.1f} |")
    print(f"| total | {sum(times.values()):.1f} |")
    print(f"unknown band: {float((trimap == 128).float().mean()) * 100:.1f} % of pixels; "
          f"alpha mean {float(np.asarray(alpha.cpu()).mean()) / 255:.3f}")
    path.unlink()


if __name__ == "__main__":
    main()
