/* test_json_grammar.c - the JSON pushdown automaton without a schema (plain JSON, an object at
 * the top level). Fixtures in tests/data/json/: lexing.json (token sequences: multi-lexeme
 * tokens, split escapes, numbers and UTF-8, whitespace limits, rejections, closings) and
 * documents.json (whole documents byte by byte; the closing from every prefix). Then limits
 * (depth, tokens opening many containers, number length), mask == allows on every token in
 * many states, and random walks over real vocabularies (uniform among allowed tokens, budgets
 * from 8 tokens) whose every output is checked by cJSON and independent checks. Timings of
 * allows/accept/mask are printed for the 32k and 152k vocabularies (no timed assertions).
 */
#include "json_walk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EOG_ID JW_BYTE_EOG /* in the byte vocabularies below: ids 0..255 are the bytes */

static int skipped_parts = 0;

/* Bytes of a fixture token: a string, or {"hex": "e2 82"}. */
static size_t token_bytes(const cJSON *t, char *buf, size_t cap) {
    if (cJSON_IsString(t)) {
        size_t n = strlen(t->valuestring);
        if (n > cap) {
            n = cap;
        }
        memcpy(buf, t->valuestring, n);
        return n;
    }
    const cJSON *hex = cJSON_GetObjectItemCaseSensitive(t, "hex");
    size_t n = 0;
    if (!cJSON_IsString(hex)) {
        return 0;
    }
    for (const char *p = hex->valuestring; *p && n < cap;) {
        unsigned v;
        int used;
        if (sscanf(p, "%2x%n", &v, &used) != 1) {
            break;
        }
        buf[n++] = (char)v;
        p += used;
        while (*p == ' ') {
            p++;
        }
    }
    return n;
}

static bool can_end(const json_state *s) { return json_state_allows(s, EOG_ID); }

static json_schema *compile_value(const cJSON *schema) {
    if (schema == NULL) {
        return NULL;
    }
    char *text = cJSON_PrintUnformatted(schema);
    char err[256];
    json_schema *out = NULL;
    edgelm_status st = json_schema_compile(text, strlen(text), &out, err, sizeof err);
    CHECK_MSG(st == EDGELM_OK, "schema %s: %s", text, err);
    free(text);
    return out;
}

/* The closing of the current state replays into a finished value. */
static void check_closing_replays(json_state *s, const char *what) {
    char closing[4096];
    size_t n = json_state_closing(s, closing, sizeof closing);
    CHECK_MSG(n < sizeof closing, "%s: closing too long", what);
    long bad = jw_feed_bytes(s, closing, n);
    CHECK_MSG(bad < 0, "%s: closing \"%s\" refused at byte %ld", what, closing, bad);
    CHECK_MSG(json_state_complete(s) || can_end(s), "%s: closing \"%s\" does not finish", what,
              closing);
}

/* ---- fixtures -------------------------------------------------------------------------------- */

