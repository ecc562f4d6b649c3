/* fuzz_request.c - libFuzzer target for edgelmd's wire parsing (service/protocol.c): the input is
 * one MQTT payload, parsed as a request (protocol_parse_request, default config limits) and as a
 * cancel (protocol_parse_cancel). A refusal must come with a message whose error reply
 * (protocol_error_json) is valid UTF-8 JSON that cJSON reads back; an accepted request must hold
 * only what docs/protocol.md allows, and its replies must be valid UTF-8 JSON too.
 */
#include "config.h"
#include "fuzz_support.h"
#include "fuzz_target.h"
#include "protocol.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static svc_config config;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    config_defaults(&config);
    return 0;
}

/* A reply edgelmd would publish: valid UTF-8, parsed by cJSON; the parsed value returned. */
static cJSON *check_reply(char *json) {
    FUZZ_CHECK(json != NULL, "no reply text");
    size_t len = strlen(json);
    FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)json, len), "reply is not UTF-8: %s", json);
    cJSON *doc = cJSON_ParseWithLength(json, len);
    FUZZ_CHECK(doc != NULL, "reply is not JSON: %s", json);
    free(json);
    return doc;
}

static void check_error_reply(const char *id, svc_error_code code, const char *msg) {
    FUZZ_CHECK(msg[0] != '\0', "error %d without a message", (int)code);
    cJSON *doc = check_reply(protocol_error_json(id, code, msg));
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(doc, "error");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(err, "message");
    const cJSON *got_id = cJSON_GetObjectItemCaseSensitive(doc, "id");
    FUZZ_CHECK(cJSON_IsString(text) && text->valuestring[0] != '\0', "no error.message");
    FUZZ_CHECK(id[0] == '\0' ? cJSON_IsNull(got_id)
                             : cJSON_IsString(got_id) && strcmp(got_id->valuestring, id) == 0,
               "the reply's id is not the request's '%s'", id);
    cJSON_Delete(doc);
}

/* A raw NUL byte inside a JSON string: invalid JSON that cJSON accepts, cutting the C string
 * there, so an accepted payload must have none (scanned independently of protocol.c). */
static bool has_raw_nul_in_string(const uint8_t *p, size_t n) {
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        if (!in_string) {
            in_string = p[i] == '"';
        } else if (p[i] == '"') {
            in_string = false;
        } else if (p[i] == '\\') {
            i++;
        } else if (p[i] == '\0') {
            return true;
        }
    }
    return false;
}

static bool id_chars_ok(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > PROTOCOL_ID_MAX || !fuzz_utf8_valid((const uint8_t *)id, n)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c < 0x20 || c == 0x7F || c == '/' || c == '+' || c == '#') {
            return false;
        }
    }
    return true;
}

