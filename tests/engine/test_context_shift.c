/* test_context_shift.c - generation past n_ctx: the K re-rotation itself (synthetic rows against
 * a double-precision reference, NORM and NEOX, partial rotary dims; and on a model, a layer-0
 * key stored at p and re-rotated by delta against the key computed fresh at p + delta), row
 * moves, then the shift end to end: logits after a shift against a fresh evaluation of the kept
 * tokens at their new positions (and far closer than without re-rotation), generate with -c 32
 * -n 100 (shape checks, kept start, n_keep variants, determinism), and the cases that must stop
 * with CONTEXT_FULL instead.
 */
#include "model/forward.h"
#include "model/kv_cache.h"
#include "model_fixtures.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0) * 4.0f - 2.0f;
}

/* kv_cache_rotate_k on random rows against a double reference; untouched parts bit-exact. */
static void test_rotate_synthetic(void) {
    const int32_t n_layer = 2, head_dim = 16, n_head = 3, kv_dim = head_dim * n_head;
    const int32_t n_rots[2] = {16, 6};
    for (int style = 0; style < 2; style++) {
        for (int r = 0; r < 2; r++) {
            const bool neox = style == 1;
            const int32_t n_rot = n_rots[r];
            kv_cache c, orig;
            CHECK(kv_cache_init(&c, n_layer, 8, kv_dim) == EDGELM_OK);
            CHECK(kv_cache_init(&orig, n_layer, 8, kv_dim) == EDGELM_OK);
            const size_t n = (size_t)n_layer * 8 * (size_t)kv_dim;
            for (size_t i = 0; i < n; i++) {
                c.k[i] = fp32_to_fp16(rnd());
                c.v[i] = fp32_to_fp16(rnd());
            }
            memcpy(orig.k, c.k, n * sizeof(fp16_t));
            memcpy(orig.v, c.v, n * sizeof(fp16_t));
            float cs[8], sn[8];
            for (int i = 0; i < n_rot / 2; i++) {
                const double a = 0.37 * (i + 1) - 1.1;
                cs[i] = (float)cos(a);
                sn[i] = (float)sin(a);
            }
            for (int32_t l = 0; l < n_layer; l++) {
                kv_cache_rotate_k(&c, l, 2, 5, head_dim, n_rot, neox, cs, sn);
            }
            int bad = 0;
            for (int32_t l = 0; l < n_layer; l++) {
                for (int32_t p = 0; p < 8; p++) {
                    const fp16_t *got = kv_cache_k(&c, l, p), *was = kv_cache_k(&orig, l, p);
                    bad += memcmp(kv_cache_v(&c, l, p), kv_cache_v(&orig, l, p),
                                  (size_t)kv_dim * sizeof(fp16_t)) != 0;
                    if (p < 2 || p >= 5) {
                        bad += memcmp(got, was, (size_t)kv_dim * sizeof(fp16_t)) != 0;
                        continue;
                    }
                    for (int32_t h = 0; h < n_head; h++) {
                        const fp16_t *g = got + h * head_dim, *w = was + h * head_dim;
                        for (int32_t d = n_rot; d < head_dim; d++) {
                            bad += g[d] != w[d];
                        }
                        for (int32_t i = 0; i < n_rot / 2; i++) {
                            const int32_t a = neox ? i : 2 * i,
                                          b = neox ? i + n_rot / 2 : 2 * i + 1;
                            const double x0 = (double)fp16_to_fp32(w[a]);
                            const double x1 = (double)fp16_to_fp32(w[b]);
                            const double cv = (double)cs[i], sv = (double)sn[i];
                            const double y0 = x0 * cv - x1 * sv;
                            const double y1 = x0 * sv + x1 * cv;
                            /* one f16 rounding: half an ulp (2^-11 relative), plus slack */
                            bad += fabs((double)fp16_to_fp32(g[a]) - y0) > 1e-3 * fabs(y0) + 1e-6;
                            bad += fabs((double)fp16_to_fp32(g[b]) - y1) > 1e-3 * fabs(y1) + 1e-6;
                        }
                    }
                }
            }
            CHECK_MSG(bad == 0, "rotate (%s, n_rot %d): %d mismatches", neox ? "neox" : "norm",
                      (int)n_rot, bad);
            kv_cache_free(&c);
            kv_cache_free(&orig);
        }
    }
}

