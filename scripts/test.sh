#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine:
#   1. Release build: unit tests + end-to-end tests against the NumPy oracle (ctest)
#   2. AddressSanitizer + UBSan build, without MPI (so the single-process build is
#      checked too; e2e.mpi then reports skipped, the pipeline's stage logic runs
#      in-process in test_pipeline): the same tests, except the per-architecture
#      sweeps over every weight type against the NumPy oracle (e2e.llama ...
#      e2e.qwen35moe, e2e.Int8Activations, e2e.IsaPaths), the i-quant greedy
#      comparison with llama.cpp (e2e.iquants_llamacpp) and the emulated older
#      CPUs (e2e.older_cpus: qemu-user does not run ASan binaries): numerics are
#      checked in step 1, and the kernels' memory safety under ASan by the
#      cross-ISA unit tests (every type, odd sizes, every ISA, bitwise)
#   3. the fuzzers (GGUF, safetensors, Jinja, grammar, JSON Schema, tool output, imatrix,
#      document index, pipeline messages, ...) under ASan
#      for a bounded time (FUZZ_SECONDS, default 60)
# scripts/test.sh --quick runs step 1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
ctest --test-dir build --output-on-failure -j "$jobs"
[ "${1:-}" = "--quick" ] && exit 0

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build =="
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVOLGA_SANITIZE=ON -DVOLGA_MPI=OFF >/dev/null
cmake --build build-asan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" -E '^e2e\.(llama|qwen2|qwen3|qwen3moe|deepseek2|qwen35|qwen35moe|Int8Activations|IsaPaths|iquants_llamacpp|older_cpus)$'

echo "== fuzzers =="
scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
