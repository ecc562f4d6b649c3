/* fuzz_gguf.c - libFuzzer target for the GGUF loader: the input is a whole file. It is parsed in
 * memory with gguf_parse (every metadata getter and array element read back), then written to a
 * scratch file and loaded through the public edgelm_model_load; a model that loads is inspected
 * (metadata, tensors, tokenizer, chat template) and one token is evaluated in a 4-token session.
 * Any bytes must give a status, never a crash, leak or hang.
 */
#include "edgelm.h"
#include "format/gguf.h"
#include "fuzz_support.h"
#include "fuzz_target.h"

#include <stdio.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return 0;
}

/* Everything the reader offers on a parsed file, read back through its own accessors. */
static void walk_parsed(const gguf_file *gf) {
    static const char *const keys[] = {"general.architecture", "general.alignment",
                                       "llama.block_count", "llama.rope.freq_base",
                                       "tokenizer.ggml.add_bos_token"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        uint32_t u32;
        int32_t i32;
        float f32;
        bool b;
        gguf_string s;
        (void)gguf_get_u32(gf, keys[k], &u32);
        (void)gguf_get_i32(gf, keys[k], &i32);
        (void)gguf_get_f32(gf, keys[k], &f32);
        (void)gguf_get_bool(gf, keys[k], &b);
        if (gguf_get_string(gf, keys[k], &s) == EDGELM_OK) {
            FUZZ_CHECK(s.len <= gf->size, "string of %llu bytes in a %zu-byte file",
                       (unsigned long long)s.len, gf->size);
        }
    }
    for (uint64_t i = 0; i < gf->n_kv; i++) {
        const gguf_kv *kv = &gf->kv[i];
        FUZZ_CHECK(kv->type < GGUF_TYPE_COUNT, "kv %llu has type %u", (unsigned long long)i,
                   kv->type);
        if (kv->type != GGUF_TYPE_ARRAY) {
            continue;
        }
        const gguf_array *arr = &kv->value.arr;
        const gguf_array *again = NULL;
        char key[256];
        size_t key_len = kv->key.len < sizeof key - 1 ? (size_t)kv->key.len : sizeof key - 1;
        memcpy(key, kv->key.data, key_len);
        key[key_len] = '\0';
        (void)gguf_get_array(gf, key, arr->elem_type, &again);
        uint64_t n = arr->n < 8 ? arr->n : 8;
        for (uint64_t e = 0; e < n; e++) {
            if (arr->elem_type == GGUF_TYPE_FLOAT32 || arr->elem_type == GGUF_TYPE_FLOAT64) {
                (void)gguf_array_f32(arr, e);
            } else if (arr->elem_type == GGUF_TYPE_STRING) {
                FUZZ_CHECK(arr->strings[e].len <= gf->size, "array string past the file");
            } else {
                (void)gguf_array_i64(arr, e);
            }
        }
    }
    for (uint64_t i = 0; i < gf->n_tensors; i++) {
        const gguf_tensor *t = &gf->tensors[i];
        const uint8_t *data = t->data;
        FUZZ_CHECK(data >= gf->base && t->n_bytes <= gf->size &&
                       (size_t)(data - gf->base) <= gf->size - t->n_bytes,
                   "tensor %llu's data is outside the file", (unsigned long long)i);
        /* (a name with a NUL byte inside is found only by its whole bytes, not by name_z) */
        FUZZ_CHECK(memchr(t->name.data, '\0', (size_t)t->name.len) != NULL ||
                       gguf_find_tensor(gf, t->name_z) == t,
                   "tensor %s not found by name", t->name_z);
        (void)gguf_type_name(t->type);
    }
}

/* The public API over a model that loaded. */
static void walk_model(const edgelm_model *model) {
    char buf[512];
    for (int64_t i = 0; i < edgelm_model_n_metadata(model); i++) {
        const char *key = NULL;
        FUZZ_CHECK(edgelm_model_metadata(model, i, &key, buf, sizeof buf), "metadata %lld",
                   (long long)i);
        FUZZ_CHECK(strlen(buf) < sizeof buf, "unterminated metadata text");
    }
    FUZZ_CHECK(!edgelm_model_metadata(model, edgelm_model_n_metadata(model), NULL, buf, sizeof buf),
               "metadata past the end");
    (void)edgelm_model_metadata_string(model, "general.name", buf, sizeof buf);
    for (int64_t i = 0; i < edgelm_model_n_tensors(model); i++) {
        edgelm_tensor_info info;
        FUZZ_CHECK(edgelm_model_tensor(model, i, &info), "tensor %lld", (long long)i);
    }
    int32_t n_vocab = edgelm_model_n_vocab(model);
    FUZZ_CHECK(n_vocab > 0, "a loaded model with %d tokens", (int)n_vocab);
    for (int32_t t = 0; t < n_vocab && t < 300; t++) {
        int32_t n = edgelm_token_to_piece(model, t, buf, sizeof buf);
        FUZZ_CHECK(n >= 0, "token %d: status %d", (int)t, (int)-n);
        FUZZ_CHECK(edgelm_token_text(model, t) != NULL, "token %d has no text", (int)t);
    }
    int32_t ids[64];
    const char *text = "Hello, world! <s> 123 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \n\n  end";
    int32_t n_ids = edgelm_tokenize(model, text, strlen(text), true, true, ids, 64);
    FUZZ_CHECK(n_ids >= 0, "tokenize: status %d", (int)-n_ids);
    bool recognized;
    (void)edgelm_chat_template_name(model, &recognized);
    edgelm_chat_message messages[2] = {{"system", "Be brief."}, {"user", "Hi"}};
    (void)edgelm_chat_apply(model, messages, 2, true, buf, sizeof buf);
    (void)edgelm_model_fingerprint(model);

    edgelm_session_params sp = edgelm_session_params_default();
    sp.n_ctx = 4;
    sp.n_threads = 1;
    edgelm_session *session = NULL;
    if (edgelm_session_create(model, &sp, &session, buf, sizeof buf) != EDGELM_OK) {
        return;
    }
    int32_t first = edgelm_model_token_bos(model) >= 0 ? edgelm_model_token_bos(model) : 0;
    if (edgelm_session_eval(session, &first, 1) == EDGELM_OK) {
        edgelm_sampler_params greedy = edgelm_sampler_params_default();
        greedy.temperature = 0;
        FUZZ_CHECK(edgelm_session_set_sampler(session, &greedy) == EDGELM_OK, "set sampler");
        int32_t next = edgelm_session_sample(session);
        FUZZ_CHECK(next >= 0 && next < n_vocab, "sampled token %d of %d", (int)next, (int)n_vocab);
    }
    edgelm_session_free(session);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    gguf_file gf;
    if (gguf_parse(data, size, &gf, err, sizeof err) == EDGELM_OK) {
        walk_parsed(&gf);
        gguf_free(&gf);
    } else {
        FUZZ_CHECK(strlen(err) < sizeof err, "unterminated error");
    }
    edgelm_model *model = NULL;
    edgelm_status st =
        edgelm_model_load(fuzz_scratch_write(data, size), NULL, &model, err, sizeof err);
    FUZZ_CHECK((st == EDGELM_OK) == (model != NULL), "status %d with model %p", (int)st,
               (void *)model);
    if (model != NULL) {
        walk_model(model);
        edgelm_model_free(model);
    }
    return 0;
}
