/* tokenizer.c - builds a tokenizer from the tokenizer.* metadata of a GGUF file (copying all it
 * keeps, so the file may go away), the text->id and merge hash tables, the per-token decode
 * pieces, and the accessors. The rules for defaults, special ids, token attributes and
 * end-of-generation tokens follow llama.cpp's llama_vocab::impl::load(); every array and id read
 * from the file is checked, and a bad one fails with EDGELM_ERR_TOKENIZER naming its key.
 * Encoding lives in tokenizer_encode.c, tokenizer_spm.c, tokenizer_bpe.c and tokenizer_pre.c.
 */
#include "tokenizer.h"
#include "tokenizer_impl.h"
#include "unicode.h"

#include "base/byte_buffer.h"
#include "base/byte_search.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MODEL "tokenizer.ggml.model"
#define KEY_PRE "tokenizer.ggml.pre"
#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_SCORES "tokenizer.ggml.scores"
#define KEY_TOKEN_TYPE "tokenizer.ggml.token_type"
#define KEY_MERGES "tokenizer.ggml.merges"
#define KEY_ADD_BOS "tokenizer.ggml.add_bos_token"
#define KEY_ADD_EOS "tokenizer.ggml.add_eos_token"
#define KEY_ADD_PREFIX "tokenizer.ggml.add_space_prefix"

/* GGUF token_type values (llama.cpp's llama_token_type). */
enum {
    TOKEN_TYPE_UNDEFINED = 0,
    TOKEN_TYPE_NORMAL = 1,
    TOKEN_TYPE_UNKNOWN = 2,
    TOKEN_TYPE_CONTROL = 3,
    TOKEN_TYPE_USER_DEFINED = 4,
    TOKEN_TYPE_UNUSED = 5,
    TOKEN_TYPE_BYTE = 6,
};

