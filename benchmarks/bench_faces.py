"""Face pipeline speed without the restoration networks: detection, alignment and paste-back.

    PYTHONPATH=. python benchmarks/bench_faces.py [--device cuda] [--size 1000 1000] [--faces 2] [--repeat 3] [--threads N]

On one photo of `size` (about 1 MP by default) with `faces` faces: ms for RetinaFace (network + decoding,
the oracle's stand-in weights through the real loader), for the LMEDS alignment and 512 crops, for the
ParseNet masks (argmax given: the colormap and the two 101x101 float64 blurs) and for the paste-back at
upscale 2 (Lanczos-4 background, warps, float64 blend). The faces are planted (the random weights find
none), so the later stages time the same work on every machine.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import parity  # noqa: E402
from pipeline.restoration.alignment import crop_face, estimate_affine_partial_lmeds, face_template, paste_affine  # noqa: E402
from pipeline.restoration.detection import detect_faces  # noqa: E402
from pipeline.restoration.paste import background, parse_mask, paste_faces, upscaled_size  # noqa: E402

TEMPLATE = face_template()


def timed(device: str, fn, repeat: int) -> tuple[float, object]:
    result = fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, nargs=2, default=(1000, 1000), metavar=("H", "W"))
    parser.add_argument("--faces", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    height, width = args.size
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, height, width), generator=generator, dtype=torch.uint8).to(args.device)
    detector = parity.load_oracle_model("retinaface-resnet50", "retinaface-resnet50", 0, args.device, torch.float32)
    landmarks = [(TEMPLATE - 256) * 0.5 + torch.tensor([width * (i + 1) / (args.faces + 1), height / 2])
                 for i in range(args.faces)]
    parsing = torch.zeros(512, 512, dtype=torch.long, device=args.device)
    parsing[120:430, 110:400] = 1

    ms_detect, _ = timed(args.device, lambda: detect_faces(detector, image), args.repeat)
    ms_align, (affines, crops) = timed(args.device, lambda: (
        affines := [estimate_affine_partial_lmeds(p.float(), TEMPLATE) for p in landmarks],
        torch.stack([crop_face(image, a) for a in affines])), args.repeat)
    ms_masks, masks = timed(args.device, lambda: torch.stack([parse_mask(parsing) for _ in affines]), args.repeat)
    size = upscaled_size(height, width, 2)
    matrices = torch.stack([paste_affine(a, 2) for a in affines])
    ms_paste, _ = timed(args.device, lambda: paste_faces(background(image, size), crops, matrices, masks, 2), args.repeat)
    total = ms_detect + ms_align + ms_masks + ms_paste
    print(f"device={args.device} image={height}x{width} faces={args.faces} threads={torch.get_num_threads()}")
    print(f"detect_ms={ms_detect:.0f} align_crop_ms={ms_align:.0f} parse_masks_ms={ms_masks:.0f} "
          f"paste_x2_ms={ms_paste:.0f} total_ms={total:.0f}")


if __name__ == "__main__":
    main()
