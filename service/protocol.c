/* protocol.c - request validation and message building for edgelmd (see protocol.h).
 * Every payload goes through cJSON_ParseWithLength (it need not be NUL-terminated); every field
 * is checked for type and range and a failure names the field. Unknown and repeated fields are
 * refused so a typo ("max_token") cannot silently fall back to a default.
 */
#include "protocol.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const error_names[] = {
    "ok",          "invalid_request", "too_large", "busy",     "unsupported",
    "model_error", "deadline",        "cancelled", "internal",
};

const char *svc_error_code_name(svc_error_code code) {
    return (size_t)code < sizeof error_names / sizeof error_names[0] ? error_names[code]
                                                                     : "internal";
}

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 when it is invalid (overlong
 * forms, surrogates and code points above U+10FFFF are invalid, RFC 3629). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) {
        return 1;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

static bool utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(p + i, n - i);
        if (k == 0) {
            return false;
        }
        i += k;
    }
    return true;
}

/* Whether a JSON text (already known to parse) has U+0000 in one of its strings: a \u0000
 * escape, or a raw NUL byte (invalid JSON that cJSON nevertheless accepts). cJSON hands strings
 * out as C strings, so "a\u0000b" would silently become "a": an id, a key, a role or a reply
 * topic other than the one sent. */
static bool has_nul_in_string(const char *p, size_t n) {
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        if (!in_string) {
            in_string = p[i] == '"';
        } else if (p[i] == '"') {
            in_string = false;
        } else if (p[i] == '\0') {
            return true;
        } else if (p[i] == '\\' && i + 1 < n) {
            if (p[i + 1] == 'u' && n - i >= 6 && memcmp(p + i + 2, "0000", 4) == 0) {
                return true;
            }
            i++; /* the escaped character: an escaped quote does not end the string */
        }
    }
    return false;
}

char *protocol_utf8_clean(const char *s, size_t len, size_t *out_len) {
    if (len > (SIZE_MAX - 1) / 3) {
        return NULL;
    }
    char *out = malloc(len * 3 + 1); /* each bad byte becomes 3 bytes of U+FFFD */
    if (out == NULL) {
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq(p + i, len - i);
        if (k == 0 || (k == 1 && p[i] == 0)) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += 1;
        } else {
            memcpy(out + o, p + i, k);
            o += k;
            i += k;
        }
    }
    out[o] = '\0';
    if (out_len != NULL) {
        *out_len = o;
    }
    return out;
}

bool protocol_topic_ok(const char *s, size_t len) {
    if (len == 0 || len > PROTOCOL_TOPIC_MAX || s[0] == '$' || !utf8_valid(s, len)) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+' || s[i] == '#' || s[i] == '\0') {
            return false;
        }
    }
    return true;
}

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static svc_error_code
fail(char *msg, size_t msg_size, svc_error_code code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msg_size, fmt, ap);
    va_end(ap);
    return code;
}

static bool is_integer(const cJSON *v, double lo, double hi, int64_t *out) {
    if (!cJSON_IsNumber(v)) {
        return false;
    }
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < lo || d > hi) {
        return false;
    }
    *out = (int64_t)d;
    return true;
}

static bool is_number(const cJSON *v, double lo, double hi, double *out) {
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi) {
        return false;
    }
    *out = v->valuedouble;
    return true;
}

/* A request id goes into topic names: printable UTF-8 without / + # and at most
 * PROTOCOL_ID_MAX bytes. */
static bool id_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > PROTOCOL_ID_MAX || !utf8_valid(s, n)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F || c == '/' || c == '+' || c == '#') {
            return false;
        }
    }
    return true;
}

static const char *const known_fields[] = {
    "v",     "id",   "prompt", "messages", "max_tokens", "temperature",  "top_p",       "top_k",
    "min_p", "seed", "stop",   "stream",   "format",     "cache_prompt", "deadline_ms", "reply_to",
};

