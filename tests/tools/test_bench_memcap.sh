#!/bin/sh
# test_bench_memcap.sh - tools/bench-memcap end to end with a real memory cgroup: usage errors; a
# benchmark of a generated model inside a 64 MiB cap (its report, the model dropped from the
# page cache, the peak charged, the group removed afterwards); a process that needs more than the
# cap ended by the OOM killer and reported as such (exit 137); the command's own failure passed
# through. Needs root and a memory cgroup (v1, or v2 with the controller delegated): skipped,
# loudly, without them. POSIX sh.
# Usage: sh test_bench_memcap.sh BENCH_MEMCAP EDGELM_BENCH EDGELM_GEN
set -u
MEMCAP=${1:?usage: sh test_bench_memcap.sh BENCH_MEMCAP EDGELM_BENCH EDGELM_GEN}
BENCH=${2:?usage: sh test_bench_memcap.sh BENCH_MEMCAP EDGELM_BENCH EDGELM_GEN}
GEN=${3:?usage: sh test_bench_memcap.sh BENCH_MEMCAP EDGELM_BENCH EDGELM_GEN}
NAME=test_bench_memcap
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../support/checks.sh
. "$here/../support/checks.sh"

# usage errors need no cgroup
check "no arguments: usage, exit 2" exit_code 2 bash "$MEMCAP"
check "a limit that is not a size: exit 2" exit_code 2 bash "$MEMCAP" 12Q true
check "a limit below 16M: exit 2" exit_code 2 bash "$MEMCAP" 1M true
check "an unknown command: exit 2" exit_code 2 bash "$MEMCAP" 64M /nonexistent/bench

if [ "$(id -u)" != 0 ]; then
    echo "$NAME: *** SKIPPED the cgroup cases: needs root (a memory cgroup is created)" >&2
    finish || exit 1
    exit 77
fi
output_to "$tmp/probe.log" bash "$MEMCAP" 64M true
probe=$?
if [ "$probe" = 3 ]; then
    echo "$NAME: *** SKIPPED the cgroup cases: $(cat "$tmp/probe.log")" >&2
    finish || exit 1
    exit 77
fi
check "a trivial command in the cap exits 0" test "$probe" = 0

model=$tmp/small.gguf
check "edgelm-gen makes the model" "$GEN" "$model" --preset stories260k --type q8_0 --quiet
# read it once so there is page cache to drop
cat "$model" >/dev/null
check "edgelm-bench inside 64M" output_to "$tmp/bench.log" bash "$MEMCAP" 64M "$BENCH" \
    -m "$model" -p 16 -n 8 -r 2 -t 1
check "the report names the model and its page cache before the run" \
    grep -q "model $model: .* MiB in the page cache before the run" "$tmp/bench.log"
check "the report says where it ran" grep -q "running in v[12] cgroup .*limit 64M" "$tmp/bench.log"
check "the benchmark's table is there" grep -q "tg8" "$tmp/bench.log"
check "the peak charged is reported" grep -q "peak charged [0-9]* MiB of 64 MiB" "$tmp/bench.log"
group=$(sed -n 's/.*running in v[12] cgroup \([^ ]*\),.*/\1/p' "$tmp/bench.log")
check "the group was named" test -n "$group"
check "the group is removed afterwards" test ! -e "${group:-/nonexistent-group}"

# more than the cap: the OOM killer, reported, exit 137 (a shell that fills 64 MiB of memory)
# shellcheck disable=SC2016 # (expanded by the inner sh)
output_to "$tmp/oom.log" bash "$MEMCAP" 24M sh -c 'x=$(head -c 67108864 /dev/zero | tr "\0" a); echo ${#x}'
oom=$?
check "over the cap: exit 137 (was $oom)" test "$oom" = 137
check "over the cap: the OOM kill is reported" grep -q "the OOM killer ended the command" "$tmp/oom.log"
group=$(sed -n 's/.*running in v[12] cgroup \([^ ]*\),.*/\1/p' "$tmp/oom.log")
check "over the cap: the group is removed afterwards" test ! -e "${group:-/nonexistent-group}"

# the command's own failure is passed through
check "the command's exit status passes through" exit_code 5 bash "$MEMCAP" 64M sh -c 'exit 5'

finish
