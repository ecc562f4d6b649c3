/* edgelm_gen.c - the edgelm-gen tool: writes a GGUF of any shape with deterministic pseudo-random
 * weights (seeded xoshiro256** + Box-Muller), quantized with the engine's reference quantizers,
 * for tests and benchmarks, in the key and tensor layout llama.cpp's converter writes for one of
 * llama, Llama 3 (llama + rope_freqs.weight), qwen2, qwen3, phi3 and gemma3. NOT a trained model:
 * its text is noise. Weights depend only on (seed, tensor name, shape), never on the output type or
 * the architecture, and tensors are streamed to the file one chunk of rows at a time, so memory
 * stays small for 1B-parameter shapes.
 */
#include "base/random.h"
#include "edgelm.h"
#include "format/file_map.h"
#include "format/gguf.h"
#include "gguf_writer.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "kernels/tensor_types.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_TENSOR_NAME 64
#define CHUNK_FLOATS ((size_t)1 << 20) /* floats generated per chunk of rows */
#define PROGRESS_MIN_BYTES ((uint64_t)32 << 20)
#define MAX_OWN_VOCAB 900000u

/* The --type choices: a plain tensor type (every matrix of that type, like llama-quantize --pure),
 * or llama.cpp's Q4_K_M mix. */
#define TYPE_Q4_K_M 1000u

/* The --arch choices. LLAMA3 is general.architecture "llama" with a rope_freqs.weight. */
typedef enum gen_arch {
    ARCH_LLAMA = 0,
    ARCH_LLAMA3,
    ARCH_QWEN2,
    ARCH_QWEN3,
    ARCH_PHI3,
    ARCH_GEMMA3,
} gen_arch;

static const struct {
    const char *option; /* --arch NAME */
    const char *prefix; /* general.architecture and the metadata key prefix */
} arch_names[] = {
    [ARCH_LLAMA] = {"llama", "llama"}, [ARCH_LLAMA3] = {"llama3", "llama"},
    [ARCH_QWEN2] = {"qwen2", "qwen2"}, [ARCH_QWEN3] = {"qwen3", "qwen3"},
    [ARCH_PHI3] = {"phi3", "phi3"},    [ARCH_GEMMA3] = {"gemma3", "gemma3"},
};

/* Llama 3 rope scaling as Meta's configs give it (Llama 3.2: factor 32, low 1, high 4); the
 * original context is --rope-orig-ctx (8192 in Llama 3) */
#define LLAMA3_ROPE_FACTOR 32.0
#define LLAMA3_LOW_FREQ_FACTOR 1.0
#define LLAMA3_HIGH_FREQ_FACTOR 4.0

typedef struct gen_config {
    const char *out_path;
    const char *preset;
    const char *name;
    gen_arch arch;
    uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx, rope_dim, n_vocab;
    uint32_t head_dim; /* attention.key_length; 0 until parse_args sets n_embd / n_head */
    float rope_base, rms_eps;
    uint32_t rope_orig_ctx;  /* llama3: original_max_position_embeddings of the factors */
    uint32_t sliding_window; /* phi3, gemma3: <arch>.attention.sliding_window */
    uint32_t swa_pattern;    /* gemma3: layer il is global when il % n == n - 1 */
    float rope_base_swa;     /* gemma3: rope base of the local layers */
    uint32_t type;           /* a tensor_type id or TYPE_Q4_K_M */
    const char *vocab_from;
    const char *chat_template_path; /* --chat-template: its text is tokenizer.chat_template */
    bool tied;
    bool quiet;
    uint64_t seed;
} gen_config;

/* ---- PRNG: xoshiro256** seeded through splitmix64; Gaussian by Box-Muller ------------------ */

typedef struct rng {
    uint64_t s[4];
    bool have_spare;
    double spare;
} rng;

static void rng_seed(rng *r, uint64_t seed) {
    xoshiro_seed(r->s, seed);
    r->have_spare = false;
    r->spare = 0.0;
}

static double rng_uniform(rng *r) {
    return (double)((xoshiro_next(r->s) >> 11) + 1) * (1.0 / 9007199254740992.0);
}

static double rng_gauss(rng *r) {
    if (r->have_spare) {
        r->have_spare = false;
        return r->spare;
    }
    double u1 = rng_uniform(r);
    double u2 = rng_uniform(r);
    double radius = sqrt(-2.0 * log(u1));
    double angle = 6.283185307179586 * u2;
    r->spare = radius * sin(angle);
    r->have_spare = true;
    return radius * cos(angle);
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    }
    return h;
}

/* ---- tensor plan -------------------------------------------------------------------------- */

typedef enum tensor_kind {
    KIND_TOKEN_EMBD,
    KIND_NORM,
    KIND_ATTN_Q,
    KIND_ATTN_K,
    KIND_ATTN_V,
    KIND_ATTN_OUTPUT,
    KIND_FFN_GATE,
    KIND_FFN_UP,
    KIND_FFN_DOWN,
    KIND_OUTPUT,
    KIND_BIAS,       /* attn_{q,k,v}.bias (qwen2): F32, std 0.1 */
    KIND_ATTN_QKV,   /* phi3's fused attn_qkv: q, k, v rows */
    KIND_ROPE_FREQS, /* rope_freqs.weight (Llama 3): computed factors, not random */
} tensor_kind;

typedef struct planned_tensor {
    char name[MAX_TENSOR_NAME];
    tensor_kind kind;
    uint32_t layer;
    uint32_t n_dims;
    uint64_t ne[2]; /* ne[0] = row length */
    uint32_t type;
    float std; /* Gaussian std; norms ignore it */
} planned_tensor;

