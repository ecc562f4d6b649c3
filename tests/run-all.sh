#!/usr/bin/env bash
# The whole test suite, as README and CI run it:
#   1. a warnings-as-errors release build with ctest (the fuzz corpora replayed included);
#   2. the same suite under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. every libFuzzer target for a bounded time (tests/run-fuzz.sh; EDGELM_FUZZ_SECONDS, 30);
#   4. ThreadSanitizer over the service tests and the engine's threaded ones (tests/run-tsan.sh);
#   5. valgrind memcheck of a short CLI run and a short edgelmd run (tests/run-valgrind.sh).
# Models: $EDGELM_MODELS (default ../shared/models); tests needing absent models report SKIPPED.
# test_service_faults runs its reconnect soak for 20 cycles and sends 5000 hostile payloads in the
# release build (EDGELM_SOAK_CYCLES=200 for a longer soak); under the sanitizers, where each cycle
# is the same code only slower, 10 cycles and 1000 payloads (EDGELM_SANITIZED_SOAK_CYCLES,
# EDGELM_SANITIZED_HOSTILE_PAYLOADS).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
soak_sanitized=${EDGELM_SANITIZED_SOAK_CYCLES:-10}
hostile_sanitized=${EDGELM_SANITIZED_HOSTILE_PAYLOADS:-1000}
started=$SECONDS
stage() { echo "== $* ($(( (SECONDS - started) / 60 )) min in) =="; }

stage "release build + tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DEDGELM_WERROR=ON >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j 1

stage "AddressSanitizer + UndefinedBehaviorSanitizer build + tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DEDGELM_SANITIZE=ON -DEDGELM_WERROR=ON >/dev/null
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 EDGELM_SOAK_CYCLES=$soak_sanitized \
    EDGELM_HOSTILE_PAYLOADS=$hostile_sanitized \
    ctest --test-dir build-asan --output-on-failure -j 1

stage "libFuzzer: each target for ${EDGELM_FUZZ_SECONDS:-30} s"
bash tests/run-fuzz.sh "${EDGELM_FUZZ_SECONDS:-30}"

stage "ThreadSanitizer"
EDGELM_SOAK_CYCLES=$soak_sanitized EDGELM_HOSTILE_PAYLOADS=$hostile_sanitized bash tests/run-tsan.sh

stage "valgrind memcheck"
bash tests/run-valgrind.sh

echo "all tests passed ($(( (SECONDS - started) / 60 )) min)"
