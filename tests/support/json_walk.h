/* json_walk.h - helpers shared by test_json_grammar.c, test_json_schema.c and
 * test_json_generation.c (header-only, static functions): loading real vocabularies into
 * json_vocab, a small SPM vocabulary built with gguf_writer, a byte vocabulary fed byte by byte,
 * random walks that pick uniformly among allowed tokens under a token budget
 * (forcing the closing sequence when needed), and independent checks of the output: cJSON
 * parse, strict UTF-8, the whitespace rule, and a small validator for the supported keywords.
 */
#ifndef EDGELM_TEST_JSON_WALK_H
#define EDGELM_TEST_JSON_WALK_H

#include "format/gguf.h"
#include "gguf_writer.h"
#include "spm_vocab.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "json/json_closing.h"
#include "json/json_grammar.h"
#include "json/json_mask.h"
#include "json/json_schema.h"
#include "json/json_vocab.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline uint64_t jw_rand(uint64_t *s) {
    /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- vocabularies --------------------------------------------------------------------------- */

typedef struct jw_vocab {
    char name[64];
    tokenizer *tok;
    json_vocab *vocab;
} jw_vocab;

static inline void jw_vocab_free(jw_vocab *v) {
    json_vocab_free(v->vocab);
    tokenizer_free(v->tok);
    memset(v, 0, sizeof *v);
}

static inline bool jw_vocab_from_memory(jw_vocab *out, const char *name, const uint8_t *data,
                                        size_t size) {
    char err[256];
    gguf_file gf;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name);
    if (gguf_parse(data, size, &gf, err, sizeof err) != EDGELM_OK) {
        fprintf(stderr, "%s: %s\n", name, err);
        return false;
    }
    edgelm_status st = tokenizer_create(&gf, &out->tok, err, sizeof err);
    gguf_free(&gf);
    if (st != EDGELM_OK) {
        fprintf(stderr, "%s: %s\n", name, err);
        return false;
    }
    if (json_vocab_create(out->tok, &out->vocab) != EDGELM_OK) {
        tokenizer_free(out->tok);
        return false;
    }
    return true;
}

/* A shared model's vocabulary; false (after a loud SKIP line) when the file is absent. */
static inline bool jw_vocab_load(jw_vocab *out, const char *relative) {
    char path[1024];
    if (!test_model_path(relative, path, sizeof path)) {
        return false;
    }
    size_t size;
    unsigned char *data = test_read_file(path, &size);
    if (data == NULL) {
        return false;
    }
    const char *slash = strrchr(relative, '/');
    bool ok = jw_vocab_from_memory(out, slash ? slash + 1 : relative, data, size);
    free(data);
    return ok;
}

/* The next shared vocabulary the walks run over (stories260K and llama.cpp's vocab fixtures,
 * smallest first) into jv, from index *next on: *next is left at its index; each one absent adds
 * 1 to *skipped (after a loud SKIP line). False when none is left. */
static inline bool jw_vocab_next(jw_vocab *jv, size_t *next, int *skipped) {
    static const char *const files[] = {"stories260K.gguf",
                                        "vocab/ggml-vocab-llama-spm.gguf",
                                        "vocab/ggml-vocab-deepseek-coder.gguf",
                                        "vocab/ggml-vocab-gpt-2.gguf",
                                        "vocab/ggml-vocab-deepseek-llm.gguf",
                                        "vocab/ggml-vocab-llama-bpe.gguf",
                                        "vocab/ggml-vocab-qwen2.gguf"};
    for (; *next < sizeof files / sizeof files[0]; (*next)++) {
        if (jw_vocab_load(jv, files[*next])) {
            return true;
        }
        (*skipped)++;
    }
    return false;
}

/* A small SentencePiece vocabulary with every byte, JSON-ish pieces that span several lexemes
 * and a few multi-byte characters. */