static edgelm_status fail(char *err, size_t err_size, edgelm_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static edgelm_status fail(char *err, size_t err_size, edgelm_status st, const char *fmt, ...) {
    if (err != NULL && err_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
    }
    return st;
}

static edgelm_status oom(char *err, size_t err_size, const char *what) {
    return fail(err, err_size, EDGELM_ERR_OUT_OF_MEMORY, "out of memory building %s", what);
}

/* ---- hashing -------------------------------------------------------------------------------- */

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv1a(uint64_t h, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* Slot count for n keys: a power of two >= 2n (load factor <= 1/2). 0 if too many. */
static uint32_t slot_count(uint64_t n) {
    uint64_t cap = 16;
    while (cap < 2 * n) {
        cap *= 2;
    }
    return cap > (1ull << 31) ? 0 : (uint32_t)cap;
}

static int32_t *new_slots(uint32_t count) {
    int32_t *slots = malloc((size_t)count * sizeof *slots);
    if (slots != NULL) {
        memset(slots, 0xFF, (size_t)count * sizeof *slots); /* all -1 */
    }
    return slots;
}

int32_t tok_find_token(const tokenizer *tok, const char *s, size_t len) {
    uint32_t i = (uint32_t)fnv1a(FNV_OFFSET, s, len) & tok->token_mask;
    for (;;) {
        int32_t id = tok->token_slots[i];
        if (id < 0) {
            return -1;
        }
        if (tok_text_len(tok, id) == len && memcmp(tok_text(tok, id), s, len) == 0) {
            return id;
        }
        i = (i + 1) & tok->token_mask;
    }
}

/* Insert id (whose text is already in the arena); returns the id already holding that text, or
 * -1 when inserted. */
static int32_t token_insert(tokenizer *tok, int32_t id) {
    const char *s = tok_text(tok, id);
    size_t len = tok_text_len(tok, id);
    uint32_t i = (uint32_t)fnv1a(FNV_OFFSET, s, len) & tok->token_mask;
    for (;;) {
        int32_t other = tok->token_slots[i];
        if (other < 0) {
            tok->token_slots[i] = id;
            return -1;
        }
        if (tok_text_len(tok, other) == len && memcmp(tok_text(tok, other), s, len) == 0) {
            return other;
        }
        i = (i + 1) & tok->token_mask;
    }
}

static uint64_t merge_hash(const char *left, size_t left_len, const char *right, size_t right_len) {
    uint64_t h = fnv1a(FNV_OFFSET, left, left_len);
    h = fnv1a(h, " ", 1);
    return fnv1a(h, right, right_len);
}

static bool merge_equals(const tokenizer *tok, int32_t rank, const char *left, size_t left_len,
                         const char *right, size_t right_len) {
    const char *m = tok->merge_text + tok->merge_off[rank];
    return tok->merge_left_len[rank] == left_len && tok->merge_right_len[rank] == right_len &&
           memcmp(m, left, left_len) == 0 && memcmp(m + left_len + 1, right, right_len) == 0;
}

int32_t tok_find_merge(const tokenizer *tok, const char *left, size_t left_len, const char *right,
                       size_t right_len) {
    if (tok->merge_slots == NULL) {
        return -1;
    }
    uint32_t i = (uint32_t)merge_hash(left, left_len, right, right_len) & tok->merge_mask;
    for (;;) {
        int32_t rank = tok->merge_slots[i];
        if (rank < 0) {
            return -1;
        }
        if (merge_equals(tok, rank, left, left_len, right, right_len)) {
            return rank;
        }
        i = (i + 1) & tok->merge_mask;
    }
}

/* ---- growable byte buffer ------------------------------------------------------------------- */

/* ---- metadata readers ----------------------------------------------------------------------- */

static edgelm_status read_bool(const gguf_file *file, const char *key, bool *value, char *err,
                               size_t err_size) {
    const gguf_kv *kv = gguf_find(file, key);
    if (kv == NULL) {
        return EDGELM_OK;
    }
    if (kv->type != GGUF_TYPE_BOOL) {
        return fail(err, err_size, EDGELM_ERR_TOKENIZER, "%s has type %s, expected bool", key,
                    gguf_type_name(kv->type));
    }
    *value = kv->value.b;
    return EDGELM_OK;
}

/* A special token id. Absent keys and the "none" encodings (-1, 0xFFFFFFFF) keep the default,
 * as llama.cpp does. Other out-of-range ids are an error when the tokenizer uses the id
 * (checked = true); llama.cpp ignores them with a warning, which we do for the ids we do not use
 * (padding, separator, FIM...). */
static edgelm_status read_token_id(const gguf_file *file, const char *key, int32_t n_vocab,
                                   bool checked, int32_t *id, char *err, size_t err_size) {
    const gguf_kv *kv = gguf_find(file, key);
    if (kv == NULL) {
        return EDGELM_OK;
    }
    int64_t v;
    bool in_range;
    switch (kv->type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64:
        in_range = kv->value.u64 < (uint64_t)n_vocab;
        v = kv->value.u64 <= INT64_MAX ? (int64_t)kv->value.u64 : -2;
        if (kv->value.u64 == UINT32_MAX || kv->value.u64 == UINT64_MAX) {
            return EDGELM_OK;
        }
        break;
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_INT64:
        v = kv->value.i64;
        in_range = v >= 0 && v < n_vocab;
        if (v == -1) {
            return EDGELM_OK;
        }
        break;
    default:
        return fail(err, err_size, EDGELM_ERR_TOKENIZER, "%s has type %s, expected an integer", key,
                    gguf_type_name(kv->type));
    }
    if (!in_range) {
        if (!checked) {
            return EDGELM_OK;
        }
        return fail(err, err_size, EDGELM_ERR_TOKENIZER,
                    "%s = %lld is outside the vocabulary (%d tokens)", key, (long long)v,
                    (int)n_vocab);
    }
    *id = (int32_t)v;
    return EDGELM_OK;
}

/* ---- pre-tokenizer names -------------------------------------------------------------------- */

typedef struct pre_name {
    const char *name;
    tok_pre pre;
    bool llama3_flags; /* llama.cpp also sets ignore_merges and add_bos for these */
} pre_name;

/* The tokenizer.ggml.pre values whose llama.cpp regexes we implement (llama-vocab.cpp). */
static const pre_name pre_names[] = {
    {"default", TOK_PRE_DEFAULT, false},
    {"llama3", TOK_PRE_LLAMA3, true},
    {"llama-v3", TOK_PRE_LLAMA3, true},
    {"llama-bpe", TOK_PRE_LLAMA3, true},
    {"falcon3", TOK_PRE_LLAMA3, true},
    {"falcon-h1", TOK_PRE_LLAMA3, true},
    {"pixtral", TOK_PRE_LLAMA3, true},
    {"midm-2.0", TOK_PRE_LLAMA3, true},
    {"lfm2", TOK_PRE_LLAMA3, true},
    {"dbrx", TOK_PRE_LLAMA3, false},
    {"smaug-bpe", TOK_PRE_LLAMA3, false},
    {"gpt-2", TOK_PRE_GPT2, false},
    {"phi-2", TOK_PRE_GPT2, false},
    {"jina-es", TOK_PRE_GPT2, false},
    {"jina-de", TOK_PRE_GPT2, false},
    {"gigachat", TOK_PRE_GPT2, false},
    {"jina-v2-es", TOK_PRE_GPT2, false},
    {"jina-v2-de", TOK_PRE_GPT2, false},
    {"a.x-4.0", TOK_PRE_GPT2, false},
    {"mellum", TOK_PRE_GPT2, false},
    {"exaone4", TOK_PRE_GPT2, false},
    {"mpt", TOK_PRE_GPT2, false},
    {"olmo", TOK_PRE_GPT2, false},
    {"jais", TOK_PRE_GPT2, false},
    {"trillion", TOK_PRE_GPT2, false},
    {"granite-docling", TOK_PRE_GPT2, false},
    {"qwen2", TOK_PRE_QWEN2, false},
    {"deepseek-r1-qwen", TOK_PRE_QWEN2, false},
    {"kormo", TOK_PRE_QWEN2, false},
    {"megrez", TOK_PRE_QWEN2, false},
    {"stablelm2", TOK_PRE_QWEN2, false},
    {"hunyuan", TOK_PRE_QWEN2, false},
    {"solar-open", TOK_PRE_QWEN2, false},
    {"deepseek-llm", TOK_PRE_DEEPSEEK_LLM, false},
    {"deepseek-coder", TOK_PRE_DEEPSEEK_CODER, false},
    {"starcoder", TOK_PRE_STARCODER, false},
    {"refact", TOK_PRE_STARCODER, false},
    {"command-r", TOK_PRE_STARCODER, false},
    {"smollm", TOK_PRE_STARCODER, false},
    {"codeshell", TOK_PRE_STARCODER, false},
    {"exaone", TOK_PRE_STARCODER, false},
    {"minerva-7b", TOK_PRE_STARCODER, false},
    {"mellum2", TOK_PRE_STARCODER, false},
};

/* ---- token texts llama.cpp recognizes (llama_vocab::impl::load) ----------------------------- */

#define FW_BAR "\xef\xbd\x9c"      /* U+FF5C FULLWIDTH VERTICAL LINE, in DeepSeek's names */
#define LOWER_BLOCK "\xe2\x96\x81" /* U+2581, SentencePiece's space */

static const char *const eot_texts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<" FW_BAR "end" LOWER_BLOCK "of" LOWER_BLOCK "sentence" FW_BAR ">",
    "<end_of_utterance>",
    NULL,
};
static const char *const eom_texts[] = {"<|eom_id|>", NULL};
static const char *const fim_pre_texts[] = {
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<" FW_BAR "fim" LOWER_BLOCK "begin" FW_BAR ">",
    "<PRE>",
    LOWER_BLOCK "<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
    NULL,
};
static const char *const fim_suf_texts[] = {
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<" FW_BAR "fim" LOWER_BLOCK "hole" FW_BAR ">",
    "<SUF>",
    LOWER_BLOCK "<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
    NULL,
};
static const char *const fim_mid_texts[] = {
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<" FW_BAR "fim" LOWER_BLOCK "end" FW_BAR ">",
    "<MID>",
    LOWER_BLOCK "<MID>",
    "<|code_middle|>",
    "<|middle|>",
    NULL,
};
static const char *const fim_pad_texts[] = {
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL,
};
static const char *const fim_rep_texts[] = {
    "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL,
};
static const char *const fim_sep_texts[] = {"<|file_sep|>", NULL};
static const char *const eog_texts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<" FW_BAR "end" LOWER_BLOCK "of" LOWER_BLOCK "sentence" FW_BAR ">",
    "[e~[",
    NULL,
};
/* gpt-oss: always rendered, so made USER_DEFINED. */
static const char *const always_rendered_texts[] = {
    "<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", NULL,
};

