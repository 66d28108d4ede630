#!/usr/bin/env bash
# Wheels for benchmarks/gpu_check.sh on a GPU machine that reaches no package registry: the packages
# of this project's venv (.venv, made from requirements-dev.txt) at their versions, for Python 3.12,
# minus torch and its CUDA libraries (that machine brings its own) and minus what its image already
# holds (PRESENT: a file with one package name a line, e.g. the list in the device tool's KINDS.md).
# Writes ./.whl; keep it out of git (.git/info/exclude) and carry it with the call.
#
#   bash benchmarks/gpu_wheels.sh [PRESENT]
set -eu
cd "$(dirname "$0")/.."
present=${1:-/dev/null}
rm -rf .whl && mkdir -p .whl
.venv/bin/python -m pip freeze --exclude-editable | grep -viE '^(torch|torchvision|triton|nvidia-|cuda-)' > /tmp/frozen.txt
while IFS= read -r line; do
  name=${line%%==*}
  if grep -qixF "$name" "$present" 2>/dev/null || grep -qix "$(printf '%s' "$name" | tr '_.' '--')" "$present" 2>/dev/null; then
    continue
  fi
  python3 -m pip download -q --no-deps -d .whl --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_34_x86_64 --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 \
    --platform any "$line" 2>/dev/null || echo "no wheel for $line (python 3.12)"
done < /tmp/frozen.txt
du -sh .whl; ls .whl | wc -l
