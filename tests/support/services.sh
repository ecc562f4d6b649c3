# shellcheck shell=bash
# services.sh - helpers for the shell tests that run real servers (mosquitto, edgelmd, Node-RED,
# a browser), sourced after checks.sh (which gives $tmp, check and finish):
#   NAME=test_x; . "$here/../support/checks.sh"; . "$here/../support/services.sh"
# say, skip (exit 77 with a loud SKIPPED line), pass / fail DESCRIPTION [FILE...] (a failed check
# with the end of each file), show FILE..., wait_for FILE STRING [SECONDS], listening PORT,
# free_port, find_mosquitto (sets mosquitto_bin or skips), find_model (sets model: the repo's
# stories260K, else the shared one, else a tiny generated one; or skips). bash only.

say() { printf '%s: %s\n' "$NAME" "$*" >&2; }
skip() {
    say "*** SKIPPED: $*"
    exit 77
}
show() { # FILE...: the end of each file, after a failure
    local f
    for f in "$@"; do
        echo "    --- $f" >&2
        tail -n 40 "$f" 2>/dev/null | sed 's/^/    /' >&2
    done
}
fail() { # DESCRIPTION [FILE...]: count a failure and show the files
    local desc=$1
    shift
    checks=$((checks + 1))
    failures=$((failures + 1))
    echo "FAIL: $desc" >&2
    show "$@"
}
pass() { checks=$((checks + 1)); }
# wait_for FILE STRING [SECONDS]: true once FILE contains STRING (fixed string)
wait_for() {
    local i limit=$((${3:-20} * 10))
    for ((i = 0; i < limit; i++)); do
        grep -qF -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' \
        2>/dev/null || echo $((20000 + RANDOM % 40000))
}
find_mosquitto() {
    local candidate
    mosquitto_bin=""
    for candidate in "$(command -v mosquitto 2>/dev/null)" /usr/sbin/mosquitto /usr/local/sbin/mosquitto; do
        [ -z "$mosquitto_bin" ] && [ -n "$candidate" ] && [ -x "$candidate" ] && mosquitto_bin=$candidate
    done
    [ -n "$mosquitto_bin" ] || skip "mosquitto not installed (Debian package mosquitto)"
}
# find_model SOURCE_DIR [EDGELM_GEN]
find_model() {
    local candidate
    model=""
    for candidate in "$1/models/stories260K.gguf" "${EDGELM_MODELS:-/nonexistent}/stories260K.gguf" \
        "${EDGELM_MODELS_DEFAULT:-/nonexistent}/stories260K.gguf"; do
        [ -z "$model" ] && [ -f "$candidate" ] && model=$candidate
    done
    if [ -z "$model" ] && [ -n "${2:-}" ] && [ -x "$2" ]; then
        # shellcheck disable=SC2154 # tmp comes from checks.sh
        model=$tmp/tiny.gguf
        "$2" "$model" --preset tiny --quiet || model=""
    fi
    [ -n "$model" ] || skip "no model (models/stories260K.gguf missing and no edgelm-gen)"
}
