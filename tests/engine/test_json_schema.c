/* test_json_schema.c - JSON Schema compiled into the grammar. Fixtures in tests/data/json/:
 * schemas.json (per schema: texts accepted or refused byte by byte, the minimal value, and the
 * closing from every prefix of the accepted texts) and schema_errors.json (schemas refused with
 * EDGELM_ERR_BAD_SCHEMA and a message naming the keyword and its JSON pointer). Then random
 * walks over the real vocabularies for every schema of schemas.json, every output parsed by
 * cJSON and checked by an independent validator (json_walk.h), property order included.
 */
#include "json_walk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EOG_ID JW_BYTE_EOG

static int skipped_parts = 0;

static bool may_end(const json_state *s) {
    return json_state_complete(s) || json_state_allows(s, EOG_ID);
}

static json_schema *compile(const cJSON *schema, char *err, size_t err_size, edgelm_status *st) {
    char *text = cJSON_PrintUnformatted(schema);
    json_schema *out = NULL;
    *st = json_schema_compile(text, strlen(text), &out, err, err_size);
    free(text);
    return out;
}

/* ---- accepted / refused / minimal ------------------------------------------------------------ */

static void test_schema_fixtures(void) {
    cJSON *doc = test_load_fixture("json/schemas.json");
    json_vocab *v = jw_byte_vocab(NULL, NULL, 0);
    const cJSON *c;
    int n_cases = 0, n_accepted = 0, n_refused = 0, n_prefixes = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(doc, "cases")) {
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(c, "schema");
        char err[512];
        edgelm_status st;
        json_schema *cs = compile(schema, err, sizeof err, &st);
        CHECK_MSG(st == EDGELM_OK, "%s: %s", name, err);
        json_state *s = NULL;
        if (cs == NULL || v == NULL || json_state_create(v, cs, &s) != EDGELM_OK) {
            json_schema_free(cs);
            continue;
        }
        char buf[8192], why[256];
        /* the minimal value */
        const cJSON *minimal = cJSON_GetObjectItemCaseSensitive(c, "minimal");
        size_t n = json_state_closing(s, buf, sizeof buf);
        if (minimal != NULL) {
            CHECK_MSG(strcmp(buf, minimal->valuestring) == 0, "%s: minimal %s, expected %s", name,
                      buf, minimal->valuestring);
        }
        CHECK_MSG(jw_feed_bytes(s, buf, n) < 0 && may_end(s), "%s: minimal %s not accepted", name,
                  buf);
        CHECK_MSG(jw_check_output(buf, n, schema, why, sizeof why), "%s: minimal %s: %s", name, buf,
                  why);
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(c, "accepted")) {
            const char *text = t->valuestring;
            size_t len = strlen(text);
            json_state_reset(s);
            long bad = jw_feed_bytes(s, text, len);
            CHECK_MSG(bad < 0, "%s: %s refused at byte %ld", name, text, bad);
            CHECK_MSG(bad >= 0 || may_end(s), "%s: %s cannot end", name, text);
            /* the fixture itself: accepted texts validate */
            cJSON *value = cJSON_Parse(text);
            CHECK_MSG(value != NULL && jw_validate(value, schema, true, why, sizeof why),
                      "%s: fixture text %s does not validate", name, text);
            cJSON_Delete(value);
            for (size_t p = 0; p <= len && bad < 0; p++) {
                json_state_reset(s);
                jw_feed_bytes(s, text, p);
                memcpy(buf, text, p);
                size_t m = json_state_closing(s, buf + p, sizeof buf - p);
                CHECK_MSG(jw_feed_bytes(s, buf + p, m) < 0 && may_end(s),
                          "%s: closing of %.*s refused", name, (int)p, text);
                CHECK_MSG(jw_check_output(buf, p + m, schema, why, sizeof why),
                          "%s: prefix %zu closed to %s: %s", name, p, buf, why);
                n_prefixes++;
            }
            n_accepted++;
        }
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(c, "refused")) {
            json_state_reset(s);
            long bad = jw_feed_bytes(s, t->valuestring, strlen(t->valuestring));
            CHECK_MSG(bad >= 0 || !may_end(s), "%s: %s was accepted", name, t->valuestring);
            n_refused++;
        }
        json_state_free(s);
        json_schema_free(cs);
        n_cases++;
    }
    printf("schema fixtures: %d schemas, %d accepted texts (%d prefixes closed), %d refused\n",
           n_cases, n_accepted, n_prefixes, n_refused);
    json_vocab_free(v);
    cJSON_Delete(doc);
}

/* ---- errors ---------------------------------------------------------------------------------- */