static bool use_more_bits(uint32_t i_layer, uint32_t n_layers) {
    /* llama.cpp llama-quant.cpp: the first and last eighth of the layers, and every third one in
     * between, get more bits in the _M mixes */
    int i = (int)i_layer, n = (int)n_layers;
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* llama.cpp's fallback when a row length is not a multiple of the type's block size
 * (tensor_type_fallback in llama-quant.cpp): K-quants to a 32-block type, then F16. */
static uint32_t fallback_type(uint32_t type, uint64_t ne0) {
    const tensor_type_traits *t = tensor_type_get(type);
    if (t == NULL || ne0 % (uint64_t)t->block_size == 0) {
        return type;
    }
    uint32_t next;
    switch (type) {
    case TENSOR_TYPE_Q2_K:
    case TENSOR_TYPE_Q3_K:
        next = TENSOR_TYPE_Q4_0;
        break;
    case TENSOR_TYPE_Q4_K:
        next = TENSOR_TYPE_Q5_0;
        break;
    case TENSOR_TYPE_Q5_K:
        next = TENSOR_TYPE_Q5_1;
        break;
    case TENSOR_TYPE_Q6_K:
        next = TENSOR_TYPE_Q8_0;
        break;
    default: /* legacy 32-blocks: F16, as the llama.cpp build behind shared/models/derived did */
        return TENSOR_TYPE_F16;
    }
    const tensor_type_traits *n = tensor_type_get(next);
    return ne0 % (uint64_t)n->block_size == 0 ? next : TENSOR_TYPE_F16;
}

static uint32_t pick_type(const gen_config *c, const planned_tensor *t) {
    if (t->kind == KIND_NORM || t->kind == KIND_BIAS || t->kind == KIND_ROPE_FREQS) {
        return TENSOR_TYPE_F32; /* 1-D tensors stay F32, as llama.cpp's converter keeps them */
    }
    if (c->type != TYPE_Q4_K_M) {
        return fallback_type(c->type, t->ne[0]);
    }
    /* Q4_K_M (llama_tensor_get_type_impl): output (or the tied embedding) Q6_K, or Q8_0 when its
     * rows are not 256-multiples; attn_v (and phi3's fused attn_qkv, counted as an attn_v, as in
     * arch/phi3-Q4_K_M.gguf) and ffn_down Q6_K on use_more_bits layers; else Q4_K. */
    uint32_t type = TENSOR_TYPE_Q4_K;
    if (t->kind == KIND_OUTPUT || (t->kind == KIND_TOKEN_EMBD && c->tied)) {
        type = t->ne[0] % QK_K != 0 ? TENSOR_TYPE_Q8_0 : TENSOR_TYPE_Q6_K;
    } else if ((t->kind == KIND_ATTN_V || t->kind == KIND_ATTN_QKV || t->kind == KIND_FFN_DOWN) &&
               use_more_bits(t->layer, c->n_layer)) {
        type = TENSOR_TYPE_Q6_K;
    }
    return fallback_type(type, t->ne[0]);
}

static void plan_add(planned_tensor *plan, size_t *n, const char *name, tensor_kind kind,
                     uint32_t layer, uint64_t ne0, uint64_t ne1) {
    planned_tensor *t = &plan[(*n)++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->kind = kind;
    t->layer = layer;
    t->n_dims = ne1 > 0 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1 > 0 ? ne1 : 1;
    t->std = kind == KIND_TOKEN_EMBD ? 1.0f
             : kind == KIND_BIAS     ? 0.1f
                                     : (float)(1.0 / sqrt((double)ne0));
}

/* Most tensors a plan can hold: token_embd, rope_freqs, output_norm, output, and per layer at
 * most 16 (qwen2: 12; gemma3: 13). */
static size_t max_plan_tensors(const gen_config *c) { return 4 + (size_t)c->n_layer * 16; }

/* Tensors in the order llama.cpp's converter writes them (the arch/ fixtures of shared/models
 * show it per architecture). Returns the count. */
static size_t build_plan(const gen_config *c, planned_tensor *plan) {
    size_t n = 0;
    const uint64_t head_dim = c->head_dim;
    const uint64_t n_embd_kv = head_dim * c->n_head_kv;
    const uint64_t E = c->n_embd, F = c->n_ff, Q = head_dim * c->n_head;
    const bool fused = c->arch == ARCH_PHI3;
    const bool qk_norm = c->arch == ARCH_QWEN3 || c->arch == ARCH_GEMMA3;
    const bool post_norms = c->arch == ARCH_GEMMA3;
    char name[MAX_TENSOR_NAME];
    plan_add(plan, &n, "token_embd.weight", KIND_TOKEN_EMBD, 0, c->n_embd, c->n_vocab);
    if (c->arch == ARCH_GEMMA3) {
        /* the embeddings are multiplied by sqrt(n_embd): make that product unit-scale */
        plan[n - 1].std = (float)(1.0 / sqrt((double)c->n_embd));
    }
    if (c->arch == ARCH_LLAMA3) { /* one factor per rotated pair (n_rot / 2, as llama.cpp loads) */
        plan_add(plan, &n, "rope_freqs.weight", KIND_ROPE_FREQS, 0, c->rope_dim / 2, 0);
    }
    for (uint32_t i = 0; i < c->n_layer; i++) {
        /* (suffix, kind, ne0, ne1 or 0 for a vector, present) */
        const struct {
            const char *suffix;
            tensor_kind kind;
            uint64_t ne0, ne1;
            bool present;
        } parts[] = {
            {"attn_norm.weight", KIND_NORM, E, 0, true},
            {"attn_qkv.weight", KIND_ATTN_QKV, E, Q + 2 * n_embd_kv, fused},
            {"attn_q.weight", KIND_ATTN_Q, E, Q, !fused},
            {"attn_k.weight", KIND_ATTN_K, E, n_embd_kv, !fused},
            {"attn_v.weight", KIND_ATTN_V, E, n_embd_kv, !fused},
            {"attn_q.bias", KIND_BIAS, Q, 0, c->arch == ARCH_QWEN2},
            {"attn_k.bias", KIND_BIAS, n_embd_kv, 0, c->arch == ARCH_QWEN2},
            {"attn_v.bias", KIND_BIAS, n_embd_kv, 0, c->arch == ARCH_QWEN2},
            {"attn_q_norm.weight", KIND_NORM, head_dim, 0, qk_norm},
            {"attn_k_norm.weight", KIND_NORM, head_dim, 0, qk_norm},
            {"attn_output.weight", KIND_ATTN_OUTPUT, Q, E, true},
            {"post_attention_norm.weight", KIND_NORM, E, 0, post_norms},
            {"ffn_norm.weight", KIND_NORM, E, 0, true},
            {"ffn_gate.weight", KIND_FFN_GATE, E, F, !fused},
            /* phi3: gate rows then up rows in one tensor */
            {"ffn_up.weight", KIND_FFN_UP, E, fused ? 2 * F : F, true},
            {"ffn_down.weight", KIND_FFN_DOWN, F, E, true},
            {"post_ffw_norm.weight", KIND_NORM, E, 0, post_norms},
        };
        for (size_t p = 0; p < sizeof parts / sizeof parts[0]; p++) {
            if (parts[p].present) {
                snprintf(name, sizeof name, "blk.%u.%s", i, parts[p].suffix);
                plan_add(plan, &n, name, parts[p].kind, i, parts[p].ne0, parts[p].ne1);
            }
        }
    }
    plan_add(plan, &n, "output_norm.weight", KIND_NORM, 0, c->n_embd, 0);
    if (!c->tied) {
        plan_add(plan, &n, "output.weight", KIND_OUTPUT, 0, c->n_embd, c->n_vocab);
    }
    for (size_t i = 0; i < n; i++) {
        plan[i].type = pick_type(c, &plan[i]);
    }
    return n;
}

/* ---- vocabulary --------------------------------------------------------------------------- */

typedef struct vocab {
    char **tokens;
    float *scores;
    int32_t *types;
    uint32_t n, cap;
    uint32_t first_piece; /* index of the first scored piece */
    /* open-addressing set of token indices for de-duplication */
    int64_t *slots;
    size_t n_slots;
} vocab;

static void vocab_free(vocab *v) {
    if (v->tokens != NULL) {
        for (uint32_t i = 0; i < v->n; i++) {
            free(v->tokens[i]);
        }
    }
    free(v->tokens);
    free(v->scores);
    free(v->types);
    free(v->slots);
    memset(v, 0, sizeof *v);
}

static bool vocab_init(vocab *v, uint32_t cap) {
    memset(v, 0, sizeof *v);
    v->cap = cap;
    v->n_slots = 16;
    while (v->n_slots < (size_t)cap * 2) {
        v->n_slots <<= 1;
    }
    v->tokens = calloc(cap, sizeof *v->tokens);
    v->scores = calloc(cap, sizeof *v->scores);
    v->types = calloc(cap, sizeof *v->types);
    v->slots = malloc(v->n_slots * sizeof *v->slots);
    if (v->tokens == NULL || v->scores == NULL || v->types == NULL || v->slots == NULL) {
        vocab_free(v);
        return false;
    }
    for (size_t i = 0; i < v->n_slots; i++) {
        v->slots[i] = -1;
    }
    return true;
}

/* Add a token unless present or full. Returns false only when out of memory. */
static bool vocab_add(vocab *v, const char *text, float score, int32_t type) {
    if (v->n >= v->cap) {
        return true;
    }
    size_t h = (size_t)fnv1a(text) & (v->n_slots - 1);
    while (v->slots[h] >= 0) {
        if (strcmp(v->tokens[v->slots[h]], text) == 0) {
            return true;
        }
        h = (h + 1) & (v->n_slots - 1);
    }
    size_t len = strlen(text);
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        return false;
    }
    memcpy(copy, text, len + 1);
    v->slots[h] = v->n;
    v->tokens[v->n] = copy;
    v->scores[v->n] = score;
    v->types[v->n] = type;
    v->n++;
    return true;
}

#define SPM_SPACE "\xe2\x96\x81" /* U+2581, SentencePiece's word-boundary mark */

/* A normal piece; its score falls with every piece added (0, -1, -2, ...), as in llama2.c's
 * SentencePiece vocabularies. */
static bool vocab_piece(vocab *v, const char *text) {
    return vocab_add(v, text, -(float)(v->n - v->first_piece), 1);
}

/* "▁word" preceded by every shorter prefix ("▁w", "▁wo", ...) so SentencePiece-style bigram
 * merging can always reach it. */
static bool vocab_word(vocab *v, const char *word) {
    char buf[64];
    size_t len = strlen(word);
    for (size_t k = 1; k <= len && k + 4 < sizeof buf; k++) {
        snprintf(buf, sizeof buf, SPM_SPACE "%.*s", (int)k, word);
        if (!vocab_piece(v, buf)) {
            return false;
        }
    }
    return true;
}

static const char *const common_words[] = {
    "the",     "and",       "to",       "a",      "was",      "he",      "she",     "they",
    "it",      "of",        "in",       "her",    "his",      "with",    "on",      "said",
    "you",     "that",      "for",      "had",    "were",     "day",     "big",     "little",
    "play",    "happy",     "named",    "time",   "there",    "once",    "upon",    "friend",
    "friends", "saw",       "went",     "very",   "but",      "so",      "not",     "is",
    "be",      "are",       "all",      "at",     "as",       "one",     "have",    "we",
    "what",    "can",       "do",       "want",   "wanted",   "like",    "liked",   "go",
    "get",     "see",       "help",     "home",   "mom",      "dad",     "tree",    "park",
    "ball",    "dog",       "cat",      "bird",   "sun",      "fun",     "toy",     "new",
    "good",    "sad",       "look",     "looked", "came",     "come",    "up",      "down",
    "out",     "then",      "when",     "him",    "them",     "their",   "from",    "this",
    "will",    "would",     "could",    "made",   "make",     "too",     "loved",   "love",
    "girl",    "boy",       "run",      "ran",    "jump",     "found",   "find",    "red",
    "blue",    "green",     "water",    "food",   "eat",      "sky",     "house",   "car",
    "box",     "hat",       "cake",     "flower", "garden",   "outside", "inside",  "together",
    "always",  "never",     "every",    "after",  "before",   "because", "about",   "other",
    "some",    "many",      "more",     "small",  "long",     "old",     "nice",    "kind",
    "smile",   "smiled",    "laugh",    "hug",    "learned",  "lesson",  "careful", "surprise",
    "thank",   "sorry",     "please",   "yes",    "no",       "did",     "how",     "who",
    "where",   "why",       "now",      "again",  "away",     "back",    "into",    "over",
    "under",   "around",    "just",     "also",   "an",       "or",      "if",      "my",
    "your",    "me",        "us",       "know",   "think",    "felt",    "feel",    "tell",
    "told",    "asked",     "gave",     "took",   "put",      "let",     "try",     "way",
    "thing",   "something", "everyone", "bear",   "fish",     "book",    "game",    "school",
    "story",   "world",     "people",   "man",    "children", "baby",    "room",    "bed",
    "door",    "night",     "morning",  "rain",   "star",     "moon",    "sea",     "boat",
};

static const char *const capital_words[] = {
    "The", "Once", "One", "She", "He",    "They", "Lily", "Tom",  "Ben",  "Sue",  "It",
    "But", "I",    "Mom", "Dad", "Timmy", "Sara", "Max",  "Anna", "When", "Then", "After",
};

static const char *const suffixes[] = {
    "s",  "ing", "ed", "er", "ly", "es", "est", "ful", "ness", "en", "y",  "le", "ion", "al", "ar",
    "or", "an",  "on", "at", "in", "re", "th",  "st",  "ll",   "nd", "ck", "ch", "sh",  "ou", "ow",
};

/* SentencePiece-style "llama" vocabulary of exactly n tokens: <unk>, <s>, </s>, the 256 byte
 * tokens, then pieces with falling scores. Deterministic. */
static bool build_own_vocab(vocab *v, uint32_t n) {
    if (!vocab_init(v, n)) {
        return false;
    }
    bool ok = vocab_add(v, "<unk>", 0.0f, 2) && vocab_add(v, "<s>", 0.0f, 3) &&
              vocab_add(v, "</s>", 0.0f, 3);
    char buf[32];
    for (int b = 0; b < 256 && ok; b++) {
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        ok = vocab_add(v, buf, 0.0f, 6);
    }
    v->first_piece = v->n;
    ok = ok && vocab_piece(v, SPM_SPACE);
    for (char ch = 'a'; ch <= 'z' && ok; ch++) {
        buf[0] = ch;
        buf[1] = '\0';
        ok = vocab_piece(v, buf);
    }
    static const char punct[] = ".,!?'\":;-()";
    for (const char *p = punct; *p && ok; p++) {
        buf[0] = *p;
        buf[1] = '\0';
        ok = vocab_piece(v, buf);
    }
    for (size_t i = 0; i < sizeof common_words / sizeof common_words[0] && ok; i++) {
        ok = vocab_word(v, common_words[i]);
    }
    for (size_t i = 0; i < sizeof capital_words / sizeof capital_words[0] && ok; i++) {
        ok = vocab_word(v, capital_words[i]);
    }
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0] && ok; i++) {
        ok = vocab_piece(v, suffixes[i]);
    }
    for (char ch = 'A'; ch <= 'Z' && ok; ch++) {
        buf[0] = ch;
        buf[1] = '\0';
        ok = vocab_piece(v, buf);
    }
    for (char ch = '0'; ch <= '9' && ok; ch++) {
        buf[0] = ch;
        buf[1] = '\0';
        ok = vocab_piece(v, buf);
    }
    /* fill: all lowercase strings of 2, 3, 4 letters, bare and word-initial */
    for (int len = 2; len <= 4 && ok && v->n < v->cap; len++) {
        long total = 1;
        for (int k = 0; k < len; k++) {
            total *= 26;
        }
        for (int with_space = 0; with_space <= 1 && ok && v->n < v->cap; with_space++) {
            for (long code = 0; code < total && ok && v->n < v->cap; code++) {
                char *p = buf;
                if (with_space) {
                    memcpy(p, SPM_SPACE, 3);
                    p += 3;
                }
                long rest = code;
                for (int k = len - 1; k >= 0; k--) {
                    p[k] = (char)('a' + rest % 26);
                    rest /= 26;
                }
                p[len] = '\0';
                ok = vocab_piece(v, buf);
            }
        }
    }
    if (ok && v->n < v->cap) {
        ok = false; /* the caller bounds n by MAX_OWN_VOCAB, which the fill covers */
    }
    return ok;
}

