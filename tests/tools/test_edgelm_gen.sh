#!/bin/sh
# test_edgelm_gen.sh - edgelm-gen end to end: usage errors, deterministic output, every weight
# type and the q4_K_M mix loadable by the engine (through the edgelm CLI's --info), a template
# from --chat-template, a failed run leaving the output file untouched. POSIX sh.
# Usage: sh test_edgelm_gen.sh EDGELM_GEN EDGELM
set -u
GEN=${1:?usage: sh test_edgelm_gen.sh EDGELM_GEN EDGELM}
CLI=${2:?usage: sh test_edgelm_gen.sh EDGELM_GEN EDGELM}
NAME=test_edgelm_gen
. "$(dirname "$0")/../support/checks.sh"

check "no arguments is a usage error (2)" exit_code 2 "$GEN"
check "an unknown option is a usage error (2)" exit_code 2 "$GEN" "$tmp/x.gguf" --bogus
check "an unknown type is a usage error (2)" exit_code 2 "$GEN" "$tmp/x.gguf" --type q9_9
check "a vocabulary below 259 is a usage error (2)" exit_code 2 "$GEN" "$tmp/x.gguf" --vocab-size 10
check "--help exits 0" exit_code 0 "$GEN" --help

check "tiny f32 model" "$GEN" "$tmp/a.gguf" --preset tiny --quiet --seed 3
check "the same seed gives the same bytes" "$GEN" "$tmp/b.gguf" --preset tiny --quiet --seed 3
check "... identical" cmp "$tmp/a.gguf" "$tmp/b.gguf"
check "another seed" "$GEN" "$tmp/c.gguf" --preset tiny --quiet --seed 4
check "... gives other weights" exit_code 1 cmp -s "$tmp/a.gguf" "$tmp/c.gguf"

for type in f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_K q3_K q4_K q5_K q6_K q4_K_M; do
    out=$tmp/k-$type.gguf
    check "synthetic-k256 --type $type" "$GEN" "$out" --preset synthetic-k256 --type "$type" \
        --vocab-size 300 --quiet
    check "$type: the engine loads it" output_to "$tmp/info" "$CLI" "$out" --info
    check "$type: 2 layers of width 256" grep -q "layers: 2, embedding: 256" "$tmp/info"
    want=$type
    [ "$type" = q4_K_M ] && want=q4_K
    check "$type: attn_q is $want" grep -Eq "blk.0.attn_q.weight +$want " "$tmp/info"
done
check "q4_K_M: output.weight is q6_K" grep -Eq "^  output.weight +q6_K " "$tmp/info"
check "tied output: no output.weight" "$GEN" "$tmp/tied.gguf" --preset tiny --tied --quiet
check "tied: the engine loads it" output_to "$tmp/info" "$CLI" "$tmp/tied.gguf" --info
check "tied: --info lists token_embd.weight" grep -q "token_embd.weight" "$tmp/info"
check "tied: --info lists no output.weight" exit_code 1 grep -Eq "^  output\.weight " "$tmp/info"

printf 'a template {{ messages }}' >"$tmp/template.txt"
check "--chat-template FILE" "$GEN" "$tmp/t.gguf" --preset tiny --quiet \
    --chat-template "$tmp/template.txt"
check "... is the model's tokenizer.chat_template" output_to "$tmp/info" "$CLI" "$tmp/t.gguf" --info
check "... as written" grep -q -F "tokenizer.chat_template = a template {{ messages }}" "$tmp/info"
check "a missing --chat-template file exits 1" exit_code 1 "$GEN" "$tmp/t2.gguf" \
    --chat-template "$tmp/missing.txt"

printf 'keep' >"$tmp/keep.gguf"
check "a failing run exits 1" exit_code 1 "$GEN" "$tmp/keep.gguf" --vocab-from "$tmp/missing.gguf"
check "... and leaves the output untouched" test "$(cat "$tmp/keep.gguf")" = keep

finish
