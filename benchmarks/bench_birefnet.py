"""BiRefNet / RMBG-2.0 speed, memory and precision.

    PYTHONPATH=. python benchmarks/bench_birefnet.py speed [--device cuda] [--batches 1 8] [--dtypes float32 bfloat16]
    PYTHONPATH=. python benchmarks/bench_birefnet.py precision [--device cuda]

speed: ms per 1024x1024 image and peak memory, for each (dtype, batch), each in a fresh process so that
the CPU peak (max RSS) belongs to that configuration alone. The weights are the parity oracle's
RMBG-2.0 stand-in (same architecture and size as the real file), loaded through the real loader.

precision: how far float16 / bfloat16 / channels_last move the matte from float32 on the parity
cases of rmbg-2.0, birefnet-general and birefnet-lite: mean and max absolute difference of
sigmoid(logits) (alpha in [0,1]).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import parity  # noqa: E402
from benchmarks.timing import time_forward  # noqa: E402
from imaging.tensors import DTYPES  # noqa: E402

MODELS = ("briaai/RMBG-2.0", "ZhengPeng7/BiRefNet", "ZhengPeng7/BiRefNet_lite")  # one per oracle folder
ORACLE = {name: parity.checkpoint_oracles()[name] for name in MODELS}


def load(name: str, device: str, dtype: torch.dtype, channels_last: bool) -> torch.nn.Module:
    model = parity.load_oracle_model(ORACLE[name], name, 0, device, dtype)
    return model.to(memory_format=torch.channels_last) if channels_last else model



def one_speed(name: str, device: str, dtype: str, batch: int, repeat: int, compile_mode: str) -> dict:
    model = load(name, device, DTYPES[dtype], device == "cuda")
    if compile_mode != "eager":
        model = torch.compile(model, mode=compile_mode)
    x = torch.rand(batch, 3, 1024, 1024, device=device, dtype=DTYPES[dtype])
    timed = time_forward(model, x, repeat)
    return {"ms_per_image": timed["seconds"] * 1000 / batch, "peak_gib": timed["peak_gib"]}


def speed(args) -> None:
    print(f"{args.model} at 1024x1024 on {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else f" ({torch.get_num_threads()} threads)"))
    print("| dtype | batch | ms / image | peak memory GiB |\n|---|---|---|---|")
    for dtype in args.dtypes:
        for batch in args.batches:
            done = subprocess.run([sys.executable, __file__, "_one", args.model, args.device, dtype, str(batch),
                                   str(args.repeat), args.compile], capture_output=True, text=True)
            if done.returncode:
                print(f"| {dtype} | {batch} | failed: {done.stderr.strip().splitlines()[-1]} | |")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"| {dtype} | {batch} | {row['ms_per_image']:.1f} | {row['peak_gib']:.2f} |", flush=True)


def precision(args) -> None:
    print("| model | variant | mean abs alpha diff | max abs alpha diff |\n|---|---|---|---|")
    variants = [("float16", False), ("bfloat16", False), ("float32", True), ("bfloat16", True)]
    for name, oracle_name in ORACLE.items():
        cases = parity.oracle_module().cases(oracle_name)
        reference = load(name, args.device, torch.float32, False)
        with torch.inference_mode():
            expected = [torch.sigmoid(reference(c["image"].to(args.device)).float()) for c in cases]
        del reference
        for dtype, channels_last in variants:
            model = load(name, args.device, DTYPES[dtype], channels_last)
            diffs = []
            with torch.inference_mode():
                for case, want in zip(cases, expected):
                    x = case["image"].to(args.device, DTYPES[dtype])
                    if channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    diffs.append((torch.sigmoid(model(x).float()) - want).abs())
            mean = sum(float(d.mean()) for d in diffs) / len(diffs)
            label = dtype + (" + channels_last" if channels_last else "")
            print(f"| {name} | {label} | {mean:.2e} | {max(float(d.max()) for d in diffs):.2e} |", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_one":
        name, device, dtype, batch, repeat, compile_mode = sys.argv[2:8]
        print(json.dumps(one_speed(name, device, dtype, int(batch), int(repeat), compile_mode)))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["speed", "precision"])
    parser.add_argument("--model", default="briaai/RMBG-2.0", choices=list(ORACLE))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=list(DTYPES))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compile", default="eager", choices=["eager", "default", "reduce-overhead", "max-autotune"],
                        help="torch.compile mode (reduce-overhead replays CUDA graphs); eager: not compiled")
    args = parser.parse_args()
    speed(args) if args.what == "speed" else precision(args)


if __name__ == "__main__":
    main()
