#!/usr/bin/env bash
# The one-call GPU check: on a machine with only this repo and an NVIDIA GPU, everything that needs
# the GPU, within about 8 1/2 minutes, into one report file. Run it first whenever a GPU is lent:
#
#   bash benchmarks/gpu_check.sh [REPORT]        (default: $OUT/gpu_report.md, else ./gpu_report.md)
#
# Python: a venv over the machine's own packages (--system-site-packages: a CUDA torch already
# there is used as it is); what is missing comes from ./.whl (wheels carried along, see
# benchmarks/gpu_wheels.sh) or, where a registry is reachable, from requirements-dev.txt without the
# torch pins. Each phase has a time limit and the report says what ran, what failed and what was
# skipped for time. GPU_CHECK_BUDGET_S (default 500) bounds the whole run.
set -u
cd "$(dirname "$0")/.."
REPORT=${1:-${OUT:-.}/gpu_report.md}
BUDGET=${GPU_CHECK_BUDGET_S:-500}
START=$(date +%s)
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 DEVICE=cuda PYTHONPATH=$PWD
: > "$REPORT"

say() { printf '%s\n' "$*" >> "$REPORT"; }
phase() {  # phase NAME LIMIT_S COMMAND...
  local name=$1 limit=$2; shift 2
  local left=$((BUDGET - ($(date +%s) - START)))
  if [ "$left" -lt 15 ]; then say "## $name: skipped, the time budget is spent"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0; t0=$(date +%s)
  say "## $name"; say '```'
  timeout "$limit" "$@" >> "$REPORT" 2>&1
  local rc=$?
  say '```'; say "exit $rc after $(( $(date +%s) - t0 )) s (limit $limit s)"; say ""
  echo "$name: exit $rc"
}

python3 -m venv --system-site-packages .gpu-venv >/dev/null 2>&1 || true
PY=python3; [ -x .gpu-venv/bin/python ] && PY=$PWD/.gpu-venv/bin/python
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile .whl/*.whl >> "$REPORT" 2>&1
else
  grep -v '^torch' requirements.txt > /tmp/req-no-torch.txt
  timeout 120 $PY -m pip install -q -r /tmp/req-no-torch.txt pytest moto[server] requests >> "$REPORT" 2>&1 || \
    say "(no package registry reachable and no .whl folder: running with the machine's packages)"
fi

# The plan (issue 18 re-plan; limits add up to 500 s, the budget, so that every phase gets
# its turn): correctness first, then the host path against a simulated and the real forward side by
# side, then speed variants cut to the ones that decide a default (bf16 vs fp16, batch 1 vs 8, CUDA
# graphs), then the tests that need CUDA.
phase "machine" 10 bash -c "nvidia-smi; $PY -c 'import torch,sys; print(sys.version); print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.get_device_name())'; $PY -c 'import runpod, boto3, moto, kornia, hypothesis, av' && echo 'packages: ok'"
phase "worker start-up check (device, float32 policy)" 25 $PY -c "from worker import config; from worker.device import prepare; print(prepare(config.read_settings()).describe())"
phase "parity: every family on CUDA, float32 IEEE" 80 $PY -m parity all --device cuda
phase "parity: channels_last (as the CUDA model cache runs them)" 40 $PY -m parity all --device cuda --channels-last
phase "half-precision and TF32 drift against float32, per family" 35 $PY benchmarks/bench_precision.py --device cuda
phase "host path: 24 jobs of 1/4/12 MP, forward simulated at 8 ms/image (the H100 estimate), 12 MP again with the PNG filter on the host, then the real RMBG-2.0 forward (oracle weights, bf16)" 85 \
  bash -c "$PY benchmarks/bench_queue.py --simulate-forward-ms 8 --jobs 24 --concurrency 8 --megapixels 1 4 12; $PY benchmarks/bench_queue.py --simulate-forward-ms 8 --jobs 8 --concurrency 8 --megapixels 12 --png-filter-on-device 0; $PY benchmarks/bench_queue.py --oracle --model briaai/RMBG-2.0 --jobs 24 --concurrency 8 --megapixels 1 4 12"
phase "BiRefNet / RMBG-2.0 speed at 1024 (bf16 batch 1 and 8, fp16 batch 8; channels_last)" 40 \
  bash -c "$PY benchmarks/bench_birefnet.py speed --device cuda --dtypes bfloat16 --batches 1 8 --repeat 3; $PY benchmarks/bench_birefnet.py speed --device cuda --dtypes float16 --batches 8 --repeat 3"
phase "BiRefNet speed with CUDA graphs (torch.compile reduce-overhead, bf16, batch 8)" 45 \
  $PY benchmarks/bench_birefnet.py speed --device cuda --dtypes bfloat16 --batches 8 --repeat 3 --compile reduce-overhead
phase "video: NVDEC/NVENC vs CPU codecs at 1080p; BiRefNet_lite at 1080p, BMV2 at HD and 4K, end to end and network-only (stand-in weights, 1 s clips)" 55 \
  $PY benchmarks/bench_video.py gpu --seconds 1
phase "cold start" 25 $PY benchmarks/bench_coldstart.py --device cuda --rounds 1
phase "test suite with DEVICE=cuda (the worker, the engine, the chain end to end)" 60 \
  $PY -m pytest -q -x -p no:cacheprovider tests/worker tests/test_engine.py tests/test_handler_chain.py
say "total $(( $(date +%s) - START )) s"
echo "report: $REPORT"
