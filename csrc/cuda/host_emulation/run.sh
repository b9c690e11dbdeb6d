#!/bin/sh
# Compile the CUDA kernel headers for the host with the shim and run their emulation tests.
# No GPU needed; slow (a std::thread per CUDA thread), so the problems are small.
set -e
here=$(cd "$(dirname "$0")" && pwd)
csrc=$(cd "$here/../.." && pwd)
out=${TMPDIR:-/tmp}/fastlayers_host_emulation
mkdir -p "$out"
for t in "$here"/test_*.cpp; do
  name=$(basename "$t" .cpp)
  g++ -std=c++20 -O1 -Wno-unknown-pragmas -pthread -I"$csrc" -I"$here" "$t" -o "$out/$name"
  echo "== $name"
  "$out/$name"
done
