/* test_state.c - prompt state: save/restore to memory and files, prefix reuse, and refusal of
 * bad states. Greedy output after a restore (or with a reused prefix) must equal a fresh run;
 * n_cached_tokens must be the common token prefix; every flipped byte and every truncation is
 * EDGELM_ERR_CORRUPT (the version field: STATE_MISMATCH); another model, layout or a context too
 * small is EDGELM_ERR_STATE_MISMATCH; a failed load leaves the session empty; file writes are
 * atomic. Generated models always; stories260K against a fresh run when the models are present.
 */
#include "model_fixtures.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool collect(void *user, int32_t token, const char *text, size_t len) {
    (void)token;
    test_text_append(user, text, len);
    return true;
}

/* Sessions here use two threads. */
static edgelm_session *make_session(const edgelm_model *model, uint32_t n_ctx) {
    return test_new_session(model, n_ctx, 2);
}

/* Greedy generation of n tokens; the text goes to c (cleared), timings to t. */
static edgelm_status run(edgelm_session *s, const char *prompt, int n, bool reuse, test_text *c,
                         edgelm_timings *t) {
    edgelm_generate_params gp = test_greedy_params(prompt, n);
    gp.reuse_prefix = reuse;
    memset(c, 0, sizeof *c);
    edgelm_status st = edgelm_generate(s, &gp, collect, c, NULL);
    edgelm_session_timings(s, t);
    return st;
}

static int32_t tokenize(const edgelm_model *m, const char *text, int32_t *out, int32_t cap) {
    return edgelm_tokenize(m, text, strlen(text), edgelm_model_add_bos(m), true, out, cap);
}

static int32_t common_prefix(const int32_t *a, int32_t na, const int32_t *b, int32_t nb) {
    int32_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) {
        i++;
    }
    return i;
}

/* Expected n_cached_tokens for prompt after the session's current contents. */
static int32_t expected_cached(const edgelm_session *s, const edgelm_model *m, const char *prompt) {
    int32_t toks[1024];
    int32_t n = tokenize(m, prompt, toks, 1024);
    int32_t c = common_prefix(edgelm_session_tokens(s), edgelm_session_n_past(s), toks, n);
    return c == n ? c - 1 : c;
}

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

