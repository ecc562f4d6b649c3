/* json_parse.c - a small strict JSON reader for schema text (the engine has no dependencies),
 * and the compact serializer the schema compiler uses for enum values and property names.
 * Bounded: nesting at most JS_PARSE_MAX_DEPTH, text at most JS_SCHEMA_MAX_BYTES, every read
 * checked against the end. Strings are validated UTF-8 with \u escapes decoded (surrogate pairs
 * joined, lone surrogates refused). Not a general-purpose parser: no streaming, no comments.
 */
#include "json_parse.h"

#include "base/error_text.h"
#include "base/growable_array.h"

#include "tokenizer/unicode.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const unsigned char *p, *end, *start;
    char *err;
    size_t err_size;
    bool failed;
    bool oom;
} parser;

static bool perr(parser *ps, const char *fmt, ...) {
    if (!ps->failed) {
        ps->failed = true;
        char where[32];
        snprintf(where, sizeof where, "offset %zu", (size_t)(ps->p - ps->start));
        va_list ap;
        va_start(ap, fmt);
        error_text_vformat(ps->err, ps->err_size, where, fmt, ap);
        va_end(ap);
    }
    return false;
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) {
        ps->p++;
    }
}

static int hex_digit(unsigned c) {
    if (c >= '0' && c <= '9') {
        return (int)(c - '0');
    }
    if (c >= 'a' && c <= 'f') {
        return (int)(c - 'a' + 10);
    }
    if (c >= 'A' && c <= 'F') {
        return (int)(c - 'A' + 10);
    }
    return -1;
}

static bool read_hex4(parser *ps, unsigned *out) {
    if (ps->end - ps->p < 4) {
        return perr(ps, "truncated \\u escape");
    }
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(ps->p[i]);
        if (d < 0) {
            return perr(ps, "bad hex digit in \\u escape");
        }
        v = v * 16 + (unsigned)d;
    }
    ps->p += 4;
    *out = v;
    return true;
}

/* cp is a scalar value (<= U+10FFFF, not a surrogate): the caller joined and checked pairs. */
static bool put_utf8(byte_buffer *b, unsigned cp) {
    uint8_t u[4];
    return byte_buffer_append(b, u, unicode_utf8_encode(cp, u));
}

/* Length of the valid UTF-8 sequence at p (1..4), 0 if invalid (RFC 3629 table 3-7). */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) {
            return 0;
        }
    }
    return n;
}

/* After the opening quote; decoded bytes into b. */
static bool parse_string_raw(parser *ps, byte_buffer *b) {
    for (;;) {
        if (ps->p >= ps->end) {
            return perr(ps, "unterminated string");
        }
        unsigned c = *ps->p;
        if (c == '"') {
            ps->p++;
            if (!byte_buffer_append(b, "", 0)) {
                ps->oom = true;
                return perr(ps, "out of memory");
            }
            return true;
        }
        if (c < 0x20) {
            return perr(ps, "control character in string");
        }
        if (c == '\\') {
            ps->p++;
            if (ps->p >= ps->end) {
                return perr(ps, "truncated escape");
            }
            unsigned e = *ps->p++;
            const char *simple = NULL;
            switch (e) {
            case '"':
                simple = "\"";
                break;
            case '\\':
                simple = "\\";
                break;
            case '/':
                simple = "/";
                break;
            case 'b':
                simple = "\b";
                break;
            case 'f':
                simple = "\f";
                break;
            case 'n':
                simple = "\n";
                break;
            case 'r':
                simple = "\r";
                break;
            case 't':
                simple = "\t";
                break;
            case 'u':
                break;
            default:
                ps->p--;
                return perr(ps, "bad escape '\\%c'", (char)e);
            }
            bool ok;
            if (simple != NULL) {
                ok = byte_buffer_append(b, simple, 1);
            } else {
                unsigned cp = 0;
                if (!read_hex4(ps, &cp)) {
                    return false;
                }
                if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return perr(ps, "lone low surrogate");
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo = 0;
                    if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                        return perr(ps, "high surrogate without its low half");
                    }
                    ps->p += 2;
                    if (!read_hex4(ps, &lo)) {
                        return false;
                    }
                    if (lo < 0xDC00 || lo > 0xDFFF) {
                        return perr(ps, "high surrogate without its low half");
                    }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                ok = put_utf8(b, cp);
            }
            if (!ok) {
                ps->oom = true;
                return perr(ps, "out of memory");
            }
            continue;
        }
        size_t n = utf8_seq(ps->p, ps->end);
        if (n == 0) {
            return perr(ps, "invalid UTF-8 in string");
        }
        if (!byte_buffer_append(b, ps->p, n)) {
            ps->oom = true;
            return perr(ps, "out of memory");
        }
        ps->p += n;
    }
}

