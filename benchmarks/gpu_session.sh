#!/usr/bin/env bash
# The first (or any) GPU run in one call: everything a session with a lent GPU should run, sized to
# finish within 9 minutes on an H200 with no network. Each step writes its log (and its results) to
# $OUT as soon as it finishes, so a time-out or a lost machine keeps whatever ran; a failing step
# does not stop the later ones. Copy $OUT's JSON/markdown into benchmarks/results/ afterwards and
# commit it with the device named (the files name it).
#
#   bash benchmarks/gpu_session.sh             # OUT=${OUT:-gpu-results}
#   bash benchmarks/gpu_session.sh --dry-run   # no GPU needed: says what it would run, runs nothing
#
# Steps (seconds: the step's own limit; the whole run also stops starting steps once less than
# a step's limit is left of BUDGET=540 s):
#   versions    driver, GPU, nvcc, compute-sanitizer, Python packages, git revision      (15)
#   build       pip install --no-build-isolation --no-deps --no-index . for sm_90         (150)
#   plan        benchmarks/cuda_plan.py --no-ptxas: the tiles the launchers pick          (15)
#   smoke       CUDA_LAUNCH_BLOCKING=1 benchmarks/gpu_smoke.py: every SGEMM path (with
#               and without K splits, all transposes) and every op family vs the CPU      (45)
#   memcheck    compute-sanitizer --tool memcheck gpu_smoke.py --tiny                     (60)
#   racecheck   compute-sanitizer --tool racecheck gpu_smoke.py --tiny --only ops         (60)
#   tests       the CUDA tests (not the host emulation), 60 s per test, junit xml          (110)
#   gemm        cuda_bench.py --only sgemm --quick: every path vs cuBLAS, TF32 off         (45)
#   conv        cuda_conv_bench.py --only conv --quick: layers a-f vs cuDNN, TF32 off      (60)
#   memory      cuda_bench.py --only memory --quick: memory-bound kernels vs copy GB/s     (25)
#   cnn         cuda_conv_bench.py --only cnn --quick: the CNN training step vs PyTorch    (35)
# Exit status: the number of failed (or skipped for time) steps.
set -u
DRY=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "gpu_session.sh: unknown argument '$arg' (use --dry-run or nothing)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}
BUDGET=${BUDGET:-540}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 CUDAARCHS=90 FASTLAYERS_CUDA=ON CUPY_TF32=0 NVIDIA_TF32_OVERRIDE=0
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 4)}
export PYTHONPATH="$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}"  # the per-test timeout plugin
START=$(date +%s)
failed=0
[ "$DRY" = 1 ] || mkdir -p "$OUT"

step() {  # step NAME SECONDS COMMAND...: run with a limit, log to $OUT/NAME.log, report the status
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET - ($(date +%s) - START)))
  if [ "$DRY" = 1 ]; then
    echo "would run: $name (limit ${limit}s): $*"
    return 0
  fi
  if [ "$left" -lt "$limit" ]; then
    echo "== $name: skipped, ${left}s of the ${BUDGET}s budget left (needs ${limit}s)" | tee -a "$OUT/steps.txt"
    failed=$((failed + 1))
    return 0
  fi
  echo "== $name (limit ${limit}s, ${left}s left)"
  local t0=$(date +%s)
  timeout -k 5 "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 15 "$OUT/$name.log"
  echo "== $name: exit $rc after $(($(date +%s) - t0))s" | tee -a "$OUT/steps.txt"
  [ "$rc" -eq 0 ] || failed=$((failed + 1))
}

versions() {
  echo "date: $(date -u +%FT%TZ)"
  echo "git: $(git rev-parse HEAD 2>/dev/null || echo unknown) $(git status --porcelain 2>/dev/null | wc -l) changed files"
  nvidia-smi -L 2>&1
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  nvcc --version 2>&1 | tail -n 2
  compute-sanitizer --version 2>&1 | head -n 3
  "$PY" - <<'EOF'
import importlib, platform
print("python", platform.python_version())
for name in ("numpy", "cupy", "torch", "pybind11", "scikit_build_core", "pytest"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as exc:
        print(name, "not importable:", type(exc).__name__)
try:
    import cupy
    print("cupy CUDA runtime", cupy.cuda.runtime.runtimeGetVersion(), "driver", cupy.cuda.runtime.driverGetVersion())
except Exception as exc:
    print("cupy runtime:", exc)
EOF
}

if [ "$DRY" = 1 ]; then
  echo "gpu_session.sh --dry-run: nothing runs; OUT would be $OUT, budget ${BUDGET}s, CUDAARCHS=$CUDAARCHS"
  command -v nvidia-smi >/dev/null 2>&1 && echo "nvidia-smi: present" || echo "nvidia-smi: absent (no GPU here)"
  command -v compute-sanitizer >/dev/null 2>&1 && echo "compute-sanitizer: present" || echo "compute-sanitizer: absent"
fi

export -f versions  # timeout runs programs, not shell functions: run it in a child bash
export PY
step versions 15 bash -c versions
step build 150 "$PY" -m pip install --no-build-isolation --no-deps --no-index -v .
step plan 15 "$PY" benchmarks/cuda_plan.py --no-ptxas --json "$OUT/plan.json"
step smoke 45 env CUDA_LAUNCH_BLOCKING=1 "$PY" benchmarks/gpu_smoke.py --out "$OUT/smoke.json"
step memcheck 60 compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 \
  "$PY" benchmarks/gpu_smoke.py --tiny --out "$OUT/memcheck-smoke.json"
step racecheck 60 compute-sanitizer --tool racecheck --error-exitcode 9 --print-limit 20 \
  "$PY" benchmarks/gpu_smoke.py --tiny --only ops --out "$OUT/racecheck-smoke.json"
step tests 110 env PER_TEST_TIMEOUT=60 "$PY" -m pytest -q -p no:cacheprovider -p pytest_per_test_timeout \
  --junitxml="$OUT/tests-junit.xml" -rs --maxfail=50 -k "(cuda or gpu) and not host_emulation" tests/ops tests/nn
step gemm 45 "$PY" benchmarks/cuda_bench.py --only sgemm --quick --out "$OUT" --name gpu-sgemm
step conv 60 "$PY" benchmarks/cuda_conv_bench.py --only conv --quick --out "$OUT" --name gpu-conv
step memory 25 "$PY" benchmarks/cuda_bench.py --only memory --quick --out "$OUT" --name gpu-memory
step cnn 35 "$PY" benchmarks/cuda_conv_bench.py --only cnn --quick --out "$OUT" --name gpu-cnn

if [ "$DRY" = 1 ]; then
  echo "dry run: 11 steps listed, total step limits 620s against a ${BUDGET}s budget (later steps are skipped when time runs short)"
  exit 0
fi
echo "failed or skipped steps: $failed (elapsed $(($(date +%s) - START))s)" | tee -a "$OUT/steps.txt"
exit "$failed"