static int32_t find_z(const tokenizer *tok, const char *z) {
    return tok_find_token(tok, z, strlen(z));
}

static bool text_is(const tokenizer *tok, int32_t id, const char *z) {
    size_t len = strlen(z);
    return id >= 0 && tok_text_len(tok, id) == len && memcmp(tok_text(tok, id), z, len) == 0;
}

/* If *id is unset, take the first token (lowest id) whose text is in texts; either way a token
 * found this way becomes CONTROL. llama.cpp scans a hash map, so with several candidates its
 * choice is arbitrary; the lowest id makes ours deterministic. */
static void detect_special(tokenizer *tok, int32_t *id, const char *const *texts) {
    if (*id >= 0) {
        return;
    }
    int32_t best = -1;
    for (size_t i = 0; texts[i] != NULL; i++) {
        int32_t t = find_z(tok, texts[i]);
        if (t >= 0 && (best < 0 || t < best)) {
            best = t;
        }
    }
    if (best >= 0) {
        *id = best;
        tok->attr[best] |= TOK_ATTR_CONTROL;
    }
}

/* ---- pieces --------------------------------------------------------------------------------- */

/* llama.cpp's token_to_byte(): the two hex digits after "<0x". */
static uint8_t byte_of_token(const tokenizer *tok, int32_t id) {
    const char *s = tok_text(tok, id);
    size_t len = tok_text_len(tok, id);
    unsigned v = 0;
    for (size_t i = 3; i < 5 && i < len; i++) {
        char ch = s[i];
        unsigned d;
        if (ch >= '0' && ch <= '9') {
            d = (unsigned)(ch - '0');
        } else if (ch >= 'a' && ch <= 'f') {
            d = (unsigned)(ch - 'a' + 10);
        } else if (ch >= 'A' && ch <= 'F') {
            d = (unsigned)(ch - 'A' + 10);
        } else {
            break;
        }
        v = v * 16 + d;
    }
    return (uint8_t)v;
}

/* Append the piece of one token, as llama.cpp's token_to_piece(special = false). */
static bool append_piece(const tokenizer *tok, int32_t id, byte_buffer *b) {
    uint16_t attr = tok->attr[id];
    const char *s = tok_text(tok, id);
    size_t len = tok_text_len(tok, id);
    if (attr & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL)) {
        return true; /* special tokens print as nothing */
    }
    if (attr & TOK_ATTR_USER_DEFINED) {
        return byte_buffer_append(b, s, len);
    }
    if (attr & TOK_ATTR_NORMAL) {
        if (tok->kind == TOK_KIND_SPM) {
            /* U+2581 (E2 96 81) -> ' ' */
            size_t i = 0;
            while (i < len) {
                if (i + 3 <= len && (uint8_t)s[i] == 0xE2 && (uint8_t)s[i + 1] == 0x96 &&
                    (uint8_t)s[i + 2] == 0x81) {
                    if (!byte_buffer_append(b, " ", 1)) {
                        return false;
                    }
                    i += 3;
                } else {
                    if (!byte_buffer_append(b, s + i, 1)) {
                        return false;
                    }
                    i++;
                }
            }
            return true;
        }
        /* byte-level BPE: each codepoint stands for one byte */
        size_t i = 0;
        while (i < len) {
            size_t used;
            uint32_t cpt = unicode_utf8_decode((const uint8_t *)s + i, len - i, &used);
            int byte = unicode_cpt_to_byte(cpt);
            if (byte >= 0) {
                char c = (char)byte;
                if (!byte_buffer_append(b, &c, 1)) {
                    return false;
                }
            } else {
                /* llama.cpp's llama_decode_text() marks a codepoint outside the alphabet as
                 * "[UNK_BYTE_0x<utf-8 hex><whole token text>]" */
                uint8_t utf8[4];
                size_t n = unicode_utf8_encode(cpt, utf8);
                char hex[16];
                if (!byte_buffer_append(b, "[UNK_BYTE_0x", 12)) {
                    return false;
                }
                for (size_t k = 0; k < n; k++) {
                    snprintf(hex, sizeof hex, "%02x", utf8[k]);
                    if (!byte_buffer_append(b, hex, 2)) {
                        return false;
                    }
                }
                if (!byte_buffer_append(b, s, len) || !byte_buffer_append(b, "]", 1)) {
                    return false;
                }
            }
            i += used;
        }
        return true;
    }
    if (attr & TOK_ATTR_BYTE) {
        char c = (char)byte_of_token(tok, id);
        return byte_buffer_append(b, &c, 1);
    }
    return true; /* UNUSED / UNDEFINED: nothing */
}