static bool parse_number(parser *ps, js_value *out) {
    const unsigned char *s = ps->p;
    const unsigned char *e = ps->end;
    const unsigned char *p = s;
    if (p < e && *p == '-') {
        p++;
    }
    if (p >= e || *p < '0' || *p > '9') {
        return perr(ps, "bad number");
    }
    if (*p == '0') {
        p++;
    } else {
        while (p < e && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    if (p < e && *p == '.') {
        p++;
        if (p >= e || *p < '0' || *p > '9') {
            ps->p = p;
            return perr(ps, "bad number: digit expected after '.'");
        }
        while (p < e && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) {
            p++;
        }
        if (p >= e || *p < '0' || *p > '9') {
            ps->p = p;
            return perr(ps, "bad number: digit expected in exponent");
        }
        while (p < e && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    size_t n = (size_t)(p - s);
    out->str = malloc(n + 1);
    if (out->str == NULL) {
        ps->oom = true;
        return perr(ps, "out of memory");
    }
    memcpy(out->str, s, n);
    out->str[n] = '\0';
    out->len = n;
    out->type = JV_NUMBER;
    ps->p = p;
    return true;
}

static bool parse_value(parser *ps, js_value *out, int depth);

static bool parse_array(parser *ps, js_value *out, int depth) {
    size_t cap = 0;
    out->type = JV_ARRAY;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return true;
    }
    for (;;) {
        if (!array_reserve(&out->items, &cap, out->len + 1, sizeof *out->items, 4)) {
            ps->oom = true;
            return perr(ps, "out of memory");
        }
        memset(&out->items[out->len], 0, sizeof out->items[0]);
        out->len++;
        if (!parse_value(ps, &out->items[out->len - 1], depth + 1)) {
            return false;
        }
        skip_ws(ps);
        if (ps->p >= ps->end) {
            return perr(ps, "unterminated array");
        }
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p == ']') {
            ps->p++;
            return true;
        }
        return perr(ps, "',' or ']' expected");
    }
}

static bool parse_object(parser *ps, js_value *out, int depth) {
    size_t cap_items = 0, cap_keys = 0, cap_key_lens = 0;
    out->type = JV_OBJECT;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return true;
    }
    for (;;) {
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != '"') {
            return perr(ps, "member name expected");
        }
        const unsigned char *key_at = ps->p;
        ps->p++;
        byte_buffer key = {0};
        if (!parse_string_raw(ps, &key)) {
            free(key.data);
            return false;
        }
        for (size_t i = 0; i < out->len; i++) {
            if (out->key_lens[i] == key.len && memcmp(out->keys[i], key.data, key.len) == 0) {
                free(key.data);
                ps->p = key_at;
                return perr(ps, "duplicate member name");
            }
        }
        const size_t need = out->len + 1;
        if (!array_reserve(&out->items, &cap_items, need, sizeof *out->items, 4) ||
            !array_reserve(&out->keys, &cap_keys, need, sizeof *out->keys, 4) ||
            !array_reserve(&out->key_lens, &cap_key_lens, need, sizeof *out->key_lens, 4)) {
            free(key.data);
            ps->oom = true;
            return perr(ps, "out of memory");
        }
        memset(&out->items[out->len], 0, sizeof out->items[0]);
        out->keys[out->len] = key.data;
        out->key_lens[out->len] = key.len;
        out->len++;
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            return perr(ps, "':' expected");
        }
        ps->p++;
        if (!parse_value(ps, &out->items[out->len - 1], depth + 1)) {
            return false;
        }
        skip_ws(ps);
        if (ps->p >= ps->end) {
            return perr(ps, "unterminated object");
        }
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p == '}') {
            ps->p++;
            return true;
        }
        return perr(ps, "',' or '}' expected");
    }
}

static bool match_word(parser *ps, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) {
        return perr(ps, "unexpected character");
    }
    ps->p += n;
    return true;
}

