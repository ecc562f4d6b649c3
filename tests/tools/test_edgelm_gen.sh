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

check "an unknown --arch is a usage error (2)" exit_code 2 "$GEN" "$tmp/x.gguf" --arch gpt2
check "--swa-pattern without gemma3 is a usage error (2)" exit_code 2 "$GEN" "$tmp/x.gguf" \
    --swa-pattern 2
check "--arch llama is the default's bytes" "$GEN" "$tmp/b.gguf" --preset tiny --quiet --seed 3 \
    --arch llama
check "... identical" cmp "$tmp/a.gguf" "$tmp/b.gguf"
for arch in llama3 qwen2 qwen3 phi3 gemma3; do
    out=$tmp/arch-$arch.gguf
    check "--arch $arch" "$GEN" "$out" --arch "$arch" --preset tiny --type q8_0 --quiet
    check "$arch: the engine loads it" output_to "$tmp/info-$arch" "$CLI" "$out" --info
    label=$arch
    [ "$arch" = llama3 ] && label=llama
    check "$arch: architecture $label" grep -q "^architecture: $label\$" "$tmp/info-$arch"
done
check "llama3: rope_freqs.weight in f32" grep -Eq "^  rope_freqs\.weight +f32 " "$tmp/info-llama3"
check "qwen2: attn_q.bias in f32" grep -Eq "^  blk\.0\.attn_q\.bias +f32 " "$tmp/info-qwen2"
check "qwen3: attn_k_norm in f32" grep -Eq "^  blk\.1\.attn_k_norm\.weight +f32 " \
    "$tmp/info-qwen3"
check "phi3: fused attn_qkv" grep -Eq "^  blk\.0\.attn_qkv\.weight +q8_0 " "$tmp/info-phi3"
check "gemma3: post_ffw_norm" grep -Eq "^  blk\.1\.post_ffw_norm\.weight +f32 " "$tmp/info-gemma3"
check "gemma3: tied (no output.weight)" exit_code 1 grep -Eq "^  output\.weight " \
    "$tmp/info-gemma3"
check "gemma3: window 8, 5 of 6 layers local with the default pattern" "$GEN" "$tmp/g6.gguf" \
    --arch gemma3 --preset tiny --n-layer 6 --quiet
check "... loads" output_to "$tmp/info" "$CLI" "$tmp/g6.gguf" --info
check "... as such" grep -q "sliding window: 8 tokens on 5 of 6 layers" "$tmp/info"
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