/* ---- special token list --------------------------------------------------------------------- */

typedef struct len_id {
    size_t len;
    int32_t id;
} len_id;

static int cmp_len_desc(const void *a, const void *b) {
    const len_id *x = a, *y = b;
    if (x->len != y->len) {
        return x->len > y->len ? -1 : 1;
    }
    return (x->id > y->id) - (x->id < y->id);
}

static edgelm_status build_special_list(tokenizer *tok, char *err, size_t err_size) {
    int32_t n = 0;
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        if (tok->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) {
            n++;
        }
    }
    if (n == 0) {
        return EDGELM_OK;
    }
    len_id *tmp = malloc((size_t)n * sizeof *tmp);
    tok->special = malloc((size_t)n * sizeof *tok->special);
    if (tmp == NULL || tok->special == NULL) {
        free(tmp);
        return oom(err, err_size, "the special token list");
    }
    int32_t k = 0;
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        if (tok->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) {
            tmp[k].len = tok_text_len(tok, id);
            tmp[k].id = id;
            k++;
        }
    }
    /* longest first (llama.cpp: std::sort by length; ties in id order here) */
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_len_desc);
    for (int32_t i = 0; i < n; i++) {
        tok->special[i] = tmp[i].id;
    }
    tok->n_special = n;
    free(tmp);
    return EDGELM_OK;
}

/* ---- create / free -------------------------------------------------------------------------- */

static edgelm_status load_texts(tokenizer *tok, const gguf_array *tokens, char *err,
                                size_t err_size) {
    int32_t n = tok->n_vocab;
    char empty_name[32];
    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        uint64_t len = tokens->strings[i].len;
        if (len == 0) {
            len = (uint64_t)snprintf(empty_name, sizeof empty_name, "[EMPTY_%d]", (int)i);
        }
        total += len + 1;
    }
    if (total >= UINT32_MAX) {
        return fail(err, err_size, EDGELM_ERR_TOKENIZER, "%s: the token texts total %llu bytes",
                    KEY_TOKENS, (unsigned long long)total);
    }
    tok->text = malloc((size_t)total);
    tok->text_off = malloc(((size_t)n + 1) * sizeof *tok->text_off);
    uint32_t n_slots = slot_count((uint64_t)n);
    tok->token_slots = n_slots ? new_slots(n_slots) : NULL;
    if (tok->text == NULL || tok->text_off == NULL || tok->token_slots == NULL) {
        return oom(err, err_size, "the token table");
    }
    tok->token_mask = n_slots - 1;
    uint32_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        gguf_string s = tokens->strings[i];
        tok->text_off[i] = off;
        if (s.len == 0) {
            /* llama.cpp renames empty tokens so that every text is unique and non-empty */
            int len = snprintf(empty_name, sizeof empty_name, "[EMPTY_%d]", (int)i);
            memcpy(tok->text + off, empty_name, (size_t)len);
            off += (uint32_t)len;
        } else {
            memcpy(tok->text + off, s.data, (size_t)s.len);
            off += (uint32_t)s.len;
        }
        tok->text[off++] = '\0';
    }
    tok->text_off[n] = off;
    for (int32_t i = 0; i < n; i++) {
        int32_t other = token_insert(tok, i);
        if (other >= 0) {
            return fail(err, err_size, EDGELM_ERR_TOKENIZER,
                        "%s: token %d has the same text as token %d ('%.40s')", KEY_TOKENS, (int)i,
                        (int)other, tok_text(tok, i));
        }
    }
    return EDGELM_OK;
}