static svc_error_code parse_messages(const cJSON *v, svc_request *out, char *msg, size_t msg_size) {
    if (!cJSON_IsArray(v)) {
        return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                    "field 'messages': expected an array of {\"role\",\"content\"} objects");
    }
    int n = cJSON_GetArraySize(v);
    if (n < 1 || n > PROTOCOL_MAX_MESSAGES) {
        return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                    "field 'messages': expected 1..%d messages, got %d", PROTOCOL_MAX_MESSAGES, n);
    }
    out->messages = calloc((size_t)n, sizeof *out->messages);
    if (out->messages == NULL) {
        return fail(msg, msg_size, SVC_ERR_INTERNAL, "out of memory");
    }
    int i = 0;
    for (const cJSON *m = v->child; m != NULL; m = m->next, i++) {
        if (!cJSON_IsObject(m)) {
            return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                        "field 'messages[%d]': expected an object", i);
        }
        const cJSON *role = NULL, *content = NULL;
        for (const cJSON *f = m->child; f != NULL; f = f->next) {
            if (strcmp(f->string, "role") == 0 && role == NULL) {
                role = f;
            } else if (strcmp(f->string, "content") == 0 && content == NULL) {
                content = f;
            } else {
                return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                            "field 'messages[%d].%.64s': unknown or repeated field", i, f->string);
            }
        }
        if (!cJSON_IsString(role) ||
            (strcmp(role->valuestring, "system") != 0 && strcmp(role->valuestring, "user") != 0 &&
             strcmp(role->valuestring, "assistant") != 0)) {
            return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                        "field 'messages[%d].role': expected \"system\", \"user\" or "
                        "\"assistant\"",
                        i);
        }
        if (!cJSON_IsString(content) ||
            !utf8_valid(content->valuestring, strlen(content->valuestring))) {
            return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                        "field 'messages[%d].content': expected a UTF-8 string", i);
        }
        out->messages[i].role = strdup(role->valuestring);
        out->messages[i].content = strdup(content->valuestring);
        out->n_messages = (size_t)i + 1;
        if (out->messages[i].role == NULL || out->messages[i].content == NULL) {
            return fail(msg, msg_size, SVC_ERR_INTERNAL, "out of memory");
        }
    }
    return SVC_OK;
}