static edgelm_status write_own_tokenizer(gguf_writer *w, const vocab *v) {
    edgelm_status st = gguf_writer_set_string(w, "tokenizer.ggml.model", "llama");
    if (st == EDGELM_OK) {
        st = gguf_writer_set_string_array(w, "tokenizer.ggml.tokens",
                                          (const char *const *)v->tokens, v->n);
    }
    if (st == EDGELM_OK) {
        st = gguf_writer_set_array(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, v->scores, v->n);
    }
    if (st == EDGELM_OK) {
        st = gguf_writer_set_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v->types, v->n);
    }
    if (st == EDGELM_OK) {
        st = gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    }
    if (st == EDGELM_OK) {
        st = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    }
    if (st == EDGELM_OK) {
        st = gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    }
    if (st == EDGELM_OK) {
        st = gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    }
    if (st == EDGELM_OK) {
        st = gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    }
    return st;
}

/* Copy one parsed key-value pair into the writer under its own key. */
static edgelm_status copy_kv(gguf_writer *w, const gguf_kv *kv, const char *key) {
    switch (kv->type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64:
        return gguf_writer_set_integer(w, key, kv->type, kv->value.u64);
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_INT64:
        return gguf_writer_set_integer(w, key, kv->type, (uint64_t)kv->value.i64);
    case GGUF_TYPE_FLOAT32:
        return gguf_writer_set_f32(w, key, (float)kv->value.f64); /* widened from f32: exact */
    case GGUF_TYPE_FLOAT64:
        return gguf_writer_set_f64(w, key, kv->value.f64);
    case GGUF_TYPE_BOOL:
        return gguf_writer_set_bool(w, key, kv->value.b);
    case GGUF_TYPE_STRING:
        return gguf_writer_set_string_n(w, key, kv->value.str.data, (size_t)kv->value.str.len);
    default:
        break;
    }
    const gguf_array *arr = &kv->value.arr;
    if (arr->elem_type == GGUF_TYPE_STRING) {
        const char **strs = malloc((arr->n ? (size_t)arr->n : 1) * sizeof *strs);
        size_t *lens = malloc((arr->n ? (size_t)arr->n : 1) * sizeof *lens);
        edgelm_status st = EDGELM_ERR_OUT_OF_MEMORY;
        if (strs != NULL && lens != NULL) {
            for (uint64_t i = 0; i < arr->n; i++) {
                strs[i] = arr->strings[i].data;
                lens[i] = (size_t)arr->strings[i].len;
            }
            st = gguf_writer_set_string_array_n(w, key, strs, lens, arr->n);
        }
        free(strs);
        free(lens);
        return st;
    }
    /* scalar array: re-encode from the file's little-endian bytes */
    size_t elem = gguf_type_size(arr->elem_type);
    size_t n_bytes = (size_t)arr->n * elem; /* fits: the parser checked it against the file */
    uint8_t *raw = malloc(12 + n_bytes);
    if (raw == NULL) {
        return EDGELM_ERR_OUT_OF_MEMORY;
    }
    for (int i = 0; i < 4; i++) {
        raw[i] = (uint8_t)(arr->elem_type >> (8 * i));
    }
    for (int i = 0; i < 8; i++) {
        raw[4 + i] = (uint8_t)(arr->n >> (8 * i));
    }
    if (n_bytes > 0) {
        memcpy(raw + 12, arr->data, n_bytes);
    }
    edgelm_status st = gguf_writer_set_raw(w, key, GGUF_TYPE_ARRAY, raw, 12 + n_bytes);
    free(raw);
    return st;
}