static void test_lexing_fixtures(void) {
    cJSON *doc = test_load_fixture("json/lexing.json");
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(doc, "cases")) {
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
        const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(c, "tokens");
        int n_tok = cJSON_GetArraySize(tokens);
        char **extra = calloc((size_t)n_tok + 1, sizeof *extra);
        size_t *lens = calloc((size_t)n_tok + 1, sizeof *lens);
        int32_t *ids = calloc((size_t)n_tok + 1, sizeof *ids);
        int n_extra = 0;
        const cJSON *t;
        int i = 0;
        cJSON_ArrayForEach(t, tokens) {
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "eog"))) {
                ids[i++] = EOG_ID;
                continue;
            }
            extra[n_extra] = malloc(256);
            lens[n_extra] = token_bytes(t, extra[n_extra], 256);
            ids[i++] = 257 + n_extra;
            n_extra++;
        }
        json_vocab *v = jw_byte_vocab(extra, lens, n_extra);
        json_schema *schema = compile_value(cJSON_GetObjectItemCaseSensitive(c, "schema"));
        json_state *s = NULL;
        CHECK(v != NULL && json_state_create(v, schema, &s) == EDGELM_OK);
        int reject_at = -1;
        for (i = 0; s != NULL && i < n_tok; i++) {
            char before[512], after[512];
            json_state_closing(s, before, sizeof before);
            bool a = json_state_allows(s, ids[i]);
            bool b = json_state_accept(s, ids[i]);
            CHECK_MSG(a == b, "%s: allows %d accept %d at token %d", name, a, b, i);
            if (!b) {
                json_state_closing(s, after, sizeof after);
                CHECK_MSG(strcmp(before, after) == 0, "%s: refused token changed the state", name);
                reject_at = i;
                break;
            }
        }
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "reject_at");
        CHECK_MSG(reject_at == want->valueint, "%s: refused at %d, expected %d", name, reject_at,
                  want->valueint);
        const cJSON *complete = cJSON_GetObjectItemCaseSensitive(c, "complete");
        if (s != NULL && complete != NULL) {
            CHECK_MSG(json_state_complete(s) == cJSON_IsTrue(complete), "%s: complete", name);
        }
        const cJSON *end = cJSON_GetObjectItemCaseSensitive(c, "can_end");
        if (s != NULL && end != NULL) {
            CHECK_MSG(can_end(s) == cJSON_IsTrue(end), "%s: can_end", name);
        }
        const cJSON *closing = cJSON_GetObjectItemCaseSensitive(c, "closing");
        if (s != NULL && closing != NULL) {
            char got[512];
            json_state_closing(s, got, sizeof got);
            CHECK_MSG(strcmp(got, closing->valuestring) == 0, "%s: closing \"%s\", expected \"%s\"",
                      name, got, closing->valuestring);
        }
        if (s != NULL && !json_state_complete(s)) {
            check_closing_replays(s, name);
        }
        json_state_free(s);
        json_schema_free(schema);
        json_vocab_free(v);
        for (i = 0; i < n_extra; i++) {
            free(extra[i]);
        }
        free(extra);
        free(lens);
        free(ids);
        n_cases++;
    }
    printf("lexing fixtures: %d cases\n", n_cases);
    cJSON_Delete(doc);
}

static void test_documents(void) {
    cJSON *doc = test_load_fixture("json/documents.json");
    json_vocab *v = jw_byte_vocab(NULL, NULL, 0);
    json_state *s = NULL;
    CHECK(v != NULL && json_state_create(v, NULL, &s) == EDGELM_OK);
    if (s == NULL) {
        cJSON_Delete(doc);
        json_vocab_free(v);
        return;
    }
    const cJSON *d;
    int n_valid = 0, n_invalid = 0, n_prefixes = 0;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(doc, "valid")) {
        const char *text = d->valuestring;
        size_t len = strlen(text);
        json_state_reset(s);
        long bad = jw_feed_bytes(s, text, len);
        CHECK_MSG(bad < 0, "valid document refused at byte %ld: %s", bad, text);
        CHECK_MSG(json_state_complete(s), "valid document not complete: %s", text);
        /* the closing from every prefix finishes a document cJSON accepts */
        for (size_t p = 0; p <= len && bad < 0; p++) {
            char buf[4096];
            json_state_reset(s);
            jw_feed_bytes(s, text, p);
            memcpy(buf, text, p);
            size_t n = json_state_closing(s, buf + p, sizeof buf - p);
            check_closing_replays(s, "prefix");
            char why[128];
            CHECK_MSG(jw_check_output(buf, p + n, NULL, why, sizeof why),
                      "prefix %zu of %s: %s (%s)", p, text, buf, why);
            n_prefixes++;
        }
        n_valid++;
    }
    const char *lists[] = {"invalid", "invalid_hex", "limits"};
    for (int l = 0; l < 3; l++) {
        cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(doc, lists[l])) {
            char bytes[512];
            size_t len;
            if (l == 1) {
                cJSON tmp;
                memset(&tmp, 0, sizeof tmp);
                /* hex without spaces */
                len = 0;
                for (const char *p = d->valuestring; p[0] && p[1] && len < sizeof bytes; p += 2) {
                    unsigned x;
                    sscanf(p, "%2x", &x);
                    bytes[len++] = (char)x;
                }
            } else {
                len = strlen(d->valuestring);
                memcpy(bytes, d->valuestring, len);
            }
            json_state_reset(s);
            long bad = jw_feed_bytes(s, bytes, len);
            CHECK_MSG(bad >= 0 || (!json_state_complete(s) && !can_end(s)),
                      "invalid document accepted: %s", d->valuestring);
            n_invalid++;
        }
    }
    printf("documents: %d valid (%d prefixes closed), %d refused\n", n_valid, n_prefixes,
           n_invalid);
    json_state_free(s);
    json_vocab_free(v);
    cJSON_Delete(doc);
}

