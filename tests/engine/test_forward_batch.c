/* test_forward_batch.c - batched prefill (forward_batch) against one token at a time
 * (forward_token): logits and every written K/V row must be bit-identical, whatever the chunk
 * size, the split of the prompt into calls and the thread count.
 *
 * Models: made here by edgelm-gen for every weight type (always runs), plus the shared
 * stories260K and synthetic K-quant models when ../shared/models is present (skipped loudly
 * otherwise).
 */
#include "model/forward.h"
#include "model_fixtures.h"

#include <stdlib.h>
#include <string.h>

#define N_CTX 96
#define N_TOKENS 80 /* more than two default chunks, ending mid-chunk */

/* Prompt split into calls: lengths sum to N_TOKENS; single tokens between batches check that a
 * batch continues a cache written one token at a time and the other way round. */
static const int32_t segments[] = {1, 37, 1, 2, 33, 6};

/* Deterministic pseudo-random tokens (xorshift), as llama-bench feeds random prompts. */
static void make_tokens(int32_t *tokens, int n, int32_t n_vocab, uint32_t seed) {
    uint32_t s = seed;
    for (int i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        tokens[i] = (int32_t)(s % (uint32_t)n_vocab);
    }
}

static bool cache_rows_equal(const forward_state *a, const forward_state *b, int32_t pos0,
                             int32_t n) {
    const size_t row = (size_t)a->cache.kv_dim * sizeof(fp16_t);
    for (int32_t l = 0; l < a->cache.n_layer; l++) {
        if (memcmp(kv_cache_k(&a->cache, l, pos0), kv_cache_k(&b->cache, l, pos0),
                   row * (size_t)n) != 0 ||
            memcmp(kv_cache_v(&a->cache, l, pos0), kv_cache_v(&b->cache, l, pos0),
                   row * (size_t)n) != 0) {
            return false;
        }
    }
    return true;
}

#define N_SEGMENTS (sizeof segments / sizeof segments[0])

/* The reference: every token through forward_token on 1 thread; logits kept at segment ends. */
typedef struct reference {
    forward_state fs;
    float *logits; /* (N_SEGMENTS, n_vocab) */
} reference;

static bool reference_run(reference *r, const edgelm_model *model, const int32_t *tokens) {
    const size_t n_vocab = (size_t)model->hp.n_vocab;
    r->logits = malloc(N_SEGMENTS * n_vocab * sizeof(float));
    if (r->logits == NULL || forward_init(&r->fs, model, N_CTX, 1) != EDGELM_OK) {
        free(r->logits);
        return false;
    }
    int32_t pos = 0;
    for (size_t s = 0; s < N_SEGMENTS; s++) {
        for (int32_t i = 0; i < segments[s]; i++, pos++) {
            forward_token(&r->fs, tokens[pos], pos, i == segments[s] - 1);
        }
        memcpy(r->logits + s * n_vocab, r->fs.logits, n_vocab * sizeof(float));
    }
    return true;
}

/* One configuration of the batched side against the reference. */
static void compare_config(const edgelm_model *model, const reference *ref, const int32_t *tokens,
                           const char *label, int threads, int32_t n_chunk) {
    forward_state bat;
    CHECK(forward_init(&bat, model, N_CTX, threads) == EDGELM_OK);
    CHECK(bat.n_chunk_max == FORWARD_CHUNK && n_chunk <= bat.n_chunk_max);
    bat.n_chunk = n_chunk;
    const size_t n_vocab = (size_t)model->hp.n_vocab;
    int32_t pos = 0;
    for (size_t s = 0; s < N_SEGMENTS; s++) {
        const int32_t n = segments[s];
        forward_batch(&bat, tokens + pos, n, pos, true);
        CHECK_MSG(memcmp(ref->logits + s * n_vocab, bat.logits, n_vocab * sizeof(float)) == 0,
                  "%s, %d threads, chunk %d: logits after positions %d..%d differ", label, threads,
                  (int)n_chunk, (int)pos, (int)(pos + n - 1));
        CHECK_MSG(cache_rows_equal(&ref->fs, &bat, pos, n),
                  "%s, %d threads, chunk %d: K/V rows of positions %d..%d differ", label, threads,
                  (int)n_chunk, (int)pos, (int)(pos + n - 1));
        pos += n;
        CHECK(bat.cache.n_used == pos);
    }
    CHECK(pos == N_TOKENS);
    /* an empty batch changes nothing; a batch without logits leaves them alone */
    const float *last = ref->logits + (N_SEGMENTS - 1) * n_vocab;
    forward_batch(&bat, tokens, 0, pos, true);
    CHECK(bat.cache.n_used == pos);
    CHECK(memcmp(last, bat.logits, n_vocab * sizeof(float)) == 0);
    forward_batch(&bat, tokens, 3, pos, false);
    CHECK(memcmp(last, bat.logits, n_vocab * sizeof(float)) == 0);
    CHECK(bat.cache.n_used == pos + 3);
    forward_free(&bat);
}