static void test_move(void) {
    kv_cache c;
    CHECK(kv_cache_init(&c, 2, 10, 4) == EDGELM_OK);
    for (int32_t l = 0; l < 2; l++) {
        for (int32_t p = 0; p < 10; p++) {
            for (int32_t i = 0; i < 4; i++) {
                kv_cache_k(&c, l, p)[i] = (fp16_t)(l * 1000 + p * 10 + i);
                kv_cache_v(&c, l, p)[i] = (fp16_t)(20000 + l * 1000 + p * 10 + i);
            }
        }
    }
    kv_cache_move(&c, 2, 5, 4); /* rows 5..8 -> 2..5 (overlapping) */
    int bad = 0;
    for (int32_t l = 0; l < 2; l++) {
        for (int32_t p = 0; p < 10; p++) {
            const int32_t from = (p >= 2 && p < 6) ? p + 3 : p;
            for (int32_t i = 0; i < 4; i++) {
                bad += kv_cache_k(&c, l, p)[i] != (fp16_t)(l * 1000 + from * 10 + i);
                bad += kv_cache_v(&c, l, p)[i] != (fp16_t)(20000 + l * 1000 + from * 10 + i);
            }
        }
    }
    CHECK_MSG(bad == 0, "kv_cache_move: %d wrong values", bad);
    kv_cache_free(&c);
}

/* Layer 0's key depends only on the token and its position, so re-rotating the key stored at p
 * by delta must give the key computed at p + delta (up to f16 rounding). */
static void test_rotate_model(const edgelm_model *m) {
    const model_hparams *hp = &m->hp;
    forward_state fs;
    CHECK(forward_init(&fs, m, 64, 1) == EDGELM_OK);
    kv_cache one;
    CHECK(kv_cache_init(&one, 1, 1, fs.cache.kv_dim) == EDGELM_OK);
    const size_t row_bytes = (size_t)fs.cache.kv_dim * sizeof(fp16_t);
    float cs[256], sn[256];
    static const int32_t cases[][2] = {{10, -7}, {40, -20}, {5, 30}, {33, -33}, {1, 62}};
    double worst = 0.0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const int32_t p = cases[k][0], delta = cases[k][1];
        const int32_t token = 37 + (int32_t)k;
        forward_token(&fs, token, p, false);
        memcpy(kv_cache_k(&one, 0, 0), kv_cache_k(&fs.cache, 0, p), row_bytes);
        forward_token(&fs, token, p + delta, false);
        forward_rope_angles(hp, false, delta, cs, sn);
        kv_cache_rotate_k(&one, 0, 0, 1, hp->head_dim, hp->n_rot, hp->rope == ROPE_STYLE_NEOX, cs,
                          sn);
        const fp16_t *got = kv_cache_k(&one, 0, 0), *want = kv_cache_k(&fs.cache, 0, p + delta);
        double scale = 0.0, err = 0.0;
        for (int32_t i = 0; i < fs.cache.kv_dim; i++) {
            const double w = (double)fp16_to_fp32(want[i]);
            scale = fabs(w) > scale ? fabs(w) : scale;
            const double e = fabs((double)fp16_to_fp32(got[i]) - w);
            err = e > err ? e : err;
        }
        const double rel = err / (scale > 0.0 ? scale : 1.0);
        worst = rel > worst ? rel : worst;
        /* two f16 roundings of the stored key plus float angle error: a few 1e-3 */
        CHECK_MSG(rel < 4e-3, "p %d delta %d: max error %.3g of max |k| %.3g", (int)p, (int)delta,
                  err, scale);
    }
    fprintf(stderr, "re-rotated layer-0 keys (n_rot %d of %d): worst error %.2e of max |k|\n",
            (int)hp->n_rot, (int)hp->head_dim, worst);
    kv_cache_free(&one);
    forward_free(&fs);
}