static inline bool jw_vocab_small(jw_vocab *out) {
    static const char *const pieces[] = {"{",
                                         "}",
                                         "[",
                                         "]",
                                         ",",
                                         ":",
                                         "\"",
                                         "\":",
                                         "\",\"",
                                         "},{",
                                         "\"}",
                                         "\"]",
                                         "\\",
                                         "\\\"",
                                         "\\u00",
                                         "\\ud83d",
                                         "\\ude00",
                                         "true",
                                         "false",
                                         "null",
                                         "tr",
                                         "ue",
                                         "fal",
                                         "se",
                                         "nu",
                                         "ll",
                                         "12",
                                         "-0",
                                         ".5",
                                         "e+",
                                         "E-",
                                         "0",
                                         "1e",
                                         "\xe2\x96\x81\"",
                                         "\xe2\x96\x81{",
                                         "\xe2\x96\x81",
                                         "a",
                                         "ab",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80",
                                         "\"a\":",
                                         "[{",
                                         "}]",
                                         "]}",
                                         "\":\"",
                                         "\":[",
                                         "\":{",
                                         "\":1",
                                         ",\"",
                                         "\xe2\x96\x81\xe2\x96\x81",
                                         "\\n",
                                         "\\t",
                                         "x\"y",
                                         "null,",
                                         "true}",
                                         "0.",
                                         "00",
                                         "\n",
                                         "\t"};
    enum { N_PIECES = sizeof pieces / sizeof pieces[0] };
    enum { N = TEST_SPM_PIECE0 + N_PIECES };
    const char *tokens[N];
    float scores[N];
    int32_t types[N];
    test_spm_fixed_tokens(tokens, scores, types);
    for (int i = 0; i < N_PIECES; i++) {
        tokens[TEST_SPM_PIECE0 + i] = pieces[i];
        types[TEST_SPM_PIECE0 + i] = 1;
        scores[TEST_SPM_PIECE0 + i] = -1.0f - (float)i;
    }
    gguf_writer *w = test_spm_writer(tokens, scores, types, N, true);
    if (w == NULL) {
        return false;
    }
    uint8_t *data = NULL;
    size_t size = 0;
    bool ok = gguf_writer_write_memory(w, &data, &size) == EDGELM_OK &&
              jw_vocab_from_memory(out, "small-spm (gguf_writer)", data, size);
    if (!ok) {
        fprintf(stderr, "small vocab: %s\n", gguf_writer_errmsg(w));
    }
    free(data);
    gguf_writer_free(w);
    return ok;
}

/* The byte vocabulary: ids 0..255 are the single bytes, JW_BYTE_EOG the end token, then the
 * n_extra pieces. One CHECK that it was built. */
#define JW_BYTE_EOG 256

static inline json_vocab *jw_byte_vocab(char *const *extra, const size_t *extra_lens, int n_extra) {
    int n = JW_BYTE_EOG + 1 + n_extra;
    const char **pieces = malloc((size_t)n * sizeof *pieces);
    size_t *lens = malloc((size_t)n * sizeof *lens);
    uint8_t *eog = calloc((size_t)n, 1);
    static char bytes[256];
    json_vocab *v = NULL;
    if (pieces == NULL || lens == NULL || eog == NULL) {
        goto done;
    }
    for (int b = 0; b < 256; b++) {
        bytes[b] = (char)b;
        pieces[b] = &bytes[b];
        lens[b] = 1;
    }
    pieces[JW_BYTE_EOG] = "";
    lens[JW_BYTE_EOG] = 0;
    eog[JW_BYTE_EOG] = 1;
    for (int i = 0; i < n_extra; i++) {
        pieces[JW_BYTE_EOG + 1 + i] = extra[i];
        lens[JW_BYTE_EOG + 1 + i] = extra_lens[i];
    }
    CHECK(json_vocab_create_from_pieces(pieces, lens, n, eog, &v) == EDGELM_OK);
done:
    free(pieces);
    free(lens);
    free(eog);
    return v;
}

/* Feeds bytes as the byte vocabulary's single-byte tokens, with one CHECK per byte that allows
 * and accept agree; returns the index of the first refused byte, -1 if all were accepted. */
static inline long jw_feed_bytes(json_state *s, const char *bytes, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int32_t t = (uint8_t)bytes[i];
        bool a = json_state_allows(s, t);
        bool b = json_state_accept(s, t);
        CHECK(a == b);
        if (!b) {
            return (long)i;
        }
    }
    return -1;
}

/* ---- output checks -------------------------------------------------------------------------- */

/* Strict UTF-8 (RFC 3629), checked by decoding each sequence and testing its value - not by
 * the lead-byte table the engine's lexer uses, so the two stay independent: no overlong form,
 * no surrogate, nothing above U+10FFFF, no truncated sequence. */
