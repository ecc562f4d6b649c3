#!/bin/sh
# test_get_model.sh - tools/get-model end to end against local HTTP servers
# (http_range_server.py: Range/206/416, cut bodies, redirects, 404) serving a model made by
# edgelm-gen: full downloads with and without a sha256, resume after a cut (in one run and in a
# later run, by curl and by wget), wrong hashes, files the engine refuses, HTTP and network
# errors, --list, unknown names, the lock. POSIX sh.
# Usage: sh test_get_model.sh GET_MODEL EDGELM_GEN EDGELM
set -u
GM=${1:?usage: sh test_get_model.sh GET_MODEL EDGELM_GEN EDGELM}
GEN=${2:?usage: sh test_get_model.sh GET_MODEL EDGELM_GEN EDGELM}
CLI=${3:?usage: sh test_get_model.sh GET_MODEL EDGELM_GEN EDGELM}
NAME=test_get_model
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../support/checks.sh
. "$here/../support/checks.sh"

if ! command -v python3 >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
    echo "$NAME: *** SKIPPED: needs python3 (for the test server) and curl" >&2
    exit 77
fi

server_pids=''
stop_servers() {
    for pid in $server_pids; do
        kill "$pid" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap stop_servers EXIT

# start_server ID ARGS...: a server on its own free port; log in $tmp/ID.log, port in $tmp/ID.port
start_server() {
    id=$1
    shift
    : >"$tmp/$id.log"
    python3 "$here/http_range_server.py" --dir "$tmp/srv" --port-file "$tmp/$id.port" \
        --log "$tmp/$id.log" "$@" >/dev/null 2>"$tmp/$id.stderr" &
    server_pids="$server_pids $!"
    n=0
    while [ ! -s "$tmp/$id.port" ]; do
        n=$((n + 1))
        if [ "$n" -gt 100 ]; then
            echo "$NAME: the test server '$id' did not start:" >&2
            cat "$tmp/$id.stderr" >&2
            exit 1
        fi
        sleep 0.1
    done
}
url() { echo "http://127.0.0.1:$(cat "$tmp/$1.port")/$2"; }

# run ARGS...: get-model (with the engine under test); stdout, stderr, status to $tmp/out|err|rc
run() {
    EDGELM_BIN=$CLI "$GM" "$@" >"$tmp/out" 2>"$tmp/err"
    echo $? >"$tmp/rc"
}
# status_is N: the last run exited with N
status_is() {
    [ "$(cat "$tmp/rc")" = "$1" ] && return 0
    echo "exit status $(cat "$tmp/rc"), want $1; stderr:"
    cat "$tmp/err"
    return 1
}
# said TEXT: the last run's stderr contains TEXT (a grep -E pattern)
said() {
    grep -Eq -- "$1" "$tmp/err" && return 0
    echo "stderr lacks /$1/:"
    cat "$tmp/err"
    return 1
}
# absent PATH...: none of the paths exists (an unmatched glob stays literal, so it is absent too)
absent() {
    for path in "$@"; do
        if [ -e "$path" ]; then
            echo "$path exists"
            return 1
        fi
    done
}
requests() { grep -c "^GET " "$tmp/$1.log"; }

mkdir -p "$tmp/srv"
"$GEN" "$tmp/srv/tiny.gguf" --preset tiny --quiet --seed 7 || exit 1
size=$(wc -c <"$tmp/srv/tiny.gguf" | tr -d ' ')
sha=$(sha256sum "$tmp/srv/tiny.gguf" | cut -d' ' -f1)
cut_at=$((size / 3))
head -c $((size / 2)) "$tmp/srv/tiny.gguf" >"$tmp/srv/cut-at-source.gguf"
printf '<!DOCTYPE html>\n<html><body>Sign in to download</body></html>\n' >"$tmp/srv/page.gguf"

start_server plain

# ---- usage, --help, --list, names ---------------------------------------------------------
run
check "no arguments: usage error (2)" status_is 2
run --bogus
check "an unknown option: usage error (2)" status_is 2
run x --sha256 abc
check "a short --sha256: usage error (2)" status_is 2
run --help
check "--help exits 0" status_is 0
check "--help documents the exit status" grep -q "sha256 mismatch" "$tmp/out"
run --list
check "--list exits 0" status_is 0
for model in SmolLM2-135M-Instruct SmolLM2-360M-Instruct Qwen2.5-0.5B-Instruct Qwen3-0.6B \
    Gemma-3-270M-it Llama-3.2-1B-Instruct TinyLlama-1.1B-Chat; do
    check "--list shows $model in Q4_K_M and Q8_0" \
        test "$(grep -c "^$model  *Q[48]_[0KM_]*" "$tmp/out")" = 2
done
check "--list shows licenses" grep -q "Llama 3.2 Community License" "$tmp/out"
check "--list shows board RAM" grep -q "512 MB" "$tmp/out"
run NoSuchModel -o "$tmp/dl"
check "an unknown name: usage error (2)" status_is 2
check "... that names the known ones" \
    said "known names: .*SmolLM2-135M-Instruct.*TinyLlama-1.1B-Chat"
check "... and downloads nothing" absent "$tmp/dl"
run smollm2-135m-instruct --quant Q5_K_M -o "$tmp/dl"
check "an unlisted quant: usage error (2) naming the listed ones" status_is 2
check "... naming the listed ones" said "listed: Q4_K_M, Q8_0"

# ---- full downloads -----------------------------------------------------------------------
run "$(url plain tiny.gguf)" -o "$tmp/d1"
check "a full download without a sha256 exits 0" status_is 0
check "... stdout is the path" test "$(cat "$tmp/out")" = "$tmp/d1/tiny.gguf"
check "... byte-identical" cmp "$tmp/srv/tiny.gguf" "$tmp/d1/tiny.gguf"
check "... prints the sha256 and says it was not verified" said "sha256 $sha \(NOT verified"
check "... says the engine loads it" said "the engine loads it: architecture: llama"
check "... leaves no .part or lock" absent "$tmp/d1/"*.part*
n=$(requests plain)
run "$(url plain tiny.gguf)" -o "$tmp/d1" --sha256 "$sha"
check "an existing file: exits 0" status_is 0
check "... without a request" test "$(requests plain)" = "$n"
check "... checking the sha256 it is given" said "matches"

run "$(url plain redirect/tiny.gguf)" -o "$tmp/d2" --sha256 "$(echo "$sha" | tr a-f A-F)"
check "a redirected download with the right sha256 (upper case) exits 0" status_is 0
check "... says it matches" said "sha256 $sha matches \(--sha256\)"
check "... byte-identical" cmp "$tmp/srv/tiny.gguf" "$tmp/d2/tiny.gguf"

start_server slow --rate 400000
export GET_MODEL_PROGRESS_SECONDS=1
run "$(url slow tiny.gguf)" -o "$tmp/d3"
unset GET_MODEL_PROGRESS_SECONDS
check "a slow download exits 0" status_is 0
check "... with progress lines when stderr is not a terminal" \
    said "KiB of [0-9.]+ (KiB|MiB) \([0-9]+%\)"

# ---- a listed name (a private list pointing at the test server) ---------------------------
{
    echo "# test list"
    echo "Tiny-Test | Q8_0 | 1 | 256 MB | MIT | llama | $sha | $(url plain tiny.gguf)"
    other_sha=$(echo "$sha" | tr 0-9a-f 1-9a-f0) # every digit changed
    echo "Tiny-Test | F32  | 1 | 256 MB | MIT | llama | $other_sha | $(url plain tiny.gguf)"
} >"$tmp/models.list"
export GET_MODEL_LIST="$tmp/models.list"
run tiny-test -o "$tmp/d4"
check "a listed name exits 0" status_is 0
check "... verified against the list's sha256" said "sha256 $sha matches \(models.list\)"
check "... byte-identical" cmp "$tmp/srv/tiny.gguf" "$tmp/d4/tiny.gguf"
run Tiny-Test --quant f32 -o "$tmp/d5"
unset GET_MODEL_LIST
check "a listed file whose sha256 differs: refused (7)" status_is 7
check "... saying the .part was deleted" said "sha256 mismatch.*deleted"
check "... leaving nothing" absent "$tmp/d5/"*

# ---- wrong hash ---------------------------------------------------------------------------
run "$(url plain tiny.gguf)" -o "$tmp/d6" --sha256 "$(printf '%064d' 0)"
check "a wrong --sha256: refused (7)" status_is 7
check "... saying the download was deleted" said "deleted .*tiny.gguf.part"
check "... no final file, no .part" absent "$tmp/d6/"*

# ---- interrupted transfers ----------------------------------------------------------------
start_server cut1 --cut-after "$cut_at"
run "$(url cut1 tiny.gguf)" -o "$tmp/d7"
check "a cut transfer is resumed in the same run and exits 0" status_is 0
check "... after saying it broke" said "transfer broke at"
check "... with a Range request from the cut" \
    grep -q "range=bytes=$cut_at- status=206" "$tmp/cut1.log"
check "... byte-identical" cmp "$tmp/srv/tiny.gguf" "$tmp/d7/tiny.gguf"

start_server cut2 --cut-after "$cut_at"
run "$(url cut2 redirect/tiny.gguf)" -o "$tmp/d8" --retries 0 --sha256 "$sha"
check "fewer bytes than Content-Length with --retries 0: incomplete (5)" status_is 5
check "... saying how to resume" said "run the same command again to resume"
check "... keeping the .part" test "$(wc -c <"$tmp/d8/tiny.gguf.part" | tr -d ' ')" = "$cut_at"
check "... and no final file" absent "$tmp/d8/tiny.gguf"
run "$(url cut2 redirect/tiny.gguf)" -o "$tmp/d8" --retries 0 --sha256 "$sha"
check "a later run resumes it and exits 0" status_is 0
check "... with a Range request (through the redirect)" \
    grep -q "GET /tiny.gguf range=bytes=$cut_at- status=206" "$tmp/cut2.log"
check "... byte-identical" cmp "$tmp/srv/tiny.gguf" "$tmp/d8/tiny.gguf"
check "... no .part left" absent "$tmp/d8/tiny.gguf.part"

if command -v wget >/dev/null 2>&1; then
    start_server cut3 --cut-after "$cut_at"
    export GET_MODEL_DOWNLOADER=wget
    run "$(url cut3 redirect/tiny.gguf)" -o "$tmp/d9" --retries 0
    check "wget: a cut transfer: incomplete (5)" status_is 5
    run "$(url cut3 redirect/tiny.gguf)" -o "$tmp/d9" --sha256 "$sha"
    check "wget: a later run resumes it and exits 0" status_is 0
    check "wget: ... with a Range request" grep -q "range=bytes=$cut_at- status=206" "$tmp/cut3.log"
    check "wget: ... byte-identical" cmp "$tmp/srv/tiny.gguf" "$tmp/d9/tiny.gguf"
    run "$(url plain nope.gguf)" -o "$tmp/d10"
    check "wget: 404 is an HTTP error (4)" status_is 4
    check "wget: ... leaving nothing" absent "$tmp/d10/"*
    unset GET_MODEL_DOWNLOADER
else
    echo "$NAME: wget not installed: its cases are not run" >&2
fi

mkdir -p "$tmp/d11"
head -c 1000 "$tmp/srv/tiny.gguf" >"$tmp/d11/tiny.gguf.part"
start_server norange --no-range
run "$(url norange tiny.gguf)" -o "$tmp/d11"
check "a server that ignores Range: started again from 0, exits 0" status_is 0
check "... saying so" said "ignored the request to resume"
check "... byte-identical" cmp "$tmp/srv/tiny.gguf" "$tmp/d11/tiny.gguf"

mkdir -p "$tmp/d12"
cp "$tmp/srv/tiny.gguf" "$tmp/d12/tiny.gguf.part"
: >"$tmp/plain.log"
run "$(url plain tiny.gguf)" -o "$tmp/d12" --sha256 "$sha"
check "a .part already complete (416): finished without a new body, exits 0" status_is 0
check "... the server answered 416" grep -q "status=416" "$tmp/plain.log"
check "... byte-identical" cmp "$tmp/srv/tiny.gguf" "$tmp/d12/tiny.gguf"

# ---- files the engine refuses -------------------------------------------------------------
run "$(url plain cut-at-source.gguf)" -o "$tmp/d13"
check "a file truncated at the source: refused by the engine (8)" status_is 8
check "... printing the engine's error" said "edgelm: .*cut-at-source.gguf.part"
check "... leaving nothing" absent "$tmp/d13/"*
run "$(url plain page.gguf)" -o "$tmp/d14"
check "a web page instead of a GGUF: refused by the engine (8)" status_is 8
check "... saying it is not a GGUF file" said "not a GGUF file; it starts with '<!DOCTYPE html>"
check "... leaving nothing" absent "$tmp/d14/"*

# ---- HTTP and network errors --------------------------------------------------------------
run "$(url plain missing.gguf)" -o "$tmp/d15"
check "404: an HTTP error (4)" status_is 4
check "... saying 404" said "HTTP 404 not found"
check "... leaving nothing" absent "$tmp/d15/"*
free_port=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
run "http://127.0.0.1:$free_port/tiny.gguf" -o "$tmp/d16" --retries 0
check "nobody listening: a network error (3)" status_is 3
check "... saying it cannot reach the host" said "cannot reach 127.0.0.1:$free_port"

# ---- engine missing, lock -----------------------------------------------------------------
: >"$tmp/plain.log"
EDGELM_BIN=$tmp/no-such-edgelm "$GM" "$(url plain tiny.gguf)" -o "$tmp/d17" >"$tmp/out" 2>"$tmp/err"
echo $? >"$tmp/rc"
check "no engine binary: missing program (9)" status_is 9
check "... found out before downloading" test "$(requests plain)" = 0
mkdir -p "$tmp/d18/tiny.gguf.part.lock"
echo $$ >"$tmp/d18/tiny.gguf.part.lock/pid"
run "$(url plain tiny.gguf)" -o "$tmp/d18"
check "a live lock: refused (1)" status_is 1
check "... naming the other run" said "another get-model \(pid $$\)"
sh -c 'exit 0' &
dead=$!
wait "$dead"
echo "$dead" >"$tmp/d18/tiny.gguf.part.lock/pid"
run "$(url plain tiny.gguf)" -o "$tmp/d18"
check "a lock left by a dead run is taken over (0)" status_is 0
check "... and removed" absent "$tmp/d18/tiny.gguf.part.lock"

finish
