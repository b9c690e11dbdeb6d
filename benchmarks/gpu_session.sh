#!/usr/bin/env bash
# Everything a session with a lent GPU should run, in one command (device time is scarce):
# build with CUDA for sm_90, the CUDA half of the test suite, then the GPU benchmarks and the suite
# on the GPU backends. Results and logs go to $OUT (default ./gpu-results); copy the JSON/markdown
# into benchmarks/results/ afterwards and commit them with the device named (the files name it).
#
#   bash benchmarks/gpu_session.sh test    # build + CUDA tests        (< 10 min: one device call)
#   bash benchmarks/gpu_session.sh bench   # the GPU benchmarks        (< 10 min: a second call, while
#                                          #  the machine is still warm and the build installed)
#   bash benchmarks/gpu_session.sh all     # both, where no per-command limit applies
#
# Each step has its own time limit and a failure does not stop the later steps, so one broken
# kernel still leaves the other figures. Exit status: the number of failed steps.
set -u
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 CUDAARCHS=${CUDAARCHS:-90} FASTLAYERS_CUDA=ON CUPY_TF32=0
PY=${PYTHON:-python3}
failed=0

step() {  # step NAME SECONDS COMMAND...: run, log to $OUT/NAME.log, report the exit status
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$name.log"
  echo "== $name: exit $rc"
  [ "$rc" -eq 0 ] || failed=$((failed + 1))
}

phase=${1:-all}
nvidia-smi -L >"$OUT/device.txt" 2>&1
cat "$OUT/device.txt"
if [ "$phase" = test ] || [ "$phase" = all ]; then
  step build 240 "$PY" -m pip install --no-build-isolation -v .
  "$PY" -c "import fastlayers as fl; print('cuda built', fl.cuda.is_built(), 'available', fl.cuda.is_available())"
  # CUDA cases only (the CPU half runs in CI); -x would hide how many fail, so cap the count instead.
  step tests 300 "$PY" -m pytest -q -p no:cacheprovider --maxfail=50 -k "cuda or gpu" tests
fi
if [ "$phase" = bench ] || [ "$phase" = all ]; then
  step cuda_bench 150 "$PY" benchmarks/cuda_bench.py --out "$OUT"
  step cuda_conv_bench 150 "$PY" benchmarks/cuda_conv_bench.py --out "$OUT"
  step suite 240 "$PY" -m fastlayers.bench --backends cuda,cupy,torch-cuda --no-progress --no-plots --out "$OUT"
fi
echo "failed steps: $failed"
exit "$failed"