/* ---- limits ---------------------------------------------------------------------------------- */

static void test_limits(void) {
    char *extra[3];
    size_t lens[3];
    char twelve[13], thirteen[14];
    memset(twelve, '[', 12);
    twelve[12] = 0;
    memset(thirteen, '[', 13);
    thirteen[13] = 0;
    extra[0] = twelve;
    lens[0] = 12;
    extra[1] = thirteen;
    lens[1] = 13;
    extra[2] = "\":[[";
    lens[2] = 4;
    json_vocab *v = jw_byte_vocab(extra, lens, 3);
    json_state *s = NULL;
    CHECK(v != NULL && json_state_create(v, NULL, &s) == EDGELM_OK);
    if (s == NULL) {
        json_vocab_free(v);
        return;
    }
    /* depth: the top frame, the object and 126 arrays */
    jw_feed_bytes(s, "{\"a\":", 5);
    int opened = 0;
    while (json_state_accept(s, '[')) {
        opened++;
    }
    CHECK_MSG(opened == JS_MAX_DEPTH - 2, "opened %d arrays", opened);
    CHECK(!json_state_allows(s, '{'));
    char closing[512];
    size_t n = json_state_closing(s, closing, sizeof closing);
    CHECK(n == (size_t)opened + 1 && closing[0] == ']' && closing[n - 1] == '}');
    check_closing_replays(s, "deep");

    /* a token may open at most JS_OVERLAY containers */
    json_state_reset(s);
    jw_feed_bytes(s, "{\"a\":", 5);
    CHECK(json_state_allows(s, 257));
    CHECK(!json_state_allows(s, 258));
    CHECK(!json_state_accept(s, 258));
    CHECK(json_state_accept(s, 257));

    /* number length */
    char num[64];
    json_state_reset(s);
    jw_feed_bytes(s, "{\"a\":", 5);
    memset(num, '1', sizeof num);
    CHECK(jw_feed_bytes(s, num, JS_NUM_MAX) < 0);
    CHECK(!json_state_allows(s, '1'));
    CHECK(json_state_allows(s, '}'));
    json_state_reset(s);
    jw_feed_bytes(s, "{\"a\":", 5);
    jw_feed_bytes(s, num, JS_NUM_MAX - 2);
    CHECK(json_state_allows(s, '.')); /* room for ".d" */
    json_state_reset(s);
    jw_feed_bytes(s, "{\"a\":", 5);
    jw_feed_bytes(s, num, JS_NUM_MAX - 1);
    CHECK(!json_state_allows(s, '.')); /* no room for the digit a '.' needs */
    CHECK(!json_state_allows(s, 'e'));
    check_closing_replays(s, "long number");

    /* out-of-range ids and reset */
    CHECK(!json_state_allows(s, -1));
    CHECK(!json_state_allows(s, 100000));
    CHECK(!json_state_accept(s, -1));
    json_state_reset(s);
    CHECK(json_state_allows(s, '{') && !json_state_allows(s, '['));
    float logits[300];
    for (int i = 0; i < 300; i++) {
        logits[i] = 1.0f;
    }
    json_state_mask(s, logits, 300); /* longer than the vocabulary: the rest is refused */
    CHECK(logits['{'] == 1.0f && isinf(logits['[']) && isinf(logits[EOG_ID]) && isinf(logits[299]));
    CHECK(json_state_closing_token(s) == '{');
    json_state_accept(s, '{');
    CHECK(json_state_closing_token(s) == '}');
    json_state_accept(s, '}');
    CHECK(json_state_closing_token(s) == -1);
    CHECK(json_state_closing_after(s, EOG_ID) == 0);
    CHECK(json_state_closing_after(s, '}') == SIZE_MAX);
    json_state_free(s);
    json_vocab_free(v);
}

/* ---- mask == allows ------------------------------------------------------------------------- */

/* States along the valid documents (fed through single-byte tokens of a real vocabulary):
 * the mask and allows must agree on every token. */
