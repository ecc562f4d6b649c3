#!/bin/sh
# test_edgelm_bench.sh - edgelm-bench end to end on a generated tiny model: usage errors (2), a
# missing model (1), the markdown table, and the JSON report: one entry per model x threads x
# test with the fields README's Performance section relies on, every sample, and a mean, median
# and t/s that agree with the samples. POSIX sh + python3. Usage:
#   sh test_edgelm_bench.sh EDGELM_BENCH EDGELM_GEN
set -u
BENCH=${1:?usage: sh test_edgelm_bench.sh EDGELM_BENCH EDGELM_GEN}
GEN=${2:?usage: sh test_edgelm_bench.sh EDGELM_BENCH EDGELM_GEN}
NAME=test_edgelm_bench
. "$(dirname "$0")/../support/checks.sh"

if ! command -v python3 >/dev/null 2>&1; then
    echo "*** SKIPPED: python3 is not installed (it reads the JSON report)" >&2
    exit 77
fi

model=$tmp/tiny.gguf
check "edgelm-gen makes a tiny model" "$GEN" "$model" --preset tiny --quiet --type q8_0

check "no model is a usage error (2)" exit_code 2 "$BENCH"
check "-o xml is a usage error (2)" exit_code 2 "$BENCH" -m "$model" -o xml
check "-r 0 is a usage error (2)" exit_code 2 "$BENCH" -m "$model" -r 0
check "an unknown option is a usage error (2)" exit_code 2 "$BENCH" -m "$model" --bogus
check "a missing model fails (1)" exit_code 1 "$BENCH" -m "$tmp/missing.gguf" -p 8 -n 0 -r 1

check "markdown report" sh -c '"$0" -m "$1" -t 1 -p 8 -n 4 -r 2 >"$2"' "$BENCH" "$model" "$tmp/md"
check "... has a pp8 row" grep -Eq '\| +pp8 \|' "$tmp/md"
check "... has a tg4 row" grep -Eq '\| +tg4 \|' "$tmp/md"

check "JSON report" sh -c '"$0" -m "$1" -t 1,2 -p 8,16 -n 4 -r 3 -o json >"$2"' \
    "$BENCH" "$model" "$tmp/json"
check "JSON: one entry per model x threads x test, with consistent statistics" \
    python3 - "$tmp/json" "$model" <<'PY'
import json, os, statistics, sys
runs = json.load(open(sys.argv[1]))
size = os.path.getsize(sys.argv[2])
want = {(t, p, g) for t in (1, 2) for p, g in ((8, 0), (16, 0), (0, 4))}
got = {(r["n_threads"], r["n_prompt"], r["n_gen"]) for r in runs}
assert got == want and len(runs) == len(want), (got, want)
for r in runs:
    for key in ("build_version", "model_filename", "model_type", "model_size", "model_n_params",
                "kernels", "test_time", "ttft_ms", "peak_rss_bytes", "rss_anon_bytes"):
        assert key in r, key
    assert len(r["samples_ns"]) == 3 and len(r["samples_ts"]) == 3, r
    assert all(v > 0 for v in r["samples_ns"] + r["samples_ts"]), r
    assert abs(r["avg_ts"] - statistics.mean(r["samples_ts"])) <= 1e-3 * r["avg_ts"], r
    assert abs(r["median_ts"] - statistics.median(r["samples_ts"])) <= 1e-3 * r["median_ts"], r
    n_tokens = r["n_prompt"] or r["n_gen"]
    for ns, ts in zip(r["samples_ns"], r["samples_ts"]):
        assert abs(ts - n_tokens * 1e9 / ns) <= 1e-3 * ts, (ns, ts)
    assert r["model_size"] <= size, (r["model_size"], size)
    assert r["rss_anon_bytes"] < r["peak_rss_bytes"], r
PY

finish