/* Relative L2 distance of two logit vectors. */
static double rel_dist(const float *a, const float *b, int32_t n) {
    double num = 0.0, den = 0.0;
    for (int32_t i = 0; i < n; i++) {
        const double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return sqrt(num / (den > 0.0 ? den : 1.0));
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++) {
        best = x[i] > x[best] ? i : best;
    }
    return best;
}

/* Evaluate n_total tokens, drop [keep, keep + discard) the way the session does (with or
 * without re-rotating the moved keys), evaluate one more token and return its logits. */
static void shifted_logits(const edgelm_model *m, const int32_t *tokens, int32_t n_total,
                           int32_t keep, int32_t discard, int32_t next, bool rotate, float *out) {
    const model_hparams *hp = &m->hp;
    forward_state fs;
    CHECK(forward_init(&fs, m, (uint32_t)n_total + 1, 2) == EDGELM_OK);
    forward_batch(&fs, tokens, n_total, 0, false);
    const int32_t n_moved = n_total - keep - discard;
    kv_cache_move(&fs.cache, keep, keep + discard, n_moved);
    if (rotate) {
        forward_rotate_keys(&fs, keep, keep + n_moved, -discard);
    }
    forward_token(&fs, next, n_total - discard, true);
    memcpy(out, fs.logits, (size_t)hp->n_vocab * sizeof(float));
    forward_free(&fs);
}

static void test_shift_logits(const edgelm_model *m, const char *what, const char *text) {
    const int32_t n_vocab = m->hp.n_vocab;
    int32_t tokens[512];
    int32_t n = edgelm_tokenize(m, text, strlen(text), edgelm_model_add_bos(m), true, tokens, 512);
    CHECK(n >= 24 && n <= 512);
    if (n < 24 || n > 512) {
        return;
    }
    const int32_t n_total = n - 1, next = tokens[n - 1];
    const int32_t keep = 4, discard = (n_total - keep) / 2;
    float *rot = malloc((size_t)n_vocab * sizeof(float));
    float *raw = malloc((size_t)n_vocab * sizeof(float));
    float *fresh = malloc((size_t)n_vocab * sizeof(float));
    shifted_logits(m, tokens, n_total, keep, discard, next, true, rot);
    shifted_logits(m, tokens, n_total, keep, discard, next, false, raw);
    /* the kept tokens evaluated fresh at their new positions */
    int32_t kept[512];
    int32_t n_kept = 0;
    for (int32_t i = 0; i < n_total; i++) {
        if (i < keep || i >= keep + discard) {
            kept[n_kept++] = tokens[i];
        }
    }
    kept[n_kept++] = next;
    forward_state fs;
    CHECK(forward_init(&fs, m, (uint32_t)n_kept, 2) == EDGELM_OK);
    forward_batch(&fs, kept, n_kept, 0, true);
    memcpy(fresh, fs.logits, (size_t)n_vocab * sizeof(float));
    forward_free(&fs);
    const double d_rot = rel_dist(rot, fresh, n_vocab), d_raw = rel_dist(raw, fresh, n_vocab);
    fprintf(stderr,
            "%s: %d tokens, kept %d + %d after dropping %d: logits vs fresh evaluation of the "
            "kept tokens: rel. L2 %.4f re-rotated, %.4f without re-rotation; argmax %d/%d/%d\n",
            what, (int)n_total, (int)keep, (int)(n_total - keep - discard), (int)discard, d_rot,
            d_raw, (int)argmax(rot, n_vocab), (int)argmax(raw, n_vocab),
            (int)argmax(fresh, n_vocab));
    /* The kept rows still carry what they saw of the dropped tokens, so the logits are close,
     * not equal (measured: 0.08-0.11); keys left at their old positions are clearly further
     * (0.18-0.24; the least with half the dims unrotated). */
    CHECK_MSG(d_rot < 0.2, "%s: re-rotated logits %.4f from fresh", what, d_rot);
    CHECK_MSG(d_rot < 0.75 * d_raw, "%s: re-rotation does not help (%.4f vs %.4f)", what, d_rot,
              d_raw);
    free(rot);
    free(raw);
    free(fresh);
}