static inline bool jw_utf8_valid(const unsigned char *s, size_t n) {
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000}; /* by sequence length */
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xE0) == 0xC0 ? 2
                     : (c & 0xF0) == 0xE0 ? 3
                     : (c & 0xF8) == 0xF0 ? 4
                                          : 0;
        if (len == 0 || len > n - i) {
            return false;
        }
        uint32_t cp = len == 1 ? c : c & (0x7Fu >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
            cp = cp << 6 | (s[i + k] & 0x3Fu);
        }
        if (cp < min_cp[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
            return false;
        }
        i += len;
    }
    return true;
}

/* No whitespace before or after the value, never two whitespace bytes in a row outside
 * strings. */
static inline bool jw_whitespace_ok(const char *s, size_t n) {
    test_json_scan scan = {false, false};
    bool prev_ws = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (test_json_scan_string(&scan, c)) {
            prev_ws = false;
            continue;
        }
        bool ws = c == ' ' || c == '\n' || c == '\r' || c == '\t';
        if (ws && (i == 0 || i == n - 1 || prev_ws)) {
            return false;
        }
        prev_ws = ws;
    }
    return true;
}

static inline size_t jw_utf8_chars(const char *s) {
    size_t n = 0;
    for (; *s; s++) {
        n += ((unsigned char)*s & 0xC0) != 0x80;
    }
    return n;
}

static inline bool jw_type_ok(const cJSON *v, const char *t) {
    if (strcmp(t, "object") == 0) {
        return cJSON_IsObject(v);
    }
    if (strcmp(t, "array") == 0) {
        return cJSON_IsArray(v);
    }
    if (strcmp(t, "string") == 0) {
        return cJSON_IsString(v);
    }
    if (strcmp(t, "number") == 0) {
        return cJSON_IsNumber(v);
    }
    if (strcmp(t, "integer") == 0) {
        return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
               v->valuedouble == floor(v->valuedouble);
    }
    if (strcmp(t, "boolean") == 0) {
        return cJSON_IsBool(v);
    }
    if (strcmp(t, "null") == 0) {
        return cJSON_IsNull(v);
    }
    return false;
}

/* Validates v against the supported keywords; with ordered, object keys must also follow the
 * order of "properties" (what edgelm promises). why gets the first failure. */
static inline bool jw_validate(const cJSON *v, const cJSON *schema, bool ordered, char *why,
                               size_t why_size) {
    if (cJSON_IsTrue(schema)) {
        return true;
    }
    if (!cJSON_IsObject(schema)) {
        snprintf(why, why_size, "schema false or not an object");
        return false;
    }
    const cJSON *k;
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "type")) != NULL) {
        bool ok = false;
        if (cJSON_IsString(k)) {
            ok = jw_type_ok(v, k->valuestring);
        } else {
            const cJSON *t;
            cJSON_ArrayForEach(t, k) { ok |= jw_type_ok(v, t->valuestring); }
        }
        if (!ok) {
            snprintf(why, why_size, "type");
            return false;
        }
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "enum")) != NULL) {
        bool ok = false;
        const cJSON *e;
        cJSON_ArrayForEach(e, k) { ok |= cJSON_Compare(v, e, true); }
        if (!ok) {
            snprintf(why, why_size, "enum");
            return false;
        }
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(schema, "const")) != NULL &&
        !cJSON_Compare(v, k, true)) {
        snprintf(why, why_size, "const");
        return false;
    }
    if (cJSON_IsString(v)) {
        size_t n = jw_utf8_chars(v->valuestring);
        if ((k = cJSON_GetObjectItemCaseSensitive(schema, "minLength")) &&
            n < (size_t)k->valuedouble) {
            snprintf(why, why_size, "minLength");
            return false;
        }
        if ((k = cJSON_GetObjectItemCaseSensitive(schema, "maxLength")) &&
            n > (size_t)k->valuedouble) {
            snprintf(why, why_size, "maxLength");
            return false;
        }
    }
    if (cJSON_IsArray(v)) {
        int n = cJSON_GetArraySize(v);
        if ((k = cJSON_GetObjectItemCaseSensitive(schema, "minItems")) && n < k->valueint) {
            snprintf(why, why_size, "minItems");
            return false;
        }
        if ((k = cJSON_GetObjectItemCaseSensitive(schema, "maxItems")) && n > k->valueint) {
            snprintf(why, why_size, "maxItems");
            return false;
        }
        if ((k = cJSON_GetObjectItemCaseSensitive(schema, "items")) != NULL) {
            const cJSON *e;
            cJSON_ArrayForEach(e, v) {
                if (!jw_validate(e, k, ordered, why, why_size)) {
                    return false;
                }
            }
        }
    }
    if (cJSON_IsObject(v)) {
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
        const cJSON *add = cJSON_GetObjectItemCaseSensitive(schema, "additionalProperties");
        const cJSON *req = cJSON_GetObjectItemCaseSensitive(schema, "required");
        const cJSON *r;
        cJSON_ArrayForEach(r, req) {
            if (cJSON_GetObjectItemCaseSensitive(v, r->valuestring) == NULL) {
                snprintf(why, why_size, "required %s", r->valuestring);
                return false;
            }
        }
        int last = -1;
        const cJSON *m;
        cJSON_ArrayForEach(m, v) {
            const cJSON *p = props ? cJSON_GetObjectItemCaseSensitive(props, m->string) : NULL;
            if (p != NULL) {
                int idx = 0;
                for (const cJSON *q = props->child; q != p; q = q->next) {
                    idx++;
                }
                if (ordered && idx <= last) {
                    snprintf(why, why_size, "property order at %s", m->string);
                    return false;
                }
                last = idx;
                if (!jw_validate(m, p, ordered, why, why_size)) {
                    return false;
                }
            } else if (add != NULL) {
                if (cJSON_IsFalse(add)) {
                    snprintf(why, why_size, "additional property %s", m->string);
                    return false;
                }
                if (!jw_validate(m, add, ordered, why, why_size)) {
                    return false;
                }
            }
        }
    }
    const cJSON *alts;
    if ((alts = cJSON_GetObjectItemCaseSensitive(schema, "anyOf")) != NULL ||
        (alts = cJSON_GetObjectItemCaseSensitive(schema, "oneOf")) != NULL) {
        bool one = strcmp(alts->string, "oneOf") == 0;
        int hits = 0;
        const cJSON *a;
        char tmp[128];
        cJSON_ArrayForEach(a, alts) { hits += jw_validate(v, a, ordered, tmp, sizeof tmp); }
        if (hits == 0 || (one && hits != 1)) {
            snprintf(why, why_size, "%s matched %d alternatives", alts->string, hits);
            return false;
        }
    }
    return true;
}

