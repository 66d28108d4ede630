"""CPU forward time of each network family in NCHW and in channels_last, alternating, same process.

    PYTHONPATH=. python benchmarks/bench_memory_format.py [--rounds 5] [--families u2net,isnet]

The worker's CPU memory-format policy (CPU_CHANNELS_LAST in worker/config.py) lists the families for
which channels_last wins here. Networks are the parity oracle's stand-in checkpoints loaded through
registry.load (BatchNorm folded; speed does not depend on the weights' values); inputs are reduced
sizes so that a run finishes on a two-core CPU (the figures are for the ratio, not for the absolute
time at the native size). The scene classifier (DenseNet-161) has no oracle folder and is left out.
Run it as the worker runs: OMP_WAIT_POLICY=PASSIVE is set before torch is imported.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the worker (worker/config.py); before torch

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from parity import load_oracle_model  # noqa: E402


def image(size: int, channels: int = 3) -> torch.Tensor:
    return torch.rand(1, channels, size, size)


# family -> (oracle folder, checkpoint, a function of the input side making the forward's arguments, side)
CASES = {
    "u2net": ("u2netp", "u2netp", lambda s: (image(s),), 320),
    "isnet": ("isnet", "isnet", lambda s: (image(s),), 512),
    "basnet": ("basnet", "basnet", lambda s: (image(s),), 320),
    "deeplabv3": ("deeplabv3", "deeplabv3", lambda s: (image(s),), 512),
    "tracer": ("tracer-b7", "tracer_b7", lambda s: (image(s),), 320),
    "birefnet": ("birefnet-lite", "ZhengPeng7/BiRefNet_lite", lambda s: (image(s),), 512),
    "yolov4": ("yolov4", "yolov4", lambda s: (image(s),), 416),
    "fba": ("fba-matting", "fba", lambda s: (image(s), image(s, 2), image(s), image(s, 6)), 320),
    "cascadepsp": ("cascadepsp", "cascadepsp", lambda s: (image(s), image(s, 1)), 224),
}


def forward_ms(model: torch.nn.Module, inputs: tuple) -> tuple[float, float]:
    """Wall and CPU milliseconds of one forward pass (CPU time: all threads; waiting threads sleep)."""
    wall, cpu = time.perf_counter(), time.process_time()
    model(*inputs)
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def compare(family: str, rounds: int) -> dict[str, tuple[float, float]]:
    folder, name, make_inputs, side = CASES[family]
    nchw = load_oracle_model(folder, name, 0, "cpu", torch.float32)
    channels_last = load_oracle_model(folder, name, 0, "cpu", torch.float32).to(memory_format=torch.channels_last)
    inputs = make_inputs(side)
    models = {"nchw": nchw, "channels_last": channels_last}
    times: dict[str, list[tuple[float, float]]] = {label: [] for label in models}
    with torch.inference_mode():
        for model in models.values():
            model(*inputs)  # warm-up: oneDNN primitives are made on first use
        for _ in range(rounds):
            for label, model in models.items():
                times[label].append(forward_ms(model, inputs))
    return {label: (statistics.median(t[0] for t in runs), statistics.median(t[1] for t in runs))
            for label, runs in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--families", default=",".join(CASES))
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    print("\nmedians of the rounds; wall ms / CPU ms (all threads)")
    print("| family (checkpoint, input) | NCHW | channels_last | channels_last / NCHW, wall | CPU |")
    print("|---|---|---|---|---|")
    for family in args.families.split(","):
        _, name, _, side = CASES[family]
        times = compare(family, args.rounds)
        (nchw_wall, nchw_cpu), (cl_wall, cl_cpu) = times["nchw"], times["channels_last"]
        print(f"| {family} ({name}, {side}) | {nchw_wall:.0f} / {nchw_cpu:.0f} | {cl_wall:.0f} / {cl_cpu:.0f} "
              f"| {cl_wall / nchw_wall:.2f} | {cl_cpu / nchw_cpu:.2f} |", flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
