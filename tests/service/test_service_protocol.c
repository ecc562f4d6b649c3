/* test_service_protocol.c - edgelmd's wire format without a broker: a full request parses into
 * the right values; every kind of malformed payload is refused with its error code and a message
 * naming the field; UTF-8 cleaning; the result/error/token messages are the documented JSON.
 */
#include "protocol.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static svc_limits limits;
static svc_sampling_defaults defaults;

static svc_error_code parse(const char *json, svc_request *r, char *msg, size_t msg_size) {
    return protocol_parse_request(json, strlen(json), &limits, &defaults, r, msg, msg_size);
}

/* Expect json to be refused with code and a message containing needle. */
static void expect(const char *json, svc_error_code code, const char *needle) {
    svc_request r;
    char msg[512];
    svc_error_code got = parse(json, &r, msg, sizeof msg);
    CHECK_MSG(got == code, "%s: got %s (%s), want %s", json, svc_error_code_name(got), msg,
              svc_error_code_name(code));
    if (needle != NULL) {
        CHECK_MSG(strstr(msg, needle) != NULL, "%s: message '%s' lacks '%s'", json, msg, needle);
    }
    protocol_request_free(&r);
}

/* Bad values of fields, each refused in {"prompt":"a","<field>":<value>} as invalid_request with
 * a message naming the field. */
#define MAX_BAD_VALUES 3
static const struct {
    const char *field;
    const char *values[MAX_BAD_VALUES]; /* JSON text; unused slots NULL */
} bad_values[] = {
    {"max_tokens", {"0", "1.5", "999999"}},
    {"temperature", {"-1", "\"hot\""}},
    {"top_p", {"1.5"}},
    {"top_k", {"-3"}},
    {"min_p", {"2"}},
    {"seed", {"-2"}},
    {"stop", {"\"x\"", "[1,2,3,4,5,6,7,8,9]"}},
    {"stream", {"1"}},
    {"cache_prompt", {"\"yes\""}},
    {"format", {"\"xml\""}},
    {"deadline_ms", {"0"}},
    {"reply_to", {"\"a/#\"", "\"$SYS/x\""}},
};

static void expect_bad_value(const char *field, const char *value) {
    char json[256], needle[64];
    snprintf(json, sizeof json, "{\"prompt\":\"a\",\"%s\":%s}", field, value);
    snprintf(needle, sizeof needle, "'%s'", field);
    expect(json, SVC_ERR_INVALID_REQUEST, needle);
}

