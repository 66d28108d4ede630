#!/usr/bin/env bash
# Wheels for benchmarks/gpu_check.sh on a GPU machine that reaches no package registry: every
# requirement (but torch/torchvision, which that machine brings) for its Python 3.12, minus what its
# image already holds (the package list of the device tool's KINDS.md, passed as a file, one name a
# line). Writes ./.whl; keep it out of git (.git/info/exclude) and carry it with the call.
#
#   bash benchmarks/gpu_wheels.sh [PRESENT_PACKAGES_FILE]
set -eu
cd "$(dirname "$0")/.."
present=${1:-/dev/null}
rm -rf .whl && mkdir -p .whl
grep -v '^torch' requirements.txt > /tmp/req-no-torch.txt
python3 -m pip download -q -d .whl --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_34_x86_64 --platform any \
  -r /tmp/req-no-torch.txt pytest 'moto[server]==5.2.5' requests
norm() { tr 'A-Z_.' 'a-z--'; }
for wheel in .whl/*.whl; do
  name=$(basename "$wheel" | cut -d- -f1 | norm)
  if grep -qix "$(printf '%s' "$name" | sed 's/-/[-_.]/g')" "$present" 2>/dev/null; then rm "$wheel"; fi
done
du -sh .whl; ls .whl | wc -l
