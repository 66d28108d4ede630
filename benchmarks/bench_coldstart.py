"""Cold start: process start to first answer, and a network's import-to-resident time.

    PYTHONPATH=. python benchmarks/bench_coldstart.py [--device cpu] [--model briaai/RMBG-2.0] [--rounds 3]

1. `handler.py --test_input` (runpod's local mode) on a local-folder bucket with the real u2netp
   weights: the wall time from process start to its exit after the answer, and the same for a job
   that needs no network (a missing image: imports and start-up alone).
2. In a fresh process: `import` of the worker to the model resident on the device, with the oracle's
   stand-in weights in the published format (RMBG-2.0: the real file's architecture and size), for
   the registry's loader (built on the meta device, tensors assigned, no random init) and for the
   plain way (build with random init, then copy the weights in).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

RESIDENT = r"""
import time, sys, json
t0 = time.perf_counter()
sys.path.insert(0, {repo!r})
import torch
from models import registry
t1 = time.perf_counter()
spec = registry.get_spec({model!r})
if {plain}:
    path = registry.find_weights(spec, {weights!r})
    model = spec.build()
    state = {{k: v.float() for k, v in registry.read_state_dict(path, spec.weights).items()}}
    registry.load_state(model, spec.remap_keys(state, model))
    model = model.eval().to({device!r})
else:
    model = registry.load({model!r}, {weights!r}, {device!r})
if {device!r}.startswith("cuda"):
    torch.cuda.synchronize()
t2 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "load_s": t2 - t1}}))
"""


def timed_run(args: list[str], env: dict, cwd: Path) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    return time.perf_counter() - start, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="briaai/RMBG-2.0")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import parity

    scratch = tempfile.TemporaryDirectory()  # bucket and weights, removed as the script ends
    bucket = Path(scratch.name) / "bucket"
    (bucket / "ogs").mkdir(parents=True)
    shutil.copy(SHARED / "data" / "rembg" / "car-1.jpg", bucket / "ogs" / "car")
    env = {**os.environ, "LOCAL_BUCKET_DIR": str(bucket), "WEIGHTS_DIR": str(SHARED / "weights"),
           "HF_HUB_OFFLINE": "1", "DEVICE": args.device, "PYTHONPATH": str(REPO)}
    handler = [sys.executable, str(REPO / "handler.py"), "--test_input"]
    print(f"| run | wall s (median of {args.rounds}) |\n|---|---|")
    for label, job in (("handler.py, u2netp cut-out of car-1.jpg (start to answer)", {"id": "car", "model": "u2netp"}),
                       ("handler.py, a missing image (start-up alone)", {"id": "nothing", "model": "u2netp"})):
        times = [timed_run(handler + [json.dumps({"input": job})], env, bucket)[0] for _ in range(args.rounds)]
        print(f"| {label} | {statistics.median(times):.2f} |", flush=True)

    weights = Path(scratch.name) / "weights"
    parity.install_oracle_weights([args.model], weights)
    print(f"\n{args.model} import-to-resident on {args.device}\n| loader | import s | load s | total s |\n|---|---|---|---|")
    for label, plain in (("registry.load (meta device, assign)", False), ("build + load_state_dict copy", True)):
        rows = []
        for _ in range(args.rounds):
            code = RESIDENT.format(repo=str(REPO), model=args.model, weights=str(weights), device=args.device,
                                   plain=plain)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, env=env)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        imp = statistics.median(r["import_s"] for r in rows)
        load = statistics.median(r["load_s"] for r in rows)
        print(f"| {label} | {imp:.2f} | {load:.2f} | {imp + load:.2f} |", flush=True)


if __name__ == "__main__":
    main()
