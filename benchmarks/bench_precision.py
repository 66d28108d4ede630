"""Half-precision drift of every parity family against float32 (and the TF32 drift on CUDA).

    PYTHONPATH=. python benchmarks/bench_precision.py [--device cuda] [--names u2netp tracer-b7 ...]

For each oracle folder with a checkpoint: the stand-in loaded through the real loader in float32
(IEEE), then float16, bfloat16 (and float32 with TF32 allowed, on CUDA); every stored case's outputs
compared with the float32 run's (max and mean absolute difference, relative L2) and the float32 run
with the oracle's stored outputs (the parity figure). Prints one markdown table; a family whose
registry entry says half_ok=False runs in float32 in the worker whatever a job asks: its half rows
show what that protects against.
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
from models import registry  # noqa: E402
from worker.device import set_float32_policy  # noqa: E402

VARIANTS = {"float16": (torch.float16, False), "bfloat16": (torch.bfloat16, False), "tf32": (torch.float32, True)}


def run_variant(oracle_name: str, checkpoint: str, device: str, dtype: torch.dtype) -> list[tuple]:
    """The folder's cases with the stand-in in `dtype` (forced, also for half_ok=False networks, which
    the worker keeps in float32): the runner's checks against the original's float32 outputs."""
    target = parity.targets()[oracle_name]
    manifest = parity.oracle_module().manifest(oracle_name)
    model = parity.load_oracle_model(oracle_name, checkpoint, 0, device, torch.float32).to(dtype)
    checks = []
    with torch.inference_mode():
        for case in parity.oracle_module().cases(oracle_name):
            ctx = parity.Context(manifest, parity.case_seed(case, None), torch.device(device), dtype)
            checks.extend(target.runner(model, case, ctx))
    return checks


def worst(checks: list[tuple], figure: str) -> float:
    return max((figures.get(figure, 0.0) for _, figures, _ in checks), default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--names", nargs="*", help="oracle folders (default: every one with a checkpoint)")
    args = parser.parse_args()
    names = args.names or sorted(n for n, t in parity.targets().items() if t.checkpoint)
    variants = [v for v in VARIANTS if v != "tf32" or args.device.startswith("cuda")]
    print(f"device {args.device}" + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""))
    print("Figures: worst max_abs / rel_l2 over every case and output against the ORIGINAL code's float32 "
          "outputs (the manifest's tolerance is for float32).")
    print("| oracle | half_ok | float32 | " + " | ".join(f"{v} max_abs / rel_l2" for v in variants) + " | s |")
    print("|---|---|---|" + "---|" * len(variants) + "---|")
    for name in names:
        start = time.perf_counter()
        checkpoint = parity.targets()[name].checkpoint
        set_float32_policy(False)
        checks = run_variant(name, checkpoint, args.device, torch.float32)
        verdict = "PASS" if all(passed for _, _, passed in checks) else "FAIL"
        cells = []
        for variant in variants:
            dtype, tf32 = VARIANTS[variant]
            set_float32_policy(tf32)
            try:
                other = run_variant(name, checkpoint, args.device, dtype)
                cells.append(f"{worst(other, 'max_abs'):.2e} / {worst(other, 'rel_l2'):.2e}")
            except Exception as exc:  # noqa: BLE001 - a kernel missing for a dtype is a finding
                cells.append(f"failed: {type(exc).__name__}")
            finally:
                set_float32_policy(False)
        half_ok = registry.get_spec(checkpoint).half_ok
        print(f"| {name} | {half_ok} | {verdict} {worst(checks, 'max_abs'):.2e} / {worst(checks, 'rel_l2'):.2e} | "
              + " | ".join(cells)
              + f" | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