/* Copy every tokenizer.* key of another GGUF; the vocabulary size is its token count. */
static int copy_tokenizer(gguf_writer *w, const char *path, uint32_t *n_vocab) {
    file_map map = {0};
    gguf_file gf;
    memset(&gf, 0, sizeof gf);
    char err[512];
    int rc = 1;
    edgelm_status st = file_map_open(path, false, &map, err, sizeof err);
    if (st != EDGELM_OK) {
        fprintf(stderr, "edgelm-gen: --vocab-from: %s\n", err);
        return 1;
    }
    st = gguf_parse(map.data, map.size, &gf, err, sizeof err);
    if (st != EDGELM_OK) {
        fprintf(stderr, "edgelm-gen: --vocab-from %s: %s: %s\n", path, edgelm_strerror(st), err);
        goto fail;
    }
    const gguf_array *tokens = NULL;
    if (gguf_get_array(&gf, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens) != EDGELM_OK) {
        fprintf(stderr, "edgelm-gen: --vocab-from %s: no tokenizer.ggml.tokens string array\n",
                path);
        goto fail;
    }
    if (tokens->n == 0 || tokens->n > INT32_MAX) {
        fprintf(stderr, "edgelm-gen: --vocab-from %s: %llu tokens\n", path,
                (unsigned long long)tokens->n);
        goto fail;
    }
    *n_vocab = (uint32_t)tokens->n;
    for (uint64_t i = 0; i < gf.n_kv; i++) {
        const gguf_kv *kv = &gf.kv[i];
        static const char prefix[] = "tokenizer.";
        if (kv->key.len < sizeof prefix - 1 ||
            memcmp(kv->key.data, prefix, sizeof prefix - 1) != 0) {
            continue;
        }
        char key[1024];
        if (kv->key.len >= sizeof key || memchr(kv->key.data, '\0', (size_t)kv->key.len)) {
            fprintf(stderr, "edgelm-gen: --vocab-from %s: unusable key of %llu bytes\n", path,
                    (unsigned long long)kv->key.len);
            goto fail;
        }
        memcpy(key, kv->key.data, (size_t)kv->key.len);
        key[kv->key.len] = '\0';
        st = copy_kv(w, kv, key);
        if (st != EDGELM_OK) {
            fprintf(stderr, "edgelm-gen: copying %s: %s: %s\n", key, edgelm_strerror(st),
                    gguf_writer_errmsg(w));
            goto fail;
        }
    }
    rc = 0;
fail:
    gguf_free(&gf);
    file_map_close(&map);
    return rc;
}

/* tokenizer.chat_template from a file, set after the tokenizer keys so it replaces a copied one. */
static int set_chat_template(gguf_writer *w, const char *path) {
    file_map map = {0};
    char err[512];
    edgelm_status st = file_map_open(path, false, &map, err, sizeof err);
    if (st != EDGELM_OK) {
        fprintf(stderr, "edgelm-gen: --chat-template: %s\n", err);
        return 1;
    }
    st = gguf_writer_set_string_n(w, "tokenizer.chat_template", map.data, map.size);
    file_map_close(&map);
    if (st != EDGELM_OK) {
        fprintf(stderr, "edgelm-gen: --chat-template %s: %s\n", path, gguf_writer_errmsg(w));
        return 1;
    }
    return 0;
}

/* ---- weights ------------------------------------------------------------------------------ */

static void fill_row(rng *r, const planned_tensor *t, float *row, uint64_t n) {
    if (t->kind == KIND_NORM) {
        for (uint64_t i = 0; i < n; i++) {
            row[i] = (float)(1.0 + 0.1 * (2.0 * rng_uniform(r) - 1.0)); /* 1 +- 0.1 */
        }
        return;
    }
    for (uint64_t i = 0; i < n; i++) {
        row[i] = (float)(rng_gauss(r) * (double)t->std);
    }
}

/* Convert n floats (whole blocks) to type. Float types are converted here; the rest go through
 * the engine's reference quantizers. */
static bool convert(uint32_t type, const float *src, void *dst, int64_t n) {
    switch (type) {
    case TENSOR_TYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float)); /* GGUF is little-endian, as is the host */
        return true;
    case TENSOR_TYPE_F16: {
        fp16_t *d = dst;
        for (int64_t i = 0; i < n; i++) {
            d[i] = fp32_to_fp16(src[i]);
        }
        return true;
    }
    case TENSOR_TYPE_BF16: {
        bf16_t *d = dst;
        for (int64_t i = 0; i < n; i++) {
            d[i] = fp32_to_bf16(src[i]);
        }
        return true;
    }
    default: {
        const tensor_type_traits *traits = tensor_type_get(type);
        if (traits == NULL || traits->from_float == NULL) {
            return false;
        }
        traits->from_float(src, dst, n);
        return true;
    }
    }
}

/* rope_freqs.weight as llama.cpp's converter computes it for Llama 3 rope scaling
 * (convert_hf_to_gguf.py, LlamaModel.generate_extra_tensors, rope_type "llama3"): for each pair i
 * of the d rotated dims (the converter's head_dim; Llama 3 rotates all of a head),
 * freq = 1 / base^(2i/d) (float32, as torch computes it) and wavelen = 2 pi / freq; the factor is
 * 1 below old_ctx / high_freq_factor, `factor` above old_ctx / low_freq_factor, and
 * 1 / ((1 - smooth) / factor + smooth) in between, smooth = (old_ctx / wavelen - low) / (high -
 * low). */