int main(void) {
    svc_config c;
    config_defaults(&c);
    limits = c.limits;
    defaults = c.sampling;

    /* a request with every field */
    {
        const char *json =
            "{\"v\":1,\"id\":\"kitchen-42\",\"prompt\":\"Hi \\u00e9\",\"max_tokens\":12,"
            "\"temperature\":0,\"top_p\":0.5,\"top_k\":7,\"min_p\":0.1,\"seed\":42,"
            "\"stop\":[\"\\n\\n\",\"END\"],\"stream\":true,\"format\":{\"type\":\"object\"},"
            "\"cache_prompt\":false,\"deadline_ms\":30000,\"reply_to\":\"app/answers\"}";
        svc_request r;
        char msg[256];
        CHECK_MSG(parse(json, &r, msg, sizeof msg) == SVC_OK, "%s", msg);
        CHECK(strcmp(r.id, "kitchen-42") == 0 && r.has_id);
        CHECK(r.prompt != NULL && strcmp(r.prompt, "Hi \xc3\xa9") == 0);
        CHECK(r.max_tokens == 12 && r.temperature == 0.0 && r.top_p == 0.5 && r.top_k == 7);
        CHECK(r.min_p == 0.1 && r.seed == 42 && r.stream && !r.cache_prompt);
        CHECK(r.n_stop == 2 && strcmp(r.stop[0], "\n\n") == 0 && strcmp(r.stop[1], "END") == 0);
        CHECK(r.format == SVC_FORMAT_JSON_SCHEMA && r.json_schema != NULL &&
              strcmp(r.json_schema, "{\"type\":\"object\"}") == 0);
        CHECK(r.deadline_ms == 30000 && strcmp(r.reply_to, "app/answers") == 0);
        protocol_request_free(&r);
    }
    /* defaults, messages, format json, a payload that is not NUL-terminated */
    {
        const char text[] = "{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
                            "{\"role\":\"user\",\"content\":\"hi\"}],\"format\":\"json\"}XXXX";
        svc_request r;
        char msg[256];
        svc_error_code code =
            protocol_parse_request(text, sizeof text - 5, &limits, &defaults, &r, msg, sizeof msg);
        CHECK_MSG(code == SVC_OK, "%s", msg);
        CHECK(!r.has_id && r.prompt == NULL && r.n_messages == 2);
        CHECK(r.n_messages == 2 && strcmp(r.messages[1].role, "user") == 0 &&
              strcmp(r.messages[1].content, "hi") == 0);
        CHECK(r.format == SVC_FORMAT_JSON && r.max_tokens == defaults.max_tokens);
        CHECK(r.temperature == defaults.temperature && r.seed == -1 && r.cache_prompt);
        protocol_request_free(&r);
    }

    /* malformed payloads: each with its code and the field named */
    expect("", SVC_ERR_INVALID_REQUEST, "not valid JSON");
    expect("{\"prompt\":\"x\"", SVC_ERR_INVALID_REQUEST, "not valid JSON");
    expect("{\"prompt\":\"x\"} trailing", SVC_ERR_INVALID_REQUEST, "after the value");
    expect("[1,2]", SVC_ERR_INVALID_REQUEST, "JSON object");
    expect("{}", SVC_ERR_INVALID_REQUEST, "exactly one of");
    expect("{\"prompt\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"b\"}]}",
           SVC_ERR_INVALID_REQUEST, "exactly one of");
    expect("{\"prompt\":\"a\",\"max_token\":5}", SVC_ERR_INVALID_REQUEST, "'max_token'");
    expect("{\"prompt\":\"a\",\"prompt\":\"b\"}", SVC_ERR_INVALID_REQUEST, "more than once");
    expect("{\"prompt\":5}", SVC_ERR_INVALID_REQUEST, "'prompt'");
    expect("{\"prompt\":\"\xff\xfe\"}", SVC_ERR_INVALID_REQUEST, "'prompt'");
    expect("{\"v\":2,\"prompt\":\"a\"}", SVC_ERR_UNSUPPORTED, "'v'");
    expect("{\"v\":\"1\",\"prompt\":\"a\"}", SVC_ERR_INVALID_REQUEST, "'v'");
    expect("{\"id\":7,\"prompt\":\"a\"}", SVC_ERR_INVALID_REQUEST, "'id'");
    expect("{\"id\":\"\",\"prompt\":\"a\"}", SVC_ERR_INVALID_REQUEST, "'id'");
    expect("{\"id\":\"a/b\",\"prompt\":\"a\"}", SVC_ERR_INVALID_REQUEST, "'id'");
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
        for (size_t k = 0; k < MAX_BAD_VALUES && bad_values[i].values[k] != NULL; k++) {
            expect_bad_value(bad_values[i].field, bad_values[i].values[k]);
        }
    }
    expect("{\"prompt\":\"a\",\"stop\":[\"\"]}", SVC_ERR_INVALID_REQUEST, "'stop[0]'");
    expect("{\"messages\":[]}", SVC_ERR_INVALID_REQUEST, "'messages'");
    expect("{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", SVC_ERR_INVALID_REQUEST,
           "'messages[0].role'");
    expect("{\"messages\":[{\"role\":\"user\"}]}", SVC_ERR_INVALID_REQUEST,
           "'messages[0].content'");
    expect("{\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"name\":\"bob\"}]}",
           SVC_ERR_INVALID_REQUEST, "'messages[0].name'");
    {
        /* too large: refused before parsing; addressing survives a later failure */
        size_t n = (size_t)limits.max_payload_bytes + 1;
        char *big = malloc(n);
        CHECK(big != NULL);
        if (big != NULL) {
            memset(big, ' ', n);
            svc_request r;
            char msg[256];
            CHECK(protocol_parse_request(big, n, &limits, &defaults, &r, msg, sizeof msg) ==
                  SVC_ERR_TOO_LARGE);
            protocol_request_free(&r);
            free(big);
        }
        svc_request r;
        char msg[256];
        CHECK(parse("{\"id\":\"x1\",\"reply_to\":\"r/t\",\"top_k\":\"a\",\"prompt\":\"p\"}", &r,
                    msg, sizeof msg) == SVC_ERR_INVALID_REQUEST);
        CHECK(strcmp(r.id, "x1") == 0 && strcmp(r.reply_to, "r/t") == 0);
        protocol_request_free(&r);
        /* deep nesting is refused by cJSON, not a crash */
        char deep[5000];
        memset(deep, '[', sizeof deep - 1);
        deep[sizeof deep - 1] = '\0';
        CHECK(parse(deep, &r, msg, sizeof msg) == SVC_ERR_INVALID_REQUEST);
        protocol_request_free(&r);
    }

    /* cancel */
    {
        char id[PROTOCOL_ID_MAX + 1], msg[256];
        CHECK(
            protocol_parse_cancel("{\"v\":1,\"id\":\"abc\"}", 18, id, sizeof id, msg, sizeof msg) &&
            strcmp(id, "abc") == 0);
        CHECK(!protocol_parse_cancel("{\"idd\":\"abc\"}", 13, id, sizeof id, msg, sizeof msg));
        CHECK(!protocol_parse_cancel("nope", 4, id, sizeof id, msg, sizeof msg));
    }

    /* every error reply is valid UTF-8, whatever bytes the request quoted back (an unknown key
     * that is not UTF-8) */
    {
        static const char bad_key[] =
            "{\"v\":1,\"id\":\"ux1\",\"prompt\":\"Once\",\"max_tokens\":2,\"k\xff\xfe\":1}";
        svc_request r;
        char msg[512];
        svc_error_code code = parse(bad_key, &r, msg, sizeof msg);
        CHECK_MSG(code == SVC_ERR_INVALID_REQUEST, "bad key: %s", svc_error_code_name(code));
        protocol_request_free(&r);
        char *json = protocol_error_json("ux1", code, msg);
        size_t n = 0;
        char *clean = json != NULL ? protocol_utf8_clean(json, strlen(json), &n) : NULL;
        CHECK_MSG(clean != NULL && strcmp(clean, json) == 0, "error reply is not UTF-8: %s",
                  json != NULL ? json : "(none)");
        free(clean);
        free(json);
    }

    /* \u0000 would cut a C string short: an id, key, role or reply topic other than the one sent */
    {
        static const char *const nul_cases[] = {
            "{\"v\":1,\"id\":\"a\\u0000b\",\"prompt\":\"x\"}",
            "{\"v\":1,\"id\":\"n2\",\"prompt\":\"x\",\"max_tokens\\u0000x\":3}",
            "{\"v\":1,\"id\":\"n3\",\"messages\":[{\"role\":\"user\\u0000\",\"content\":\"hi\"}]}",
            "{\"v\":1,\"id\":\"n4\",\"prompt\":\"x\",\"reply_to\":\"a\\u0000b\"}",
            "{\"v\":1,\"id\":\"n5\",\"prompt\":\"x\\\\u0000 is fine when the backslash is "
            "escaped\\u0000\"}",
        };
        for (size_t i = 0; i < sizeof nul_cases / sizeof nul_cases[0]; i++) {
            expect(nul_cases[i], SVC_ERR_INVALID_REQUEST, "u0000");
        }
        /* an escaped backslash followed by "u0000" is plain text, not U+0000 */
        svc_request r;
        char msg[512];
        CHECK_MSG(parse("{\"v\":1,\"id\":\"n6\",\"prompt\":\"C:\\\\u0000\"}", &r, msg,
                        sizeof msg) == SVC_OK,
                  "escaped backslash: %s", msg);
        protocol_request_free(&r);
        char id[PROTOCOL_ID_MAX + 1];
        const char *cancel_nul = "{\"v\":1,\"id\":\"a\\u0000b\"}";
        CHECK(
            !protocol_parse_cancel(cancel_nul, strlen(cancel_nul), id, sizeof id, msg, sizeof msg));
    }

    /* UTF-8 cleaning */
    {
        size_t n;
        char *s = protocol_utf8_clean("a\xff"
                                      "b\xc3\xa9\xe2\x82",
                                      7, &n);
        CHECK(s != NULL && strcmp(s, "a\xef\xbf\xbd"
                                     "b\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd") == 0);
        free(s);
        s = protocol_utf8_clean("\xed\xa0\x80", 3, &n); /* a surrogate is not UTF-8 */
        CHECK(s != NULL && n == 9);
        free(s);
    }

    /* messages out */
    {
        char *tok = protocol_token_json("r1", 3, "he\"llo");
        CHECK(
            tok != NULL &&
            strcmp(tok,
                   "{\"v\":1,\"type\":\"token\",\"id\":\"r1\",\"seq\":3,\"text\":\"he\\\"llo\"}") ==
                0);
        free(tok);
        svc_result r = {.id = "r1",
                        .node = "n",
                        .model = "m",
                        .text = "{\"a\":1}",
                        .with_json = true,
                        .finish_reason = "stop",
                        .prompt_tokens = 10,
                        .completion_tokens = 4,
                        .cached_tokens = 6,
                        .queue_ms = 1.23456,
                        .ttft_ms = 20,
                        .prompt_ms = 8,
                        .predicted_ms = 40};
        char *res = protocol_result_json(&r);
        cJSON *j = res ? cJSON_Parse(res) : NULL;
        CHECK(j != NULL);
        if (j != NULL) {
            CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "json"), "a")->valueint == 1);
            cJSON *t = cJSON_GetObjectItem(j, "timings");
            CHECK(cJSON_GetObjectItem(t, "queue_ms")->valuedouble == 1.235);
            CHECK(cJSON_GetObjectItem(t, "prompt_per_second")->valuedouble == 500.0);
            CHECK(cJSON_GetObjectItem(t, "predicted_per_second")->valuedouble == 100.0);
            CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "cached_tokens")->valueint ==
                  6);
            CHECK(strcmp(cJSON_GetObjectItem(j, "type")->valuestring, "result") == 0);
            cJSON_Delete(j);
        }
        free(res);
        char *err = protocol_error_json(NULL, SVC_ERR_BUSY, "full");
        CHECK(err != NULL &&
              strcmp(err, "{\"v\":1,\"type\":\"error\",\"id\":null,\"error\":{\"code\":\"busy\","
                          "\"message\":\"full\"}}") == 0);
        free(err);
    }
    return test_finish("test_service_protocol", 0);
}