static int32_t single_byte_token(const json_vocab *v, uint8_t c) {
    for (int32_t t = 0; t < v->n_vocab; t++) {
        size_t len;
        const uint8_t *b = js_token_bytes(v, t, &len);
        if (len == 1 && b[0] == c && !v->is_eog[t]) {
            return t;
        }
    }
    return -1;
}

static long mask_agrees(const json_state *s, const json_vocab *v, float *logits) {
    long bad = 0;
    for (int32_t t = 0; t < v->n_vocab; t++) {
        logits[t] = 0.0f;
    }
    json_state_mask(s, logits, v->n_vocab);
    for (int32_t t = 0; t < v->n_vocab; t++) {
        bool m = logits[t] == 0.0f;
        bool a = json_state_allows(s, t);
        if (m != a) {
            if (bad < 3) {
                fprintf(stderr, "mask %d allows %d token %d\n", m, a, t);
            }
            bad++;
        }
    }
    return bad;
}

static void test_mask_on_documents(const jw_vocab *jv) {
    cJSON *doc = test_load_fixture("json/documents.json");
    const json_vocab *v = jv->vocab;
    float *logits = malloc((size_t)v->n_vocab * sizeof *logits);
    int32_t map[256];
    json_state *s = NULL;
    CHECK(logits != NULL && json_state_create(v, NULL, &s) == EDGELM_OK);
    for (int c = 0; c < 256; c++) {
        map[c] = single_byte_token(v, (uint8_t)c);
    }
    long states = 0, bad = 0, step = 0;
    /* every state for small vocabularies, every 7th for large ones (each check is a full
     * pass of allows over the vocabulary) */
    long every = v->n_vocab > 40000 ? 7 : 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(doc, "valid")) {
        const char *text = d->valuestring;
        json_state_reset(s);
        for (size_t i = 0; text[i] && s != NULL; i++) {
            if (step++ % every == 0) {
                bad += mask_agrees(s, v, logits);
                states++;
            }
            int32_t t = map[(uint8_t)text[i]];
            if (t < 0 || !json_state_accept(s, t)) {
                break;
            }
        }
    }
    CHECK_MSG(bad == 0, "%s: mask and allows disagree %ld times", jv->name, bad);
    printf("%s: mask == allows on all %d tokens in %ld states\n", jv->name, v->n_vocab, states);
    json_state_free(s);
    free(logits);
    cJSON_Delete(doc);
}

/* ---- random walks ---------------------------------------------------------------------------- */

static void random_walks(const jw_vocab *jv, int n_walks, uint64_t seed) {
    const json_vocab *v = jv->vocab;
    jw_walker jw;
    jw_stats st;
    memset(&st, 0, sizeof st);
    CHECK(jw_walker_init(&jw, v) && json_state_create(v, NULL, &jw.state) == EDGELM_OK);
    uint64_t rng = seed;
    long ok = 0;
    for (int i = 0; i < n_walks && jw.state != NULL; i++) {
        /* a quarter at the tightest budget: 8 tokens */
        int budget = jw_rand(&rng) % 4 == 0 ? 8 : 8 + (int)(jw_rand(&rng) % 120);
        if (!jw_walk(&jw, &rng, budget, v->n_vocab > 60000 ? 100 : 12, &st)) {
            continue;
        }
        char why[128];
        bool good = jw_check_output(jw.out, strlen(jw.out), NULL, why, sizeof why);
        CHECK_MSG(good, "%s: walk output %s: %.300s", jv->name, why, jw.out);
        ok += good;
    }
    CHECK_MSG(st.failures == 0, "%s: %ld walk failures", jv->name, st.failures);
    printf("%s: %ld/%d walks valid, %ld tokens (%ld forced), %ld masks (%ld checked against "
           "allows), longest %zu bytes; random-token allows %.0f ns, mask %.3f ms avg\n",
           jv->name, ok, n_walks, st.tokens, st.forced, st.masks, st.mask_checks, st.longest,
           st.allows_calls ? st.allows_ms * 1e6 / (double)st.allows_calls : 0.0,
           st.masks ? st.mask_ms / (double)st.masks : 0.0);
    jw_walker_free(&jw);
}

/* ---- timings ----------------------------------------------------------------------------------
 */

