/* test_kv_cache.c - the KV cache's windowed layers (kv_cache.h): the rings of sliding-window
 * layers keep only recent positions, and every cache operation must behave as if the layer kept
 * them all, for the positions a query can see.
 *
 * 1. Rings on synthetic rows (always runs): which positions a ring holds as positions are
 *    claimed, kv_cache_can_continue, kv_cache_move's reordering of the ring and of its position
 *    tags (the context shift), and kv_cache_rotate_k skipping rows a ring no longer holds.
 * 2. On a gemma3 model made by edgelm-gen (always; 4 layers alternating local and global, an
 *    8-token window) and on arch/gemma3-F16.gguf (needs ../shared/models; 5 of 6 layers local):
 *    the session memory grows only with the global layers; a session evaluated through rings
 *    gives bit for bit the logits of the same session with full-length local layers, over 100
 *    tokens in chunks of 1, 7 and 32, after a context shift, and after saving and restoring its
 *    state; prefix reuse with rings. The fixture, 16 times the work per token, runs the chunks of
 *    7 only and no prefix reuse: the suite also runs under qemu, where the whole set took 9
 *    minutes on armhf.
 */
#include "model/forward.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "model_fixtures.h"

#include <stdlib.h>
#include <string.h>

/* A row's contents stand for (layer, position, side): checkable after any reordering. */
static fp16_t row_mark(int32_t layer, int32_t pos, int side) {
    return fp32_to_fp16((float)(layer * 1000 + pos * 2 + side));
}

static void write_rows(kv_cache *c, int32_t pos) {
    for (int32_t layer = 0; layer < c->n_layer; layer++) {
        for (int32_t i = 0; i < c->kv_dim; i++) {
            kv_cache_k(c, layer, pos)[i] = row_mark(layer, pos, 0);
            kv_cache_v(c, layer, pos)[i] = row_mark(layer, pos, 1);
        }
    }
}

static bool row_is(const kv_cache *c, int32_t layer, int32_t pos, int32_t as_pos) {
    return kv_cache_k(c, layer, pos)[0] == row_mark(layer, as_pos, 0) &&
           kv_cache_v(c, layer, pos)[c->kv_dim - 1] == row_mark(layer, as_pos, 1);
}

