#!/bin/sh
# Compile the CUDA kernel headers for the host with the shim and run their emulation tests.
# No GPU needed; the threads of a block are fibers on one OS thread (cuda_shim.h), so the
# problems are small. The tests compile in parallel, then run one after another.
set -e
here=$(cd "$(dirname "$0")" && pwd)
csrc=$(cd "$here/../.." && pwd)
out=${TMPDIR:-/tmp}/fastlayers_host_emulation
mkdir -p "$out"
pids=""
for t in "$here"/test_*.cpp; do
  name=$(basename "$t" .cpp)
  g++ -std=c++20 -O1 -Wno-unknown-pragmas -pthread -I"$csrc" -I"$here" "$t" -o "$out/$name" &
  pids="$pids $!"
done
for p in $pids; do wait "$p"; done
for t in "$here"/test_*.cpp; do
  name=$(basename "$t" .cpp)
  echo "== $name"
  "$out/$name"
done