/* Every independent check of one finished output. schema may be NULL (plain JSON: an object at
 * the top level). */
static inline bool jw_check_output(const char *text, size_t len, const cJSON *schema, char *why,
                                   size_t why_size) {
    if (strlen(text) != len) {
        snprintf(why, why_size, "NUL byte in output");
        return false;
    }
    if (!jw_utf8_valid((const unsigned char *)text, len)) {
        snprintf(why, why_size, "invalid UTF-8");
        return false;
    }
    if (!jw_whitespace_ok(text, len)) {
        snprintf(why, why_size, "whitespace rule");
        return false;
    }
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithOpts(text, &end, 1);
    if (doc == NULL) {
        snprintf(why, why_size, "cJSON refuses it");
        return false;
    }
    bool ok = true;
    if (schema == NULL) {
        ok = cJSON_IsObject(doc);
        if (!ok) {
            snprintf(why, why_size, "top level is not an object");
        }
    } else {
        ok = jw_validate(doc, schema, true, why, why_size);
    }
    cJSON_Delete(doc);
    return ok;
}

/* ---- random walks --------------------------------------------------------------------------- */

typedef struct jw_stats {
    long walks, tokens, forced, masks, mask_checks, eog_ends, failures;
    long allows_calls;
    double allows_ms, accept_ms, mask_ms;
    size_t longest;
} jw_stats;

typedef struct jw_walker {
    const json_vocab *vocab;
    json_state *state;
    float *logits;
    int32_t *allowed;
    char *out;
    size_t out_cap;
} jw_walker;

/* A walker over v with its scratch (logits and allowed ids for n_vocab tokens) and no state yet;
 * false when out of memory. jw_walker_free frees the state too. */
static inline bool jw_walker_init(jw_walker *jw, const json_vocab *v) {
    memset(jw, 0, sizeof *jw);
    jw->vocab = v;
    jw->logits = malloc((size_t)v->n_vocab * sizeof *jw->logits);
    jw->allowed = malloc((size_t)v->n_vocab * sizeof *jw->allowed);
    return jw->logits != NULL && jw->allowed != NULL;
}

static inline void jw_walker_free(jw_walker *jw) {
    json_state_free(jw->state);
    free(jw->logits);
    free(jw->allowed);
    free(jw->out);
    memset(jw, 0, sizeof *jw);
}

