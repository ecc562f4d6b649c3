#!/usr/bin/env bash
# The whole test suite, as README and CI run it: a warnings-as-errors release build with ctest,
# then the same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
# Models: $EDGELM_MODELS (default ../shared/models); tests needing absent models report SKIPPED.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

echo "== release build + tests =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DEDGELM_WERROR=ON >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j 1

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build + tests =="
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DEDGELM_SANITIZE=ON -DEDGELM_WERROR=ON >/dev/null
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j 1
echo "all tests passed"
