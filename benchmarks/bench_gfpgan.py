"""GFPGAN and ParseNet: seconds per 512x512 face, and what half precision does to their outputs.

    PYTHONPATH=. python benchmarks/bench_gfpgan.py speed [--device cuda] [--batches 1 4] [--dtypes float32]
    PYTHONPATH=. python benchmarks/bench_gfpgan.py precision [--device cpu] [--models gfpgan-v1.4] [--variants float16 ...] [--no-noise]

speed: seconds per face and peak memory for each (model, dtype, batch), each in a fresh process so
that the CPU peak (max RSS) belongs to that configuration alone. The weights are the parity oracle's
stand-ins (same architecture and size as the real files), loaded through the real loader.

precision: float16 / bfloat16 / channels_last against float32 on the stored parity case of each
network. On a CUDA device the networks run in the real dtype. On the CPU, whose float16/bfloat16
convolutions take tens of minutes per face without AVX-512, half precision is emulated: float32
arithmetic with every weight and every op's output rounded to the half dtype (half storage with
float32 accumulation, as cuDNN's half convolutions do; overflow past the dtype's range shows as inf). GFPGAN: max and mean |difference| of the [-1,1] output and of the uint8 face GFPGANer makes
of it (clamp, (x+1)/2, x255, round). ParseNet: max |difference| of the logits, and the pixels whose
argmax (the paste-back's parsing map) changes.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map_only

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import parity  # noqa: E402
from benchmarks.timing import time_forward  # noqa: E402
from imaging.tensors import DTYPES  # noqa: E402
from parity.gfpgan import gfpgan_input  # noqa: E402
from parity.parsenet import parsenet_input  # noqa: E402

MODELS = ("gfpgan-v1.4", "parsenet")
INPUTS = {"gfpgan-v1.4": gfpgan_input, "parsenet": parsenet_input}
VARIANTS = {"float16": ("float16", False), "bfloat16": ("bfloat16", False), "channels_last": ("float32", True)}


def load(name: str, device: str, dtype: torch.dtype, channels_last: bool = False) -> torch.nn.Module:
    model = parity.load_oracle_model(parity.checkpoint_oracles()[name], name, 0, device, dtype)
    return model.to(memory_format=torch.channels_last) if channels_last else model



def one_speed(name: str, device: str, dtype: str, batch: int, repeat: int) -> dict:
    model = load(name, device, DTYPES[dtype], device == "cuda")
    x = torch.rand(batch, 3, 512, 512, device=device, dtype=DTYPES[dtype]) * 2 - 1
    timed = time_forward(model, x, repeat)
    return {"s_per_face": timed["seconds"] / batch, "peak_gib": timed["peak_gib"]}


def speed(args) -> None:
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"512x512 faces on {args.device} ({where}), median of {args.repeat} after a warm-up")
    print("| model | dtype | batch | s / face | peak memory GiB |\n|---|---|---|---|---|")
    for name in args.models:
        for dtype in args.dtypes:
            for batch in args.batches:
                done = subprocess.run([sys.executable, __file__, "_one", name, args.device, dtype, str(batch),
                                       str(args.repeat)], capture_output=True, text=True)
                if done.returncode:
                    print(f"| {name} | {dtype} | {batch} | failed: {done.stderr.strip().splitlines()[-1]} | |")
                    continue
                row = json.loads(done.stdout.strip().splitlines()[-1])
                print(f"| {name} | {dtype} | {batch} | {row['s_per_face']:.2f} | {row['peak_gib']:.2f} |", flush=True)


def face_u8(out: torch.Tensor) -> torch.Tensor:
    """GFPGANer's tensor2img(min_max=(-1, 1)): clamp, to [0,1], x255, round."""
    return ((out.float().clamp(-1, 1) + 1) / 2 * 255).round()


# facexlib paste_faces_to_input_image: parsing class -> mask value, then GaussianBlur((101, 101), 11)
# twice (OpenCV's default border, reflect-101). Used here only to weigh argmax changes.
MASK_COLORMAP = (0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 255, 0, 0, 0)