/* Picks a token uniformly among the allowed ones: rejection sampling first, the mask when
 * that keeps failing. -1 when nothing is allowed. */
static inline int32_t jw_pick(jw_walker *jw, uint64_t *rng, jw_stats *st, bool check_mask) {
    const json_vocab *v = jw->vocab;
    json_state *s = jw->state;
    int32_t n = v->n_vocab;
    for (int tries = 0; tries < 48 && !check_mask; tries++) {
        int32_t t = (int32_t)(jw_rand(rng) % (uint64_t)n);
        double t0 = test_now_ms();
        bool ok = json_state_allows(s, t);
        st->allows_ms += test_now_ms() - t0;
        st->allows_calls++;
        if (ok) {
            return t;
        }
    }
    for (int32_t t = 0; t < n; t++) {
        jw->logits[t] = 0.0f;
    }
    double t0 = test_now_ms();
    json_state_mask(s, jw->logits, n);
    st->mask_ms += test_now_ms() - t0;
    st->masks++;
    int32_t n_allowed = 0;
    for (int32_t t = 0; t < n; t++) {
        bool m = jw->logits[t] == 0.0f;
        if (check_mask) {
            bool a = json_state_allows(s, t);
            if (a != m) {
                st->failures++;
                fprintf(stderr, "%s: mask says %d, allows says %d for token %d\n", "mask", m, a, t);
            }
        }
        if (m) {
            jw->allowed[n_allowed++] = t;
        }
    }
    if (check_mask) {
        st->mask_checks++;
    }
    return n_allowed ? jw->allowed[jw_rand(rng) % (uint64_t)n_allowed] : -1;
}

/* One walk under a budget of tokens. Returns true and the NUL-terminated text in jw->out when
 * it ends with a value that may end there. Failures are counted and printed. */
static inline bool jw_walk(jw_walker *jw, uint64_t *rng, int budget, int mask_check_every,
                           jw_stats *st) {
    const json_vocab *v = jw->vocab;
    json_state *s = jw->state;
    size_t out_len = 0;
    json_state_reset(s);
    st->walks++;
    for (int step = 0; step < budget; step++) {
        if (json_state_complete(s)) {
            break;
        }
        int remaining = budget - step;
        bool check = mask_check_every > 0 && (jw_rand(rng) % (uint64_t)mask_check_every) == 0;
        int32_t t = jw_pick(jw, rng, st, check);
        size_t before = json_state_closing(s, NULL, 0);
        bool forced = false;
        if (t < 0 || json_state_closing_after(s, t) > (size_t)remaining - 1) {
            t = json_state_closing_token(s);
            forced = true;
            st->forced++;
            if (t < 0) {
                st->failures++;
                fprintf(stderr, "%s: no closing token (closing %zu)\n", "walk", before);
                return false;
            }
        }
        bool allowed = json_state_allows(s, t);
        double t0 = test_now_ms();
        bool accepted = json_state_accept(s, t);
        st->accept_ms += test_now_ms() - t0;
        st->tokens++;
        if (!allowed || !accepted) {
            st->failures++;
            fprintf(stderr, "walk: token %d allowed=%d accepted=%d\n", t, allowed, accepted);
            return false;
        }
        if (forced) {
            size_t after = json_state_closing(s, NULL, 0);
            if (!(after < before || json_state_complete(s))) {
                st->failures++;
                fprintf(stderr, "walk: forced token %d did not shorten the closing (%zu -> %zu)\n",
                        t, before, after);
                return false;
            }
        }
        if (v->is_eog[t]) {
            st->eog_ends++;
            break;
        }
        size_t len;
        const uint8_t *b = js_token_bytes(v, t, &len);
        if (!test_reserve(&jw->out, &jw->out_cap, out_len + len + 1)) {
            return false;
        }
        memcpy(jw->out + out_len, b, len);
        out_len += len;
    }
    if (jw->out == NULL) {
        jw->out = malloc(1);
        jw->out_cap = jw->out ? 1 : 0;
        if (jw->out == NULL) {
            return false;
        }
    }
    jw->out[out_len] = '\0';
    if (out_len > st->longest) {
        st->longest = out_len;
    }
    if (!json_state_complete(s) && !(v->eog >= 0 && json_state_allows(s, v->eog))) {
        st->failures++;
        fprintf(stderr, "walk: budget %d ended incomplete: %.200s\n", budget, jw->out);
        return false;
    }
    return true;
}

#endif /* EDGELM_TEST_JSON_WALK_H */