typedef struct collected {
    int n_tokens;
    int bad_tokens;
    int32_t n_vocab;
    test_text out;
} collected;

static bool collect(void *user, int32_t token, const char *text, size_t len) {
    collected *c = user;
    if (token >= 0) {
        c->n_tokens++;
        c->bad_tokens += token >= c->n_vocab;
    }
    test_text_append(&c->out, text, len);
    return true;
}

static edgelm_status gen(edgelm_session *s, const char *prompt, int n, int32_t n_keep, bool shift,
                         bool reuse, collected *c, edgelm_finish_reason *why, edgelm_timings *t) {
    edgelm_generate_params gp = test_greedy_params(prompt, n);
    gp.sampling.repeat_penalty = 1.1f; /* keeps a random model from looping on one token */
    gp.context_shift = shift;
    gp.n_keep = n_keep;
    gp.reuse_prefix = reuse;
    int32_t n_vocab = c->n_vocab;
    memset(c, 0, sizeof *c);
    c->n_vocab = n_vocab;
    edgelm_status st = edgelm_generate(s, &gp, collect, c, why);
    edgelm_session_timings(s, t);
    return st;
}

/* After a shift (n_keep 0) only BOS is exact: a prompt spelling out the shifted cache's tokens
 * (here: words of the prompt's tail, which re-tokenize the same) must not reuse more, neither
 * in the session nor from a saved and restored state. */
static void check_shifted_reuse(const edgelm_model *m, edgelm_session *s, const char *prompt) {
    const int32_t bos = edgelm_model_add_bos(m) ? 1 : 0;
    collected c;
    c.n_vocab = edgelm_model_n_vocab(m);
    edgelm_finish_reason why;
    edgelm_timings t;
    CHECK(gen(s, prompt, 6, 0, true, false, &c, &why, &t) == EDGELM_OK);
    CHECK(t.n_context_shifts > 0 || why == EDGELM_FINISH_EOG);
    if (t.n_context_shifts == 0) {
        return;
    }
    static char text[8192];
    size_t len = 0;
    const int32_t *held = edgelm_session_tokens(s);
    for (int32_t i = bos; i < edgelm_session_n_past(s); i++) {
        int32_t n = edgelm_token_to_piece(m, held[i], text + len, sizeof text - len - 1);
        len += n > 0 && (size_t)n < sizeof text - len - 1 ? (size_t)n : 0;
    }
    text[len] = '\0';
    /* SPM puts the space back in front of the first word itself */
    const char *spelled = text[0] == ' ' ? text + 1 : text;
    int32_t again[512];
    int32_t n_again =
        edgelm_tokenize(m, spelled, strlen(spelled), edgelm_model_add_bos(m), true, again, 512);
    int32_t same = 0;
    while (same < n_again && same < edgelm_session_n_past(s) && again[same] == held[same]) {
        same++;
    }
    CHECK_MSG(same > bos + 8, "the shifted cache's text re-tokenizes differently after %d",
              (int)same);
    edgelm_session *restored = test_new_session(m, edgelm_session_n_ctx(s), 2);
    if (restored == NULL) {
        return;
    }
    size_t size = edgelm_session_state_size(s), written = 0;
    void *buf = malloc(size);
    CHECK(edgelm_session_state_save(s, buf, size, &written) == EDGELM_OK);
    CHECK(edgelm_session_state_load(restored, buf, written) == EDGELM_OK);
    CHECK(gen(restored, spelled, 4, 0, true, true, &c, &why, &t) == EDGELM_OK);
    CHECK_MSG(t.n_cached_tokens <= bos, "reused %d tokens of a restored shifted state",
              (int)t.n_cached_tokens);
    CHECK(gen(s, spelled, 4, 0, true, true, &c, &why, &t) == EDGELM_OK);
    CHECK_MSG(t.n_cached_tokens <= bos, "reused %d tokens of a shifted cache",
              (int)t.n_cached_tokens);
    free(buf);
    edgelm_session_free(restored);
}

