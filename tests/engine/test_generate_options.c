/* test_generate_options.c - the per-request options of edgelm_generate besides prompt state and
 * context shift: stop strings (never delivered, found across token boundaries, held-back text
 * flushed when no stop completes, several at once, bad ones refused) and the JSON output formats
 * as wired into the generate loop (a complete object with FINISH_GRAMMAR, also on a tight token
 * budget; schema errors as EDGELM_ERR_BAD_SCHEMA with the session message).
 */
#include "base/byte_search.h"
#include "model_fixtures.h"

#include <stdlib.h>
#include <string.h>

#define MAX_PIECES 256

typedef struct collected {
    test_text out;
    int n_tokens;
    size_t piece_end[MAX_PIECES]; /* text length after each token's callback */
} collected;

static bool collect(void *user, int32_t token, const char *text, size_t len) {
    collected *c = user;
    test_text_append(&c->out, text, len);
    if (token >= 0 && c->n_tokens < MAX_PIECES) {
        c->piece_end[c->n_tokens] = c->out.len;
    }
    if (token >= 0) {
        c->n_tokens++;
    }
    return true;
}

/* Generate with stops and compare with the full (unstopped) text: generation must end at the
 * first token after which a stop string is complete, delivering the text before the earliest
 * complete stop string. */
static void check_stop(edgelm_session *s, const char *prompt, int n, const collected *full,
                       const char *const *stops, int n_stops, const char *what) {
    edgelm_generate_params gp = test_greedy_params(prompt, n);
    gp.stop = stops;
    gp.n_stop = n_stops;
    collected c;
    memset(&c, 0, sizeof c);
    edgelm_finish_reason why;
    CHECK(edgelm_generate(s, &gp, collect, &c, &why) == EDGELM_OK);
    size_t cut = SIZE_MAX;
    int n_tokens = full->n_tokens;
    for (int t = 0; t < full->n_tokens && t < MAX_PIECES && cut == SIZE_MAX; t++) {
        for (int k = 0; k < n_stops; k++) {
            size_t at = bytes_find(full->out.text, full->piece_end[t], stops[k], strlen(stops[k]));
            cut = at < cut ? at : cut;
        }
        n_tokens = t + 1;
    }
    if (cut == SIZE_MAX) {
        CHECK_MSG(why != EDGELM_FINISH_STOP_STRING, "%s: stopped without a stop string", what);
        CHECK_MSG(c.out.len == full->out.len && memcmp(c.out.text, full->out.text, c.out.len) == 0,
                  "%s: text differs without a stop:\n  got  '%s'\n  full '%s'", what, c.out.text,
                  full->out.text);
        return;
    }
    CHECK_MSG(why == EDGELM_FINISH_STOP_STRING, "%s: finish %d", what, (int)why);
    CHECK_MSG(c.out.len == cut && memcmp(c.out.text, full->out.text, cut) == 0,
              "%s: got '%s', expected the first %zu bytes of '%s'", what, c.out.text, cut,
              full->out.text);
    CHECK_MSG(c.n_tokens == n_tokens, "%s: %d tokens, expected %d", what, c.n_tokens, n_tokens);
    edgelm_timings t;
    edgelm_session_timings(s, &t);
    CHECK(t.n_generated_tokens == c.n_tokens);
}