static void bench(const jw_vocab *jv) {
    const json_vocab *v = jv->vocab;
    json_state *s = NULL;
    float *logits = malloc((size_t)v->n_vocab * sizeof *logits);
    int32_t map[256];
    if (logits == NULL || json_state_create(v, NULL, &s) != EDGELM_OK) {
        free(logits);
        return;
    }
    for (int c = 0; c < 256; c++) {
        map[c] = single_byte_token(v, (uint8_t)c);
    }
    static const struct {
        const char *name, *prefix;
    } states[] = {{"start", ""},
                  {"after '{'", "{"},
                  {"in a key", "{\"ke"},
                  {"value position", "{\"key\":"},
                  {"in a string value", "{\"key\":\"some text"},
                  {"in a number", "{\"key\":12"},
                  {"after a value", "{\"key\":[1,2]"},
                  {"in an array", "{\"key\":[1,"}};
    printf("%s (%d tokens): mask per state:", jv->name, v->n_vocab);
    for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
        json_state_reset(s);
        for (const char *p = states[k].prefix; *p; p++) {
            json_state_accept(s, map[(uint8_t)*p]);
        }
        double best = 1e9; /* the minimum of 20: the machine may be shared */
        for (int r = 0; r < 20; r++) {
            double t0 = test_now_ms();
            json_state_mask(s, logits, v->n_vocab);
            double dt = test_now_ms() - t0;
            best = dt < best ? dt : best;
        }
        printf(" %s %.3f ms;", states[k].name, best);
    }
    printf("\n");
    /* allows + accept on a token stream: a typical document tokenized by the model itself */
    const char *text = "{\"name\": \"Ada Lovelace\", \"born\": 1815, \"tags\": [\"math\", "
                       "\"poetry\"], \"alive\": false, \"notes\": \"first program, 1843\"}";
    int32_t ids[256];
    /* '{' as its own token, then the rest as the tokenizer splits it (SPM's space prefix
     * becomes the one whitespace allowed after '{') */
    int32_t n = tokenizer_encode(jv->tok, text + 1, strlen(text) - 1, false, false, ids, 256);
    int reps = 400;
    long accepted = 0;
    double t_accept = 1e9, t_both = 1e9; /* minimum over 10 trials of each pass */
    for (int pass = 0; pass < 20 && n > 0; pass++) {
        double t0 = test_now_ms();
        for (int r = 0; r < reps; r++) {
            json_state_reset(s);
            json_state_accept(s, map['{']);
            for (int32_t i = 0; i < n; i++) {
                if (pass & 1) {
                    accepted += json_state_allows(s, ids[i]);
                }
                json_state_accept(s, ids[i]);
            }
        }
        double dt = test_now_ms() - t0;
        double *slot = (pass & 1) ? &t_both : &t_accept;
        *slot = dt < *slot ? dt : *slot;
    }
    CHECK_MSG(accepted == 10L * reps * n, "%s: the document's own tokens were refused", jv->name);
    if (n > 0) {
        double per = 1e6 / ((double)reps * (double)(n + 1));
        printf("%s: accept %.0f ns/token, allows %.0f ns/token (%d-token document x %d)\n",
               jv->name, t_accept * per, (t_both - t_accept) * per, n + 1, reps);
    }
    json_state_free(s);
    free(logits);
}

int main(void) {
    test_lexing_fixtures();
    test_documents();
    test_limits();

    jw_vocab small;
    CHECK(jw_vocab_small(&small));
    if (small.vocab != NULL) {
        test_mask_on_documents(&small);
        random_walks(&small, 1500, 1);
        jw_vocab_free(&small);
    }

    jw_vocab jv;
    for (size_t f = 0; jw_vocab_next(&jv, &f, &skipped_parts); f++) {
        double t0 = test_now_ms();
        json_vocab *again = NULL;
        CHECK(json_vocab_create(jv.tok, &again) == EDGELM_OK);
        printf("%s: json_vocab_create %.1f ms\n", jv.name, test_now_ms() - t0);
        json_vocab_free(again);
        test_mask_on_documents(&jv);
        int n_walks = jv.vocab->n_vocab > 100000 ? 150 : jv.vocab->n_vocab > 40000 ? 250 : 400;
        random_walks(&jv, n_walks, 1000 + f);
        if (strstr(jv.name, "llama-spm") || strstr(jv.name, "qwen2") ||
            strstr(jv.name, "stories")) {
            bench(&jv);
        }
        jw_vocab_free(&jv);
    }
    return test_finish("test_json_grammar", skipped_parts);
}
