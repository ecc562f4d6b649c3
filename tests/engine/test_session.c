/* test_session.c - the public session API on a generated model (runs on a fresh clone):
 * exact token counts, EOG handling, context limits, bad input, cancellation from another thread,
 * UTF-8-whole streaming, determinism across thread counts and seeds, reset, timings, and load
 * errors for files that are not models.
 */
#include "model_fixtures.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct collected {
    int n_calls;
    int n_tokens;
    test_text out;
    bool utf8_split; /* a chunk ended inside a multi-byte character */
    int stop_after;  /* return false after this many calls (0 = never) */
    edgelm_session *cancel_target;
    int cancel_after;
} collected;

static bool ends_inside_character(const char *s, size_t n) {
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0) {
        return false;
    }
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return lead >= 0xC0 && lead < 0xF8 && back + 1 < need;
}

static bool collect(void *user, int32_t token, const char *text, size_t len) {
    collected *c = user;
    c->n_calls++;
    if (token >= 0) {
        c->n_tokens++;
    }
    if (ends_inside_character(text, len)) {
        c->utf8_split = true;
    }
    test_text_append(&c->out, text, len);
    if (c->cancel_target != NULL && c->n_calls == c->cancel_after) {
        edgelm_session_cancel(c->cancel_target);
    }
    return c->stop_after == 0 || c->n_calls < c->stop_after;
}

typedef struct canceller {
    edgelm_session *session;
    int delay_ms;
} canceller;

static void *cancel_thread(void *arg) {
    canceller *c = arg;
    struct timespec ts = {0, (long)c->delay_ms * 1000000L};
    nanosleep(&ts, NULL);
    edgelm_session_cancel(c->session);
    return NULL;
}

