#!/usr/bin/env bash
# run-fuzz.sh [SECONDS_PER_TARGET] - run every libFuzzer target of tests/fuzz for a bounded time
# (default 30 s each): installs clang when missing, configures build-fuzz with clang,
# EDGELM_FUZZ=ON and EDGELM_SANITIZE=ON (ASan + UBSan, leaks detected), builds the fuzzers and
# runs each on a scratch copy of its committed corpus (tests/fuzz/corpus/<target> is never
# changed here; crashing inputs are kept in build-fuzz/fuzz-out/). Prints each target's
# executions; exits non-zero on any crash, leak, timeout or out-of-memory.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
case $seconds in '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2 ;; esac
build=${EDGELM_FUZZ_BUILD:-build-fuzz}
targets=(fuzz_gguf fuzz_tokenizer fuzz_json_grammar fuzz_kv_cache_file fuzz_request fuzz_config)

bash deploy/install-deps.sh
if ! command -v clang >/dev/null; then
    echo "run-fuzz: installing clang" >&2
    sudo_cmd=()
    [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -q || true
    "${sudo_cmd[@]}" apt-get install -y -q clang
fi

cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DEDGELM_SANITIZE=ON -DEDGELM_FUZZ=ON >/dev/null
# fuzz_tiny_model_file: the fixed model some targets load (edgelm-gen writes it; not in git)
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target "${targets[@]}" \
    fuzz_tiny_model_file

out=$build/fuzz-out
rm -rf "$out"
mkdir -p "$out"
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan-suppressions.txt
failed=()
for t in "${targets[@]}"; do
    scratch=$out/$t-corpus
    cp -r "tests/fuzz/corpus/$t" "$scratch"
    status=0
    "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$out/$t-" "$scratch" \
        >"$out/$t.log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log" | tail -1)
    if [ "$status" -eq 0 ]; then
        echo "$t: ${execs:-?} executions in ${seconds} s, ok"
    else
        echo "$t: FAILED (exit $status) after ${execs:-?} executions; log $out/$t.log:"
        grep -E "ERROR: |SUMMARY: |fuzz check failed|Test unit written" "$out/$t.log" | head -5 || true
        failed+=("$t")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "run-fuzz: ${#failed[@]} failed: ${failed[*]}"
    exit 1
fi
echo "run-fuzz: all ${#targets[@]} targets ran ${seconds} s without a finding"