static void llama3_rope_factors(const gen_config *c, float *out, uint64_t n_pairs) {
    const double old_ctx = (double)c->rope_orig_ctx;
    const double low_wavelen = old_ctx / LLAMA3_LOW_FREQ_FACTOR;
    const double high_wavelen = old_ctx / LLAMA3_HIGH_FREQ_FACTOR;
    const uint64_t dim = 2 * n_pairs;
    for (uint64_t i = 0; i < n_pairs; i++) {
        const float freq = 1.0f / powf(c->rope_base, (float)(2 * i) / (float)dim);
        const double wavelen = 2.0 * 3.141592653589793 / (double)freq;
        double factor;
        if (wavelen < high_wavelen) {
            factor = 1.0;
        } else if (wavelen > low_wavelen) {
            factor = LLAMA3_ROPE_FACTOR;
        } else {
            const double smooth = (old_ctx / wavelen - LLAMA3_LOW_FREQ_FACTOR) /
                                  (LLAMA3_HIGH_FREQ_FACTOR - LLAMA3_LOW_FREQ_FACTOR);
            factor = 1.0 / ((1.0 - smooth) / LLAMA3_ROPE_FACTOR + smooth);
        }
        out[i] = (float)factor;
    }
}

static int write_tensor(gguf_writer *w, const gen_config *c, const planned_tensor *t, float *fbuf,
                        uint8_t *qbuf) {
    if (t->kind == KIND_ROPE_FREQS) {
        llama3_rope_factors(c, fbuf, t->ne[0]);
        edgelm_status st = gguf_writer_write_tensor_data(w, fbuf, (size_t)t->ne[0] * sizeof(float));
        if (st != EDGELM_OK) {
            fprintf(stderr, "edgelm-gen: %s\n", gguf_writer_errmsg(w));
            return 1;
        }
        return 0;
    }
    rng r;
    rng_seed(&r, c->seed ^ fnv1a(t->name));
    uint64_t ne0 = t->ne[0], n_rows = t->ne[1];
    size_t row_bytes = tensor_row_size(t->type, (int64_t)ne0);
    uint64_t rows_per_chunk = CHUNK_FLOATS / ne0 > 0 ? CHUNK_FLOATS / ne0 : 1;
    for (uint64_t row = 0; row < n_rows; row += rows_per_chunk) {
        uint64_t rows = n_rows - row < rows_per_chunk ? n_rows - row : rows_per_chunk;
        for (uint64_t k = 0; k < rows; k++) {
            fill_row(&r, t, fbuf + k * ne0, ne0);
        }
        if (!convert(t->type, fbuf, qbuf, (int64_t)(rows * ne0))) {
            fprintf(stderr, "edgelm-gen: %s: the engine has no quantizer (from_float) for %s yet\n",
                    t->name, tensor_type_get(t->type)->name);
            return 1;
        }
        edgelm_status st = gguf_writer_write_tensor_data(w, qbuf, (size_t)rows * row_bytes);
        if (st != EDGELM_OK) {
            fprintf(stderr, "edgelm-gen: %s\n", gguf_writer_errmsg(w));
            return 1;
        }
    }
    return 0;
}

/* ---- command line ------------------------------------------------------------------------- */

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: edgelm-gen OUT.gguf [options]\n"
        "Writes a GGUF with deterministic pseudo-random weights (not a trained model) for\n"
        "tests and benchmarks, in llama.cpp's layout for the chosen architecture.\n"
        "\n"
        "  --arch NAME        llama (default) | llama3 (llama + rope_freqs.weight) | qwen2\n"
        "                     (QKV biases) | qwen3 (q/k norms) | phi3 (fused attn_qkv and\n"
        "                     gate/up) | gemma3 (q/k norms, post-norms, sliding-window\n"
        "                     layers, GELU; always tied)\n"
        "  --preset NAME      tiny (default) | stories260k | synthetic-k256 | tinyllama-1.1b\n"
        "  --n-embd N         embedding width            --n-layer N    layers\n"
        "  --n-head N         attention heads            --n-head-kv N  KV heads (GQA)\n"
        "  --n-ff N           feed-forward width         --n-ctx N      training context\n"
        "  --rope-base F      RoPE frequency base        --rope-dim N   rotated dims per head\n"
        "  --rms-eps F        RMSNorm epsilon            --head-dim N   head size (default\n"
        "                     n_embd / n_head; Gemma 3 uses 256 at any width)\n"
        "  --rope-orig-ctx N  llama3: original context of the rope factors (default 8192;\n"
        "                     factor 32, low 1, high 4 as Llama 3.2)\n"
        "  --sliding-window N phi3: attention.sliding_window (default: the context);\n"
        "                     gemma3: the local layers' window (default 8)\n"
        "  --swa-pattern N    gemma3: every Nth layer is global, the rest local (default 6)\n"
        "  --rope-base-swa F  gemma3: rope base of the local layers (default 10000)\n"
        "  --type T           f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_K q3_K q4_K q5_K q6_K\n"
        "                     (every matrix of type T, like llama-quantize --pure; norms F32)\n"
        "                     or q4_K_M (llama.cpp's mix: Q4_K, output Q6_K, attn_v (or\n"
        "                     phi3's attn_qkv) and ffn_down Q6_K on the use_more_bits\n"
        "                     layers). Default f32. 1-D tensors (norms, biases) stay f32.\n"
        "                     Rows whose width is not a multiple of the block size fall back\n"
        "                     as llama.cpp does: q2_K/q3_K -> q4_0, q4_K -> q5_0, q5_K -> q5_1,\n"
        "                     q6_K -> q8_0, then (and for the 32-block types) -> f16.\n"
        "  --vocab-from FILE  copy every tokenizer.* key of another GGUF (vocab size follows)\n"
        "  --vocab-size N     size of the built-in SentencePiece-style vocab (>= 259)\n"
        "  --chat-template FILE\n"
        "                     tokenizer.chat_template is the text of FILE (replacing one copied\n"
        "                     by --vocab-from)\n"
        "  --tied             no output.weight (the output reuses token_embd)\n"
        "  --seed N           PRNG seed (default 1234)\n"
        "  --name S           general.name (default \"edgelm-gen <preset>\")\n"
        "  --quiet            no progress or summary on stderr\n"
        "  --help             this text\n"
        "exit status: 0 written, 1 failed (OUT.gguf left untouched), 2 bad usage\n"
        "\n"
        "defaults by arch: rope base 10000 and rms eps 1e-5 (llama, phi3), 500000 and 1e-5\n"
        "(llama3), 1e6 and 1e-6 (qwen2, qwen3, gemma3); explicit options override them\n"
        "presets: tiny: n_embd 64, 2 layers, 4 heads, 2 kv heads, n_ff 256, ctx 256, vocab 512\n"
        "         stories260k: n_embd 64, 5 layers, 8 heads, 4 kv, n_ff 172, rope dim 8, ctx 2048\n"
        "         synthetic-k256: n_embd 256, 2 layers, 4 heads, 2 kv, n_ff 512, ctx 512\n"
        "         tinyllama-1.1b: n_embd 2048, 22 layers, 32 heads, 4 kv, n_ff 5632, ctx 2048,\n"
        "                         vocab 32000\n");
}

