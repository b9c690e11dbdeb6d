#!/usr/bin/env bash
# The model-level cases of issue #18 (fastlayers/bench/models.py) into benchmarks/results/: inference
# against ONNX Runtime and PyTorch eager (add --compile-inference for torch.compile, minutes per case
# to compile here), training steps against torch.compile and eager, both glibc heap settings, then
# the CNN step's batch scaling. THREADS (default "1 2") picks the thread counts.
# Usage: THREADS="1 2" bash benchmarks/model_bench.sh [OUT]
set -euo pipefail
out=${1:-benchmarks/results}
run() { python -W ignore::DeprecationWarning -m fastlayers.bench --no-plots --no-progress --out "$out" "$@"; }
for t in ${THREADS:-1 2}; do
  run --models --filter '^infer_' --threads "$t" --heap both --name "models-infer-${t}t"
  run --models --filter '^train_(cnn|lenet5|resnet)$' --threads "$t" --heap both --name "models-train-${t}t"
done
run --models --filter '^train_cnn_scaling$' --threads "${THREADS%% *}" --heap tuned --name models-cnn-scaling
