#!/usr/bin/env bash
# The one-call GPU check: on a machine with only this repo and an NVIDIA GPU, everything that needs
# the GPU, within about 8 minutes, into one report file. Run it first whenever a GPU is lent:
#
#   bash benchmarks/gpu_check.sh [REPORT]        (default: $OUT/gpu_report.md, else ./gpu_report.md)
#
# Python: a venv over the machine's own packages (--system-site-packages: a CUDA torch already
# there is used as it is); what is missing comes from ./.whl (wheels carried along, see
# benchmarks/gpu_wheels.sh) or, where a registry is reachable, from requirements-dev.txt without the
# torch pins. Each phase has a time limit and the report says what ran, what failed and what was
# skipped for time. GPU_CHECK_BUDGET_S (default 470) bounds the whole run.
set -u
cd "$(dirname "$0")/.."
REPORT=${1:-${OUT:-.}/gpu_report.md}
BUDGET=${GPU_CHECK_BUDGET_S:-470}
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

phase "machine" 20 bash -c "nvidia-smi; $PY -c 'import torch,sys; print(sys.version); print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.get_device_name())'; $PY -c 'import runpod, boto3, moto, kornia, hypothesis' && echo 'packages: ok'"
phase "worker start-up check (device, float32 policy)" 30 $PY -c "from worker import config; from worker.device import prepare; print(prepare(config.load()).describe())"
phase "parity: every family on CUDA, float32 IEEE" 100 $PY -m parity all --device cuda
phase "parity: channels_last (as the CUDA model cache runs them)" 60 $PY -m parity all --device cuda --channels-last
phase "half-precision and TF32 drift against float32, per family" 80 $PY benchmarks/bench_precision.py --device cuda
phase "BiRefNet / RMBG-2.0 speed at 1024 (fp32, fp16, bf16; batch 1 and 8; channels_last)" 90 \
  $PY benchmarks/bench_birefnet.py speed --device cuda --dtypes float32 float16 bfloat16 --batches 1 8 --repeat 5
phase "BiRefNet speed with torch.compile and CUDA graphs (bf16, batch 8)" 80 \
  bash -c "$PY benchmarks/bench_birefnet.py speed --device cuda --dtypes bfloat16 --batches 8 --repeat 5 --compile default; $PY benchmarks/bench_birefnet.py speed --device cuda --dtypes bfloat16 --batches 8 --repeat 5 --compile reduce-overhead"
phase "serving engine: 32 jobs of 1/4/12 MP, RMBG-2.0 (oracle weights), bf16" 60 \
  $PY benchmarks/bench_queue.py --oracle --model briaai/RMBG-2.0 --jobs 32 --concurrency 8 --megapixels 1 4 12
phase "cold start" 40 $PY benchmarks/bench_coldstart.py --device cuda --rounds 1
# --- video (issue 19): one short phase, about 45 s on an H100; stand-in weights, a 1 s clip each ------
phase "video: NVDEC/NVENC vs CPU codecs at 1080p; BiRefNet_lite at 1080p, BMV2 at HD and 4K, end to end and network-only" 60 \
  $PY benchmarks/bench_video.py gpu --seconds 1
# --- end of the video phase -------------------------------------------------------------------------
phase "test suite with DEVICE=cuda (end to end, the chain, the engine, parity)" 150 \
  $PY -m pytest -q -x -p no:cacheprovider tests/worker tests/test_engine.py tests/test_handler_chain.py tests/parity
say "total $(( $(date +%s) - START )) s"
echo "report: $REPORT"
