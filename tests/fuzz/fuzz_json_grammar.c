/* fuzz_json_grammar.c - libFuzzer target for grammar-constrained JSON (engine/src/json): the
 * input is a JSON Schema text, then optionally a NUL byte and walk choices. The schema is
 * compiled (json_schema_compile); if it compiles (or, given choices, with no schema: plain JSON)
 * a generation is walked over a byte vocabulary plus multi-lexeme pieces: at each step the mask
 * must agree with json_state_allows (on a sample of tokens), the choice byte picks an allowed
 * token (which json_state_accept must take), and when the choices
 * run out budget forcing (json_state_closing_token) must complete a value cJSON parses.
 */
#include "fuzz_support.h"
#include "fuzz_target.h"
#include "json/json_closing.h"
#include "json/json_grammar.h"
#include "json/json_mask.h"
#include "json/json_schema.h"
#include "json/json_vocab.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EOG_TOKEN 256     /* ids 0..255 are the single bytes */
#define MAX_STEPS 64      /* chosen tokens per input */
#define MAX_FORCED 100000 /* forced tokens: a closing is at most a few minimal values long */

static const char *const extra_pieces[] = {"{\"",
                                           "\":",
                                           "\",\"",
                                           "},{",
                                           "\"}",
                                           "\"]",
                                           "[{",
                                           "}]",
                                           "\\u00",
                                           "\\ud83d",
                                           "\\ude00",
                                           "true",
                                           "false",
                                           "null",
                                           "tr",
                                           "-0",
                                           ".5",
                                           "e+",
                                           "1e",
                                           "12",
                                           "\xc3\xa9",
                                           "\xe2\x82\xac",
                                           "\xf0\x9f\x98\x80",
                                           "\":[",
                                           "\":{",
                                           "\":1",
                                           ",\"",
                                           "\\n",
                                           "x\"y",
                                           "null,",
                                           "true}",
                                           "0.",
                                           "\n",
                                           " \"",
                                           "\": \"",
                                           "\":\"",
                                           "a",
                                           "ab",
                                           "\"a\":"};
enum { N_EXTRA = sizeof extra_pieces / sizeof extra_pieces[0], N_VOCAB = 257 + N_EXTRA };

static json_vocab *vocab;

static void free_vocab(void) { json_vocab_free(vocab); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    static char bytes[256];
    const char *pieces[N_VOCAB];
    size_t lens[N_VOCAB];
    uint8_t eog[N_VOCAB] = {0};
    for (int b = 0; b < 256; b++) {
        bytes[b] = (char)b;
        pieces[b] = &bytes[b];
        lens[b] = 1;
    }
    pieces[EOG_TOKEN] = "";
    lens[EOG_TOKEN] = 0;
    eog[EOG_TOKEN] = 1;
    for (int i = 0; i < N_EXTRA; i++) {
        pieces[257 + i] = extra_pieces[i];
        lens[257 + i] = strlen(extra_pieces[i]);
    }
    FUZZ_CHECK(json_vocab_create_from_pieces(pieces, lens, N_VOCAB, eog, &vocab) == EDGELM_OK,
               "vocabulary");
    atexit(free_vocab);
    return 0;
}

typedef struct output {
    char *bytes;
    size_t len, cap;
} output;

static void output_token(output *out, int32_t token) {
    size_t len;
    const uint8_t *b = js_token_bytes(vocab, token, &len);
    if (out->cap - out->len < len) {
        out->cap = (out->cap + len) * 2;
        out->bytes = realloc(out->bytes, out->cap);
        FUZZ_CHECK(out->bytes != NULL, "out of memory");
    }
    memcpy(out->bytes + out->len, b, len);
    out->len += len;
}

static void accept_token(json_state *state, output *out, int32_t token) {
    FUZZ_CHECK(json_state_accept(state, token), "token %d allowed but not accepted", (int)token);
    output_token(out, token);
}

static void walk(const json_schema *schema, const uint8_t *choices, size_t n_choices) {
    json_state *state = NULL;
    FUZZ_CHECK(json_state_create(vocab, schema, &state) == EDGELM_OK, "state");
    output out = {NULL, 0, 0};
    float logits[N_VOCAB];
    int32_t allowed[N_VOCAB];
    for (size_t step = 0; step < n_choices && step < MAX_STEPS && !json_state_complete(state);
         step++) {
        for (int t = 0; t < N_VOCAB; t++) {
            logits[t] = 0.0f;
        }
        json_state_mask(state, logits, N_VOCAB);
        int n_allowed = 0;
        for (int t = 0; t < N_VOCAB; t++) {
            bool by_mask = !isinf(logits[t]);
            /* allows() on every token costs a whole mask: check all at the first step, then a
             * rotating eighth of the vocabulary and the token picked */
            if (step == 0 || (size_t)t % 8 == step % 8) {
                FUZZ_CHECK(by_mask == json_state_allows(state, t), "mask and allows differ on %d",
                           t);
            }
            if (by_mask) {
                allowed[n_allowed++] = t;
            }
        }
        FUZZ_CHECK(n_allowed > 0, "no token allowed after %zu bytes of output", out.len);
        int32_t pick = allowed[choices[step] % n_allowed];
        size_t after = json_state_closing_after(state, pick);
        FUZZ_CHECK(after != SIZE_MAX, "closing_after refuses allowed token %d", (int)pick);
        accept_token(state, &out, pick);
    }
    char closing[256];
    size_t closing_len = json_state_closing(state, closing, sizeof closing);
    FUZZ_CHECK(closing_len < sizeof closing ? strlen(closing) == closing_len : true,
               "closing length");
    int forced = 0;
    while (!json_state_complete(state)) {
        int32_t t = json_state_closing_token(state);
        FUZZ_CHECK(t >= 0, "incomplete and no closing token after %zu bytes: %.*s", out.len,
                   (int)out.len, out.bytes);
        FUZZ_CHECK(++forced <= MAX_FORCED, "closing does not end");
        accept_token(state, &out, t);
    }
    FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)out.bytes, out.len), "output is not UTF-8");
    cJSON *doc = cJSON_ParseWithLength(out.bytes != NULL ? out.bytes : "", out.len);
    FUZZ_CHECK(doc != NULL, "cJSON refuses the %zu-byte output %.*s", out.len, (int)out.len,
               out.bytes);
    cJSON_Delete(doc);
    free(out.bytes);
    json_state_free(state);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, '\0', size);
    size_t schema_len = nul != NULL ? (size_t)(nul - data) : size;
    const uint8_t *choices = nul != NULL ? nul + 1 : NULL;
    size_t n_choices = nul != NULL ? size - schema_len - 1 : 0;
    char err[256];
    json_schema *schema = NULL;
    edgelm_status st =
        json_schema_compile((const char *)data, schema_len, &schema, err, sizeof err);
    if (st != EDGELM_OK) {
        FUZZ_CHECK(schema == NULL && err[0] != '\0', "status %d without a message", (int)st);
        if (n_choices > 0) {
            walk(NULL, choices, n_choices);
        }
        return 0;
    }
    walk(schema, choices, n_choices);
    json_schema_free(schema);
    return 0;
}