static void test_generate(const edgelm_model *m) {
    const char *prompt = "the cat sat on the mat";
    int32_t ptoks[64];
    const int32_t n_prompt =
        edgelm_tokenize(m, prompt, strlen(prompt), edgelm_model_add_bos(m), true, ptoks, 64);
    const int32_t bos = edgelm_model_add_bos(m) ? 1 : 0;
    edgelm_session *s = test_new_session(m, 32, 2);
    edgelm_session *s1 = test_new_session(m, 32, 1);
    if (s == NULL || s1 == NULL) {
        goto done;
    }
    collected c, d;
    c.n_vocab = d.n_vocab = edgelm_model_n_vocab(m);
    edgelm_finish_reason why;
    edgelm_timings t;
    static const int32_t keeps[] = {0, 2, -1};
    for (size_t k = 0; k < sizeof keeps / sizeof keeps[0]; k++) {
        const int32_t n_keep = keeps[k];
        CHECK(gen(s, prompt, 100, n_keep, true, false, &c, &why, &t) == EDGELM_OK);
        CHECK_MSG(why == EDGELM_FINISH_LENGTH || why == EDGELM_FINISH_EOG, "n_keep %d: finish %d",
                  (int)n_keep, (int)why);
        if (why == EDGELM_FINISH_LENGTH) {
            CHECK(t.n_generated_tokens == 100 && c.n_tokens == 100);
            CHECK_MSG(t.n_context_shifts > 0, "n_keep %d: no shift in 100 tokens at n_ctx 32",
                      (int)n_keep);
        }
        CHECK(c.bad_tokens == 0);
        CHECK(edgelm_session_n_past(s) <= 32 && edgelm_session_n_past(s) > 0);
        /* the kept start is still the prompt's start */
        const int32_t keep = n_keep < 0 ? n_prompt : n_keep + bos;
        CHECK(memcmp(edgelm_session_tokens(s), ptoks, (size_t)keep * sizeof(int32_t)) == 0);
        for (int32_t i = 0; i < edgelm_session_n_past(s); i++) {
            CHECK(edgelm_session_tokens(s)[i] >= 0 &&
                  edgelm_session_tokens(s)[i] < edgelm_model_n_vocab(m));
        }
        /* deterministic, whatever the thread count */
        CHECK(gen(s1, prompt, 100, n_keep, true, false, &d, &why, &t) == EDGELM_OK);
        CHECK(test_text_equal(&c.out, &d.out));
    }
    /* after shifts only the kept start is exact: a reused prefix never goes past it */
    CHECK(gen(s, prompt, 100, 0, true, false, &c, &why, &t) == EDGELM_OK);
    edgelm_session *fresh = test_new_session(m, 32, 2);
    if (fresh != NULL) {
        collected f;
        f.n_vocab = c.n_vocab;
        CHECK(gen(s, prompt, 10, 0, true, true, &c, &why, &t) == EDGELM_OK);
        CHECK_MSG(t.n_cached_tokens <= bos, "reused %d tokens after a shift",
                  (int)t.n_cached_tokens);
        CHECK(gen(fresh, prompt, 10, 0, true, false, &f, &why, &t) == EDGELM_OK);
        CHECK(test_text_equal(&c.out, &f.out));
        edgelm_session_free(fresh);
    }
    /* without shifting: stop at the full context */
    CHECK(gen(s, prompt, 100, 0, false, false, &c, &why, &t) == EDGELM_OK);
    CHECK(why == EDGELM_FINISH_CONTEXT_FULL || why == EDGELM_FINISH_EOG);
    if (why == EDGELM_FINISH_CONTEXT_FULL) {
        CHECK(edgelm_session_n_past(s) == 32 && t.n_context_shifts == 0);
    }
    /* n_predict -1 means "until the context is full": no shift */
    CHECK(gen(s, prompt, -1, 0, true, false, &c, &why, &t) == EDGELM_OK);
    CHECK(why == EDGELM_FINISH_CONTEXT_FULL || why == EDGELM_FINISH_EOG);
    CHECK(t.n_context_shifts == 0);
    /* keeping a whole prompt of n_ctx - 1 tokens leaves nothing to drop: context full */
    char long_prompt[512] = "";
    for (int i = 0; i < 60; i++) {
        strcat(long_prompt, i % 2 ? " b" : " a");
    }
    int32_t ltoks[512];
    size_t len = strlen(long_prompt);
    while (len > 0 &&
           edgelm_tokenize(m, long_prompt, len, edgelm_model_add_bos(m), true, ltoks, 512) > 31) {
        len--;
    }
    long_prompt[len] = '\0';
    if (edgelm_tokenize(m, long_prompt, len, edgelm_model_add_bos(m), true, ltoks, 512) == 31) {
        CHECK(gen(s, long_prompt, 50, -1, true, false, &c, &why, &t) == EDGELM_OK);
        CHECK(why == EDGELM_FINISH_CONTEXT_FULL || why == EDGELM_FINISH_EOG);
        CHECK(t.n_context_shifts == 0);
        /* and with n_keep 0 the same prompt shifts */
        CHECK(gen(s, long_prompt, 50, 0, true, false, &c, &why, &t) == EDGELM_OK);
        CHECK(why == EDGELM_FINISH_LENGTH || why == EDGELM_FINISH_EOG);
        CHECK(why == EDGELM_FINISH_EOG || t.n_context_shifts > 0);
        check_shifted_reuse(m, s, long_prompt);
    } else {
        fprintf(stderr, "note: no 31-token prompt found for the keep-everything check\n");
    }
    /* a bad n_keep */
    CHECK(gen(s, prompt, 5, -2, true, false, &c, &why, &t) == EDGELM_ERR_INVALID_ARGUMENT);
done:
    edgelm_session_free(s);
    edgelm_session_free(s1);
}

