#!/usr/bin/env bash
# The model-level cases of issue #18 (fastlayers/bench/models.py) into benchmarks/results/: inference
# against ONNX Runtime and PyTorch eager (add --compile-inference for torch.compile, minutes per case
# to compile here), training steps against torch.compile and eager, both glibc heap settings, 2 and
# 1 threads, then the CNN step's batch scaling. Usage: bash benchmarks/model_bench.sh [OUT]
set -euo pipefail
out=${1:-benchmarks/results}
run() { python -W ignore::DeprecationWarning -m fastlayers.bench --no-plots --no-progress --out "$out" "$@"; }
run --models --filter '^infer_' --threads 2 --heap both --name models-infer-2t
run --models --filter '^train_(cnn|lenet5|resnet)$' --threads 2 --heap both --name models-train-2t
run --models --filter '^infer_' --threads 1 --heap both --name models-infer-1t
run --models --filter '^train_(cnn|lenet5|resnet)$' --threads 1 --heap tuned --name models-train-1t
run --models --filter '^train_cnn_scaling$' --threads 2 --heap tuned --name models-cnn-scaling-2t
