#!/bin/sh
# test_cli.sh - end-to-end checks of the edgelm CLI binary: flag validation and exit codes, then
# --info/--tokenize/generation on a model made by edgelm-gen (with --cache, --stop, --chat,
# --think on Qwen3's template, --json/--schema and context shift), then stories260K (the shared
# models' copy, else the repository's models/stories260K.gguf) against llama.cpp: its first 27
# greedy tokens always, the full reference runs when the shared reference outputs are present.
# POSIX sh.
# Usage: sh test_cli.sh EDGELM EDGELM_GEN
# Exit 0 all passed, 1 a check failed, 77 nothing failed but a part was skipped (said loudly).

set -u

if [ $# -ne 2 ]; then
    echo "usage: sh test_cli.sh EDGELM EDGELM_GEN" >&2
    exit 2
fi
EDGELM=$1
GEN=$2
SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)

checks=0
failures=0
skips=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/edgelm_cli_test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

pass() { checks=$((checks + 1)); }
fail() {
    checks=$((checks + 1))
    failures=$((failures + 1))
    echo "FAIL: $*" >&2
    if [ -s "$tmp/err" ]; then
        sed 's/^/    stderr: /' "$tmp/err" | head -n 5 >&2
    fi
}
skip() {
    skips=$((skips + 1))
    echo "SKIP: $*" >&2
}

