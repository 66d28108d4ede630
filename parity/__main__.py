"""python -m parity NAME [--cases FILE] [--seed N]: one line per case, exit 1 on any FAIL."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import parity
from imaging.tensors import DTYPES
from worker.device import set_float32_policy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity", description=__doc__)
    parser.add_argument("name", help="oracle folder name, e.g. u2netp; 'all' runs every registered one")
    parser.add_argument("--cases", type=Path, help="cases file (default: the shipped cases.pt)")
    parser.add_argument("--seed", type=int, default=None,
                        help="oracle checkpoint seed (default: each case's meta.seed, else 0)")
    parser.add_argument("--parity-dir", type=Path, help="oracle folder (default ../shared/parity)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--channels-last", action="store_true", help="networks and inputs in channels_last")
    parser.add_argument("--tf32", action="store_true", help="let CUDA run float32 as TF32 (default: IEEE, "
                                                            "the worker's policy)")
    parser.add_argument("--checkpoint", help="another registry entry of the folder's format")
    args = parser.parse_args(argv)
    if args.parity_dir:
        os.environ["PARITY_DIR"] = str(args.parity_dir)
    set_float32_policy(args.tf32)
    names = sorted(parity.targets()) if args.name == "all" else [args.name]
    unknown = [n for n in names if n not in parity.targets()]
    if unknown:
        parser.error(f"no parity runner for {unknown}; known: {sorted(parity.targets())}")
    failed = False
    for name in names:
        for check in parity.run(name, args.cases, args.seed, args.device, DTYPES[args.dtype],
                                checkpoint=args.checkpoint, channels_last=args.channels_last):
            print(check.line(name), flush=True)
            failed |= not check.passed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