static edgelm_status load_scores_and_types(tokenizer *tok, const gguf_file *file, char *err,
                                           size_t err_size) {
    int32_t n = tok->n_vocab;
    /* scores only steer SPM merges; BPE files are checked but their scores not kept */
    bool keep_scores = tok->kind == TOK_KIND_SPM;
    tok->scores = keep_scores ? calloc((size_t)n, sizeof *tok->scores) : NULL;
    tok->attr = malloc((size_t)n * sizeof *tok->attr);
    if ((keep_scores && tok->scores == NULL) || tok->attr == NULL) {
        return oom(err, err_size, "the token table");
    }
    const gguf_kv *kv = gguf_find(file, KEY_SCORES);
    if (kv != NULL) {
        if (kv->type != GGUF_TYPE_ARRAY || (kv->value.arr.elem_type != GGUF_TYPE_FLOAT32 &&
                                            kv->value.arr.elem_type != GGUF_TYPE_INT32)) {
            return fail(err, err_size, EDGELM_ERR_TOKENIZER,
                        "%s must be an array of float32 or int32", KEY_SCORES);
        }
        if (kv->value.arr.n < (uint64_t)n) {
            return fail(err, err_size, EDGELM_ERR_TOKENIZER,
                        "%s has %llu entries but there are %d tokens", KEY_SCORES,
                        (unsigned long long)kv->value.arr.n, (int)n);
        }
        for (int32_t i = 0; keep_scores && i < n; i++) {
            tok->scores[i] = kv->value.arr.elem_type == GGUF_TYPE_FLOAT32
                                 ? gguf_array_f32(&kv->value.arr, (uint64_t)i)
                                 : (float)gguf_array_i64(&kv->value.arr, (uint64_t)i);
        }
    }
    kv = gguf_find(file, KEY_TOKEN_TYPE);
    if (kv != NULL) {
        if (kv->type != GGUF_TYPE_ARRAY || kv->value.arr.elem_type != GGUF_TYPE_INT32) {
            return fail(err, err_size, EDGELM_ERR_TOKENIZER, "%s must be an array of int32",
                        KEY_TOKEN_TYPE);
        }
        if (kv->value.arr.n < (uint64_t)n) {
            return fail(err, err_size, EDGELM_ERR_TOKENIZER,
                        "%s has %llu entries but there are %d tokens", KEY_TOKEN_TYPE,
                        (unsigned long long)kv->value.arr.n, (int)n);
        }
    }
    for (int32_t i = 0; i < n; i++) {
        int64_t type = kv != NULL ? gguf_array_i64(&kv->value.arr, (uint64_t)i) : TOKEN_TYPE_NORMAL;
        uint16_t attr;
        switch (type) {
        case TOKEN_TYPE_NORMAL:
            attr = TOK_ATTR_NORMAL;
            break;
        case TOKEN_TYPE_UNKNOWN:
            attr = TOK_ATTR_UNKNOWN;
            break;
        case TOKEN_TYPE_CONTROL:
            attr = TOK_ATTR_CONTROL;
            break;
        case TOKEN_TYPE_USER_DEFINED:
            attr = TOK_ATTR_USER_DEFINED;
            break;
        case TOKEN_TYPE_UNUSED:
            attr = TOK_ATTR_UNUSED;
            break;
        case TOKEN_TYPE_BYTE:
            attr = TOK_ATTR_BYTE;
            break;
        default:
            attr = 0;
            break; /* UNDEFINED and unknown values */
        }
        tok->attr[i] = attr;
    }
    return EDGELM_OK;
}

static edgelm_status load_merges(tokenizer *tok, const gguf_file *file, char *err,
                                 size_t err_size) {
    const gguf_array *merges;
    edgelm_status st = gguf_get_array(file, KEY_MERGES, GGUF_TYPE_STRING, &merges);
    if (st == EDGELM_ERR_MISSING) {
        return fail(err, err_size, EDGELM_ERR_TOKENIZER, "%s is missing (needed by gpt2 BPE)",
                    KEY_MERGES);
    }
    if (st != EDGELM_OK) {
        return fail(err, err_size, EDGELM_ERR_TOKENIZER, "%s must be an array of strings",
                    KEY_MERGES);
    }
    if (merges->n > (uint64_t)INT32_MAX) {
        return fail(err, err_size, EDGELM_ERR_TOKENIZER, "%s has too many entries (%llu)",
                    KEY_MERGES, (unsigned long long)merges->n);
    }
    int32_t n = (int32_t)merges->n;
    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        total += merges->strings[i].len + 1;
    }
    if (total >= UINT32_MAX) {
        return fail(err, err_size, EDGELM_ERR_TOKENIZER, "%s: the merges total %llu bytes",
                    KEY_MERGES, (unsigned long long)total);
    }
    size_t n_alloc = n > 0 ? (size_t)n : 1;
    tok->merge_text = malloc((size_t)total + 1);
    tok->merge_off = malloc(n_alloc * sizeof *tok->merge_off);
    tok->merge_left_len = malloc(n_alloc * sizeof *tok->merge_left_len);
    tok->merge_right_len = malloc(n_alloc * sizeof *tok->merge_right_len);
    uint32_t n_slots = slot_count((uint64_t)n);
    tok->merge_slots = n_slots ? new_slots(n_slots) : NULL;
    if (tok->merge_text == NULL || tok->merge_off == NULL || tok->merge_left_len == NULL ||
        tok->merge_right_len == NULL || tok->merge_slots == NULL) {
        return oom(err, err_size, "the merge table");
    }
    tok->merge_mask = n_slots - 1;
    uint32_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        gguf_string s = merges->strings[i];
        /* "left right": the first space at index >= 1 separates them (llama.cpp: find(' ', 1)) */
        size_t space = 0;
        for (size_t k = 1; k < s.len; k++) {
            if (s.data[k] == ' ') {
                space = k;
                break;
            }
        }
        if (space == 0) {
            return fail(err, err_size, EDGELM_ERR_TOKENIZER,
                        "%s[%d] ('%.*s') has no space between its two parts", KEY_MERGES, (int)i,
                        (int)(s.len > 40 ? 40 : s.len), s.data);
        }
        memcpy(tok->merge_text + off, s.data, (size_t)s.len);
        tok->merge_text[off + s.len] = '\0';
        tok->merge_off[i] = off;
        tok->merge_left_len[i] = (uint32_t)space;
        tok->merge_right_len[i] = (uint32_t)(s.len - space - 1);
        off += (uint32_t)s.len + 1;

        const char *left = s.data, *right = s.data + space + 1;
        size_t right_len = (size_t)s.len - space - 1;
        uint32_t slot = (uint32_t)merge_hash(left, space, right, right_len) & tok->merge_mask;
        for (;;) {
            int32_t rank = tok->merge_slots[slot];
            if (rank < 0) {
                tok->merge_slots[slot] = i;
                break;
            }
            if (merge_equals(tok, rank, left, space, right, right_len)) {
                break; /* a repeated merge keeps its first (lowest) rank */
            }
            slot = (slot + 1) & tok->merge_mask;
        }
    }
    tok->n_merges = n;
    return EDGELM_OK;
}