# run CMD... : runs with stdin from /dev/null; sets rc, output in $tmp/out and $tmp/err.
run() {
    "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

# expect_rc WANT DESCRIPTION CMD...
expect_rc() {
    want=$1
    what=$2
    shift 2
    run "$@"
    if [ "$rc" -eq "$want" ]; then pass; else fail "$what: exit $rc, expected $want"; fi
}

# ---- arguments without a model ------------------------------------------------------------------

[ -x "$EDGELM" ] || { echo "FAIL: $EDGELM is not an executable" >&2; exit 1; }

expect_rc 0 "--help" "$EDGELM" --help
for flag in -p --prompt -n --n-predict -t --temp -k --top-p -s --seed -c --ctx-size -j \
    --threads --top-k --min-p --repeat-penalty --repeat-last-n --tokenize --info --json \
    --schema --cache --stop --chat --system --think --no-context-shift --keep --help --version \
    EDGELM_KERNELS; do
    if grep -q -e "$flag" "$tmp/out"; then pass; else fail "--help does not mention $flag"; fi
done
expect_rc 0 "-h" "$EDGELM" -h

expect_rc 0 "--version" "$EDGELM" --version
if [ "$(cat "$tmp/out")" = "edgelm 0.1.0" ]; then pass; else
    fail "--version printed '$(cat "$tmp/out")', expected 'edgelm 0.1.0'"
fi

# Every one of these must be refused before the model is opened (the file does not exist, so a
# load attempt would exit 1): exit 2, nothing on stdout, the offending flag named on stderr.
nomodel="$tmp/does-not-exist.gguf"
while IFS='|' read -r args named; do
    [ -n "$args" ] || continue
    # shellcheck disable=SC2086 # word splitting of $args is intended
    run "$EDGELM" "$nomodel" -p hello $args
    if [ "$rc" -ne 2 ]; then
        fail "'$args': exit $rc, expected 2"
    elif [ -s "$tmp/out" ]; then
        fail "'$args': wrote to stdout"
    elif ! grep -q -F -e "$named" "$tmp/err"; then
        fail "'$args': stderr does not name '$named'"
    elif ! grep -q -F "try 'edgelm --help'" "$tmp/err"; then
        fail "'$args': no hint to --help"
    else
        pass
    fi
done <<'EOF'
--bogus|--bogus
-x|-x
-n abc|-n: expected an integer
-n -2|-n: expected
-n 1.5|-n: expected
-n 99999999999|-n: expected
--n-predict=x|--n-predict: expected
-t abc|-t: expected a number >= 0, got 'abc'
-t -0.5|-t: expected
-t nan|-t: expected
-t inf|-t: expected
--temp=|--temp: expected
-k -0.1|-k: expected
-k 1.01|-k: expected
-k -1|-k: expected
--top-p x|--top-p: expected
-s -1|-s: expected
-s 1x|-s: expected
-s 99999999999999999999999|-s: expected
-c 8|-c: expected
-c abc|-c: expected
-c -1|-c: expected
-j 0|-j: expected
-j 257|-j: expected
-j two|-j: expected
--threads=-3|--threads: expected
--top-k -1|--top-k: expected
--min-p 1.5|--min-p: expected
--min-p -0.1|--min-p: expected
--repeat-penalty 0|--repeat-penalty: expected
--repeat-penalty -1|--repeat-penalty: expected
--repeat-last-n -5|--repeat-last-n: expected
--json=1|--json: takes no value
--cache=|--cache: expected a file name
--schema=|--schema: expected a file name
--stop=|--stop: expected a non-empty string
--keep -2|--keep: expected an integer >= -1
--keep x|--keep: expected
--chat=yes|--chat: takes no value
--no-context-shift=1|--no-context-shift: takes no value
--system hi|--system needs --chat
--think|--think needs --chat
--think=1 --chat|--think: takes no value
--info=yes|--info: takes no value
--info --tokenize|cannot be combined
extra-positional|unexpected argument 'extra-positional'
EOF

for flag in -p -n -t -k -s -c -j --top-k --min-p --repeat-penalty --cache --stop --system \
    --schema --keep; do
    run "$EDGELM" "$nomodel" "$flag"
    if [ "$rc" -eq 2 ] && grep -q -F -e "$flag: missing value" "$tmp/err"; then pass; else
        fail "'$flag' without a value: exit $rc, expected 2 and '$flag: missing value'"
    fi
done

run "$EDGELM"
if [ "$rc" -eq 2 ] && grep -q "missing MODEL" "$tmp/err"; then pass; else
    fail "no arguments: exit $rc, expected 2 and 'missing MODEL'"
fi

# A model that cannot be loaded: exit 1 and the path in the message.
expect_rc 1 "missing model file" "$EDGELM" "$nomodel" -p hello
if grep -q -F -e "$nomodel" "$tmp/err"; then pass; else fail "load error does not name the path"; fi
printf 'this is not a GGUF file\n' >"$tmp/not.gguf"
expect_rc 1 "non-GGUF model file" "$EDGELM" "$tmp/not.gguf" -p hello
if grep -q -F -e "$tmp/not.gguf" "$tmp/err"; then pass; else fail "bad-magic error does not name the path"; fi

# ---- helpers for the model sections ---------------------------------------------------------------

# gen MODEL OUTFILE ARGS... : generation with the prompt on -p; stdout to OUTFILE.
gen() {
    m=$1
    o=$2
    shift 2
    "$EDGELM" "$m" "$@" </dev/null >"$o" 2>"$tmp/err"
    rc=$?
}

# generated_count: the token count from the stats line on stderr ("generated: N tokens").
generated_count() {
    sed -n 's/^edgelm: generated: \([0-9][0-9]*\) tokens.*/\1/p' "$tmp/err" | head -n 1
}

# value_complete DESCRIPTION : the last gen exited 0 and said it completed the JSON value.
value_complete() {
    if [ "$rc" -eq 0 ] && grep -q "stop: value complete" "$tmp/err"; then pass; else
        fail "$1: exit $rc, the value was not completed"
    fi
}

# json_check FILE CONDITION DESCRIPTION : one check that FILE is JSON whose value v meets the
# Python CONDITION; nothing when python3 is absent.
json_check() {
    command -v python3 >/dev/null 2>&1 || return 0
    if python3 -c "import json,sys; v=json.loads(open(sys.argv[1]).read()); sys.exit(0 if $2 else 1)" "$1"; then
        pass
    else
        fail "$3: $(head -c 200 "$1")"
    fi
}

# sigint_check MODEL : SIGINT during generation cancels it, prints stats and exits 130.
sigint_check() {
    "$EDGELM" "$1" -p "Once upon a time" -n -1 -t 0 </dev/null >"$tmp/sig.out" 2>"$tmp/err" &
    pid=$!
    # Wait for the first generated bytes: by then the handler is installed.
    i=0
    while [ ! -s "$tmp/sig.out" ] && [ $i -lt 600 ] && kill -0 "$pid" 2>/dev/null; do
        sleep 0.05
        i=$((i + 1))
    done
    kill -INT "$pid" 2>/dev/null
    wait "$pid"
    rc=$?
    if [ "$rc" -eq 0 ] && grep -q "stop: context full\|stop: end of generation" "$tmp/err"; then
        skip "SIGINT check inconclusive: generation ended before the signal arrived"
    elif [ "$rc" -eq 130 ] && grep -q "stop: interrupted" "$tmp/err" &&
        grep -q "^edgelm: memory: peak RSS" "$tmp/err"; then
        pass
    else
        fail "SIGINT during generation: exit $rc, expected 130 with stats and 'stop: interrupted'"
    fi
}

# ---- a model generated by edgelm-gen ----------------------------------------------------------------

tiny="$tmp/tiny.gguf"
if [ -x "$GEN" ] && "$GEN" "$tiny" --preset tiny >"$tmp/gen.log" 2>&1 && [ -s "$tiny" ]; then
    have_tiny=1
else
    have_tiny=0
    skip "edgelm-gen '$GEN' could not make a tiny model ('edgelm-gen OUT.gguf --preset tiny'):" \
        "the generated-model checks did not run"
    sed 's/^/    edgelm-gen: /' "$tmp/gen.log" 2>/dev/null | head -n 5 >&2
fi

if [ "$have_tiny" -eq 1 ]; then
    expect_rc 0 "--info on the tiny model" "$EDGELM" "$tiny" --info
    if grep -q '^architecture: [A-Za-z0-9_]' "$tmp/out" && ! grep -q '^architecture: (unknown)' "$tmp/out"; then
        pass
    else
        fail "--info does not print the architecture"
    fi
    for what in '^tensors (' '^weights mapped: [0-9]' '^session for n_ctx [0-9]'; do
        if grep -q -e "$what" "$tmp/out"; then pass; else fail "--info: no line matching '$what'"; fi
    done
    expect_rc 0 "--info -c 64" "$EDGELM" "$tiny" --info -c 64
    if grep -q '^session for n_ctx 64 ' "$tmp/out"; then pass; else fail "--info -c 64: session line"; fi

    expect_rc 0 "--tokenize -p" "$EDGELM" "$tiny" --tokenize -p "Once upon a time"
    if grep -q -x '[0-9][0-9]*\( [0-9][0-9]*\)*' "$tmp/out" && [ "$(wc -l <"$tmp/out")" -eq 1 ]; then
        pass
    else
        fail "--tokenize did not print one line of space-separated ids: $(head -c 200 "$tmp/out")"
    fi
    cp "$tmp/out" "$tmp/tok_p"
    printf 'Once upon a time\n' | "$EDGELM" "$tiny" --tokenize >"$tmp/tok_stdin" 2>"$tmp/err"
    rc=$?
    if [ "$rc" -eq 0 ] && cmp -s "$tmp/tok_p" "$tmp/tok_stdin"; then pass; else
        fail "--tokenize from stdin (one trailing newline dropped) differs from -p"
    fi

    # Greedy: exactly 7 tokens unless the model ends generation; deterministic.
    gen "$tiny" "$tmp/g1" -p "Once upon a time" -n 7 -t 0
    if [ "$rc" -eq 0 ]; then pass; else fail "-n 7 -t 0: exit $rc"; fi
    n=$(generated_count)
    if [ "$n" = 7 ] && grep -q "stop: length" "$tmp/err"; then
        pass
    elif [ -n "$n" ] && [ "$n" -le 7 ] && grep -q "stop: end of generation" "$tmp/err"; then
        pass
    else
        fail "-n 7 -t 0: stats say '${n:-nothing}' tokens generated, expected 7"
    fi
    if [ "$(tail -c 1 "$tmp/g1" | od -An -c | tr -d ' ')" = '\n' ]; then pass; else
        fail "generated text does not end with a newline"
    fi
    gen "$tiny" "$tmp/g2" -p "Once upon a time" -n 7 -t 0 -j 1
    if [ "$rc" -eq 0 ] && cmp -s "$tmp/g1" "$tmp/g2"; then pass; else
        fail "two greedy runs (default threads, -j 1) differ"
    fi
    printf 'Once upon a time\n' | "$EDGELM" "$tiny" -n 7 -t 0 >"$tmp/g3" 2>"$tmp/err"
    rc=$?
    if [ "$rc" -eq 0 ] && cmp -s "$tmp/g1" "$tmp/g3"; then pass; else
        fail "prompt from stdin gives different output than -p"
    fi

    # Sampling: a seed reproduces, different seeds diverge at -t 1.
    gen "$tiny" "$tmp/s1" -p "Once upon a time" -n 32 -t 1 -k 1 -s 1
    gen "$tiny" "$tmp/s1b" -p "Once upon a time" -n 32 -t 1 -k 1 -s 1
    if [ "$rc" -eq 0 ] && cmp -s "$tmp/s1" "$tmp/s1b"; then pass; else fail "same seed, different output"; fi
    n1=$(generated_count)
    gen "$tiny" "$tmp/s2" -p "Once upon a time" -n 32 -t 1 -k 1 -s 2
    if [ "$rc" -ne 0 ]; then
        fail "-t 1 -s 2: exit $rc"
    elif ! cmp -s "$tmp/s1" "$tmp/s2"; then
        pass
    elif [ "${n1:-0}" -lt 8 ]; then
        skip "seeds 1 and 2 gave the same short output (${n1:-0} tokens): seed check inconclusive"
    else
        fail "seeds 1 and 2 give identical output at -t 1"
    fi

    # -n 0: the prompt is evaluated, nothing generated, just the newline.
    gen "$tiny" "$tmp/n0" -p "Once upon a time" -n 0
    if [ "$rc" -eq 0 ] && [ "$(od -An -c "$tmp/n0" | tr -d ' ')" = '\n' ]; then pass; else
        fail "-n 0: exit $rc, expected 0 and a lone newline on stdout"
    fi

    # Stats on stderr.
    gen "$tiny" "$tmp/g4" -p "Once upon a time" -n 4 -t 0
    for what in '^edgelm: prompt: [0-9]* tokens in .* tok/s' \
        '^edgelm: generated: [0-9]* tokens, first after [0-9.]* ms' \
        '^edgelm: memory: peak RSS [0-9.]* MiB, weights mapped [0-9.]* MiB'; do
        if grep -q -e "$what" "$tmp/err"; then pass; else fail "stats: no line matching '$what'"; fi
    done

    # A prompt longer than the context: exit 1, the engine's reason, nothing on stdout.
    gen "$tiny" "$tmp/long" -c 16 -n 4 \
        -p "Once upon a time there was a little girl named Lily who loved to play in the park"
    if [ "$rc" -eq 1 ] && [ ! -s "$tmp/long" ] && grep -q -e "context" "$tmp/err"; then pass; else
        fail "prompt longer than -c 16: exit $rc, expected 1, empty stdout and a context message"
    fi

    # An empty prompt is refused (like PicoLM); the model is never loaded for it.
    printf '' | "$EDGELM" "$tiny" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ "$rc" -eq 2 ] && grep -q "empty prompt" "$tmp/err"; then pass; else fail "empty stdin prompt not refused"; fi