static bool parse_u32(const char *opt, const char *s, uint32_t lo, uint32_t hi, uint32_t *out) {
    char *end = NULL;
    errno = 0;
    if (s == NULL || s[0] == '\0' || s[0] == '-' || s[0] == '+') {
        fprintf(stderr, "edgelm-gen: %s needs a number in %u..%u\n", opt, lo, hi);
        return false;
    }
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "edgelm-gen: %s '%s': not a number in %u..%u\n", opt, s, lo, hi);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

static bool parse_positive_float(const char *opt, const char *s, float *out) {
    char *end = NULL;
    errno = 0;
    if (s == NULL || s[0] == '\0') {
        fprintf(stderr, "edgelm-gen: %s needs a positive number\n", opt);
        return false;
    }
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v <= 0.0 || v > 1e30) {
        fprintf(stderr, "edgelm-gen: %s '%s': not a positive finite number\n", opt, s);
        return false;
    }
    *out = (float)v;
    return true;
}

static bool parse_type(const char *s, uint32_t *out) {
    static const struct {
        const char *name;
        uint32_t type;
    } types[] = {
        {"f32", TENSOR_TYPE_F32},   {"f16", TENSOR_TYPE_F16},   {"bf16", TENSOR_TYPE_BF16},
        {"q8_0", TENSOR_TYPE_Q8_0}, {"q4_0", TENSOR_TYPE_Q4_0}, {"q4_1", TENSOR_TYPE_Q4_1},
        {"q5_0", TENSOR_TYPE_Q5_0}, {"q5_1", TENSOR_TYPE_Q5_1}, {"q2_K", TENSOR_TYPE_Q2_K},
        {"q3_K", TENSOR_TYPE_Q3_K}, {"q4_K", TENSOR_TYPE_Q4_K}, {"q5_K", TENSOR_TYPE_Q5_K},
        {"q6_K", TENSOR_TYPE_Q6_K}, {"q4_K_M", TYPE_Q4_K_M},
    };
    for (size_t i = 0; s != NULL && i < sizeof types / sizeof types[0]; i++) {
        if (strcasecmp(s, types[i].name) == 0) {
            *out = types[i].type;
            return true;
        }
    }
    fprintf(stderr,
            "edgelm-gen: --type '%s' is not one of f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 "
            "q5_1 q2_K q3_K q4_K q5_K q6_K q4_K_M\n",
            s != NULL ? s : "");
    return false;
}

/* llama_ftype values for general.file_type (llama.h). The pure K-quant files use the _M (or, for
 * Q2_K/Q6_K, the only) ftype, as shared/models/synthetic does. */
static uint32_t file_type_of(uint32_t type) {
    switch (type) {
    case TENSOR_TYPE_F32:
        return 0;
    case TENSOR_TYPE_F16:
        return 1;
    case TENSOR_TYPE_Q4_0:
        return 2;
    case TENSOR_TYPE_Q4_1:
        return 3;
    case TENSOR_TYPE_Q8_0:
        return 7;
    case TENSOR_TYPE_Q5_0:
        return 8;
    case TENSOR_TYPE_Q5_1:
        return 9;
    case TENSOR_TYPE_Q2_K:
        return 10;
    case TENSOR_TYPE_Q3_K:
        return 12;
    case TENSOR_TYPE_Q4_K:
        return 15;
    case TENSOR_TYPE_Q5_K:
        return 17;
    case TENSOR_TYPE_Q6_K:
        return 18;
    case TENSOR_TYPE_BF16:
        return 32;
    case TYPE_Q4_K_M:
        return 15;
    default:
        return 0;
    }
}

static const char *type_label(uint32_t type) {
    if (type == TYPE_Q4_K_M) {
        return "q4_K_M";
    }
    const tensor_type_traits *t = tensor_type_get(type);
    return t != NULL ? t->name : "?";
}

static bool apply_preset(gen_config *c, const char *name) {
    if (strcmp(name, "tiny") == 0) {
        c->n_embd = 64, c->n_layer = 2, c->n_head = 4, c->n_head_kv = 2, c->n_ff = 256;
        c->n_ctx = 256, c->n_vocab = 512, c->rope_dim = 0;
    } else if (strcmp(name, "stories260k") == 0) {
        c->n_embd = 64, c->n_layer = 5, c->n_head = 8, c->n_head_kv = 4, c->n_ff = 172;
        c->n_ctx = 2048, c->n_vocab = 512, c->rope_dim = 8;
    } else if (strcmp(name, "synthetic-k256") == 0) {
        c->n_embd = 256, c->n_layer = 2, c->n_head = 4, c->n_head_kv = 2, c->n_ff = 512;
        c->n_ctx = 512, c->n_vocab = 512, c->rope_dim = 0;
    } else if (strcmp(name, "tinyllama-1.1b") == 0) {
        c->n_embd = 2048, c->n_layer = 22, c->n_head = 32, c->n_head_kv = 4, c->n_ff = 5632;
        c->n_ctx = 2048, c->n_vocab = 32000, c->rope_dim = 0;
    } else {
        fprintf(stderr,
                "edgelm-gen: unknown preset '%s' (tiny, stories260k, synthetic-k256, "
                "tinyllama-1.1b)\n",
                name);
        return false;
    }
    c->preset = name;
    c->rope_base = 10000.0f;
    c->rms_eps = 1e-5f;
    return true;
}

static bool parse_arch(const char *s, gen_arch *out) {
    for (size_t i = 0; s != NULL && i < sizeof arch_names / sizeof arch_names[0]; i++) {
        if (strcmp(s, arch_names[i].option) == 0) {
            *out = (gen_arch)i;
            return true;
        }
    }
    fprintf(stderr, "edgelm-gen: --arch '%s' is not one of llama llama3 qwen2 qwen3 phi3 gemma3\n",
            s != NULL ? s : "");
    return false;
}

/* The architecture's usual hyperparameters (its real models'), over the preset's. */
static void apply_arch_defaults(gen_config *c) {
    switch (c->arch) {
    case ARCH_LLAMA3:
        c->rope_base = 500000.0f;
        break;
    case ARCH_QWEN2:
    case ARCH_QWEN3:
        c->rope_base = 1e6f;
        c->rms_eps = 1e-6f;
        break;
    case ARCH_GEMMA3:
        c->rope_base = 1e6f;
        c->rms_eps = 1e-6f;
        c->tied = true; /* llama.cpp's gemma3 converter writes no output.weight */
        break;
    default:
        break;
    }
    c->rope_orig_ctx = 8192;
    c->sliding_window = c->arch == ARCH_GEMMA3 ? 8 : 0; /* phi3: 0 = the context, set later */
    c->swa_pattern = 6;
    c->rope_base_swa = 10000.0f;
}

/* Parse argv into c. Returns 0 ok, 1 error, 2 help shown. The preset and then the architecture's
 * defaults are applied first, so explicit options override them whatever their order. */