static void test_schema_errors(void) {
    cJSON *doc = test_load_fixture("json/schema_errors.json");
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(doc, "cases")) {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(c, "text");
        char *owned = NULL;
        const char *src;
        if (text != NULL) {
            src = text->valuestring;
        } else {
            owned = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "schema"));
            src = owned;
        }
        char err[512] = "unchanged";
        json_schema *out = (json_schema *)&n; /* must be reset to NULL */
        edgelm_status st = json_schema_compile(src, strlen(src), &out, err, sizeof err);
        CHECK_MSG(st == EDGELM_ERR_BAD_SCHEMA, "%.80s: status %d (%s)", src, (int)st, err);
        CHECK(out == NULL);
        const cJSON *want;
        cJSON_ArrayForEach(want, cJSON_GetObjectItemCaseSensitive(c, "contains")) {
            CHECK_MSG(strstr(err, want->valuestring) != NULL, "%.80s: message \"%s\" lacks \"%s\"",
                      src, err, want->valuestring);
        }
        json_schema_free(out);
        free(owned);
        n++;
    }
    printf("schema errors: %d cases\n", n);
    cJSON_Delete(doc);

    /* arguments */
    json_schema *out = NULL;
    char err[128];
    CHECK(json_schema_compile(NULL, 5, &out, err, sizeof err) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(json_schema_compile("{}", 2, NULL, err, sizeof err) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(json_schema_compile("{\"pattern\":1}", 13, &out, NULL, 0) == EDGELM_ERR_BAD_SCHEMA);
    CHECK(json_schema_compile("{\"type\":\"object\"}", 17, &out, NULL, 0) == EDGELM_OK);
    json_schema_free(out);
    json_schema_free(NULL);
    /* a message longer than the buffer is cut, not overrun */
    char tiny[8];
    CHECK(json_schema_compile("{\"pattern\":1}", 13, &out, tiny, sizeof tiny) ==
          EDGELM_ERR_BAD_SCHEMA);
    CHECK(strlen(tiny) < sizeof tiny);
    /* a very long pointer is truncated in the message */
    char deep[4096];
    size_t len = 0;
    for (int i = 0; i < 30; i++) {
        len += (size_t)snprintf(deep + len, sizeof deep - len,
                                "{\"properties\":{\"a-rather-long-property-name-%02d\":", i);
    }
    len += (size_t)snprintf(deep + len, sizeof deep - len, "{\"format\":\"x\"}");
    for (int i = 0; i < 30; i++) {
        len += (size_t)snprintf(deep + len, sizeof deep - len, "}}");
    }
    char msg[1024];
    CHECK(json_schema_compile(deep, len, &out, msg, sizeof msg) == EDGELM_ERR_BAD_SCHEMA);
    CHECK_MSG(strstr(msg, "'format'") != NULL && strstr(msg, "...") != NULL, "%s", msg);
}

/* ---- random walks ---------------------------------------------------------------------------- */

static void schema_walks(const jw_vocab *jv, const cJSON *cases, int walks_per_schema,
                         uint64_t seed) {
    const json_vocab *v = jv->vocab;
    jw_walker jw;
    const bool scratch = jw_walker_init(&jw, v);
    jw_stats st;
    memset(&st, 0, sizeof st);
    uint64_t rng = seed;
    long ok = 0, total = 0;
    int n_schemas = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "walk"))) {
            continue;
        }
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(c, "schema");
        char err[256];
        edgelm_status rc;
        json_schema *cs = compile(schema, err, sizeof err, &rc);
        if (cs == NULL || !scratch || json_state_create(v, cs, &jw.state) != EDGELM_OK) {
            CHECK(false);
            json_schema_free(cs);
            continue;
        }
        size_t closing0 = json_state_closing(jw.state, NULL, 0);
        for (int i = 0; i < walks_per_schema; i++) {
            /* a quarter with no slack: as many tokens as the shortest value has bytes */
            int budget =
                (int)closing0 + (jw_rand(&rng) % 4 == 0 ? 0 : 8 + (int)(jw_rand(&rng) % 100));
            total++;
            if (!jw_walk(&jw, &rng, budget, v->n_vocab > 60000 ? 100 : 10, &st)) {
                CHECK_MSG(false, "%s: %s: walk failed", jv->name, name);
                continue;
            }
            char why[256];
            bool good = jw_check_output(jw.out, strlen(jw.out), schema, why, sizeof why);
            CHECK_MSG(good, "%s: %s: %s: %.300s", jv->name, name, why, jw.out);
            ok += good;
        }
        json_state_free(jw.state);
        jw.state = NULL;
        json_schema_free(cs);
        n_schemas++;
    }
    CHECK_MSG(st.failures == 0, "%s: %ld walk failures", jv->name, st.failures);
    printf("%s: %d schemas, %ld/%ld walks valid, %ld tokens (%ld forced), %ld masks (%ld "
           "checked against allows), mask %.3f ms avg\n",
           jv->name, n_schemas, ok, total, st.tokens, st.forced, st.masks, st.mask_checks,
           st.masks ? st.mask_ms / (double)st.masks : 0.0);
    jw_walker_free(&jw);
}

int main(void) {
    test_schema_fixtures();
    test_schema_errors();

    cJSON *doc = test_load_fixture("json/schemas.json");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(doc, "cases");
    jw_vocab small;
    CHECK(jw_vocab_small(&small));
    if (small.vocab != NULL) {
        schema_walks(&small, cases, 60, 7);
        jw_vocab_free(&small);
    }
    jw_vocab jv;
    for (size_t f = 0; jw_vocab_next(&jv, &f, &skipped_parts); f++) {
        int per_schema = jv.vocab->n_vocab > 100000 ? 6 : jv.vocab->n_vocab > 40000 ? 10 : 16;
        schema_walks(&jv, cases, per_schema, 100 + f);
        jw_vocab_free(&jv);
    }
    cJSON_Delete(doc);
    return test_finish("test_json_schema", skipped_parts);
}