fi

# ---- prompt state, stop strings, chat, JSON, context shift (generated model) --------------------------

# cached_count: N from "edgelm: cache: skipping N cached prompt tokens" on stderr (empty if none).
cached_count() {
    sed -n 's/^edgelm: cache: skipping \([0-9][0-9]*\) cached prompt tokens.*/\1/p' "$tmp/err" | head -n 1
}
# prompt_count: the prompt's token count from the stats line.
prompt_count() {
    sed -n 's/^edgelm: prompt: \([0-9][0-9]*\) tokens.*/\1/p' "$tmp/err" | head -n 1
}
same() { if cmp -s "$1" "$2"; then echo yes; else echo no; fi; }

if [ "$have_tiny" -eq 1 ]; then
    p1="the cat sat on the mat and looked at the dog"
    p2="the cat sat on the mat and then ran away"
    gen "$tiny" "$tmp/c0" -p "$p1" -n 16 -t 0
    gen "$tiny" "$tmp/c0b" -p "$p2" -n 16 -t 0
    kvc="$tmp/prompt.kvc"
    # first run: nothing to reuse, the file is written; same text as without --cache
    gen "$tiny" "$tmp/c1" -p "$p1" -n 16 -t 0 --cache "$kvc"
    if [ "$rc" -eq 0 ] && [ -s "$kvc" ] && [ -z "$(cached_count)" ] && cmp -s "$tmp/c0" "$tmp/c1"; then
        pass
    else
        fail "--cache first run: exit $rc, file written: $([ -s "$kvc" ] && echo yes || echo no), same output as without: $(same "$tmp/c0" "$tmp/c1")"
    fi
    # second run: the prompt's prefill is skipped (all but the last token) and says so
    gen "$tiny" "$tmp/c2" -p "$p1" -n 16 -t 0 --cache "$kvc"
    n=$(cached_count)
    np=$(prompt_count)
    if [ "$rc" -eq 0 ] && [ -n "$n" ] && [ -n "$np" ] && [ "$n" -eq $((np - 1)) ] && cmp -s "$tmp/c0" "$tmp/c2"; then
        pass
    else
        fail "--cache second run: exit $rc, skipped '${n:-none}' of '${np:-?}' prompt tokens, same output: $(same "$tmp/c0" "$tmp/c2")"
    fi
    # a different prompt reuses only the common prefix, and generates what it would without
    gen "$tiny" "$tmp/c3" -p "$p2" -n 16 -t 0 --cache "$kvc"
    n=$(cached_count)
    np=$(prompt_count)
    if [ "$rc" -eq 0 ] && [ -n "$n" ] && [ -n "$np" ] && [ "$n" -gt 1 ] && [ "$n" -lt $((np - 1)) ] &&
        cmp -s "$tmp/c0b" "$tmp/c3"; then
        pass
    else
        fail "--cache with another prompt: exit $rc, skipped '${n:-none}' of '${np:-?}', same output as uncached: $(same "$tmp/c0b" "$tmp/c3")"
    fi
    # a corrupt file is ignored with a warning, then rewritten
    printf 'EDGELMKV garbage' >"$kvc"
    gen "$tiny" "$tmp/c4" -p "$p1" -n 16 -t 0 --cache "$kvc"
    if [ "$rc" -eq 0 ] && grep -q "warning: --cache .*ignored (saved state is corrupt)" "$tmp/err" &&
        [ -z "$(cached_count)" ] && cmp -s "$tmp/c0" "$tmp/c4"; then
        pass
    else
        fail "--cache with a corrupt file: exit $rc, expected a warning and an ordinary run"
    fi
    gen "$tiny" "$tmp/c5" -p "$p1" -n 16 -t 0 --cache "$kvc"
    if [ "$rc" -eq 0 ] && [ -n "$(cached_count)" ] && cmp -s "$tmp/c0" "$tmp/c5"; then pass; else
        fail "--cache after a corrupt file: exit $rc, the file was not rewritten"
    fi
    # a state from another model is a mismatch, not a crash
    other="$tmp/other.gguf"
    if "$GEN" "$other" --preset tiny --n-layer 3 --quiet >/dev/null 2>&1; then
        gen "$other" "$tmp/c6" -p "$p1" -n 4 -t 0 --cache "$kvc"
        if [ "$rc" -eq 0 ] && grep -q "warning: --cache .*ignored (saved state does not match" "$tmp/err"; then
            pass
        else
            fail "--cache from another model: exit $rc, expected a mismatch warning"
        fi
    else
        fail "edgelm-gen could not make a 3-layer model"
    fi
    # -n 0 still saves the prompt
    rm -f "$kvc"
    gen "$tiny" "$tmp/c7" -p "$p1" -n 0 --cache "$kvc"
    gen "$tiny" "$tmp/c8" -p "$p1" -n 16 -t 0 --cache "$kvc"
    if [ "$rc" -eq 0 ] && [ -n "$(cached_count)" ] && cmp -s "$tmp/c0" "$tmp/c8"; then pass; else
        fail "--cache after -n 0: exit $rc, nothing reused or a different output"
    fi

    # --stop: the output ends just before the stop string, which is not printed (bytes 6-9 of
    # the unstopped output; its first occurrence found with grep -b, in the C locale)
    gen "$tiny" "$tmp/s0" -p "Once upon a time" -n 24 -t 0
    stop=$(head -n 1 "$tmp/s0" | LC_ALL=C cut -b 6-9)
    off=$(LC_ALL=C grep -b -o -F -e "$stop" "$tmp/s0" 2>/dev/null | head -n 1 | cut -d: -f1)
    if [ "$(printf '%s' "$stop" | LC_ALL=C wc -c)" -eq 4 ] && [ -n "$off" ]; then
        gen "$tiny" "$tmp/s1" -p "Once upon a time" -n 24 -t 0 --stop "$stop" --stop "never-there"
        { head -c "$off" "$tmp/s0"; printf '\n'; } >"$tmp/s_want"
        if [ "$rc" -eq 0 ] && cmp -s "$tmp/s1" "$tmp/s_want" && grep -q "stop: stop string" "$tmp/err"; then
            pass
        else
            fail "--stop (4 bytes at offset $off): got '$(cat "$tmp/s1")', expected '$(cat "$tmp/s_want")'"
        fi
    else
        skip "--stop: no usable stop string in the tiny model's output (or no grep -b -o)"
    fi

    # --chat without a template: ChatML with a warning; the prompt is wrapped as ChatML
    expect_rc 0 "--tokenize --chat" "$EDGELM" "$tiny" --tokenize --chat --system "Be brief." -p "Hi"
    cp "$tmp/out" "$tmp/chat_ids"
    if grep -q "warning: --chat: the model has no chat template; using the default (ChatML)" "$tmp/err"; then
        pass
    else
        fail "--chat without a template: no warning"
    fi
    printf '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n\n' |
        "$EDGELM" "$tiny" --tokenize >"$tmp/out" 2>"$tmp/err"
    if cmp -s "$tmp/out" "$tmp/chat_ids"; then pass; else
        fail "--chat --system did not render the ChatML text: $(cat "$tmp/chat_ids") vs $(cat "$tmp/out")"
    fi
    gen "$tiny" "$tmp/ch" -p "Hi" -n 4 -t 0 --chat
    if [ "$rc" -eq 0 ]; then pass; else fail "--chat generation: exit $rc"; fi
    expect_rc 0 "--tokenize --chat --think (no template)" "$EDGELM" "$tiny" --tokenize --chat --think \
        --system "Be brief." -p "Hi"
    if cmp -s "$tmp/out" "$tmp/chat_ids" &&
        grep -q "warning: --think: the default chat template has no thinking switch" "$tmp/err"; then
        pass
    else
        fail "--think on ChatML: not the same prompt, or no warning"
    fi

    # --chat on Qwen3's real template: thinking off (its empty think block opens the answer)
    # unless --think, which leaves the assistant's turn open
    q3="$tmp/qwen3.gguf"
    if "$GEN" "$q3" --preset tiny --quiet \
        --chat-template "$SCRIPT_DIR/../data/chat/Qwen-Qwen3-0.6B.jinja" 2>"$tmp/err"; then
        expect_rc 0 "--tokenize --chat (qwen3)" "$EDGELM" "$q3" --tokenize --chat -p "Hi"
        cp "$tmp/out" "$tmp/q3_off"
        expect_rc 0 "--tokenize --chat --think (qwen3)" "$EDGELM" "$q3" --tokenize --chat --think -p "Hi"
        cp "$tmp/out" "$tmp/q3_on"
        if grep -q warning "$tmp/err"; then fail "--think on qwen3: a warning"; else pass; fi
        printf '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n\n' |
            "$EDGELM" "$q3" --tokenize >"$tmp/out" 2>"$tmp/err"
        if cmp -s "$tmp/out" "$tmp/q3_off"; then pass; else
            fail "--chat on qwen3 did not render the empty think block: $(cat "$tmp/q3_off") vs $(cat "$tmp/out")"
        fi
        printf '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n\n' |
            "$EDGELM" "$q3" --tokenize >"$tmp/out" 2>"$tmp/err"
        if cmp -s "$tmp/out" "$tmp/q3_on"; then pass; else
            fail "--chat --think on qwen3 did not leave the turn open: $(cat "$tmp/q3_on") vs $(cat "$tmp/out")"
        fi
    else
        fail "edgelm-gen --chat-template (Qwen3's template): $(cat "$tmp/err")"
    fi

    # context shift: -c 32 -n 100 goes on past the context; --no-context-shift stops
    gen "$tiny" "$tmp/x1" -p "Once upon a time" -c 32 -n 100 -t 0 --repeat-penalty 1.1
    n=$(generated_count)
    if [ "$rc" -eq 0 ] && { { grep -q "^edgelm: context: shifted [1-9]" "$tmp/err" && [ "$n" = 100 ]; } ||
        grep -q "stop: end of generation" "$tmp/err"; }; then
        pass
    else
        fail "-c 32 -n 100: exit $rc, ${n:-no} tokens, no context shift reported"
    fi
    gen "$tiny" "$tmp/x2" -p "Once upon a time" -c 32 -n 100 -t 0 --no-context-shift
    if [ "$rc" -eq 0 ] && { grep -q "stop: context full" "$tmp/err" ||
        grep -q "stop: end of generation" "$tmp/err"; } && ! grep -q "context: shifted" "$tmp/err"; then
        pass
    else
        fail "--no-context-shift: exit $rc, expected 'stop: context full'"
    fi
    gen "$tiny" "$tmp/x3" -p "Once upon a time" -c 32 -n 60 -t 0 --keep -1
    if [ "$rc" -eq 0 ]; then pass; else fail "--keep -1: exit $rc"; fi

    # --json: one JSON value with an object at the top level, complete even on a tight budget
    for n in 40 12; do
        gen "$tiny" "$tmp/j" -p "Once upon a time" -n "$n" -t 0.8 -s 7 --json
        value_complete "--json -n $n"
        json_check "$tmp/j" 'isinstance(v, dict)' "--json -n $n: not a JSON object"
    done
    printf '{"type":"object","properties":{"name":{"type":"string"},"n":{"type":"integer"}},"required":["name","n"]}' >"$tmp/schema.json"
    gen "$tiny" "$tmp/js" -p "Once upon a time" -n 48 -t 0.8 -s 3 --schema "$tmp/schema.json"
    value_complete "--schema"
    json_check "$tmp/js" 'isinstance(v.get("name"), str) and isinstance(v.get("n"), int)' \
        "--schema: the output does not match the schema"
    printf '{"type":"object","properties":{"x":{"type":"bogus"}}}' >"$tmp/bad_schema.json"
    gen "$tiny" "$tmp/jb" -p "hello" -n 8 --schema "$tmp/bad_schema.json"
    if [ "$rc" -eq 2 ] && [ ! -s "$tmp/jb" ] && grep -q "schema" "$tmp/err"; then pass; else
        fail "--schema with an invalid schema: exit $rc, expected 2 and a message"
    fi
    gen "$tiny" "$tmp/jm" -p "hello" -n 8 --schema "$tmp/no-such-schema.json"
    if [ "$rc" -eq 1 ] && grep -q "no-such-schema.json" "$tmp/err"; then pass; else
        fail "--schema with a missing file: exit $rc, expected 1 naming the file"
    fi
