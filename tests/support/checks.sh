# checks.sh - helpers for the shell-driven tests (POSIX sh), sourced after setting NAME:
#   NAME=test_x; . "$(dirname "$0")/../support/checks.sh"
# gives $tmp (a temporary directory removed at exit), check DESCRIPTION COMMAND... (counts a
# failure, with the command's output, when the command fails), exit_code WANT COMMAND...,
# output_to FILE COMMAND..., and finish (prints the count; exit status 0 only if none failed).
tmp=$(mktemp -d "${TMPDIR:-/tmp}/${NAME}.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
checks=0
failures=0

check() {
    desc=$1
    shift
    checks=$((checks + 1))
    if ! "$@" >"$tmp/log" 2>&1; then
        failures=$((failures + 1))
        echo "FAIL: $desc" >&2
        sed 's/^/    /' "$tmp/log" >&2
    fi
}

# exit_code WANT COMMAND...: true when the command exits with status WANT
exit_code() {
    want=$1
    shift
    "$@" >/dev/null 2>&1
    [ $? -eq "$want" ]
}

# output_to FILE COMMAND...: run the command with its stdout and stderr in FILE
output_to() {
    file=$1
    shift
    "$@" >"$file" 2>&1
}

finish() {
    echo "$NAME: $checks checks, $failures failed" >&2
    [ "$failures" -eq 0 ]
}