static bool parse_value(parser *ps, js_value *out, int depth) {
    if (depth > JS_PARSE_MAX_DEPTH) {
        return perr(ps, "nesting deeper than %d", JS_PARSE_MAX_DEPTH);
    }
    skip_ws(ps);
    if (ps->p >= ps->end) {
        return perr(ps, "value expected");
    }
    switch (*ps->p) {
    case '{':
        ps->p++;
        return parse_object(ps, out, depth);
    case '[':
        ps->p++;
        return parse_array(ps, out, depth);
    case '"': {
        ps->p++;
        byte_buffer b = {0};
        if (!parse_string_raw(ps, &b)) {
            free(b.data);
            return false;
        }
        out->type = JV_STRING;
        out->str = b.data;
        out->len = b.len;
        return true;
    }
    case 't':
        out->type = JV_TRUE;
        return match_word(ps, "true");
    case 'f':
        out->type = JV_FALSE;
        return match_word(ps, "false");
    case 'n':
        out->type = JV_NULL;
        return match_word(ps, "null");
    default:
        return parse_number(ps, out);
    }
}

edgelm_status jv_parse(const char *text, size_t len, js_value *out, char *err, size_t err_size) {
    memset(out, 0, sizeof *out);
    if (err_size > 0) {
        err[0] = '\0';
    }
    if (text == NULL && len > 0) {
        snprintf(err, err_size, "no schema text");
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    if (len > JS_SCHEMA_MAX_BYTES) {
        snprintf(err, err_size, "schema text of %zu bytes (at most %u)", len,
                 (unsigned)JS_SCHEMA_MAX_BYTES);
        return EDGELM_ERR_BAD_SCHEMA;
    }
    parser ps = {(const unsigned char *)text,
                 (const unsigned char *)text + len,
                 (const unsigned char *)text,
                 err,
                 err_size,
                 false,
                 false};
    bool ok = parse_value(&ps, out, 1);
    if (ok) {
        skip_ws(&ps);
        if (ps.p != ps.end) {
            ok = perr(&ps, "text after the value");
        }
    }
    if (!ok) {
        jv_free(out);
        memset(out, 0, sizeof *out);
        return ps.oom ? EDGELM_ERR_OUT_OF_MEMORY : EDGELM_ERR_BAD_SCHEMA;
    }
    return EDGELM_OK;
}

void jv_free(js_value *v) {
    if (v == NULL) {
        return;
    }
    free(v->str);
    if (v->items != NULL) {
        for (size_t i = 0; i < v->len; i++) {
            jv_free(&v->items[i]);
        }
    }
    if (v->keys != NULL) {
        for (size_t i = 0; i < v->len; i++) {
            free(v->keys[i]);
        }
    }
    free(v->items);
    free(v->keys);
    free(v->key_lens);
    memset(v, 0, sizeof *v);
}

/* ---- compact serialization ------------------------------------------------------------------ */

bool js_serialize_string(const char *s, size_t len, byte_buffer *b) {
    if (!byte_buffer_append(b, "\"", 1)) {
        return false;
    }
    size_t run = 0; /* bytes copied verbatim, flushed before each escape */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[8];
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            if (c < 0x20) {
                snprintf(u, sizeof u, "\\u%04x", (unsigned)c);
                esc = u;
            }
            break;
        }
        if (esc == NULL) {
            run++;
            continue;
        }
        if (!byte_buffer_append(b, s + i - run, run) || !byte_buffer_append(b, esc, strlen(esc))) {
            return false;
        }
        run = 0;
    }
    return byte_buffer_append(b, s + len - run, run) && byte_buffer_append(b, "\"", 1);
}

bool jv_serialize(const js_value *v, byte_buffer *b) {
    switch (v->type) {
    case JV_NULL:
        return byte_buffer_append(b, "null", 4);
    case JV_FALSE:
        return byte_buffer_append(b, "false", 5);
    case JV_TRUE:
        return byte_buffer_append(b, "true", 4);
    case JV_NUMBER:
        return byte_buffer_append(b, v->str, v->len);
    case JV_STRING:
        return js_serialize_string(v->str, v->len, b);
    case JV_ARRAY:
        if (!byte_buffer_append(b, "[", 1)) {
            return false;
        }
        for (size_t i = 0; i < v->len; i++) {
            if ((i > 0 && !byte_buffer_append(b, ",", 1)) || !jv_serialize(&v->items[i], b)) {
                return false;
            }
        }
        return byte_buffer_append(b, "]", 1);
    case JV_OBJECT:
        if (!byte_buffer_append(b, "{", 1)) {
            return false;
        }
        for (size_t i = 0; i < v->len; i++) {
            if ((i > 0 && !byte_buffer_append(b, ",", 1)) ||
                !js_serialize_string(v->keys[i], v->key_lens[i], b) ||
                !byte_buffer_append(b, ":", 1) || !jv_serialize(&v->items[i], b)) {
                return false;
            }
        }
        return byte_buffer_append(b, "}", 1);
    default:
        return false;
    }
}