static void test_stops(const edgelm_model *m, const char *prompt) {
    edgelm_session *s = test_new_session(m, 256, 0);
    if (s == NULL) {
        return;
    }
    collected full;
    memset(&full, 0, sizeof full);
    edgelm_generate_params gp = test_greedy_params(prompt, 40);
    CHECK(edgelm_generate(s, &gp, collect, &full, NULL) == EDGELM_OK);
    CHECK(full.out.len > 8);
    char stop[64];
    int n_spanning = 0;
    /* stop strings that span a token boundary: the end of one piece and the start of the next */
    for (int t = 1; t + 1 < full.n_tokens && t < MAX_PIECES - 1 && n_spanning < 6; t++) {
        size_t b = full.piece_end[t];
        if (b < 2 || b + 2 > full.out.len || full.piece_end[t - 1] + 2 > b ||
            full.piece_end[t + 1] < b + 2) {
            continue;
        }
        memcpy(stop, full.out.text + b - 2, 4);
        stop[4] = '\0';
        if (strlen(stop) != 4) {
            continue; /* a NUL byte in the text */
        }
        const char *stops[1] = {stop};
        check_stop(s, prompt, 40, &full, stops, 1, "spanning stop");
        n_spanning++;
    }
    CHECK_MSG(n_spanning > 0, "no token boundary to test a spanning stop string on");
    /* the very first bytes: nothing is delivered */
    memcpy(stop, full.out.text, 3);
    stop[3] = '\0';
    if (strlen(stop) == 3) {
        const char *stops[1] = {stop};
        check_stop(s, prompt, 40, &full, stops, 1, "stop at the start");
    }
    /* a stop that begins to match but never completes: everything is delivered in the end */
    snprintf(stop, sizeof stop, "%.5s\x01", full.out.text + full.out.len - 5);
    {
        const char *stops[1] = {stop};
        check_stop(s, prompt, 40, &full, stops, 1, "unfinished stop at the end");
    }
    snprintf(stop, sizeof stop, "%.4s\x01", full.out.text + full.out.len / 2);
    {
        const char *stops[2] = {stop, "\x02\x03"};
        check_stop(s, prompt, 40, &full, stops, 2, "unfinished stop in the middle");
    }
    /* several stops: the earliest in the text wins */
    char late[16], early[16];
    snprintf(late, sizeof late, "%.3s", full.out.text + full.out.len * 3 / 4);
    snprintf(early, sizeof early, "%.3s", full.out.text + full.out.len / 4);
    if (strlen(late) == 3 && strlen(early) == 3) {
        const char *stops[2] = {late, early};
        check_stop(s, prompt, 40, &full, stops, 2, "two stops");
    }
    /* refused: empty or NULL stop strings, a stop list without entries */
    const char *bad1[1] = {""};
    gp.stop = bad1;
    gp.n_stop = 1;
    CHECK(edgelm_generate(s, &gp, collect, &full, NULL) == EDGELM_ERR_INVALID_ARGUMENT);
    const char *bad2[1] = {NULL};
    gp.stop = bad2;
    CHECK(edgelm_generate(s, &gp, collect, &full, NULL) == EDGELM_ERR_INVALID_ARGUMENT);
    gp.stop = NULL;
    CHECK(edgelm_generate(s, &gp, collect, &full, NULL) == EDGELM_ERR_INVALID_ARGUMENT);
    gp.n_stop = -1;
    CHECK(edgelm_generate(s, &gp, collect, &full, NULL) == EDGELM_ERR_INVALID_ARGUMENT);
    edgelm_session_free(s);
}

/* Minimal JSON check: an object, balanced outside strings, nothing after it. */
static bool json_object_shape(const char *s, size_t n) {
    if (n == 0 || s[0] != '{') {
        return false;
    }
    int depth = 0;
    test_json_scan scan = {false, false};
    for (size_t i = 0; i < n; i++) {
        const char ch = s[i];
        if (test_json_scan_string(&scan, ch)) {
            continue;
        }
        if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (--depth == 0) {
                return i + 1 == n;
            }
        }
    }
    return false;
}