static void test_generation(const edgelm_model *model) {
    edgelm_session *s = test_new_session(model, 128, 2);
    if (s == NULL) {
        return;
    }
    /* exactly n tokens unless EOG; the generated vocabulary's EOG is only </s> */
    for (int n = 1; n <= 20; n += 19) {
        collected c;
        memset(&c, 0, sizeof c);
        edgelm_finish_reason why;
        edgelm_generate_params gp = test_greedy_params("hello world", n);
        CHECK(edgelm_generate(s, &gp, collect, &c, &why) == EDGELM_OK);
        edgelm_timings t;
        edgelm_session_timings(s, &t);
        CHECK_MSG(why == EDGELM_FINISH_EOG || t.n_generated_tokens == n,
                  "n_predict %d gave %d tokens", n, (int)t.n_generated_tokens);
        CHECK(c.n_tokens == t.n_generated_tokens);
        CHECK(!c.utf8_split);
        CHECK(t.n_prompt_tokens > 0 && t.prompt_ms >= 0.0 && t.ttft_ms >= t.prompt_ms);
        /* forward passes: one per prefill chunk of at most 32 tokens (the short prompt is one),
         * then one per generated token fed back (the last one is not, unless EOG ended it) */
        int32_t fed_back = why == EDGELM_FINISH_LENGTH ? t.n_generated_tokens - 1
                                                       : t.n_generated_tokens;
        CHECK_MSG(t.n_forward_passes == 1 + fed_back, "%d forward passes for %d+%d tokens",
                  (int)t.n_forward_passes, (int)t.n_prompt_tokens, (int)t.n_generated_tokens);
    }
    /* greedy is deterministic, also across thread counts */
    collected a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    edgelm_generate_params gp = test_greedy_params("the cat sat", 24);
    CHECK(edgelm_generate(s, &gp, collect, &a, NULL) == EDGELM_OK);
    edgelm_session *s1 = test_new_session(model, 128, 1);
    CHECK(edgelm_generate(s1, &gp, collect, &b, NULL) == EDGELM_OK);
    CHECK(test_text_equal(&a.out, &b.out));

    /* seeded sampling: same seed same text, and some seed differs */
    gp.sampling.temperature = 1.0f;
    gp.sampling.top_k = 0;
    gp.sampling.top_p = 1.0f;
    gp.sampling.min_p = 0.0f;
    gp.sampling.seed = 1234;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    CHECK(edgelm_generate(s, &gp, collect, &a, NULL) == EDGELM_OK);
    CHECK(edgelm_generate(s1, &gp, collect, &b, NULL) == EDGELM_OK);
    CHECK(test_text_equal(&a.out, &b.out));
    bool differs = false;
    for (uint64_t seed = 1; seed < 6 && !differs; seed++) {
        gp.sampling.seed = seed;
        memset(&b, 0, sizeof b);
        CHECK(edgelm_generate(s1, &gp, collect, &b, NULL) == EDGELM_OK);
        differs = !test_text_equal(&a.out, &b.out);
    }
    CHECK_MSG(differs, "five different seeds all gave the same text");
    edgelm_session_free(s1);

    /* the callback can stop generation */
    collected c;
    memset(&c, 0, sizeof c);
    c.stop_after = 3;
    edgelm_finish_reason why;
    gp = test_greedy_params("stop early", 50);
    CHECK(edgelm_generate(s, &gp, collect, &c, &why) == EDGELM_OK);
    CHECK(why == EDGELM_FINISH_CALLBACK || why == EDGELM_FINISH_EOG);
    CHECK(c.n_calls <= 3);

    /* cancel from the callback (same thread) and from another thread */
    memset(&c, 0, sizeof c);
    c.cancel_target = s;
    c.cancel_after = 2;
    gp = test_greedy_params("cancel me", 50);
    CHECK(edgelm_generate(s, &gp, collect, &c, &why) == EDGELM_OK);
    CHECK(why == EDGELM_FINISH_CANCELLED || why == EDGELM_FINISH_EOG);
    CHECK(c.n_tokens <= 3);
    edgelm_session *big = test_new_session(model, 4096, 1);
    if (big != NULL) {
        canceller cc = {big, 30};
        pthread_t th;
        CHECK(pthread_create(&th, NULL, cancel_thread, &cc) == 0);
        memset(&c, 0, sizeof c);
        gp = test_greedy_params("run until cancelled", -1);
        edgelm_status st = edgelm_generate(big, &gp, collect, &c, &why);
        pthread_join(th, NULL);
        CHECK_MSG(
            (st == EDGELM_OK && (why == EDGELM_FINISH_CANCELLED || why == EDGELM_FINISH_EOG)) ||
                st == EDGELM_ERR_CANCELLED,
            "status %d why %d", (int)st, (int)why);
        edgelm_session_free(big);
    }

    /* context full: generation stops cleanly at n_ctx */
    edgelm_session *small = test_new_session(model, 16, 1);
    if (small != NULL) {
        memset(&c, 0, sizeof c);
        gp = test_greedy_params("a b", 100);
        gp.context_shift = false;
        CHECK(edgelm_generate(small, &gp, collect, &c, &why) == EDGELM_OK);
        CHECK(why == EDGELM_FINISH_CONTEXT_FULL || why == EDGELM_FINISH_EOG);
        CHECK(edgelm_session_n_past(small) <= 16);
        /* a prompt longer than the context is refused with its own error */
        char long_prompt[2048];
        memset(long_prompt, 'x', sizeof long_prompt - 1);
        for (size_t i = 1; i < sizeof long_prompt - 1; i += 2) {
            long_prompt[i] = ' ';
        }
        long_prompt[sizeof long_prompt - 1] = '\0';
        gp = test_greedy_params(long_prompt, 4);
        CHECK(edgelm_generate(small, &gp, collect, &c, &why) == EDGELM_ERR_CONTEXT_FULL);
        CHECK(strstr(edgelm_session_errmsg(small), "context") != NULL);
        edgelm_session_free(small);
    }

    /* eval: bad tokens and overflow are refused without touching the cache */
    edgelm_session_reset(s);
    int32_t bad[] = {1, edgelm_model_n_vocab(model)};
    CHECK(edgelm_session_eval(s, bad, 2) == EDGELM_ERR_BAD_TOKEN);
    CHECK(edgelm_session_n_past(s) == 0);
    int32_t neg = -5;
    CHECK(edgelm_session_eval(s, &neg, 1) == EDGELM_ERR_BAD_TOKEN);
    int32_t ok[] = {1, 5, 6};
    CHECK(edgelm_session_eval(s, ok, 3) == EDGELM_OK);
    CHECK(edgelm_session_n_past(s) == 3);
    CHECK(edgelm_session_logits(s) != NULL);
    int32_t tok = edgelm_session_sample(s);
    CHECK(tok >= 0 && tok < edgelm_model_n_vocab(model));
    edgelm_session_reset(s);
    CHECK(edgelm_session_n_past(s) == 0 && edgelm_session_logits(s) == NULL);

    /* impossible sampler parameters */
    edgelm_sampler_params sp = edgelm_sampler_params_default();
    sp.top_p = -0.01f;
    CHECK(edgelm_session_set_sampler(s, &sp) == EDGELM_ERR_INVALID_ARGUMENT);
    sp.top_p = 1.01f;
    CHECK(edgelm_session_set_sampler(s, &sp) == EDGELM_ERR_INVALID_ARGUMENT);
    sp.top_p = 0.0f; /* llama.cpp's meaning: keep only the most probable token */
    CHECK(edgelm_session_set_sampler(s, &sp) == EDGELM_OK);
    sp = edgelm_sampler_params_default();
    sp.temperature = -1.0f;
    CHECK(edgelm_session_set_sampler(s, &sp) == EDGELM_ERR_INVALID_ARGUMENT);
    edgelm_session_free(s);

    /* impossible session parameters */
    edgelm_session_params bad_params = edgelm_session_params_default();
    bad_params.n_ctx = 4;
    edgelm_session *none = NULL;
    char err[256];
    CHECK(edgelm_session_create(model, &bad_params, &none, err, sizeof err) ==
          EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(none == NULL && err[0] != '\0');
    bad_params.n_ctx = 64;
    bad_params.n_threads = 100000;
    CHECK(edgelm_session_create(model, &bad_params, &none, err, sizeof err) ==
          EDGELM_ERR_INVALID_ARGUMENT);
}

static void test_load_errors(void) {
    char err[512];
    edgelm_model *m = (edgelm_model *)1;
    CHECK(edgelm_model_load("/nonexistent/model.gguf", NULL, &m, err, sizeof err) == EDGELM_ERR_IO);
    CHECK(m == NULL && strstr(err, "/nonexistent/model.gguf") != NULL);
    char path[1024];
    test_temp_path("not-a-model.gguf", path, sizeof path);
    static const char not_gguf[] = "this is not a gguf file at all";
    test_write_file(path, not_gguf, sizeof not_gguf - 1);
    CHECK(edgelm_model_load(path, NULL, &m, err, sizeof err) == EDGELM_ERR_BAD_MAGIC);
    CHECK(strstr(err, "offset 0") != NULL);
    test_write_file(path, "", 0);
    CHECK(edgelm_model_load(path, NULL, &m, err, sizeof err) == EDGELM_ERR_TRUNCATED);
    CHECK(edgelm_model_load(test_temp_dir(), NULL, &m, err, sizeof err) == EDGELM_ERR_IO);
    edgelm_model_free(NULL);
    edgelm_session_free(NULL);
    CHECK(strcmp(edgelm_strerror(EDGELM_ERR_TRUNCATED), "truncated file") == 0);
    CHECK(edgelm_strerror((edgelm_status)999) != NULL);
}

/* vocab_only: the tokenizer of a full model without its weights (the same ids as the full
 * load), no session; a file without tensors loads only that way, with a message saying so. */
static void test_vocab_only(const edgelm_model *full) {
    char path[1024], err[512] = "";
    if (!test_gen_model_file("session-vocab.gguf", "--preset tiny --seed 3", path, sizeof path)) {
        return;
    }
    edgelm_model_params mp = edgelm_model_params_default();
    CHECK(!mp.vocab_only);
    mp.vocab_only = true;
    edgelm_model *v = NULL;
    CHECK_MSG(edgelm_model_load(path, &mp, &v, err, sizeof err) == EDGELM_OK, "%s", err);
    unlink(path);
    if (v == NULL) {
        return;
    }
    static const char text[] = "Once upon a time, there was a tiny model.";
    int32_t a[64], b[64];
    const int32_t na = edgelm_tokenize(full, text, sizeof text - 1, true, true, a, 64);
    const int32_t nb = edgelm_tokenize(v, text, sizeof text - 1, true, true, b, 64);
    CHECK(na > 0 && na == nb && memcmp(a, b, (size_t)na * sizeof a[0]) == 0);
    CHECK(edgelm_model_n_vocab(v) == edgelm_model_n_vocab(full));
    CHECK(edgelm_model_n_layer(v) == 0);
    edgelm_session *s = (edgelm_session *)1;
    CHECK(edgelm_session_create(v, NULL, &s, err, sizeof err) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK_MSG(s == NULL && strstr(err, "vocabulary only") != NULL, "%s", err);
    edgelm_model_free(v);
}

int main(void) {
    test_load_errors();
    edgelm_model *model = test_gen_model("session-tiny.gguf", "--preset tiny --seed 3");
    if (model != NULL) {
        test_generation(model);
        test_vocab_only(model);
    }
    edgelm_model_free(model);
    return test_finish("test_session", 0);
}