static void check_accepted(const svc_request *r, const uint8_t *data, size_t size) {
    const svc_limits *lim = &config.limits;
    FUZZ_CHECK(!has_raw_nul_in_string(data, size), "accepted a payload with a raw NUL in a string");
    FUZZ_CHECK((r->prompt != NULL) != (r->messages != NULL), "not exactly one of prompt/messages");
    FUZZ_CHECK(r->prompt == NULL || fuzz_utf8_valid((const uint8_t *)r->prompt, strlen(r->prompt)),
               "prompt is not UTF-8");
    FUZZ_CHECK(r->messages == NULL ||
                   (r->n_messages >= 1 && r->n_messages <= PROTOCOL_MAX_MESSAGES),
               "%zu messages", r->n_messages);
    for (size_t i = 0; i < r->n_messages; i++) {
        const char *role = r->messages[i].role;
        FUZZ_CHECK(strcmp(role, "system") == 0 || strcmp(role, "user") == 0 ||
                       strcmp(role, "assistant") == 0,
                   "role '%s'", role);
        FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)r->messages[i].content,
                                   strlen(r->messages[i].content)),
                   "content is not UTF-8");
    }
    FUZZ_CHECK(!r->has_id || id_chars_ok(r->id), "id '%s'", r->id);
    FUZZ_CHECK(r->reply_to[0] == '\0' || protocol_topic_ok(r->reply_to, strlen(r->reply_to)),
               "reply_to '%s'", r->reply_to);
    FUZZ_CHECK(r->max_tokens >= 1 && r->max_tokens <= lim->max_tokens, "max_tokens %d",
               (int)r->max_tokens);
    FUZZ_CHECK(r->temperature >= 0 && r->temperature <= 5, "temperature");
    FUZZ_CHECK(r->top_p >= 0 && r->top_p <= 1 && r->min_p >= 0 && r->min_p <= 1, "top_p/min_p");
    FUZZ_CHECK(r->top_k >= 0 && r->top_k <= 1000000, "top_k %d", (int)r->top_k);
    FUZZ_CHECK(r->seed >= -1 && r->seed <= 4294967295ll, "seed %lld", (long long)r->seed);
    FUZZ_CHECK(r->n_stop >= 0 && r->n_stop <= PROTOCOL_MAX_STOP, "%d stops", (int)r->n_stop);
    for (int32_t i = 0; i < r->n_stop; i++) {
        size_t len = strlen(r->stop[i]);
        FUZZ_CHECK(len >= 1 && len <= PROTOCOL_STOP_MAX, "stop of %zu bytes", len);
    }
    FUZZ_CHECK((r->format == SVC_FORMAT_JSON_SCHEMA) == (r->json_schema != NULL), "schema");
    FUZZ_CHECK(r->deadline_ms >= 0 &&
                   (lim->max_deadline_ms <= 0 || r->deadline_ms <= lim->max_deadline_ms),
               "deadline_ms %lld", (long long)r->deadline_ms);

    /* the replies this request would get, with the prompt as the generated text */
    const char *id = r->has_id ? r->id : "generated-1";
    const char *text = r->prompt != NULL ? r->prompt : r->messages[0].content;
    cJSON_Delete(check_reply(protocol_token_json(id, 0, text)));
    svc_result result = {.id = id,
                         .node = "node",
                         .model = "model",
                         .text = text,
                         .with_json = r->format != SVC_FORMAT_TEXT,
                         .finish_reason = "stop"};
    cJSON_Delete(check_reply(protocol_result_json(&result)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char msg[512];
    svc_request request;
    svc_error_code code = protocol_parse_request(data, size, &config.limits, &config.sampling,
                                                 &request, msg, sizeof msg);
    if (code == SVC_OK) {
        check_accepted(&request, data, size);
    } else {
        FUZZ_CHECK(request.id[0] == '\0' || id_chars_ok(request.id), "id '%s'", request.id);
        check_error_reply(request.id, code, msg);
    }
    protocol_request_free(&request);

    char id[PROTOCOL_ID_MAX + 1];
    if (protocol_parse_cancel(data, size, id, sizeof id, msg, sizeof msg)) {
        FUZZ_CHECK(id_chars_ok(id), "cancel id '%s'", id);
        FUZZ_CHECK(!has_raw_nul_in_string(data, size), "accepted a cancel with a raw NUL");
    } else {
        check_error_reply("", SVC_ERR_INVALID_REQUEST, msg);
    }

    size_t clean_len = 0;
    char *clean = protocol_utf8_clean((const char *)data, size, &clean_len);
    FUZZ_CHECK(clean != NULL && fuzz_utf8_valid((const uint8_t *)clean, clean_len) &&
                   strlen(clean) == clean_len,
               "utf8_clean output is not NUL-free UTF-8");
    free(clean);
    if (protocol_topic_ok((const char *)data, size)) {
        FUZZ_CHECK(memchr(data, '\0', size) == NULL && data[0] != '$' &&
                       memchr(data, '+', size) == NULL && memchr(data, '#', size) == NULL &&
                       fuzz_utf8_valid(data, size),
                   "topic_ok accepts a bad topic");
    }
    return 0;
}