static int parse_args(int argc, char **argv, gen_config *c) {
    memset(c, 0, sizeof *c);
    c->type = TENSOR_TYPE_F32;
    c->seed = 1234;
    const char *preset = "tiny";
    const char *arch = "llama";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 2;
        }
        if (strcmp(argv[i], "--preset") == 0 || strcmp(argv[i], "--arch") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "edgelm-gen: %s needs a name\n", argv[i]);
                return 1;
            }
            if (argv[i][2] == 'p') {
                preset = argv[++i];
            } else {
                arch = argv[++i];
            }
        }
    }
    if (!apply_preset(c, preset) || !parse_arch(arch, &c->arch)) {
        return 1;
    }
    apply_arch_defaults(c);
    bool vocab_size_given = false;
    const char *arch_only = NULL; /* an option that needs another --arch */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            if (c->out_path != NULL) {
                fprintf(stderr, "edgelm-gen: more than one output path ('%s', '%s')\n", c->out_path,
                        a);
                return 1;
            }
            c->out_path = a;
            continue;
        }
        if (strcmp(a, "--tied") == 0) {
            c->tied = true;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            c->quiet = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "edgelm-gen: %s needs a value (see --help)\n", a);
            return 1;
        }
        const char *v = argv[++i];
        bool ok = true;
        if (strcmp(a, "--preset") == 0 || strcmp(a, "--arch") == 0) {
            continue; /* applied above */
        } else if (strcmp(a, "--n-embd") == 0) {
            ok = parse_u32(a, v, 1, 65536, &c->n_embd);
        } else if (strcmp(a, "--n-layer") == 0) {
            ok = parse_u32(a, v, 1, 1024, &c->n_layer);
        } else if (strcmp(a, "--n-head") == 0) {
            ok = parse_u32(a, v, 1, 4096, &c->n_head);
        } else if (strcmp(a, "--n-head-kv") == 0) {
            ok = parse_u32(a, v, 1, 4096, &c->n_head_kv);
        } else if (strcmp(a, "--n-ff") == 0) {
            ok = parse_u32(a, v, 1, 1u << 20, &c->n_ff);
        } else if (strcmp(a, "--n-ctx") == 0) {
            ok = parse_u32(a, v, 1, 1u << 24, &c->n_ctx);
        } else if (strcmp(a, "--head-dim") == 0) {
            ok = parse_u32(a, v, 2, 65536, &c->head_dim);
        } else if (strcmp(a, "--rope-dim") == 0) {
            ok = parse_u32(a, v, 2, 65536, &c->rope_dim);
        } else if (strcmp(a, "--rope-base") == 0) {
            ok = parse_positive_float(a, v, &c->rope_base);
        } else if (strcmp(a, "--rms-eps") == 0) {
            ok = parse_positive_float(a, v, &c->rms_eps);
        } else if (strcmp(a, "--rope-orig-ctx") == 0) {
            ok = parse_u32(a, v, 1, 1u << 24, &c->rope_orig_ctx);
            arch_only = c->arch != ARCH_LLAMA3 ? a : arch_only;
        } else if (strcmp(a, "--sliding-window") == 0) {
            ok = parse_u32(a, v, 1, 1u << 24, &c->sliding_window);
            arch_only = c->arch != ARCH_PHI3 && c->arch != ARCH_GEMMA3 ? a : arch_only;
        } else if (strcmp(a, "--swa-pattern") == 0) {
            ok = parse_u32(a, v, 1, 1024, &c->swa_pattern);
            arch_only = c->arch != ARCH_GEMMA3 ? a : arch_only;
        } else if (strcmp(a, "--rope-base-swa") == 0) {
            ok = parse_positive_float(a, v, &c->rope_base_swa);
            arch_only = c->arch != ARCH_GEMMA3 ? a : arch_only;
        } else if (strcmp(a, "--type") == 0) {
            ok = parse_type(v, &c->type);
        } else if (strcmp(a, "--vocab-from") == 0) {
            c->vocab_from = v;
        } else if (strcmp(a, "--chat-template") == 0) {
            c->chat_template_path = v;
        } else if (strcmp(a, "--vocab-size") == 0) {
            ok = parse_u32(a, v, 259, MAX_OWN_VOCAB, &c->n_vocab);
            vocab_size_given = true;
        } else if (strcmp(a, "--seed") == 0) {
            char *end = NULL;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 0);
            ok = errno == 0 && *end == '\0' && v[0] != '-' && v[0] != '\0';
            if (!ok) {
                fprintf(stderr, "edgelm-gen: --seed '%s': not an unsigned 64-bit number\n", v);
            }
            c->seed = s;
        } else if (strcmp(a, "--name") == 0) {
            c->name = v;
        } else {
            fprintf(stderr, "edgelm-gen: unknown option '%s' (see --help)\n", a);
            return 1;
        }
        if (!ok) {
            return 1;
        }
    }
    if (c->out_path == NULL) {
        fprintf(stderr, "edgelm-gen: no output path given\n");
        usage(stderr);
        return 1;
    }
    if (arch_only != NULL) {
        fprintf(stderr, "edgelm-gen: %s does not apply to --arch %s (see --help)\n", arch_only,
                arch_names[c->arch].option);
        return 1;
    }
    if (c->arch == ARCH_PHI3 && c->sliding_window == 0) {
        c->sliding_window = c->n_ctx; /* phi3's window caps a session's context: the whole one */
    }
    if (c->vocab_from != NULL && vocab_size_given) {
        fprintf(stderr, "edgelm-gen: --vocab-size and --vocab-from exclude each other (the "
                        "vocabulary size comes from the file)\n");
        return 1;
    }
    if (c->head_dim == 0 && (c->n_head > c->n_embd || c->n_embd % c->n_head != 0)) {
        fprintf(stderr,
                "edgelm-gen: n_embd %u is not a multiple of n_head %u (or give --head-dim)\n",
                c->n_embd, c->n_head);
        return 1;
    }
    if (c->n_head_kv > c->n_head || c->n_head % c->n_head_kv != 0) {
        fprintf(stderr, "edgelm-gen: n_head %u is not a multiple of n_head_kv %u\n", c->n_head,
                c->n_head_kv);
        return 1;
    }
    if (c->head_dim == 0) {
        c->head_dim = c->n_embd / c->n_head;
    }
    if (c->head_dim % 2 != 0) {
        fprintf(stderr, "edgelm-gen: head dim %u must be even\n", c->head_dim);
        return 1;
    }
    const uint32_t head_dim = c->head_dim;
    if (c->rope_dim == 0) {
        c->rope_dim = head_dim;
    }
    if (c->rope_dim > head_dim || c->rope_dim % 2 != 0) {
        fprintf(stderr, "edgelm-gen: rope dim %u must be even and at most the head dim %u\n",
                c->rope_dim, head_dim);
        return 1;
    }
    return 0;
}

/* ---- main --------------------------------------------------------------------------------- */

/* "<arch prefix>.<suffix>" into key. */
static const char *arch_key(const gen_config *c, const char *suffix, char *key, size_t size) {
    snprintf(key, size, "%s.%s", arch_names[c->arch].prefix, suffix);
    return key;
}

/* general.* and the architecture's keys in the order llama.cpp's converter writes them; plain
 * llama keeps exactly the keys (and bytes) it always had. */