static edgelm_status build_pieces(tokenizer *tok, char *err, size_t err_size) {
    byte_buffer b = {NULL, 0, 0};
    tok->piece_off = malloc(((size_t)tok->n_vocab + 1) * sizeof *tok->piece_off);
    if (tok->piece_off == NULL) {
        return oom(err, err_size, "the piece table");
    }
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        tok->piece_off[id] = (uint32_t)b.len;
        if (!append_piece(tok, id, &b)) {
            free(b.data);
            return oom(err, err_size, "the piece table");
        }
        if (b.len >= UINT32_MAX) {
            free(b.data);
            return fail(err, err_size, EDGELM_ERR_TOKENIZER, "%s: the token pieces are too large",
                        KEY_TOKENS);
        }
    }
    tok->piece_off[tok->n_vocab] = (uint32_t)b.len;
    tok->piece = b.data != NULL ? b.data : malloc(1);
    if (tok->piece == NULL) {
        return oom(err, err_size, "the piece table");
    }
    return EDGELM_OK;
}

/* End-of-generation tokens and the attribute fix-ups llama.cpp applies by token text. */
typedef struct fim_ids {
    int32_t pre, suf, mid, pad, rep, sep;
} fim_ids;

static void mark_special_tokens(tokenizer *tok, fim_ids fim, const gguf_file *file) {
    int32_t n = tok->n_vocab;
    detect_special(tok, &tok->eot, eot_texts);
    detect_special(tok, &tok->eom, eom_texts);
    detect_special(tok, &fim.pre, fim_pre_texts);
    detect_special(tok, &fim.suf, fim_suf_texts);
    detect_special(tok, &fim.mid, fim_mid_texts);
    detect_special(tok, &fim.pad, fim_pad_texts);
    detect_special(tok, &fim.rep, fim_rep_texts);
    detect_special(tok, &fim.sep, fim_sep_texts);

    /* control tokens named "...unused..." are unused */
    for (int32_t id = 0; id < n; id++) {
        if ((tok->attr[id] & TOK_ATTR_CONTROL) &&
            bytes_contain(tok_text(tok, id), tok_text_len(tok, id), "unused")) {
            tok->attr[id] |= TOK_ATTR_UNUSED;
        }
    }

    int32_t fims[3] = {fim.pad, fim.rep, fim.sep};
    for (int k = 0; k < 3; k++) {
        if (fims[k] >= 0) {
            tok->attr[fims[k]] |= TOK_ATTR_EOG;
        }
    }
    for (size_t i = 0; eog_texts[i] != NULL; i++) {
        int32_t id = find_z(tok, eog_texts[i]);
        if (id >= 0) {
            tok->attr[id] |= TOK_ATTR_EOG | TOK_ATTR_CONTROL;
        }
    }
    for (size_t i = 0; always_rendered_texts[i] != NULL; i++) {
        int32_t id = find_z(tok, always_rendered_texts[i]);
        if (id >= 0) {
            tok->attr[id] = (uint16_t)(TOK_ATTR_USER_DEFINED | (tok->attr[id] & TOK_ATTR_EOG));
        }
    }
    int32_t ends[3] = {tok->eos, tok->eot, tok->eom};
    for (int k = 0; k < 3; k++) {
        if (ends[k] >= 0) {
            tok->attr[ends[k]] |= TOK_ATTR_EOG;
        }
    }

    /* o200k_harmony / solar-open: "<|end|>" is not an end of generation when "<|return|>" and
     * "<|call|>" (or "<|calls|>" and "<|flush|>") exist. */
    bool has_return = false, has_call = false, has_flush = false;
    int32_t end_id = -1;
    for (int32_t id = 0; id < n; id++) {
        if (!(tok->attr[id] & TOK_ATTR_EOG)) {
            continue;
        }
        if (text_is(tok, id, "<|return|>")) {
            has_return = true;
        } else if (text_is(tok, id, "<|call|>") || text_is(tok, id, "<|calls|>")) {
            has_call = true;
        } else if (text_is(tok, id, "<|flush|>")) {
            has_flush = true;
        } else if (text_is(tok, id, "<|end|>")) {
            end_id = id;
        }
    }
    if (end_id >= 0 && ((has_return && has_call) || (has_call && has_flush))) {
        tok->attr[end_id] = TOK_ATTR_USER_DEFINED;
    }
    /* gemma4 / paddleocr: "</s>" is not an end of generation next to "<|tool_response>" */
    int32_t tool_response = find_z(tok, "<|tool_response>");
    int32_t s_end = find_z(tok, "</s>");
    if (tool_response >= 0 && (tok->attr[tool_response] & TOK_ATTR_EOG) && s_end >= 0 &&
        (tok->attr[s_end] & TOK_ATTR_EOG)) {
        tok->attr[s_end] = TOK_ATTR_NORMAL;
    }

    /* Phi-3 (by general.name): special tokens swallow the whitespace that follows them. */
    gguf_string name;
    if (gguf_get_string(file, "general.name", &name) == EDGELM_OK) {
        char lower[256];
        size_t len = name.len < sizeof lower ? (size_t)name.len : sizeof lower - 1;
        for (size_t i = 0; i < len; i++) {
            char ch = name.data[i];
            lower[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
        }
        if (bytes_contain(lower, len, "phi-3") || bytes_contain(lower, len, "phi3")) {
            for (int32_t id = 0; id < n; id++) {
                if (tok->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) {
                    tok->attr[id] |= TOK_ATTR_RSTRIP;
                }
            }
            int32_t id = find_z(tok, "</s>");
            if (id >= 0) {
                tok->attr[id] |= TOK_ATTR_RSTRIP;
            }
            static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
            for (size_t i = 0; i < 3; i++) {
                id = find_z(tok, keep[i]);
                if (id >= 0) {
                    tok->attr[id] &= (uint16_t)~TOK_ATTR_RSTRIP;
                }
            }
        }
    }
}

void tokenizer_free(tokenizer *tok) {
    if (tok == NULL) {
        return;
    }
    free(tok->text);
    free(tok->text_off);
    free(tok->scores);
    free(tok->attr);
    free(tok->token_slots);
    free(tok->merge_text);
    free(tok->merge_off);
    free(tok->merge_left_len);
    free(tok->merge_right_len);
    free(tok->merge_slots);
    free(tok->piece);
    free(tok->piece_off);
    free(tok->special);
    free(tok);
}

edgelm_status tokenizer_create(const gguf_file *file, tokenizer **out, char *err, size_t err_size) {
    edgelm_status st;
    if (err != NULL && err_size > 0) {
        err[0] = '\0';
    }
    if (file == NULL || out == NULL) {
        return fail(err, err_size, EDGELM_ERR_INVALID_ARGUMENT, "tokenizer_create: NULL argument");
    }
    *out = NULL;
    tokenizer *tok = calloc(1, sizeof *tok);
    if (tok == NULL) {
        return oom(err, err_size, "the tokenizer");
    }

    /* family */
    gguf_string model;
    st = gguf_get_string(file, KEY_MODEL, &model);
    if (st != EDGELM_OK) {
        st = fail(err, err_size, EDGELM_ERR_TOKENIZER, "%s is %s", KEY_MODEL,
                  st == EDGELM_ERR_MISSING ? "missing" : "not a string");
        goto fail;
    }
    /* FIM ids: only read so that, as in llama.cpp, a token named by a key is not re-detected by
     * its text (detection also makes a token CONTROL); pad/repo/file-separator end generation. */
    int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
    if (gguf_string_equals(model, "llama")) {
        /* llama.cpp's SPM defaults */
        tok->kind = TOK_KIND_SPM;
        tok->bos = 1;
        tok->eos = 2;
        tok->unk = 0;
        tok->add_space_prefix = true;
        tok->add_bos = true;
    } else if (gguf_string_equals(model, "gpt2")) {
        tok->kind = TOK_KIND_BPE;
        tok->bos = 11;
        tok->eos = 11;
        tok->unk = -1;
        tok->pre = TOK_PRE_DEFAULT; /* also when tokenizer.ggml.pre is absent, as llama.cpp */
        gguf_string pre;
        edgelm_status pst = gguf_get_string(file, KEY_PRE, &pre);
        if (pst == EDGELM_OK && pre.len > 0) {
            const pre_name *found = NULL;
            for (size_t i = 0; i < sizeof pre_names / sizeof pre_names[0]; i++) {
                if (gguf_string_equals(pre, pre_names[i].name)) {
                    found = &pre_names[i];
                    break;
                }
            }
            if (found == NULL) {
                st = fail(err, err_size, EDGELM_ERR_TOKENIZER, "%s '%.*s' is not supported",
                          KEY_PRE, (int)(pre.len > 64 ? 64 : pre.len), pre.data);
                goto fail;
            }
            tok->pre = found->pre;
            tok->ignore_merges = found->llama3_flags;
            tok->add_bos = found->llama3_flags;
        } else if (pst != EDGELM_OK && pst != EDGELM_ERR_MISSING) {
            st = fail(err, err_size, EDGELM_ERR_TOKENIZER, "%s is not a string", KEY_PRE);
            goto fail;
        }
    } else {
        st = fail(err, err_size, EDGELM_ERR_TOKENIZER,
                  "%s '%.*s' is not supported (supported: llama, gpt2)", KEY_MODEL,
                  (int)(model.len > 64 ? 64 : model.len), model.data);
        goto fail;
    }
    tok->eot = -1;
    tok->eom = -1;
    if ((st = read_bool(file, KEY_ADD_PREFIX, &tok->add_space_prefix, err, err_size)) !=
        EDGELM_OK) {
        goto fail;
    }

    /* vocabulary */
    const gguf_array *tokens;
    st = gguf_get_array(file, KEY_TOKENS, GGUF_TYPE_STRING, &tokens);
    if (st != EDGELM_OK) {
        st = fail(err, err_size, EDGELM_ERR_TOKENIZER, "%s is %s", KEY_TOKENS,
                  st == EDGELM_ERR_MISSING ? "missing" : "not an array of strings");
        goto fail;
    }
    if (tokens->n == 0 || tokens->n > (uint64_t)(INT32_MAX - 1)) {
        st = fail(err, err_size, EDGELM_ERR_TOKENIZER, "%s has %llu entries", KEY_TOKENS,
                  (unsigned long long)tokens->n);
        goto fail;
    }
    tok->n_vocab = (int32_t)tokens->n;
    if ((st = load_texts(tok, tokens, err, err_size)) != EDGELM_OK ||
        (st = load_scores_and_types(tok, file, err, err_size)) != EDGELM_OK) {
        goto fail;
    }
    if (tok->kind == TOK_KIND_BPE && (st = load_merges(tok, file, err, err_size)) != EDGELM_OK) {
        goto fail;
    }

    /* special ids: defaults outside the vocabulary are dropped, keys override */
    int32_t *defaults[3] = {&tok->bos, &tok->eos, &tok->unk};
    for (int k = 0; k < 3; k++) {
        if (*defaults[k] >= tok->n_vocab) {
            *defaults[k] = -1;
        }
    }
    int32_t unused_id = -1;
    /* checked: an id outside the vocabulary is an error (unchecked ones are then ignored) */
    const struct {
        const char *key;
        bool checked;
        int32_t *id;
    } special_ids[] = {
        {"tokenizer.ggml.bos_token_id", true, &tok->bos},
        {"tokenizer.ggml.eos_token_id", true, &tok->eos},
        {"tokenizer.ggml.eot_token_id", true, &tok->eot},
        {"tokenizer.ggml.eom_token_id", true, &tok->eom},
        {"tokenizer.ggml.unknown_token_id", true, &tok->unk},
        {"tokenizer.ggml.seperator_token_id", false, &unused_id},
        {"tokenizer.ggml.padding_token_id", false, &unused_id},
        {"tokenizer.ggml.mask_token_id", false, &unused_id},
        {"tokenizer.ggml.fim_pre_token_id", false, &fim_pre},
        {"tokenizer.ggml.fim_suf_token_id", false, &fim_suf},
        {"tokenizer.ggml.fim_mid_token_id", false, &fim_mid},
        {"tokenizer.ggml.prefix_token_id", false, &fim_pre},
        {"tokenizer.ggml.suffix_token_id", false, &fim_suf},
        {"tokenizer.ggml.middle_token_id", false, &fim_mid},
        {"tokenizer.ggml.fim_pad_token_id", false, &fim_pad},
        {"tokenizer.ggml.fim_rep_token_id", false, &fim_rep},
        {"tokenizer.ggml.fim_sep_token_id", false, &fim_sep},
    };
    for (size_t i = 0; i < sizeof special_ids / sizeof special_ids[0]; i++) {
        st = read_token_id(file, special_ids[i].key, tok->n_vocab, special_ids[i].checked,
                           special_ids[i].id, err, err_size);
        if (st != EDGELM_OK) {
            goto fail;
        }
    }
    if ((st = read_bool(file, KEY_ADD_BOS, &tok->add_bos, err, err_size)) != EDGELM_OK ||
        (st = read_bool(file, KEY_ADD_EOS, &tok->add_eos, err, err_size)) != EDGELM_OK) {
        goto fail;
    }
    if (tok->add_bos && tok->bos < 0) {
        st = fail(err, err_size, EDGELM_ERR_TOKENIZER,
                  "%s is true, but tokenizer.ggml.bos_token_id is not set", KEY_ADD_BOS);
        goto fail;
    }
    if (tok->add_eos && tok->eos < 0) {
        st = fail(err, err_size, EDGELM_ERR_TOKENIZER,
                  "%s is true, but tokenizer.ggml.eos_token_id is not set", KEY_ADD_EOS);
        goto fail;
    }

    fim_ids fim = {fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep};
    mark_special_tokens(tok, fim, file);
    if ((st = build_special_list(tok, err, err_size)) != EDGELM_OK ||
        (st = build_pieces(tok, err, err_size)) != EDGELM_OK) {
        goto fail;
    }

    /* SPM byte fallback: "<0xXX>", else a token that is the byte itself (llama.cpp's
     * byte_to_token) */
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", (unsigned)b);
        int32_t id = tok_find_token(tok, name, 6);
        if (id < 0 && b != 0) {
            char c = (char)b;
            id = tok_find_token(tok, &c, 1);
        }
        tok->byte_token[b] = id;
    }

    *out = tok;
    return EDGELM_OK;
fail:
    tokenizer_free(tok);
    return st;
}