static svc_error_code parse_field(const cJSON *v, const char *name, const svc_limits *lim,
                                  svc_request *out, char *msg, size_t msg_size) {
    int64_t i64;
    double d;
    if (strcmp(name, "v") == 0) {
        if (!is_integer(v, -1e15, 1e15, &i64)) {
            return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                        "field 'v': expected the integer %d", PROTOCOL_VERSION);
        }
        if (i64 != PROTOCOL_VERSION) {
            return fail(msg, msg_size, SVC_ERR_UNSUPPORTED,
                        "field 'v': protocol version %lld is not supported (this node speaks %d)",
                        (long long)i64, PROTOCOL_VERSION);
        }
    } else if (strcmp(name, "id") == 0) {
        /* handled before the loop */
    } else if (strcmp(name, "prompt") == 0) {
        if (!cJSON_IsString(v) || !utf8_valid(v->valuestring, strlen(v->valuestring))) {
            return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                        "field 'prompt': expected a UTF-8 string");
        }
        out->prompt = strdup(v->valuestring);
        if (out->prompt == NULL) {
            return fail(msg, msg_size, SVC_ERR_INTERNAL, "out of memory");
        }
    } else if (strcmp(name, "messages") == 0) {
        return parse_messages(v, out, msg, msg_size);
    } else if (strcmp(name, "max_tokens") == 0) {
        if (!is_integer(v, 1, lim->max_tokens, &i64)) {
            return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                        "field 'max_tokens': expected an integer 1..%d", (int)lim->max_tokens);
        }
        out->max_tokens = (int32_t)i64;
    } else if (strcmp(name, "temperature") == 0) {
        if (!is_number(v, 0, 5, &d)) {
            return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                        "field 'temperature': expected a number 0..5 (0 = greedy)");
        }
        out->temperature = d;
    } else if (strcmp(name, "top_p") == 0) {
        if (!is_number(v, 0, 1, &d)) {
            return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                        "field 'top_p': expected a number 0..1");
        }
        out->top_p = d;
    } else if (strcmp(name, "top_k") == 0) {
        if (!is_integer(v, 0, 1000000, &i64)) {
            return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                        "field 'top_k': expected an integer 0..1000000 (0 = off)");
        }
        out->top_k = (int32_t)i64;
    } else if (strcmp(name, "min_p") == 0) {
        if (!is_number(v, 0, 1, &d)) {
            return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                        "field 'min_p': expected a number 0..1");
        }
        out->min_p = d;
    } else if (strcmp(name, "seed") == 0) {
        if (!is_integer(v, -1, 4294967295.0, &i64)) {
            return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                        "field 'seed': expected an integer 0..4294967295 or -1 (random)");
        }
        out->seed = i64;
    } else if (strcmp(name, "stop") == 0) {
        int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
        if (n < 0 || n > PROTOCOL_MAX_STOP) {
            return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                        "field 'stop': expected an array of at most %d strings", PROTOCOL_MAX_STOP);
        }
        int k = 0;
        for (const cJSON *s = v->child; s != NULL; s = s->next, k++) {
            size_t len = cJSON_IsString(s) ? strlen(s->valuestring) : 0;
            if (len == 0 || len > PROTOCOL_STOP_MAX || !utf8_valid(s->valuestring, len)) {
                return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                            "field 'stop[%d]': expected a UTF-8 string of 1..%d bytes", k,
                            PROTOCOL_STOP_MAX);
            }
            out->stop[k] = strdup(s->valuestring);
            if (out->stop[k] == NULL) {
                return fail(msg, msg_size, SVC_ERR_INTERNAL, "out of memory");
            }
            out->n_stop = k + 1;
        }
    } else if (strcmp(name, "stream") == 0 || strcmp(name, "cache_prompt") == 0) {
        if (!cJSON_IsBool(v)) {
            return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                        "field '%s': expected true or false", name);
        }
        *(name[0] == 's' ? &out->stream : &out->cache_prompt) = cJSON_IsTrue(v);
    } else if (strcmp(name, "format") == 0) {
        if (cJSON_IsString(v) && strcmp(v->valuestring, "json") == 0) {
            out->format = SVC_FORMAT_JSON;
        } else if (cJSON_IsObject(v)) {
            out->format = SVC_FORMAT_JSON_SCHEMA;
            out->json_schema = cJSON_PrintUnformatted(v);
            if (out->json_schema == NULL) {
                return fail(msg, msg_size, SVC_ERR_INTERNAL, "out of memory");
            }
        } else {
            return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                        "field 'format': expected \"json\" or a JSON Schema object");
        }
    } else if (strcmp(name, "deadline_ms") == 0) {
        double hi = lim->max_deadline_ms > 0 ? lim->max_deadline_ms : 2147483647.0;
        if (!is_integer(v, 1, hi, &i64)) {
            return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                        "field 'deadline_ms': expected an integer 1..%.0f", hi);
        }
        out->deadline_ms = i64;
    } else if (strcmp(name, "reply_to") == 0) {
        /* validated before the loop, so that even a failing request is answered there */
    }
    return SVC_OK;
}

void protocol_request_free(svc_request *r) {
    if (r == NULL) {
        return;
    }
    free(r->prompt);
    for (size_t i = 0; i < r->n_messages; i++) {
        free(r->messages[i].role);
        free(r->messages[i].content);
    }
    free(r->messages);
    for (int32_t i = 0; i < r->n_stop; i++) {
        free(r->stop[i]);
    }
    free(r->json_schema);
    r->prompt = NULL;
    r->messages = NULL;
    r->n_messages = 0;
    r->n_stop = 0;
    r->json_schema = NULL;
}