static const char story[] =
    "Once upon a time there was a little girl named Lily. She loved to play outside in the park "
    "with her friends. One day, she saw a big red ball under a tree. She ran to the ball and "
    "picked it up. Her mom smiled and said they could take it home.";

int main(void) {
    test_rotate_synthetic();
    test_move();
    edgelm_model *full = test_gen_model("shift-tiny.gguf", "--preset tiny --seed 5");
    edgelm_model *partial =
        test_gen_model("shift-rope8.gguf", "--preset tiny --seed 5 --rope-dim 8");
    if (full != NULL) {
        test_rotate_model(full);
        test_shift_logits(full, "tiny (random weights)", story);
        test_generate(full);
    }
    if (partial != NULL) {
        test_rotate_model(partial);
        test_shift_logits(partial, "tiny, rope dim 8 of 16", story);
    }
    edgelm_model_free(full);
    edgelm_model_free(partial);
    int skipped = 0;
    char path[1024];
    if (test_model_path("stories260K.gguf", path, sizeof path)) {
        edgelm_model *m = test_load_model(path);
        if (m != NULL) {
            test_rotate_model(m);
            test_shift_logits(m, "stories260K", story);
            test_generate(m);
        }
        edgelm_model_free(m);
    } else {
        skipped++;
    }
    return test_finish("test_context_shift", skipped);
}