static void test_rings(void) {
    /* layers 0 and 2 windowed (window 4, ring 8), layer 1 full (64) */
    const bool windowed[3] = {true, false, true};
    kv_cache c;
    CHECK(kv_cache_bytes_windowed(3, 64, 4, 2, 8) < kv_cache_bytes(3, 64, 4) / 2);
    /* a ring no longer than the window could not hold a chunk beside it */
    CHECK(kv_cache_init_windowed(&c, 3, 64, 4, windowed, 4, 4) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(kv_cache_init_windowed(&c, 3, 64, 4, windowed, 4, 8) == EDGELM_OK);
    for (int32_t p = 0; p < 20; p += 5) { /* chunks of 5 */
        kv_cache_claim(&c, p, 5);
        for (int32_t i = p; i < p + 5; i++) {
            write_rows(&c, i);
        }
    }
    for (int32_t p = 0; p < 20; p++) {
        CHECK_MSG(kv_cache_holds(&c, p) == (p >= 12), "position %d held: %d", (int)p,
                  (int)kv_cache_holds(&c, p));
        CHECK(row_is(&c, 1, p, p)); /* the full layer keeps everything */
        if (p >= 12) {
            CHECK(row_is(&c, 0, p, p) && row_is(&c, 2, p, p));
        }
    }
    CHECK(kv_cache_can_continue(&c, 20) && kv_cache_can_continue(&c, 15));
    CHECK(!kv_cache_can_continue(&c, 14)); /* needs 11, overwritten by 19 */
    CHECK(!kv_cache_can_continue(&c, 8));

    /* shift: keep 0..1, drop 2..13, move 14..19 down to 2..7 */
    kv_cache_move(&c, 2, 14, 6);
    for (int32_t p = 0; p < 8; p++) {
        CHECK(row_is(&c, 1, p, p < 2 ? p : p + 12));
        CHECK_MSG(kv_cache_holds(&c, p) == (p >= 2), "after the move, position %d held: %d", (int)p,
                  (int)kv_cache_holds(&c, p));
        if (p >= 2) {
            CHECK_MSG(row_is(&c, 0, p, p + 12) && row_is(&c, 2, p, p + 12),
                      "ring row of position %d after the move", (int)p);
        }
    }
    for (int32_t p = 8; p < 20; p++) {
        CHECK(!kv_cache_holds(&c, p)); /* dropped or moved away */
    }
    CHECK(kv_cache_can_continue(&c, 8) && !kv_cache_can_continue(&c, 4));

    /* rotating positions 0..7 of a windowed layer by 90 degrees leaves the rows of positions
     * it does not hold (0, 1: their ring rows are empty) alone */
    const fp16_t before = kv_cache_k(&c, 0, 1)[0];
    float cs[2] = {0.0f, 0.0f}, sn[2] = {1.0f, 1.0f};
    kv_cache_rotate_k(&c, 0, 0, 8, 4, 4, false, cs, sn);
    CHECK(kv_cache_k(&c, 0, 1)[0] == before);
    /* a held row (position 3, marks m,m,m,m): pairs (m, m) turn into (-m, m) */
    CHECK(kv_cache_k(&c, 0, 3)[0] == fp32_to_fp16(-fp16_to_fp32(row_mark(0, 15, 0))));
    CHECK(kv_cache_k(&c, 0, 3)[1] == row_mark(0, 15, 0));
    kv_cache_free(&c);
}

/* ---- on the gemma3 fixture ------------------------------------------------------------------ */

#define N_TOKENS 100

/* Replace the session's rings by full-length local layers: the reference. */
static void use_full_cache(forward_state *fs) {
    const kv_cache old = fs->cache;
    CHECK(old.ring_pos != NULL);
    CHECK(kv_cache_init(&fs->cache, old.n_layer, old.n_ctx, old.kv_dim) == EDGELM_OK);
    kv_cache tmp = old;
    kv_cache_free(&tmp);
}

static void eval_chunks(forward_state *fs, const int32_t *tokens, int32_t n, int32_t pos0,
                        int32_t chunk) {
    for (int32_t i = 0; i < n; i += chunk) {
        const int32_t len = n - i < chunk ? n - i : chunk;
        forward_batch(fs, tokens + i, len, pos0 + i, true);
    }
}

typedef struct token_list {
    int32_t tokens[128];
    int32_t n;
} token_list;

static bool collect_token(void *user_data, int32_t token, const char *text, size_t len) {
    (void)text;
    (void)len;
    token_list *list = user_data;
    if (list->n < 128) {
        list->tokens[list->n++] = token;
    }
    return true;
}

/* Greedy generation of n_predict tokens after prompt in s; the tokens into out, and how many
 * prompt tokens the cache supplied. */
static int32_t generate_greedy(edgelm_session *s, const char *prompt, int32_t n_predict, bool reuse,
                               token_list *out) {
    edgelm_generate_params gp = edgelm_generate_params_default();
    gp.prompt = prompt;
    gp.prompt_len = (size_t)-1;
    gp.n_predict = n_predict;
    gp.sampling.temperature = 0.0f;
    gp.reuse_prefix = reuse;
    out->n = 0;
    CHECK(edgelm_generate(s, &gp, collect_token, out, NULL) == EDGELM_OK);
    edgelm_timings t;
    edgelm_session_timings(s, &t);
    return t.n_cached_tokens;
}

/* Prefix reuse with rings: reused when the rings still hold the window before the first new
 * token, refused (everything prefilled) when later tokens overwrote it; the output is a fresh
 * session's either way. */
static void test_prefix_reuse(edgelm_model *m, const char *what) {
    static const char prompt[] =
        "Lily and Tom went to the park to play with their red ball. The sun was warm and the "
        "birds were singing in the tall green trees. They ran and laughed all day long.";
    edgelm_session *fresh = test_new_session(m, 256, 1), *s = test_new_session(m, 256, 1);
    if (fresh == NULL || s == NULL) {
        edgelm_session_free(fresh);
        edgelm_session_free(s);
        return;
    }
    token_list want, got;
    generate_greedy(fresh, prompt, 20, false, &want);
    const int32_t n_prompt = edgelm_session_n_past(fresh) - want.n + 1;
    CHECK_MSG(n_prompt > 48, "%s: a prompt of %d tokens", what, (int)n_prompt);
    /* 20 tokens past the prompt: the window before its last token is still in the rings */
    generate_greedy(s, prompt, 20, false, &got);
    int32_t cached = generate_greedy(s, prompt, 20, true, &got);
    CHECK_MSG(cached == n_prompt - 1, "%s: %d of %d prompt tokens reused", what, (int)cached,
              (int)n_prompt);
    CHECK(got.n == want.n &&
          memcmp(got.tokens, want.tokens, sizeof(int32_t) * (size_t)want.n) == 0);
    /* 100 tokens past it: overwritten, so nothing is reused and the output is still the same */
    generate_greedy(s, prompt, 100, false, &got);
    cached = generate_greedy(s, prompt, 20, true, &got);
    CHECK_MSG(cached == 0, "%s: %d prompt tokens reused from overwritten rings", what, (int)cached);
    CHECK(got.n == want.n &&
          memcmp(got.tokens, want.tokens, sizeof(int32_t) * (size_t)want.n) == 0);
    edgelm_session_free(fresh);
    edgelm_session_free(s);
}

static void test_windowed_model(edgelm_model *m, const char *what, int32_t n_local_layers,
                                bool every_case) {
    const model_hparams *hp = &m->hp;
    CHECK_MSG(hp->n_swa == 8 && hp->n_local_layers == n_local_layers, "%s: window %d on %d layers",
              what, (int)hp->n_swa, (int)hp->n_local_layers);
    /* session memory: only the one global layer grows with the context */
    const uint64_t kv_row_bytes = (uint64_t)hp->n_head_kv * hp->head_dim * sizeof(fp16_t) * 2;
    const uint64_t b2048 = edgelm_model_session_bytes(m, 2048);
    const uint64_t b4096 = edgelm_model_session_bytes(m, 4096);
    CHECK_MSG(b4096 - b2048 == 2048 * kv_row_bytes * (uint64_t)(hp->n_layer - hp->n_local_layers),
              "session bytes 2048: %llu, 4096: %llu", (unsigned long long)b2048,
              (unsigned long long)b4096);
    printf("  %s: a session of 4096 tokens takes %.1f KiB (%.1f KiB with full-length local "
           "layers)\n",
           what, (double)b4096 / 1024,
           (double)(b4096 + 4096ull * kv_row_bytes * (uint64_t)hp->n_local_layers) / 1024);

    int32_t tokens[N_TOKENS];
    for (int32_t i = 0; i < N_TOKENS; i++) {
        tokens[i] = 3 + (i * 37 + i / 7) % (hp->n_vocab - 3);
    }
    const size_t logit_bytes = (size_t)hp->n_vocab * sizeof(float);
    float *want = malloc(logit_bytes), *got = malloc(logit_bytes);
    static const int32_t chunks[] = {7, 1, 32};
    for (size_t k = 0; k < (every_case ? sizeof chunks / sizeof chunks[0] : 1); k++) {
        forward_state ring, full;
        CHECK(forward_init(&ring, m, 256, 2) == EDGELM_OK);
        CHECK(forward_init(&full, m, 256, 2) == EDGELM_OK);
        use_full_cache(&full);
        CHECK(ring.cache.ring_pos != NULL && ring.cache.n_ring < 256);
        eval_chunks(&full, tokens, N_TOKENS, 0, chunks[k]);
        memcpy(want, full.logits, logit_bytes);
        eval_chunks(&ring, tokens, N_TOKENS, 0, chunks[k]);
        CHECK_MSG(memcmp(want, ring.logits, logit_bytes) == 0,
                  "chunks of %d: ring logits differ from the full cache's", (int)chunks[k]);
        /* a context shift: keep 4, drop 40, move the other 56 down; then one more token */
        for (int i = 0; i < 2; i++) {
            forward_state *fs = i == 0 ? &full : &ring;
            kv_cache_move(&fs->cache, 4, 44, N_TOKENS - 44);
            forward_rotate_keys(fs, 4, N_TOKENS - 40, -40);
            fs->cache.n_used = N_TOKENS - 40;
            forward_token(fs, 5, N_TOKENS - 40, true);
        }
        CHECK_MSG(memcmp(full.logits, ring.logits, logit_bytes) == 0,
                  "chunks of %d: after a context shift the ring's logits differ", (int)chunks[k]);
        forward_free(&ring);
        forward_free(&full);
    }

    /* state: saved from rings, restored into rings and into a session too short for rings */
    edgelm_session_params sp = edgelm_session_params_default();
    sp.n_ctx = 256;
    sp.n_threads = 1;
    edgelm_session *a = NULL, *b = NULL, *small = NULL;
    CHECK(edgelm_session_create(m, &sp, &a, NULL, 0) == EDGELM_OK);
    CHECK(edgelm_session_create(m, &sp, &b, NULL, 0) == EDGELM_OK);
    sp.n_ctx = 16;
    CHECK(edgelm_session_create(m, &sp, &small, NULL, 0) == EDGELM_OK);
    if (a != NULL && b != NULL && small != NULL) {
        CHECK(edgelm_session_eval(a, tokens, 60) == EDGELM_OK);
        const size_t size = edgelm_session_state_size(a);
        void *buf = malloc(size);
        size_t written = 0;
        CHECK(edgelm_session_state_save(a, buf, size, &written) == EDGELM_OK && written == size);
        CHECK(edgelm_session_state_load(b, buf, written) == EDGELM_OK);
        CHECK(edgelm_session_eval(a, tokens + 60, 5) == EDGELM_OK);
        CHECK(edgelm_session_eval(b, tokens + 60, 5) == EDGELM_OK);
        CHECK_MSG(memcmp(edgelm_session_logits(a), edgelm_session_logits(b), logit_bytes) == 0,
                  "logits after a restored ring state differ");
        /* 60 tokens do not fit 16, and the rings did not keep the early ones anyway */
        CHECK(edgelm_session_state_load(small, buf, written) == EDGELM_ERR_STATE_MISMATCH);
        free(buf);
    }
    edgelm_session_free(a);
    edgelm_session_free(b);
    edgelm_session_free(small);
    free(want);
    free(got);
    if (every_case) {
        test_prefix_reuse(m, what);
    }
}

int main(void) {
    test_rings();
    edgelm_model *generated = test_gen_model("gemma3-alternating.gguf",
                                             "--arch gemma3 --n-layer 4 --swa-pattern 2 --seed 21");
    if (generated != NULL) {
        test_windowed_model(generated, "generated gemma3", 2, true);
    }
    edgelm_model_free(generated);
    int skipped = 0;
    char path[1024];
    if (test_model_path("arch/gemma3-F16.gguf", path, sizeof path)) {
        edgelm_model *m = test_load_model(path);
        if (m != NULL) {
            test_windowed_model(m, "gemma3 fixture", 5, false);
        }
        edgelm_model_free(m);
    } else {
        skipped++;
    }
    return test_finish("test_kv_cache", skipped);
}