static void test_json(const edgelm_model *m) {
    edgelm_session *s = test_new_session(m, 256, 0);
    if (s == NULL) {
        return;
    }
    static const int budgets[] = {64, 24, 12, 8};
    for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
        for (uint64_t seed = 1; seed <= 3; seed++) {
            edgelm_generate_params gp = test_greedy_params("Once upon a time", budgets[b]);
            gp.format = EDGELM_FORMAT_JSON;
            gp.sampling.temperature = 1.0f;
            gp.sampling.seed = seed;
            collected c;
            memset(&c, 0, sizeof c);
            edgelm_finish_reason why;
            CHECK(edgelm_generate(s, &gp, collect, &c, &why) == EDGELM_OK);
            CHECK_MSG(why == EDGELM_FINISH_GRAMMAR, "budget %d seed %d: finish %d, text '%s'",
                      budgets[b], (int)seed, (int)why, c.out.text);
            CHECK_MSG(json_object_shape(c.out.text, c.out.len),
                      "budget %d seed %d: not an object: '%s'", budgets[b], (int)seed, c.out.text);
            CHECK(c.n_tokens <= budgets[b]);
        }
    }
    /* a schema: the required keys appear */
    edgelm_generate_params gp = test_greedy_params("Once upon a time", 64);
    gp.format = EDGELM_FORMAT_JSON_SCHEMA;
    gp.json_schema = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
                     "\"ok\":{\"type\":\"boolean\"}},\"required\":[\"name\",\"ok\"]}";
    collected c;
    memset(&c, 0, sizeof c);
    edgelm_finish_reason why;
    CHECK(edgelm_generate(s, &gp, collect, &c, &why) == EDGELM_OK);
    CHECK(why == EDGELM_FINISH_GRAMMAR && json_object_shape(c.out.text, c.out.len));
    CHECK_MSG(strstr(c.out.text, "\"name\"") != NULL && strstr(c.out.text, "\"ok\"") != NULL,
              "'%s'", c.out.text);
    /* a budget below the schema's shortest value is refused up front, naming the need; the
     * smallest budget that is not refused gives a complete value */
    gp.json_schema = "{\"type\":\"object\",\"properties\":{\"a_rather_long_key_name\":"
                     "{\"type\":\"string\"},\"another_long_key\":{\"type\":\"integer\"}},"
                     "\"required\":[\"a_rather_long_key_name\",\"another_long_key\"]}";
    int32_t fits = -1;
    for (int32_t budget = 1; budget <= 64 && fits < 0; budget++) {
        gp.n_predict = budget;
        memset(&c, 0, sizeof c);
        const edgelm_status st = edgelm_generate(s, &gp, collect, &c, &why);
        if (st == EDGELM_ERR_INVALID_ARGUMENT) {
            CHECK_MSG(strstr(edgelm_session_errmsg(s), "too small") != NULL &&
                          strstr(edgelm_session_errmsg(s), "schema") != NULL,
                      "budget %d: '%s'", (int)budget, edgelm_session_errmsg(s));
            CHECK(c.out.len == 0);
            continue;
        }
        CHECK_MSG(st == EDGELM_OK, "budget %d: %s", (int)budget, edgelm_session_errmsg(s));
        CHECK_MSG(why == EDGELM_FINISH_GRAMMAR && json_object_shape(c.out.text, c.out.len),
                  "budget %d: finish %d, '%s'", (int)budget, (int)why, c.out.text);
        CHECK(strstr(c.out.text, "\"another_long_key\"") != NULL);
        fits = budget;
    }
    CHECK_MSG(fits > 4, "the shortest value should need several tokens (fits at %d)", (int)fits);
    gp.n_predict = 64;
    /* bad schemas and arguments */
    gp.json_schema = "{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"bogus\"}}}";
    CHECK(edgelm_generate(s, &gp, collect, &c, &why) == EDGELM_ERR_BAD_SCHEMA);
    CHECK(strstr(edgelm_session_errmsg(s), "schema") != NULL);
    gp.json_schema = "{not json";
    CHECK(edgelm_generate(s, &gp, collect, &c, &why) == EDGELM_ERR_BAD_SCHEMA);
    gp.json_schema = NULL;
    CHECK(edgelm_generate(s, &gp, collect, &c, &why) == EDGELM_ERR_INVALID_ARGUMENT);
    gp.format = (edgelm_output_format)7;
    CHECK(edgelm_generate(s, &gp, collect, &c, &why) == EDGELM_ERR_INVALID_ARGUMENT);
    /* stop strings apply to JSON output too */
    gp = test_greedy_params("Once upon a time", 64);
    gp.format = EDGELM_FORMAT_JSON;
    const char *stops[1] = {"\""};
    gp.stop = stops;
    gp.n_stop = 1;
    memset(&c, 0, sizeof c);
    CHECK(edgelm_generate(s, &gp, collect, &c, &why) == EDGELM_OK);
    CHECK(why == EDGELM_FINISH_STOP_STRING || why == EDGELM_FINISH_GRAMMAR);
    CHECK(strchr(c.out.text, '"') == NULL);
    edgelm_session_free(s);
}

int main(void) {
    edgelm_model *m = test_gen_model("options-tiny.gguf", "--preset tiny --seed 11");
    if (m != NULL) {
        test_stops(m, "the cat sat on the mat");
        test_json(m);
    }
    edgelm_model_free(m);
    int skipped = 0;
    char path[1024];
    if (test_model_path("stories260K.gguf", path, sizeof path)) {
        m = test_load_model(path);
        if (m != NULL) {
            test_stops(m, "Once upon a time");
            test_json(m);
        }
        edgelm_model_free(m);
    } else {
        skipped++;
    }
    return test_finish("test_generate_options", skipped);
}