fi

# ---- stories260K: the repository's model, then llama.cpp's reference outputs ----------------------

# The model: $EDGELM_MODELS's copy (the shared models), else the one in the repository
# (models/stories260K.gguf, the same bytes), so these checks run on a fresh clone. The comparisons
# with llama.cpp need the shared reference outputs as well, and are skipped loudly without them.
models=${EDGELM_MODELS:-${EDGELM_MODELS_DEFAULT:-$SCRIPT_DIR/../../../shared/models}}
repo_stories="${EDGELM_SOURCE_DIR:-$SCRIPT_DIR/../..}/models/stories260K.gguf"
golden="$models/reference/stories260K.greedy.json"
if [ -f "$models/stories260K.gguf" ]; then
    stories="$models/stories260K.gguf"
elif [ -f "$repo_stories" ]; then
    stories=$repo_stories
    echo "test_cli: no stories260K.gguf in '$models'; using the repository's $stories" >&2
else
    stories=""
    skip "stories260K.gguf is neither in '$models' (EDGELM_MODELS) nor at $repo_stories:" \
        "the stories260K checks did not run"
fi

if [ -n "$stories" ]; then
    # llama.cpp's greedy text and prompt ids (reference/stories260K.greedy.json, run 0), written
    # here so that they are checked without the shared files
    expect_rc 0 "stories260K --tokenize" "$EDGELM" "$stories" --tokenize -p "Once upon a time"
    if [ "$(cat "$tmp/out")" = "403 407 261 378" ]; then pass; else
        fail "stories260K --tokenize 'Once upon a time': got '$(cat "$tmp/out")', llama.cpp '403 407 261 378'"
    fi
    want=", there was a little girl named Lily. She loved to play outside in the park."
    for threads in 1 2; do
        gen "$stories" "$tmp/sg$threads" -p "Once upon a time" -n 27 -t 0 -j "$threads"
        if [ "$rc" -eq 0 ] && [ "$(cat "$tmp/sg$threads")" = "$want" ] &&
            grep -q "^edgelm: generated: 27 tokens" "$tmp/err"; then
            pass
        else
            fail "stories260K greedy 'Once upon a time' -n 27 -j $threads (exit $rc):" \
                "got '$(cat "$tmp/sg$threads")', llama.cpp '$want'"
        fi
    done
    # --stop on real text: the stop string and what follows are not printed
    gen "$stories" "$tmp/st" -p "Once upon a time" -n 64 -t 0 --stop "Lily"
    if [ "$rc" -eq 0 ] && [ "$(cat "$tmp/st")" = ", there was a little girl named " ] &&
        grep -q "stop: stop string" "$tmp/err"; then
        pass
    else
        fail "stories260K --stop Lily: got '$(cat "$tmp/st")'"
    fi
    # --cache twice gives the uncached text both times, the second run skipping the prefill
    cache_prompt="Lily and Tom went to the park."
    gen "$stories" "$tmp/cu" -p "$cache_prompt" -n 64 -t 0
    rm -f "$tmp/stories.kvc"
    for attempt in 1 2; do
        gen "$stories" "$tmp/got" -p "$cache_prompt" -n 64 -t 0 --cache "$tmp/stories.kvc"
        if [ "$rc" -eq 0 ] && cmp -s "$tmp/got" "$tmp/cu"; then pass; else
            fail "stories260K --cache run $attempt: output differs from the uncached run's"
        fi
    done
    if [ -n "$(cached_count)" ]; then pass; else fail "stories260K --cache: the second run skipped nothing"; fi

    expect_rc 0 "stories260K --info" "$EDGELM" "$stories" --info
    if grep -q '^architecture: llama$' "$tmp/out" && grep -q '^tensors (48)' "$tmp/out"; then pass; else
        fail "stories260K --info: expected 'architecture: llama' and 48 tensors"
    fi
    sigint_check "$stories"
