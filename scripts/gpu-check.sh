#!/usr/bin/env bash
# The GPU path in one command (issue 14): set-up, the gpu-marked tests, the GPU bench; with two or more GPUs also the
# scale-out checks (sharded training over 2 GPUs, two simulated nodes: tests/test_scaleout.py on nccl); all results
# in one folder.
#   scripts/gpu-check.sh [OUT_DIR]        (default: $OUT if set, else runs/gpu-check)   = make gpu-check
# Python: $PYTHON if set, else the first of .venv/bin/python, python3 with a CUDA build of torch and the test
# dependencies (an offline GPU image's python3 works as it is: the repo runs from this checkout through PYTHONPATH);
# else, where an NVIDIA driver answers and there is no .venv yet, `make setup TORCH="$GPU_TORCH"` (needs the network).
# Without CUDA: the gpu tests skip, the bench runs its CPU smoke case, it says so and exits 0 (CI runs this path).
# On one H200, measured: 167 s (tests 50 s, bench 86 s; its --budget-s stops starting new cases); the scale-out
# step (2+ GPUs only) adds about 2-3 minutes (not yet timed on GPUs: measured 2 minutes on 2 CPU cores with gloo).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-runs/gpu-check}}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
GPU_TORCH=${GPU_TORCH:-torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128}
# prints cuda or cpu for a Python that has what the tests and the bench import, nothing otherwise
PROBE="import importlib.util as u, sys, torch
missing = [m for m in ('transformers', 'pytorch_lightning', 'pytest', 'safetensors', 'yaml') if not u.find_spec(m)]
sys.exit(1) if missing else print('cuda' if torch.cuda.is_available() else 'cpu')"
start=$SECONDS

limited() { if command -v timeout >/dev/null; then timeout "$@"; else shift; "$@"; fi; }
driver() { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }
pick() {  # $1 = cuda: only a Python whose torch sees a GPU; any: the first usable one
  for cand in "${PYTHON:-}" .venv/bin/python python3; do
    [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 || continue
    kind=$("$cand" -c "$PROBE" 2>/dev/null) || continue
    if [ "$1" = any ] || [ "$kind" = cuda ]; then echo "$cand"; return; fi
  done
}

py=$(pick cuda)
if [ -z "$py" ] && driver; then
  if [ -e .venv ]; then
    echo "gpu-check: an NVIDIA driver answers but no Python here has a CUDA build of torch (.venv has not):" >&2
    echo "  rm -rf .venv && scripts/gpu-check.sh, or PYTHON=/path/to/python scripts/gpu-check.sh" >&2
    exit 1
  fi
  echo "== set-up: make setup TORCH='$GPU_TORCH'"
  make setup TORCH="$GPU_TORCH" || { echo "gpu-check: set-up failed (no network? set PYTHON=...)" >&2; exit 1; }
  py=$(pick cuda)
  [ -n "$py" ] || { echo "gpu-check: torch from '$GPU_TORCH' does not see the GPU (driver too old?)" >&2; exit 1; }
fi
mode=gpu
if [ -z "$py" ]; then
  mode=cpu
  py=$(pick any)
  [ -n "$py" ] || { echo "gpu-check: no Python with torch, transformers, pytorch_lightning, pytest: make setup" >&2; exit 1; }
fi

{
  echo "date: $(date -u +%FT%TZ)  host: $(uname -srm)  mode: $mode"
  if commit=$(git rev-parse HEAD 2>/dev/null); then
    echo "commit: $commit$(git diff --quiet HEAD -- 2>/dev/null || echo ' (+ local changes)')"
  else
    echo "commit: unknown (no git checkout)"
  fi
  echo "python: $py"
  "$py" -c "import sys, torch; from importlib.metadata import version as v
print('python', sys.version.split()[0], '| torch', torch.__version__, 'cuda', torch.version.cuda,
      '| transformers', v('transformers'), '| pytorch-lightning', v('pytorch-lightning'))
print('devices:', [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])"
  driver && nvidia-smi
} >"$out/env.txt" 2>&1
cat "$out/env.txt"

echo "== gpu tests: $py -m pytest -m gpu tests/test_gpu.py"
limited 300 "$py" -m pytest -m gpu tests/test_gpu.py -rs --durations=10 -p no:cacheprovider \
  --junitxml "$out/pytest.xml" 2>&1 | tee "$out/pytest.log"
tests=${PIPESTATUS[0]}

devices=$("$py" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
if [ "$mode" = gpu ] && [ "$devices" -ge 2 ]; then
  echo "== scale-out on 2 of $devices GPUs: BART_SCALEOUT_ACCELERATOR=gpu $py -m pytest -m multiprocess tests/test_scaleout.py"
  BART_SCALEOUT_ACCELERATOR=gpu limited 600 "$py" -m pytest -m multiprocess tests/test_scaleout.py -rs --durations=10 \
    -p no:cacheprovider --junitxml "$out/scaleout.xml" 2>&1 | tee "$out/scaleout.log"
  scaleout=${PIPESTATUS[0]}
else
  scaleout=0
  echo "== scale-out: skipped ($devices CUDA device(s); sharded training and the 2-node simulation need 2;"
  echo "   CI runs them on CPU with gloo: make test-multiprocess)"
fi

if [ "$mode" = gpu ]; then
  echo "== bench: $py -m bart_pretrain.bench gpu --out $out"
  limited 420 "$py" -m bart_pretrain.bench gpu --out "$out" 2>&1 | tee "$out/bench.log"
  bench=${PIPESTATUS[0]}
else
  echo "== bench (CPU smoke run of the GPU bench's code): $py -m bart_pretrain.bench gpu --smoke --out $out"
  "$py" -m bart_pretrain.bench gpu --smoke --out "$out" >"$out/bench.log" 2>&1
  bench=$?
  [ "$bench" = 0 ] || tail -n 30 "$out/bench.log"
fi

echo "== gpu-check ($mode) in $((SECONDS - start)) s: tests exit $tests, scale-out exit $scaleout, bench exit $bench;" \
  "results in $out/"
ls "$out"
if [ "$mode" = cpu ]; then
  echo "no CUDA device here: the gpu tests skipped and the bench ran its CPU smoke case only;"
  echo "on a GPU machine the same command runs them for real."
fi
[ "$tests" = 0 ] && [ "$scaleout" = 0 ] && [ "$bench" = 0 ]