svc_error_code protocol_parse_request(const void *payload, size_t len, const svc_limits *lim,
                                      const svc_sampling_defaults *d, svc_request *out, char *msg,
                                      size_t msg_size) {
    memset(out, 0, sizeof *out);
    out->max_tokens = d->max_tokens;
    out->temperature = d->temperature;
    out->top_p = d->top_p;
    out->top_k = d->top_k;
    out->min_p = d->min_p;
    out->seed = d->seed;
    out->cache_prompt = true;
    out->deadline_ms = lim->max_deadline_ms > 0 ? lim->max_deadline_ms : 0;
    msg[0] = '\0';
    if (len > (size_t)lim->max_payload_bytes) {
        return fail(msg, msg_size, SVC_ERR_TOO_LARGE,
                    "payload of %zu bytes exceeds the limit of %d bytes", len,
                    (int)lim->max_payload_bytes);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(payload, len, &end, false);
    svc_error_code code = SVC_OK;
    if (root == NULL) {
        size_t at = end != NULL ? (size_t)(end - (const char *)payload) : 0;
        return fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                    "payload is not valid JSON (near byte %zu)", at);
    }
    for (size_t at = (size_t)(end - (const char *)payload); at < len; at++) {
        char c = ((const char *)payload)[at];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '\0') {
            code = fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                        "payload is not valid JSON (text after the value at byte %zu)", at);
            goto done;
        }
    }
    if (!cJSON_IsObject(root)) {
        code = fail(msg, msg_size, SVC_ERR_INVALID_REQUEST, "payload must be a JSON object");
        goto done;
    }
    if (has_nul_in_string(payload, len)) {
        code = fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                    "payload: strings may not contain \\u0000 (U+0000)");
        goto done;
    }
    /* Addressing first, so that any later error can still be answered where it belongs. */
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (id != NULL) {
        if (!cJSON_IsString(id) || !id_ok(id->valuestring)) {
            code = fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                        "field 'id': expected a string of 1..%d printable bytes without / + #",
                        PROTOCOL_ID_MAX);
            goto done;
        }
        strcpy(out->id, id->valuestring);
        out->has_id = true;
    }
    const cJSON *reply = cJSON_GetObjectItemCaseSensitive(root, "reply_to");
    if (reply != NULL) {
        if (!cJSON_IsString(reply) ||
            !protocol_topic_ok(reply->valuestring, strlen(reply->valuestring))) {
            code = fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                        "field 'reply_to': expected a topic name of 1..%d bytes without "
                        "wildcards or a leading $",
                        PROTOCOL_TOPIC_MAX);
            goto done;
        }
        strcpy(out->reply_to, reply->valuestring);
    }
    for (const cJSON *f = root->child; f != NULL; f = f->next) {
        bool known = false;
        for (size_t k = 0; k < sizeof known_fields / sizeof known_fields[0]; k++) {
            known = known || strcmp(f->string, known_fields[k]) == 0;
        }
        if (!known) {
            code = fail(msg, msg_size, SVC_ERR_INVALID_REQUEST, "unknown field '%.64s'", f->string);
            goto done;
        }
        for (const cJSON *g = root->child; g != f; g = g->next) {
            if (strcmp(g->string, f->string) == 0) {
                code = fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                            "field '%.64s' appears more than once", f->string);
                goto done;
            }
        }
        code = parse_field(f, f->string, lim, out, msg, msg_size);
        if (code != SVC_OK) {
            goto done;
        }
    }
    if ((out->prompt == NULL) == (out->messages == NULL)) {
        code = fail(msg, msg_size, SVC_ERR_INVALID_REQUEST,
                    "exactly one of the fields 'prompt' and 'messages' is required");
        goto done;
    }
done:
    cJSON_Delete(root);
    return code;
}