def paste_mask(logits: torch.Tensor) -> torch.Tensor:
    mask = torch.tensor(MASK_COLORMAP, dtype=torch.float64)[logits.argmax(1).cpu()][:, None]
    offsets = torch.arange(101, dtype=torch.float64) - 50
    kernel = torch.exp(-offsets**2 / (2 * 11.0**2))
    kernel /= kernel.sum()
    for _ in range(2):
        mask = torch.nn.functional.pad(mask, (50, 50, 50, 50), mode="reflect")
        mask = torch.nn.functional.conv2d(mask, kernel.reshape(1, 1, 1, -1))
        mask = torch.nn.functional.conv2d(mask, kernel.reshape(1, 1, -1, 1))
    return mask / 255


def compare(name: str, ours, reference) -> str:
    if name == "parsenet":
        logits, ref_logits = ours[0].float(), reference[0]
        changed = int((logits.argmax(1) != ref_logits.argmax(1)).sum())
        mask_diff = float((paste_mask(logits) - paste_mask(ref_logits)).abs().max())
        return (f"logits max {float((logits - ref_logits).abs().max()):.2e}, mean "
                f"{float((logits - ref_logits).abs().mean()):.2e} | argmax changed at {changed} of "
                f"{ref_logits[:, 0].numel()} px | blurred paste mask max {mask_diff:.2e}")
    diff = (ours.float() - reference).abs()
    u8 = (face_u8(ours) - face_u8(reference)).abs()
    return (f"output max {float(diff.max()):.2e}, mean {float(diff.mean()):.2e} | uint8 face max {int(u8.max())}, "
            f"mean {float(u8.mean()):.3f}, {int((u8 > 0).sum())} of {u8.numel()} values off")


class HalfStorage(TorchFunctionMode):
    """Rounds the output of every torch op to `dtype` and back to float32."""

    def __init__(self, dtype: torch.dtype):
        super().__init__()
        self.dtype = dtype

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        return tree_map_only(torch.Tensor, lambda t: t.to(self.dtype).float() if t.is_floating_point() else t, out)


def run_variant(name: str, x: torch.Tensor, device: str, dtype: torch.dtype, channels_last: bool):
    emulate = device == "cpu" and dtype != torch.float32
    model = load(name, device, torch.float32 if emulate else dtype, channels_last)
    x = x.to(torch.float32 if emulate else dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        if not emulate:
            return model(x)
        for tensor in (*model.parameters(), *model.buffers()):
            tensor.copy_(tensor.to(dtype))
        with HalfStorage(dtype):
            return model(x.to(dtype).float())


def precision(args) -> None:
    emulated = " (half precision emulated, see --help)" if args.device == "cpu" else ""
    print(f"against float32 on {args.device}{emulated}, the stored parity case (random weights at the oracle's scale)")
    print("| model | variant | difference from float32 |\n|---|---|---|")
    variants = [VARIANTS[v] for v in args.variants]
    for name in args.models:
        case = parity.oracle_module().cases(parity.checkpoint_oracles()[name])[0]
        x = INPUTS[name](case["input_u8"]).to(args.device)
        reference = run_variant(name, x, args.device, torch.float32, False)
        for dtype, channels_last in variants:
            ours = run_variant(name, x, args.device, DTYPES[dtype], channels_last)
            label = dtype + (" + channels_last" if channels_last else "")
            print(f"| {name} | {label} | {compare(name, ours, reference)} |", flush=True)
        if name.startswith("gfpgan") and args.noise:
            # For scale: how far fresh noise (what GFPGANer adds on every call) moves the same face.
            with torch.inference_mode():
                fresh = load(name, args.device, torch.float32)(x, noise_seed=0)
            print(f"| {name} | float32, fresh noise (seed 0) | {compare(name, fresh, reference)} |", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_one":
        name, device, dtype, batch, repeat = sys.argv[2:7]
        print(json.dumps(one_speed(name, device, dtype, int(batch), int(repeat))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["speed", "precision"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtypes", nargs="+", default=["float32"], choices=list(DTYPES))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS),
                        help="precision: which variants to compare with float32")
    parser.add_argument("--no-noise", dest="noise", action="store_false",
                        help="precision: skip the fresh-noise row")
    args = parser.parse_args()
    speed(args) if args.what == "speed" else precision(args)


if __name__ == "__main__":
    main()