elif [ "$have_tiny" -eq 1 ]; then
    sigint_check "$tiny"
fi

# ---- --info shows what each architecture adds (the arch/ fixtures) --------------------------------
if [ -f "$models/arch/llama3-Q8_0.gguf" ]; then
    for case in "llama3-Q8_0|rope frequency factors: 32 (rope_freqs.weight, Llama 3), 1 to 32" \
        "qwen3-F16|q/k norms: yes" "qwen2-F16|qkv biases: yes" "phi3-F16|fused qkv: yes" \
        "phi3-F16|feed-forward: 512 (SwiGLU, gate and up fused)" "llama3-F16|q/k norms: no" \
        "gemma3-Q8_0|sliding window: 8 tokens on 5 of 6 layers (local rope base 10000)" \
        "gemma3-Q8_0|feed-forward: 512 (GeGLU)" "gemma3-Q8_0|post-norms: yes" \
        "gemma3-Q8_0|embedding scale: 16" "phi3-F16|post-norms: no"; do
        file=${case%%|*}
        line=${case#*|}
        expect_rc 0 "$file --info" "$EDGELM" "$models/arch/$file.gguf" --info
        if grep -qxF "$line" "$tmp/out"; then pass; else
            fail "$file --info: no line '$line' in: $(sed -n 4,16p "$tmp/out")"
        fi
    done
else
    skip "no arch/ fixtures in '$models' (EDGELM_MODELS): the --info architecture checks did not run"
fi

# ---- vocabulary-only files: llama.cpp's ggml-vocab-*.gguf have no tensors ------------------------
vocab_dir="$models/vocab"
if ! ls "$vocab_dir"/ggml-vocab-*.gguf >/dev/null 2>&1; then
    skip "no ggml-vocab-*.gguf in '$vocab_dir' (EDGELM_MODELS): the vocabulary-only checks did not run"
elif ! command -v python3 >/dev/null 2>&1; then
    skip "python3 not found: the vocabulary-only checks did not run"
else
    for v in "$vocab_dir"/ggml-vocab-*.gguf; do
        # every case of llama.cpp's test-tokenizer-0 input (.inp) against its ids (.out)
        if python3 - "$EDGELM" "$v" >"$tmp/vocab_report" 2>&1 <<'EOF'
import subprocess, sys
edgelm, vocab = sys.argv[1], sys.argv[2]
cases = open(vocab + ".inp", encoding="utf-8").read().split("\n__ggml_vocab_test__\n")
wants = open(vocab + ".out", encoding="utf-8").read().split("\n")
bad = n = 0
for i, text in enumerate(cases):
    if i == len(cases) - 1 and text == "":
        break
    n += 1
    r = subprocess.run([edgelm, vocab, "--tokenize", "-p", text], capture_output=True)
    got = r.stdout.decode().strip()
    if r.returncode != 0 or got != wants[i].strip():
        bad += 1
        if bad <= 3:
            print("case %d %r: exit %d, got '%s', llama.cpp '%s' %s" % (
                i, text[:40], r.returncode, got[:80], wants[i].strip()[:80],
                r.stderr.decode()[:200]))
print("%d of %d cases differ" % (bad, n))
sys.exit(1 if bad or n == 0 else 0)
EOF
        then pass; else fail "$(basename "$v") --tokenize: $(cat "$tmp/vocab_report")"; fi
    done
    v=$(ls "$vocab_dir"/ggml-vocab-*.gguf | head -n 1)
    expect_rc 1 "generation from a vocabulary-only file" "$EDGELM" "$v" -p hello -n 1
    if grep -q "no tensors: a vocabulary-only GGUF, which can only tokenize" "$tmp/err"; then pass; else
        fail "generation from $(basename "$v"): expected the vocabulary-only message, got '$(head -c 300 "$tmp/err")'"
    fi
fi

if [ -z "$stories" ]; then
    : # said above
elif [ ! -f "$golden" ]; then
    skip "reference outputs not found ('$golden'; set EDGELM_MODELS to the shared models):" \
        "the comparisons with llama.cpp's full greedy runs did not run"
elif ! command -v python3 >/dev/null 2>&1; then
    skip "python3 not found: cannot read $golden; the comparisons with llama.cpp did not run"
else
    n_runs=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["runs"]))' "$golden")
    r=0
    while [ "$r" -lt "${n_runs:-0}" ]; do
        # The CLI prints only the continuation: llama.cpp's text is "<s> " + prompt + continuation.
        python3 - "$golden" "$r" "$tmp/prompt" "$tmp/expected" "$tmp/expected_ids" "$tmp/n_gen" <<'EOF'