bool protocol_parse_cancel(const void *payload, size_t len, char *id, size_t id_size, char *msg,
                           size_t msg_size) {
    cJSON *root = cJSON_ParseWithLength(payload, len);
    bool ok = false;
    if (root == NULL || !cJSON_IsObject(root)) {
        snprintf(msg, msg_size, "cancel payload is not a JSON object");
        goto done;
    }
    if (has_nul_in_string(payload, len)) {
        snprintf(msg, msg_size, "cancel: strings may not contain \\u0000 (U+0000)");
        goto done;
    }
    for (const cJSON *f = root->child; f != NULL; f = f->next) {
        if (strcmp(f->string, "v") != 0 && strcmp(f->string, "id") != 0) {
            snprintf(msg, msg_size, "cancel: unknown field '%.64s'", f->string);
            goto done;
        }
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (!cJSON_IsString(v) || !id_ok(v->valuestring) || strlen(v->valuestring) >= id_size) {
        snprintf(msg, msg_size, "cancel: field 'id': expected a request id string");
        goto done;
    }
    strcpy(id, v->valuestring);
    ok = true;
done:
    cJSON_Delete(root);
    return ok;
}

/* Milliseconds rounded to microseconds keep the JSON short and are all the precision there is. */
static double round3(double x) { return round(x * 1000.0) / 1000.0; }

static char *print_and_free(cJSON *root) {
    char *s = root != NULL ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

char *protocol_token_json(const char *id, int64_t seq, const char *text) {
    cJSON *root = cJSON_CreateObject();
    if (root == NULL || !cJSON_AddNumberToObject(root, "v", PROTOCOL_VERSION) ||
        !cJSON_AddStringToObject(root, "type", "token") ||
        !cJSON_AddStringToObject(root, "id", id) ||
        !cJSON_AddNumberToObject(root, "seq", (double)seq) ||
        !cJSON_AddStringToObject(root, "text", text)) {
        cJSON_Delete(root);
        return NULL;
    }
    return print_and_free(root);
}

char *protocol_result_json(const svc_result *r) {
    cJSON *root = cJSON_CreateObject();
    cJSON *usage = cJSON_CreateObject();
    cJSON *timings = cJSON_CreateObject();
    if (root == NULL || usage == NULL || timings == NULL) {
        goto fail;
    }
    cJSON_AddNumberToObject(root, "v", PROTOCOL_VERSION);
    cJSON_AddStringToObject(root, "type", "result");
    cJSON_AddStringToObject(root, "id", r->id);
    cJSON_AddStringToObject(root, "node", r->node);
    cJSON_AddStringToObject(root, "model", r->model);
    cJSON_AddStringToObject(root, "text", r->text);
    if (r->with_json) {
        cJSON *parsed = cJSON_ParseWithLength(r->text, strlen(r->text));
        cJSON_AddItemToObject(root, "json", parsed != NULL ? parsed : cJSON_CreateNull());
    }
    cJSON_AddStringToObject(root, "finish_reason", r->finish_reason);
    cJSON_AddNumberToObject(usage, "prompt_tokens", r->prompt_tokens);
    cJSON_AddNumberToObject(usage, "completion_tokens", r->completion_tokens);
    cJSON_AddNumberToObject(usage, "cached_tokens", r->cached_tokens);
    cJSON_AddItemToObject(root, "usage", usage);
    usage = NULL;
    int32_t prefilled = r->prompt_tokens - r->cached_tokens;
    cJSON_AddNumberToObject(timings, "queue_ms", round3(r->queue_ms));
    cJSON_AddNumberToObject(timings, "ttft_ms", round3(r->ttft_ms));
    cJSON_AddNumberToObject(timings, "prompt_ms", round3(r->prompt_ms));
    cJSON_AddNumberToObject(timings, "prompt_per_second",
                            r->prompt_ms > 0 ? round3(prefilled * 1000.0 / r->prompt_ms) : 0.0);
    cJSON_AddNumberToObject(timings, "predicted_ms", round3(r->predicted_ms));
    cJSON_AddNumberToObject(
        timings, "predicted_per_second",
        r->predicted_ms > 0 ? round3(r->completion_tokens * 1000.0 / r->predicted_ms) : 0.0);
    cJSON_AddItemToObject(root, "timings", timings);
    return print_and_free(root);
fail:
    cJSON_Delete(root);
    cJSON_Delete(usage);
    cJSON_Delete(timings);
    return NULL;
}

char *protocol_error_json(const char *id, svc_error_code code, const char *message) {
    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_CreateObject();
    if (root == NULL || err == NULL) {
        cJSON_Delete(root);
        cJSON_Delete(err);
        return NULL;
    }
    cJSON_AddNumberToObject(root, "v", PROTOCOL_VERSION);
    cJSON_AddStringToObject(root, "type", "error");
    if (id != NULL && id[0] != '\0') {
        cJSON_AddStringToObject(root, "id", id);
    } else {
        cJSON_AddNullToObject(root, "id");
    }
    cJSON_AddStringToObject(err, "code", svc_error_code_name(code));
    /* messages quote what was sent (an unknown key, say), which need not be UTF-8: a reply must
     * be valid JSON for strict parsers, so bad bytes become U+FFFD */
    size_t clean_len;
    char *clean = protocol_utf8_clean(message, strlen(message), &clean_len);
    cJSON_AddStringToObject(err, "message",
                            clean != NULL ? clean : "(message lost: out of memory)");
    free(clean);
    cJSON_AddItemToObject(root, "error", err);
    return print_and_free(root);
}