/* Recompute the trailing checksum after an edit (so the edit reaches the later checks). */
static void reseal(uint8_t *buf, size_t size) {
    uint64_t h = fnv1a(buf, size - 8);
    for (int i = 0; i < 8; i++) {
        buf[size - 8 + (size_t)i] = (uint8_t)(h >> (8 * i));
    }
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static const char *prompt_a = "the cat sat on the mat and looked at the dog";

/* A state saved after prefill, restored elsewhere, gives the same greedy text as a fresh run. */
static void test_restore(const edgelm_model *m) {
    edgelm_session *fresh = make_session(m, 128);
    edgelm_session *src = make_session(m, 128);
    edgelm_session *dst = make_session(m, 128);
    if (fresh == NULL || src == NULL || dst == NULL) {
        goto done;
    }
    test_text want, got;
    edgelm_timings t;
    CHECK(run(fresh, prompt_a, 24, false, &want, &t) == EDGELM_OK);
    CHECK(t.n_cached_tokens == 0);
    const int32_t n_prompt = t.n_prompt_tokens;

    CHECK(run(src, prompt_a, 0, false, &got, &t) == EDGELM_OK);
    CHECK(edgelm_session_n_past(src) == n_prompt);
    int32_t toks[256];
    CHECK(tokenize(m, prompt_a, toks, 256) == n_prompt);
    CHECK(memcmp(edgelm_session_tokens(src), toks, (size_t)n_prompt * sizeof(int32_t)) == 0);

    size_t size = edgelm_session_state_size(src);
    CHECK(size > 64);
    uint8_t *buf = malloc(size);
    size_t written = 0;
    CHECK(edgelm_session_state_save(src, buf, size - 1, &written) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(written == 0);
    CHECK(edgelm_session_state_save(src, buf, size, &written) == EDGELM_OK && written == size);

    CHECK(edgelm_session_state_load(dst, buf, size) == EDGELM_OK);
    CHECK(edgelm_session_n_past(dst) == n_prompt);
    CHECK(edgelm_session_logits(dst) == NULL);
    CHECK(memcmp(edgelm_session_tokens(dst), toks, (size_t)n_prompt * sizeof(int32_t)) == 0);
    CHECK(run(dst, prompt_a, 24, true, &got, &t) == EDGELM_OK);
    CHECK_MSG(t.n_cached_tokens == n_prompt - 1, "cached %d of %d", (int)t.n_cached_tokens,
              (int)n_prompt);
    CHECK(t.n_prompt_tokens == n_prompt);
    CHECK_MSG(test_text_equal(&got, &want), "restored '%s' vs fresh '%s'", got.text, want.text);

    /* the same through a file */
    char path[1024];
    test_temp_path("a.kvc", path, sizeof path);
    CHECK(edgelm_session_state_save_file(src, path) == EDGELM_OK);
    size_t fsize = 0;
    unsigned char *fdata = test_read_file(path, &fsize);
    CHECK(fdata != NULL && fsize == size && memcmp(fdata, buf, size) == 0);
    free(fdata);
    edgelm_session_reset(dst);
    CHECK(edgelm_session_state_load_file(dst, path) == EDGELM_OK);
    CHECK(run(dst, prompt_a, 24, true, &got, &t) == EDGELM_OK);
    CHECK(t.n_cached_tokens == n_prompt - 1);
    CHECK(test_text_equal(&got, &want));

    /* an empty session saves and restores too */
    edgelm_session_reset(src);
    size_t empty = edgelm_session_state_size(src);
    CHECK(empty == 72 && empty <= size);
    CHECK(edgelm_session_state_save(src, buf, size, &written) == EDGELM_OK && written == 72);
    CHECK(edgelm_session_state_load(dst, buf, written) == EDGELM_OK);
    CHECK(edgelm_session_n_past(dst) == 0);
    free(buf);
done:
    edgelm_session_free(fresh);
    edgelm_session_free(src);
    edgelm_session_free(dst);
}

/* One session serving several prompts with reuse_prefix, as the service does: each run reuses
 * exactly the common prefix and gives the same text as a fresh session. */
static void test_prefix_reuse(const edgelm_model *m) {
    edgelm_session *s = make_session(m, 256);
    edgelm_session *fresh = make_session(m, 256);
    if (s == NULL || fresh == NULL) {
        goto done;
    }
    const char *prompts[] = {
        prompt_a,
        "the cat sat on the mat and looked at the bird in the tree",
        "the cat sat on the mat and looked at the bird in the tree",
        "a completely different start",
        "the cat sat on the mat and looked at the dog",
    };
    test_text want, got;
    edgelm_timings t, tf;
    for (size_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++) {
        int32_t expect = expected_cached(s, m, prompts[i]);
        CHECK(run(s, prompts[i], 12, true, &got, &t) == EDGELM_OK);
        CHECK_MSG(t.n_cached_tokens == expect, "prompt %zu: cached %d, expected %d", i,
                  (int)t.n_cached_tokens, (int)expect);
        CHECK(run(fresh, prompts[i], 12, false, &want, &tf) == EDGELM_OK);
        CHECK_MSG(test_text_equal(&got, &want), "prompt %zu: reused '%s' vs fresh '%s'", i,
                  got.text, want.text);
        if (i == 1) {
            CHECK(t.n_cached_tokens > 1); /* the shared beginning was not prefilled again */
        }
        if (i == 2) {
            /* the same prompt again: everything but the last token (generated text is kept in
             * the cache too, after the prompt) */
            CHECK(t.n_cached_tokens == t.n_prompt_tokens - 1);
        }
    }
    /* a prompt that continues the previous prompt and its generated text */
    char longer[sizeof got.text + 64];
    CHECK(run(s, prompt_a, 12, false, &got, &t) == EDGELM_OK);
    CHECK(t.n_cached_tokens == 0);
    snprintf(longer, sizeof longer, "%s%s", prompt_a, got.text);
    int32_t expect = expected_cached(s, m, longer);
    CHECK(run(s, longer, 4, true, &got, &t) == EDGELM_OK);
    CHECK(t.n_cached_tokens == expect && expect >= 5);
    CHECK(run(fresh, longer, 4, false, &want, &tf) == EDGELM_OK);
    CHECK(test_text_equal(&got, &want));
done:
    edgelm_session_free(s);
    edgelm_session_free(fresh);
}

/* Every flipped byte and every truncation of a valid state is refused, leaving the session
 * empty; so are edits that keep the checksum valid but break the structure. */
static void test_corrupt(const edgelm_model *m) {
    edgelm_session *src = make_session(m, 64);
    edgelm_session *dst = make_session(m, 64);
    uint8_t *buf = NULL, *copy = NULL;
    if (src == NULL || dst == NULL) {
        goto done;
    }
    test_text got;
    edgelm_timings t;
    CHECK(run(src, "one two three four", 0, false, &got, &t) == EDGELM_OK);
    const size_t size = edgelm_session_state_size(src);
    buf = malloc(size + 1);
    copy = malloc(size + 1);
    size_t written = 0;
    CHECK(edgelm_session_state_save(src, buf, size, &written) == EDGELM_OK && written == size);
    int32_t one = 1;
    CHECK(edgelm_session_eval(dst, &one, 1) == EDGELM_OK && edgelm_session_n_past(dst) == 1);

    int wrong = 0;
    for (size_t i = 0; i < size; i++) {
        memcpy(copy, buf, size);
        copy[i] ^= 0xFF;
        edgelm_status want = (i >= 8 && i < 12) ? EDGELM_ERR_STATE_MISMATCH : EDGELM_ERR_CORRUPT;
        edgelm_status st = edgelm_session_state_load(dst, copy, size);
        if (st != want || edgelm_session_n_past(dst) != 0) {
            if (wrong++ < 5) {
                fprintf(stderr, "byte %zu flipped: status %d (%s), n_past %d\n", i, (int)st,
                        edgelm_session_errmsg(dst), (int)edgelm_session_n_past(dst));
            }
        }
    }
    CHECK_MSG(wrong == 0, "%d of %zu flipped bytes not refused as expected", wrong, size);
    wrong = 0;
    for (size_t n = 0; n < size; n++) {
        if (edgelm_session_state_load(dst, buf, n) != EDGELM_ERR_CORRUPT) {
            wrong++;
        }
    }
    CHECK_MSG(wrong == 0, "%d truncations not refused as corrupt", wrong);
    memcpy(copy, buf, size);
    copy[size] = 0;
    CHECK(edgelm_session_state_load(dst, copy, size + 1) == EDGELM_ERR_CORRUPT);
    CHECK(edgelm_session_state_load(dst, NULL, 0) == EDGELM_ERR_CORRUPT);

    /* valid checksum, broken structure */
    memcpy(copy, buf, size);
    put_u32(copy + 64, (uint32_t)edgelm_model_n_vocab(m)); /* first token out of range */
    reseal(copy, size);
    CHECK(edgelm_session_state_load(dst, copy, size) == EDGELM_ERR_CORRUPT);
    CHECK(strstr(edgelm_session_errmsg(dst), "vocabulary") != NULL);
    memcpy(copy, buf, size);
    put_u32(copy + 64, 0xFFFFFFFFu); /* negative token */
    reseal(copy, size);
    CHECK(edgelm_session_state_load(dst, copy, size) == EDGELM_ERR_CORRUPT);
    memcpy(copy, buf, size);
    put_u32(copy + 48, 1000); /* more exact tokens than tokens */
    reseal(copy, size);
    CHECK(edgelm_session_state_load(dst, copy, size) == EDGELM_ERR_CORRUPT);
    memcpy(copy, buf, size);
    put_u32(copy + 44, 3); /* token count disagrees with the payload size */
    reseal(copy, size);
    CHECK(edgelm_session_state_load(dst, copy, size) == EDGELM_ERR_CORRUPT);
    memcpy(copy, buf, size);
    put_u32(copy + 32, 0); /* KV type F32 */
    reseal(copy, size);
    CHECK(edgelm_session_state_load(dst, copy, size) == EDGELM_ERR_CORRUPT);
    memcpy(copy, buf, size);
    put_u32(copy + 8, 2); /* a future format version */
    reseal(copy, size);
    CHECK(edgelm_session_state_load(dst, copy, size) == EDGELM_ERR_STATE_MISMATCH);
    CHECK(strstr(edgelm_session_errmsg(dst), "version 2") != NULL);

    /* the same through files */
    char path[1024];
    test_temp_path("corrupt.kvc", path, sizeof path);
    memcpy(copy, buf, size);
    copy[size / 2] ^= 0x01;
    CHECK(test_write_file(path, copy, size));
    CHECK(edgelm_session_state_load_file(dst, path) == EDGELM_ERR_CORRUPT);
    CHECK(strstr(edgelm_session_errmsg(dst), path) != NULL);
    CHECK(test_write_file(path, buf, size / 3));
    CHECK(edgelm_session_state_load_file(dst, path) == EDGELM_ERR_CORRUPT);
    CHECK(test_write_file(path, buf, 0));
    CHECK(edgelm_session_state_load_file(dst, path) == EDGELM_ERR_CORRUPT);
    static const char junk[] = "not a state file at all, just some text that is long enough "
                               "to fill a header and a checksum";
    CHECK(test_write_file(path, junk, sizeof junk - 1));
    CHECK(edgelm_session_state_load_file(dst, path) == EDGELM_ERR_CORRUPT);
    test_temp_path("missing.kvc", path, sizeof path);
    CHECK(edgelm_session_state_load_file(dst, path) == EDGELM_ERR_IO);
    CHECK(edgelm_session_state_load_file(dst, test_temp_dir()) == EDGELM_ERR_IO);
    CHECK(edgelm_session_n_past(dst) == 0);
    /* and the pristine state still loads */
    CHECK(edgelm_session_state_load(dst, buf, size) == EDGELM_OK);
done:
    free(buf);
    free(copy);
    edgelm_session_free(src);
    edgelm_session_free(dst);
}

/* States from another model, another layout or a context too small are mismatches. */
static void test_mismatch(const edgelm_model *m, const edgelm_model *other_layers,
                          const edgelm_model *other_name) {
    edgelm_session *src = make_session(m, 128);
    uint8_t *buf = NULL;
    if (src == NULL) {
        return;
    }
    test_text got;
    edgelm_timings t;
    CHECK(run(src, prompt_a, 0, false, &got, &t) == EDGELM_OK);
    const int32_t n_prompt = t.n_prompt_tokens;
    CHECK(n_prompt > 8);
    size_t size = edgelm_session_state_size(src), written = 0;
    buf = malloc(size);
    CHECK(edgelm_session_state_save(src, buf, size, &written) == EDGELM_OK);
    char path[1024];
    test_temp_path("mismatch.kvc", path, sizeof path);
    CHECK(edgelm_session_state_save_file(src, path) == EDGELM_OK);

    const edgelm_model *others[2] = {other_layers, other_name};
    for (int i = 0; i < 2; i++) {
        if (others[i] == NULL) {
            continue;
        }
        CHECK(edgelm_model_fingerprint(others[i]) != edgelm_model_fingerprint(m));
        edgelm_session *o = make_session(others[i], 128);
        if (o == NULL) {
            continue;
        }
        CHECK(edgelm_session_state_load(o, buf, size) == EDGELM_ERR_STATE_MISMATCH);
        CHECK(strstr(edgelm_session_errmsg(o), "another model") != NULL);
        CHECK(edgelm_session_state_load_file(o, path) == EDGELM_ERR_STATE_MISMATCH);
        CHECK(edgelm_session_n_past(o) == 0);
        edgelm_session_free(o);
    }
    /* a context too small for the saved tokens; a larger one is fine */
    edgelm_session *small = make_session(m, 8);
    if (small != NULL) {
        CHECK(edgelm_session_state_load(small, buf, size) == EDGELM_ERR_STATE_MISMATCH);
        CHECK(strstr(edgelm_session_errmsg(small), "do not fit") != NULL);
        edgelm_session_free(small);
    }
    edgelm_session *big = make_session(m, 512);
    edgelm_session *fresh = make_session(m, 512);
    if (big != NULL && fresh != NULL) {
        test_text want;
        CHECK(edgelm_session_state_load(big, buf, size) == EDGELM_OK);
        CHECK(run(big, prompt_a, 16, true, &got, &t) == EDGELM_OK);
        CHECK(t.n_cached_tokens == n_prompt - 1);
        CHECK(run(fresh, prompt_a, 16, false, &want, &t) == EDGELM_OK);
        CHECK(test_text_equal(&got, &want));
    }
    edgelm_session_free(big);
    edgelm_session_free(fresh);
    free(buf);
    edgelm_session_free(src);
}

/* Writes go through a temporary file and a rename: a failed write leaves nothing, a
 * successful one replaces the old file whole. */
static void test_atomic_write(const edgelm_model *m) {
    edgelm_session *s = make_session(m, 64);
    if (s == NULL) {
        return;
    }
    char dir[1024], path[1100], bad[1200];
    snprintf(dir, sizeof dir, "%s/atomic", test_temp_dir());
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(path, sizeof path, "%s/state.kvc", dir);
    snprintf(bad, sizeof bad, "%s/no-such-dir/state.kvc", dir);
    test_text got;
    edgelm_timings t;
    CHECK(run(s, "first prompt", 0, false, &got, &t) == EDGELM_OK);
    CHECK(edgelm_session_state_save_file(s, bad) == EDGELM_ERR_IO);
    CHECK(strstr(edgelm_session_errmsg(s), "no-such-dir") != NULL);
    CHECK(edgelm_session_state_save_file(s, path) == EDGELM_OK);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (size_t)sb.st_size == edgelm_session_state_size(s));
    CHECK(run(s, "a second, longer prompt than the first one", 0, false, &got, &t) == EDGELM_OK);
    CHECK(edgelm_session_state_save_file(s, path) == EDGELM_OK);
    CHECK(stat(path, &sb) == 0 && (size_t)sb.st_size == edgelm_session_state_size(s));
    CHECK(test_count_files(dir, ".tmp.") == 0);
    edgelm_session *r = make_session(m, 64);
    if (r != NULL) {
        CHECK(edgelm_session_state_load_file(r, path) == EDGELM_OK);
        CHECK(edgelm_session_n_past(r) == t.n_prompt_tokens);
        edgelm_session_free(r);
    }
    CHECK(edgelm_session_state_save_file(s, "") == EDGELM_ERR_INVALID_ARGUMENT);
    edgelm_session_free(s);
}

/* stories260K: a cached prompt continues exactly as llama.cpp's greedy reference. */
static int test_stories(void) {
    char path[1024], golden[1024];
    if (!test_model_path("stories260K.gguf", path, sizeof path) ||
        !test_model_path("reference/stories260K.greedy.json", golden, sizeof golden)) {
        return 1;
    }
    edgelm_model *m = test_load_model(path);
    cJSON *root = test_load_json(golden);
    CHECK(root != NULL);
    edgelm_session *a = m ? make_session(m, 256) : NULL;
    edgelm_session *b = m ? make_session(m, 256) : NULL;
    if (root != NULL && a != NULL && b != NULL) {
        const cJSON *runs = cJSON_GetObjectItemCaseSensitive(root, "runs");
        const cJSON *r = NULL;
        cJSON_ArrayForEach(r, runs) {
            const char *prompt = cJSON_GetObjectItemCaseSensitive(r, "prompt")->valuestring;
            const cJSON *gen = cJSON_GetObjectItemCaseSensitive(r, "generated_tokens");
            int n = cJSON_GetArraySize(gen);
            test_text want, got;
            edgelm_timings t;
            CHECK(run(a, prompt, n, false, &want, &t) == EDGELM_OK);
            CHECK(run(a, prompt, 0, false, &got, &t) == EDGELM_OK);
            size_t size = edgelm_session_state_size(a), written = 0;
            uint8_t *buf = malloc(size);
            CHECK(edgelm_session_state_save(a, buf, size, &written) == EDGELM_OK);
            CHECK(edgelm_session_state_load(b, buf, size) == EDGELM_OK);
            CHECK(run(b, prompt, n, true, &got, &t) == EDGELM_OK);
            CHECK(t.n_cached_tokens == t.n_prompt_tokens - 1);
            CHECK_MSG(test_text_equal(&got, &want), "stories260K '%s': cached '%s' vs fresh '%s'",
                      prompt, got.text, want.text);
            free(buf);
        }
    }
    cJSON_Delete(root);
    edgelm_session_free(a);
    edgelm_session_free(b);
    edgelm_model_free(m);
    return 0;
}

int main(void) {
    edgelm_model *m = test_gen_model("state-tiny.gguf", "--preset tiny --seed 3");
    edgelm_model *layers =
        test_gen_model("state-3-layers.gguf", "--preset tiny --seed 3 --n-layer 3");
    edgelm_model *renamed =
        test_gen_model("state-renamed.gguf", "--preset tiny --seed 3 --name other");
    if (m != NULL) {
        test_restore(m);
        test_prefix_reuse(m);
        test_corrupt(m);
        test_mismatch(m, layers, renamed);
        test_atomic_write(m);
    }
    edgelm_model_free(m);
    edgelm_model_free(layers);
    edgelm_model_free(renamed);
    int skipped = test_stories();
    return test_finish("test_state", skipped);
}