static void compare_model(const char *path, const char *label) {
    edgelm_model *model = test_load_model(path);
    if (model == NULL) {
        return;
    }
    int32_t tokens[N_TOKENS];
    make_tokens(tokens, N_TOKENS, model->hp.n_vocab, 0x9e3779b9u);
    reference ref;
    memset(&ref, 0, sizeof ref);
    const bool have_ref = reference_run(&ref, model, tokens);
    CHECK(have_ref);
    static const struct {
        int threads;
        int32_t n_chunk;
    } configs[] = {{1, FORWARD_CHUNK}, {2, FORWARD_CHUNK}, {3, 7}};
    const int before = test_failures;
    for (size_t c = 0; have_ref && c < sizeof configs / sizeof configs[0]; c++) {
        compare_config(model, &ref, tokens, label, configs[c].threads, configs[c].n_chunk);
    }
    fprintf(stderr, "  %s: batch %s one token at a time\n", label,
            test_failures == before ? "bit-identical to" : "DIFFERS FROM");
    if (have_ref) {
        forward_free(&ref.fs);
        free(ref.logits);
    }
    edgelm_model_free(model);
}

static void generated_models(void) {
    /* K-quants need widths that are multiples of 256: a 2-layer model of width 256 (head_dim
     * 64) with the smallest vocabulary keeps this fast under the sanitizers */
    static const char k256[] = "--preset synthetic-k256 --n-ff 256 --vocab-size 259";
    static const struct {
        const char *shape;
        const char *type;
    } cases[] = {
        {"--preset tiny", "f32"},
        {"--preset tiny", "f16"},
        {"--preset tiny", "bf16"},
        {"--preset tiny", "q8_0"},
        {"--preset tiny", "q4_0"},
        {"--preset tiny", "q4_1"},
        {"--preset tiny", "q5_0"},
        {"--preset tiny", "q5_1"},
        {k256, "q2_K"},
        {k256, "q3_K"},
        {k256, "q4_K"},
        {k256, "q5_K"},
        {k256, "q6_K"},
        {k256, "q4_K_M"},
        {"--preset stories260k", "q4_0"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char name[64], path[1024], args[256], label[128];
        snprintf(name, sizeof name, "gen-%zu.gguf", c);
        snprintf(args, sizeof args, "%s --type %s --seed 11", cases[c].shape, cases[c].type);
        snprintf(label, sizeof label, "generated %s (%s)", cases[c].type, cases[c].shape);
        if (test_gen_model_file(name, args, path, sizeof path)) {
            compare_model(path, label);
        }
    }
}

static int shared_models(void) {
    static const char *const names[] = {
        "stories260K.gguf",
        "derived/stories260K-Q8_0.gguf",
        "derived/stories260K-Q4_0.gguf",
        "synthetic/synthetic-k256-Q4_K_M.gguf",
    };
    int skipped = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[1024];
        if (!test_model_path(names[i], path, sizeof path)) {
            skipped++;
            continue;
        }
        compare_model(path, names[i]);
    }
    return skipped;
}

int main(void) {
    generated_models();
    int skipped = shared_models();
    return test_finish("test_forward_batch", skipped);
}
