/* model_fixtures.h - helpers shared by the tests that drive the public engine API (header-only,
 * static functions, since the test_support library does not see the engine's headers): a model
 * loaded or made by edgelm-gen with one CHECK each, a session with one CHECK, greedy generate
 * parameters and a fixed-size text collector for the generate callbacks. Each helper counts
 * exactly the checks it says, so tests using it keep their check counts.
 */
#ifndef EDGELM_TEST_MODEL_FIXTURES_H
#define EDGELM_TEST_MODEL_FIXTURES_H

#include "edgelm.h"
#include "test_util.h"

#include <string.h>
#include <unistd.h>

/* Load path: one CHECK that it loaded; NULL if not. */
static inline edgelm_model *test_load_model(const char *path) {
    char err[512] = "";
    edgelm_model *model = NULL;
    edgelm_status st = edgelm_model_load(path, NULL, &model, err, sizeof err);
    CHECK_MSG(st == EDGELM_OK, "load %s: %s", path, err);
    return model;
}

/* A model made by edgelm-gen with args into the temp dir, loaded, and its file removed (the
 * mapping stays valid; the tests leave no large files behind). One CHECK for edgelm-gen, one
 * more for the load when edgelm-gen succeeded; NULL on either failure. */
static inline edgelm_model *test_gen_model(const char *name, const char *args) {
    char path[1024];
    if (!test_gen_model_file(name, args, path, sizeof path)) {
        return NULL;
    }
    edgelm_model *model = test_load_model(path);
    unlink(path);
    return model;
}

/* A session of n_ctx tokens on n_threads threads (0: the online CPUs): one CHECK that it was
 * created; NULL if not. */
static inline edgelm_session *test_new_session(const edgelm_model *model, uint32_t n_ctx,
                                               int32_t n_threads) {
    edgelm_session_params sp = edgelm_session_params_default();
    sp.n_ctx = n_ctx;
    sp.n_threads = n_threads;
    edgelm_session *s = NULL;
    char err[256] = "";
    edgelm_status st = edgelm_session_create(model, &sp, &s, err, sizeof err);
    CHECK_MSG(st == EDGELM_OK, "session of %u tokens: %s", (unsigned)n_ctx, err);
    return s;
}

/* Default generate parameters with temperature 0 (greedy). */
static inline edgelm_generate_params test_greedy_params(const char *prompt, int32_t n_predict) {
    edgelm_generate_params gp = edgelm_generate_params_default();
    gp.prompt = prompt;
    gp.n_predict = n_predict;
    gp.sampling.temperature = 0.0f;
    return gp;
}

/* Generated text, NUL-terminated once zeroed; what does not fit is dropped. */
typedef struct test_text {
    char text[65536];
    size_t len;
} test_text;

static inline void test_text_append(test_text *t, const char *s, size_t n) {
    if (t->len + n < sizeof t->text) {
        memcpy(t->text + t->len, s, n);
        t->len += n;
        t->text[t->len] = '\0';
    }
}

static inline bool test_text_equal(const test_text *a, const test_text *b) {
    return a->len == b->len && memcmp(a->text, b->text, a->len) == 0;
}

#endif /* EDGELM_TEST_MODEL_FIXTURES_H */
