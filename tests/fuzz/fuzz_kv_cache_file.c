/* fuzz_kv_cache_file.c - libFuzzer target for the saved prompt state (KV-cache file,
 * model/state_file.c): the input is a whole state file for the fuzz tiny.gguf, restored
 * with edgelm_session_state_load from memory, again with its trailing FNV-1a checksum recomputed
 * (so mutations reach the checks after it), and from a file with edgelm_session_state_load_file.
 * A restored state is saved and restored again, then a generation reuses its prefix.
 */
#include "edgelm.h"
#include "fuzz_support.h"
#include "fuzz_target.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static edgelm_model *model;
static edgelm_session *session;

static void free_model(void) {
    edgelm_session_free(session);
    edgelm_model_free(model);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char path[1024], err[256];
    fuzz_data_path(FUZZ_TINY_MODEL, path, sizeof path);
    FUZZ_CHECK(edgelm_model_load(path, NULL, &model, err, sizeof err) == EDGELM_OK, "%s", err);
    edgelm_session_params sp = edgelm_session_params_default();
    sp.n_threads = 1;
    FUZZ_CHECK(edgelm_session_create(model, &sp, &session, err, sizeof err) == EDGELM_OK, "%s",
               err);
    atexit(free_model);
    return 0;
}

static bool token_callback(void *user_data, int32_t token, const char *text, size_t text_len) {
    (void)user_data;
    (void)token;
    (void)text;
    (void)text_len;
    return true;
}

/* After a successful restore: the session holds a consistent state that saves, restores and
 * serves prefix reuse. */
static void use_restored(void) {
    int32_t n_past = edgelm_session_n_past(session);
    FUZZ_CHECK(n_past >= 0 && (uint32_t)n_past <= edgelm_session_n_ctx(session), "n_past %d",
               (int)n_past);
    const int32_t *tokens = edgelm_session_tokens(session);
    for (int32_t i = 0; i < n_past; i++) {
        FUZZ_CHECK(tokens[i] >= 0 && tokens[i] < edgelm_model_n_vocab(model), "token %d",
                   (int)tokens[i]);
    }
    size_t size = edgelm_session_state_size(session);
    uint8_t *saved = malloc(size > 0 ? size : 1);
    FUZZ_CHECK(saved != NULL, "out of memory");
    size_t written = 0;
    FUZZ_CHECK(edgelm_session_state_save(session, saved, size, &written) == EDGELM_OK &&
                   written == size,
               "save of a restored state: %s", edgelm_session_errmsg(session));
    FUZZ_CHECK(edgelm_session_state_load(session, saved, written) == EDGELM_OK &&
                   edgelm_session_n_past(session) == n_past,
               "restore of a saved state: %s", edgelm_session_errmsg(session));
    free(saved);

    edgelm_generate_params gp = edgelm_generate_params_default();
    gp.prompt = "Once upon a time";
    gp.prompt_len = (size_t)-1;
    gp.n_predict = 2;
    gp.sampling.temperature = 0;
    gp.reuse_prefix = true;
    edgelm_finish_reason finish;
    edgelm_status st = edgelm_generate(session, &gp, token_callback, NULL, &finish);
    FUZZ_CHECK(st == EDGELM_OK, "generate after a restore: %s", edgelm_session_errmsg(session));
}

static void restore(const uint8_t *data, size_t size, bool from_file) {
    edgelm_status st = from_file
                           ? edgelm_session_state_load_file(session, fuzz_scratch_write(data, size))
                           : edgelm_session_state_load(session, data, size);
    if (st == EDGELM_OK) {
        use_restored();
    } else {
        FUZZ_CHECK(edgelm_session_n_past(session) == 0, "a failed restore left %d tokens",
                   (int)edgelm_session_n_past(session));
        FUZZ_CHECK(st == EDGELM_ERR_CORRUPT || st == EDGELM_ERR_STATE_MISMATCH ||
                       (from_file && st == EDGELM_ERR_IO),
                   "status %d: %s", (int)st, edgelm_session_errmsg(session));
    }
}

/* FNV-1a 64, the state file's checksum (state_file.h). */
static uint64_t fnv1a_64(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    restore(data, size, false);
    if (size >= 8) {
        uint8_t *fixed = malloc(size);
        FUZZ_CHECK(fixed != NULL, "out of memory");
        memcpy(fixed, data, size);
        uint64_t sum = fnv1a_64(fixed, size - 8);
        for (int i = 0; i < 8; i++) {
            fixed[size - 8 + (size_t)i] = (uint8_t)(sum >> (8 * i));
        }
        restore(fixed, size, false);
        free(fixed);
    }
    restore(data, size, true);
    return 0;
}