/* ---- accessors ------------------------------------------------------------------------------ */

int32_t tokenizer_n_vocab(const tokenizer *tok) { return tok->n_vocab; }
int32_t tokenizer_bos(const tokenizer *tok) { return tok->bos; }
int32_t tokenizer_eos(const tokenizer *tok) { return tok->eos; }
bool tokenizer_add_bos(const tokenizer *tok) { return tok->add_bos; }

bool tokenizer_is_eog(const tokenizer *tok, int32_t token) {
    return token >= 0 && token < tok->n_vocab && (tok->attr[token] & TOK_ATTR_EOG) != 0;
}

bool tokenizer_is_control(const tokenizer *tok, int32_t token) {
    return token >= 0 && token < tok->n_vocab && (tok->attr[token] & TOK_ATTR_CONTROL) != 0;
}

const char *tokenizer_token_text(const tokenizer *tok, int32_t token) {
    if (tok == NULL || token < 0 || token >= tok->n_vocab) {
        return NULL;
    }
    return tok_text(tok, token);
}

int32_t tokenizer_token_to_piece(const tokenizer *tok, int32_t token, char *buf, size_t buf_size) {
    if (tok == NULL || (buf == NULL && buf_size > 0)) {
        return -(int32_t)EDGELM_ERR_INVALID_ARGUMENT;
    }
    if (token < 0 || token >= tok->n_vocab) {
        return -(int32_t)EDGELM_ERR_BAD_TOKEN;
    }
    size_t len = tok->piece_off[token + 1] - tok->piece_off[token];
    if (len > (size_t)INT32_MAX) {
        return -(int32_t)EDGELM_ERR_TOO_LARGE;
    }
    if (len <= buf_size && len > 0) {
        memcpy(buf, tok->piece + tok->piece_off[token], len);
    }
    return (int32_t)len;
}