import json, sys
run = json.load(open(sys.argv[1]))["runs"][int(sys.argv[2])]
text = bytes.fromhex(run["text_hex"])
head = ("<s> " + run["prompt"]).encode()
assert text.startswith(head), "reference text does not start with '<s> ' + prompt"
assert run["prompt_tokens"][0] == 1, "reference prompt does not start with BOS"
open(sys.argv[3], "w").write(run["prompt"])
open(sys.argv[4], "wb").write(text[len(head):] + b"\n")
open(sys.argv[5], "w").write(" ".join(str(t) for t in run["prompt_tokens"][1:]) + "\n")
open(sys.argv[6], "w").write(str(len(run["generated_tokens"])))
EOF
        prompt=$(cat "$tmp/prompt")
        n_gen=$(cat "$tmp/n_gen")

        expect_rc 0 "stories260K --tokenize run $r" "$EDGELM" "$stories" --tokenize -p "$prompt"
        if cmp -s "$tmp/out" "$tmp/expected_ids"; then pass; else
            fail "stories260K --tokenize '$prompt': got '$(cat "$tmp/out")'," \
                "llama.cpp '$(cat "$tmp/expected_ids")'"
        fi

        for threads in 1 2; do
            printf '%s\n' "$prompt" |
                "$EDGELM" "$stories" -n "$n_gen" -t 0 -j "$threads" >"$tmp/got" 2>"$tmp/err"
            rc=$?
            if [ "$rc" -eq 0 ] && cmp -s "$tmp/got" "$tmp/expected"; then
                pass
            else
                fail "stories260K greedy '$prompt' -n $n_gen -j $threads (exit $rc):" \
                    "got      '$(cat "$tmp/got")'" \
                    "expected '$(cat "$tmp/expected")'"
            fi
            if grep -q "^edgelm: generated: $n_gen tokens" "$tmp/err"; then pass; else
                fail "stories260K: stats do not say $n_gen tokens generated"
            fi
        done
        # the cached runs above used run 1's prompt: their text is llama.cpp's too
        if [ "$r" -eq 1 ] && [ "$prompt" = "$cache_prompt" ] && [ "$n_gen" -eq 64 ]; then
            if cmp -s "$tmp/cu" "$tmp/expected"; then pass; else
                fail "stories260K --cache prompt: text differs from llama.cpp's"
            fi
        fi
        r=$((r + 1))
    done
fi

# ---- summary ----------------------------------------------------------------------------------------

echo "test_cli: $checks checks, $failures failed, $skips skipped" >&2
if [ "$failures" -ne 0 ]; then exit 1; fi
if [ "$skips" -ne 0 ]; then exit 77; fi
exit 0
