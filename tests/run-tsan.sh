#!/usr/bin/env bash
# ThreadSanitizer stage: a -DEDGELM_TSAN=ON build (warnings as errors) in build-tsan, then the
# tests where threads meet: edgelmd's (worker thread, main loop and Paho's threads; the daemon
# itself runs TSan-instrumented under test_service_mqtt) and the engine's multi-threaded ones
# (thread pool, forward passes across thread counts, cross-thread cancel, the CLI with -j).
# Any TSan report, in a test or in a daemon it spawned, fails the stage; there are no
# suppressions. Usage: bash tests/run-tsan.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=$root/build-tsan
jobs=$(nproc 2>/dev/null || echo 2)
say() { printf 'run-tsan: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

# The engine tests that run threads, in reasonable time under TSan on 2 cores (~1 min together).
# test_json_generation is left out: over a thousand constrained generations take ~8 min under
# TSan, and its threads are the same pool these already cover.
engine_tests='test_thread_pool|test_session|test_forward.*|test_state|test_context_shift|test_cli'

say "installing missing build dependencies (deploy/install-deps.sh)"
bash deploy/install-deps.sh

# gcc's TSan runtime is libtsan (Debian: libtsan2, normally pulled in by gcc); check that it links.
probe_dir=$(mktemp -d "${TMPDIR:-/tmp}/edgelm-tsan.XXXXXX")
logs=$probe_dir/reports
mkdir -p "$logs"
restore_rnd_bits=""
group=""
cleanup() {
    if [ -n "$group" ]; then
        kill -KILL -- "-$group" 2>/dev/null || true
    fi
    if [ -n "$restore_rnd_bits" ]; then
        echo "$restore_rnd_bits" >/proc/sys/vm/mmap_rnd_bits || true
    fi
    rm -rf "$probe_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
printf 'int main(void) { return 0; }\n' >"$probe_dir/probe.c"
if ! cc -fsanitize=thread "$probe_dir/probe.c" -o "$probe_dir/probe" 2>/dev/null; then
    say "the compiler cannot link -fsanitize=thread; installing libtsan2"
    [ "$(id -u)" -eq 0 ] || die "run as root, or install libtsan2 (apt-get install -y libtsan2)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q libtsan2
    cc -fsanitize=thread "$probe_dir/probe.c" -o "$probe_dir/probe" || die "no working TSan"
fi

# gcc 12's TSan expects the address-space layout of older kernels: with the high mmap
# randomisation of newer ones (vm.mmap_rnd_bits > 28) it may abort at start with "FATAL:
# ThreadSanitizer: unexpected memory mapping". Then run without ASLR (setarch -R, inherited by
# every process ctest starts), else, as root, lower mmap_rnd_bits to 28 for the run only.
run_prefix=()
# (a few tries: whether the randomised layout collides differs from run to run)
tsan_starts() {
    for _ in 1 2 3 4 5; do
        "${run_prefix[@]}" "$probe_dir/probe" >"$probe_dir/probe.log" 2>&1 || return 1
    done
}
if ! tsan_starts; then
    say "TSan does not start here: $(head -c 300 "$probe_dir/probe.log")"
    run_prefix=(setarch "$(uname -m)" -R)
    if tsan_starts; then
        say "running under '${run_prefix[*]}' (ASLR off)"
    else
        run_prefix=()
        bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo "")
        [ -n "$bits" ] && [ "$(id -u)" -eq 0 ] ||
            die "TSan cannot start and setarch -R did not help; as root: sysctl vm.mmap_rnd_bits=28"
        say "setting vm.mmap_rnd_bits 28 (was $bits) for this run"
        echo 28 >/proc/sys/vm/mmap_rnd_bits || die "cannot write /proc/sys/vm/mmap_rnd_bits"
        restore_rnd_bits=$bits
        tsan_starts || die "TSan still cannot start: $(cat "$probe_dir/probe.log")"
    fi
fi

say "configuring and building $build (EDGELM_TSAN=ON, warnings as errors)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DEDGELM_TSAN=ON -DEDGELM_WERROR=ON >/dev/null
cmake --build "$build" -j "$jobs"

# halt_on_error: the first report ends the process with status 66, so the test fails there.
# log_path: every report of every process (the tests, and the edgelmd, edgelm and edgelm-gen
# processes they spawn, whose output the tests only keep in temp files) also lands in $logs, and
# any file there fails the stage even when a test does not look at that daemon's exit status.
tsan_options="halt_on_error=1 second_deadlock_stack=1 log_path=$logs/tsan"
# test_service_faults runs every fault case; its repetitions (reconnect cycles, hostile payloads)
# come from the caller (run-all.sh passes the sanitized counts), else these: the races it can show
# come from the kinds of fault, which every cycle repeats, not from the count.
export EDGELM_SOAK_CYCLES=${EDGELM_SOAK_CYCLES:-10}
export EDGELM_HOSTILE_PAYLOADS=${EDGELM_HOSTILE_PAYLOADS:-1000}

# ctest runs as the leader of its own process group: a test that TSan stops (halt_on_error exits
# at once, skipping its atexit clean-up) would leave its mosquitto and edgelmd running; the whole
# group is killed once ctest returns.
run_ctest() { # TSAN_OPTIONS CTEST_ARGS...
    local options=$1
    shift
    say "TSAN_OPTIONS=\"$options\" ctest $*"
    TSAN_OPTIONS=$options setsid "${run_prefix[@]}" ctest --test-dir "$build" \
        --output-on-failure -j 1 "$@" &
    group=$!
    local rc=0
    wait "$group" || rc=$?
    kill -KILL -- "-$group" 2>/dev/null || true
    group=""
    return "$rc"
}
status=0
say "service tests (ctest -R service)"
run_ctest "$tsan_options" -R service || status=1
say "engine tests with threads"
run_ctest "$tsan_options" -R "^($engine_tests)\$" || status=1

shopt -s nullglob
reports=("$logs"/tsan*)
if [ "${#reports[@]}" -gt 0 ]; then
    for f in "${reports[@]}"; do
        say "---- TSan report $(basename "$f") ----"
        cat "$f" >&2
    done
    die "${#reports[@]} process(es) reported by ThreadSanitizer (see above)"
fi
[ "$status" -eq 0 ] || die "tests failed under ThreadSanitizer (see above)"
say "passed: no ThreadSanitizer reports"
