#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the C suites (unit + real HTTP on
# loopback), the same suites under AddressSanitizer + UBSan, the parsers' fuzzers, and the
# browser test.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh test
jobs=$(nproc)

echo "== build and test (release)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure --no-tests=error -j2)

echo "== build and test (address + undefined sanitizers)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCHARLM_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure --no-tests=error -j2)

echo "== fuzz the parsers (libFuzzer, 20 s per target)"
tests/fuzz/run.sh 20

echo "== browser test (chromium + playwright-core)"
npm ci --no-audit --no-fund --loglevel=error
tests/e2e/run.sh

echo "== all tests passed"