static int write_metadata(gguf_writer *w, const gen_config *c, bool any_quantized) {
    char name[256], key[128];
    const uint32_t head_dim = c->head_dim;
    if (c->name != NULL) {
        snprintf(name, sizeof name, "%s", c->name);
    } else {
        snprintf(name, sizeof name, "edgelm-gen %s", c->preset);
    }
    struct {
        const char *suffix; /* NULL: general.file_type */
        uint32_t value;
        bool present;
    } u32s[] = {
        {NULL, file_type_of(c->type), true},
        {"context_length", c->n_ctx, true},
        {"embedding_length", c->n_embd, true},
        {"block_count", c->n_layer, true},
        {"feed_forward_length", c->n_ff, true},
        {"attention.head_count", c->n_head, true},
        {"attention.head_count_kv", c->n_head_kv, true},
        /* plain llama files of the usual shape keep exactly their old keys */
        {"attention.key_length", head_dim,
         c->arch != ARCH_LLAMA || head_dim != c->n_embd / c->n_head},
        {"attention.value_length", head_dim,
         c->arch != ARCH_LLAMA || head_dim != c->n_embd / c->n_head},
        {"rope.dimension_count", c->rope_dim, true},
    };
    edgelm_status st =
        gguf_writer_set_string(w, "general.architecture", arch_names[c->arch].prefix);
    if (st == EDGELM_OK) {
        st = gguf_writer_set_string(w, "general.name", name);
    }
    if (st == EDGELM_OK && any_quantized) {
        st = gguf_writer_set_u32(w, "general.quantization_version", 2);
    }
    for (size_t i = 0; i < sizeof u32s / sizeof u32s[0] && st == EDGELM_OK; i++) {
        if (u32s[i].present) {
            const char *k = u32s[i].suffix != NULL ? arch_key(c, u32s[i].suffix, key, sizeof key)
                                                   : "general.file_type";
            st = gguf_writer_set_u32(w, k, u32s[i].value);
        }
    }
    if (st == EDGELM_OK) {
        st = gguf_writer_set_f32(w, arch_key(c, "rope.freq_base", key, sizeof key), c->rope_base);
    }
    if (st == EDGELM_OK) {
        st = gguf_writer_set_f32(
            w, arch_key(c, "attention.layer_norm_rms_epsilon", key, sizeof key), c->rms_eps);
    }
    if (st == EDGELM_OK) {
        st = gguf_writer_set_u32(w, arch_key(c, "vocab_size", key, sizeof key), c->n_vocab);
    }
    if (st == EDGELM_OK && c->sliding_window > 0) {
        st = gguf_writer_set_u32(w, arch_key(c, "attention.sliding_window", key, sizeof key),
                                 c->sliding_window);
    }
    if (st == EDGELM_OK && c->arch == ARCH_GEMMA3) {
        st = gguf_writer_set_u32(
            w, arch_key(c, "attention.sliding_window_pattern", key, sizeof key), c->swa_pattern);
        if (st == EDGELM_OK) {
            st = gguf_writer_set_f32(w, arch_key(c, "rope.freq_base_swa", key, sizeof key),
                                     c->rope_base_swa);
        }
    }
    if (st != EDGELM_OK) {
        fprintf(stderr, "edgelm-gen: %s\n", gguf_writer_errmsg(w));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    gen_config c;
    int rc = parse_args(argc, argv, &c);
    if (rc != 0) {
        return rc == 2 ? 0 : 2;
    }
    rc = 1;
    gguf_writer *w = gguf_writer_create();
    planned_tensor *plan = NULL;
    float *fbuf = NULL;
    uint8_t *qbuf = NULL;
    vocab v;
    memset(&v, 0, sizeof v);
    if (w == NULL) {
        fprintf(stderr, "edgelm-gen: out of memory\n");
        goto fail;
    }

    /* metadata first (general.*, <arch>.*), tokenizer keys after, as llama.cpp's converter does;
     * a copied tokenizer decides n_vocab, so <arch>.vocab_size is set again (in place) after it */
    if (write_metadata(w, &c,
                       c.type != TENSOR_TYPE_F32 && c.type != TENSOR_TYPE_F16 &&
                           c.type != TENSOR_TYPE_BF16) != 0) {
        goto fail;
    }
    if (c.vocab_from != NULL) {
        if (copy_tokenizer(w, c.vocab_from, &c.n_vocab) != 0) {
            goto fail;
        }
        char key[128];
        if (gguf_writer_set_u32(w, arch_key(&c, "vocab_size", key, sizeof key), c.n_vocab) !=
            EDGELM_OK) {
            fprintf(stderr, "edgelm-gen: %s\n", gguf_writer_errmsg(w));
            goto fail;
        }
    } else {
        if (!build_own_vocab(&v, c.n_vocab)) {
            fprintf(stderr, "edgelm-gen: out of memory building the vocabulary\n");
            goto fail;
        }
        edgelm_status st = write_own_tokenizer(w, &v);
        if (st != EDGELM_OK) {
            fprintf(stderr, "edgelm-gen: %s\n", gguf_writer_errmsg(w));
            goto fail;
        }
        vocab_free(&v);
    }
    if (c.chat_template_path != NULL && set_chat_template(w, c.chat_template_path) != 0) {
        goto fail;
    }
    size_t max_tensors = max_plan_tensors(&c);
    plan = calloc(max_tensors, sizeof *plan);
    if (plan == NULL) {
        fprintf(stderr, "edgelm-gen: out of memory\n");
        goto fail;
    }
    size_t n_plan = build_plan(&c, plan);
    for (size_t i = 0; i < n_plan; i++) {
        const tensor_type_traits *t = tensor_type_get(plan[i].type);
        if (plan[i].type != TENSOR_TYPE_F32 && plan[i].type != TENSOR_TYPE_F16 &&
            plan[i].type != TENSOR_TYPE_BF16 && t->from_float == NULL) {
            fprintf(stderr,
                    "edgelm-gen: the engine has no quantizer (from_float) for %s yet (needed by "
                    "%s)\n",
                    t->name, plan[i].name);
            goto fail;
        }
    }

    uint64_t total_bytes = 0;
    size_t max_ne0 = 0;
    for (size_t i = 0; i < n_plan; i++) {
        const planned_tensor *t = &plan[i];
        edgelm_status st = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, NULL);
        if (st != EDGELM_OK) {
            fprintf(stderr, "edgelm-gen: %s\n", gguf_writer_errmsg(w));
            goto fail;
        }
        total_bytes += gguf_writer_tensor_bytes(w, (int64_t)i);
        max_ne0 = t->ne[0] > max_ne0 ? (size_t)t->ne[0] : max_ne0;
    }
    /* a chunk is CHUNK_FLOATS / ne0 rows, at least one */
    size_t fbuf_floats = CHUNK_FLOATS > max_ne0 ? CHUNK_FLOATS : max_ne0;
    fbuf = malloc(fbuf_floats * sizeof *fbuf);
    /* a converted chunk takes at most 4 bytes per weight (F32), so it fits in as many bytes */
    qbuf = malloc(fbuf_floats * sizeof(float));
    if (fbuf == NULL || qbuf == NULL) {
        fprintf(stderr, "edgelm-gen: out of memory\n");
        goto fail;
    }

    edgelm_status st = gguf_writer_begin_file(w, c.out_path);
    if (st != EDGELM_OK) {
        fprintf(stderr, "edgelm-gen: %s\n", gguf_writer_errmsg(w));
        goto fail;
    }
    bool progress = !c.quiet && total_bytes >= PROGRESS_MIN_BYTES;
    uint64_t done_bytes = 0;
    for (size_t i = 0; i < n_plan; i++) {
        const planned_tensor *t = &plan[i];
        if (progress) {
            fprintf(stderr, "[%3zu/%zu] %-28s %-5s %6llu x %-6llu  %3d%%\n", i + 1, n_plan, t->name,
                    tensor_type_get(t->type)->name, (unsigned long long)t->ne[0],
                    (unsigned long long)t->ne[1],
                    (int)(100.0 * (double)done_bytes / (double)total_bytes));
        }
        if (write_tensor(w, &c, t, fbuf, qbuf) != 0) {
            goto fail;
        }
        done_bytes += gguf_writer_tensor_bytes(w, (int64_t)i);
    }
    st = gguf_writer_finish_file(w);
    if (st != EDGELM_OK) {
        fprintf(stderr, "edgelm-gen: %s\n", gguf_writer_errmsg(w));
        goto fail;
    }
    if (!c.quiet) {
        const gguf_layout *layout = gguf_writer_layout(w);
        fprintf(stderr,
                "edgelm-gen: wrote %s: %s %s, %s, n_embd %u, %u layers, %u/%u heads, n_ff %u, "
                "vocab %u, %zu tensors, %llu bytes\n",
                c.out_path, arch_names[c.arch].option, c.preset, type_label(c.type), c.n_embd,
                c.n_layer, c.n_head, c.n_head_kv, c.n_ff, c.n_vocab, n_plan,
                (unsigned long long)(layout != NULL ? layout->file_size : 0));
    }
    rc = 0;

fail:
    vocab_free(&v);
    free(plan);
    free(fbuf);
    free(qbuf);
    gguf_writer_free(w); /* removes the temp file of an unfinished stream */
    return rc;
}
