#!/usr/bin/env bash
# CI's sanitizer job (issue #17): builds the CPU extension a second time with AddressSanitizer and
# UBSan (CUDA off, its own build folder build/sanitize, -O1 -g -fno-omit-frame-pointer, debug
# asserts on; CMakeLists.txt FASTLAYERS_SANITIZE), installs it into a folder of its own that
# PYTHONPATH puts first, and runs the op and nn tests plus the fuzz test under it. Any report fails
# the job twice over: UBSan reports are fatal (-fno-sanitize-recover) and ASan halts on its first
# error, so the process exits non-zero; and the log is searched for reports afterwards (a report in
# a fuzz worker is attributed to its call as well).
#
# Run from the repository root inside a Python environment that has numpy, pytest and hypothesis
# and no editable fastlayers install (an editable install's import hook would shadow PYTHONPATH;
# the script checks which fastlayers it imported). Options, for a local run:
#   FASTLAYERS_SANITIZE_DIR  where the build goes (default: a new temporary folder)
#   SANITIZE_TESTS           what pytest runs (default: tests/ops tests/nn tests/fuzz)
#   FASTLAYERS_SANITIZE_SKIP_BUILD=1  reuse an earlier build in FASTLAYERS_SANITIZE_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

work="${FASTLAYERS_SANITIZE_DIR:-$(mktemp -d)}"
site="$work/site"
log="$work/sanitize.log"
mkdir -p "$site"

CXX_BIN="${CXX:-c++}"
libasan="$("$CXX_BIN" -print-file-name=libasan.so)"
libstdcxx="$("$CXX_BIN" -print-file-name=libstdc++.so)"
[ -f "$libasan" ] || { echo "sanitize: libasan.so not found (compiler $CXX_BIN)"; exit 1; }
# The Python interpreter links no C++ runtime: libasan must come first (it intercepts malloc) and
# libstdc++ right after it, or ASan's __cxa_throw interceptor finds no real __cxa_throw and the
# first C++ exception (a ValueError from a binding) aborts with "CHECK failed".
preload="$libasan:$libstdcxx"

if [ "${FASTLAYERS_SANITIZE_SKIP_BUILD:-0}" = 1 ] && [ -d "$site/fastlayers" ]; then
  echo "== sanitize: reusing the build in $site"
else
  echo "== sanitize: building the CPU extension with -fsanitize=address,undefined into $site"
  FASTLAYERS_CUDA=OFF python -m pip install --no-deps --force-reinstall --target "$site" \
    -C build-dir=build/sanitize -C cmake.build-type=Debug \
    -C cmake.define.FASTLAYERS_SANITIZE=ON -C cmake.define.FASTLAYERS_CUDA=OFF . 2>&1 | tail -3
fi
built=$(date +%s)
echo "== sanitize: build took $((built - start)) s"

# detect_leaks=0: the Python interpreter's own allocations at exit are not ours (LeakSanitizer would
# report them on every run); the leak check of our kernels is tests/test_leaks.py.
# allocator_may_return_null + max_allocation_size_mb: an allocation the fuzz test makes too large
# is a MemoryError (as under the 4 GB cap of a normal run) instead of an ASan abort.
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:max_allocation_size_mb=4096:halt_on_error=1:abort_on_error=0:exitcode=86:strict_string_checks=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
export FASTLAYERS_FUZZ_NO_RLIMIT=1            # ASan reserves terabytes of address space
export FASTLAYERS_FUZZ_TIMEOUT="${FASTLAYERS_FUZZ_TIMEOUT:-180}"
export FASTLAYERS_FUZZ_EXAMPLES="${FASTLAYERS_FUZZ_EXAMPLES:-150}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

where=$(LD_PRELOAD="$preload" python -c "import fastlayers, os; print(os.path.dirname(fastlayers.__file__))")
case "$where" in
  "$site"/*) echo "== sanitize: testing $where" ;;
  *) echo "sanitize: imported fastlayers from $where, not from $site (an editable install shadows it?)"; exit 1 ;;
esac

read -r -a tests <<< "${SANITIZE_TESTS:-tests/ops tests/nn tests/fuzz}"
set +e
LD_PRELOAD="$preload" python -m pytest --capture=sys -q -p no:cacheprovider "${tests[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
end=$(date +%s)
echo "== sanitize: tests took $((end - built)) s (build + tests $((end - start)) s)"
if grep -Eq "runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|SUMMARY: (Address|UndefinedBehavior)Sanitizer" "$log"; then
  echo "sanitize: sanitizer reports in the log (above); failing"
  exit 1
fi
exit "$rc"
