/* test_service_mqtt.c - edgelmd end to end: a real mosquitto on a free loopback port, real
 * edgelmd processes, and Paho clients (MQTT 5 and 3.1.1) speaking the documented protocol.
 * Long generations use a generated tiny model whose end-of-generation rows of output.weight are
 * zeroed, so greedy decoding never ends by itself (runs end by max_tokens, cancel or deadline).
 * stories260K (shared models) checks the exact greedy text; that part is skipped loudly when the
 * file is absent. No assertion depends on speed; every wait is generous (ASan, loaded 2 cores).
 */
#define _DEFAULT_SOURCE 1
#include "service_harness.h"
#include "test_util.h"

#include <MQTTClient.h>
#include <arpa/inet.h>
#include <edgelm.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void test_exact_text(client *c, broker *b, int *skipped) {
    char model[1024];
    if (!test_model_path("stories260K.gguf", model, sizeof model)) {
        fprintf(stderr, "*** SKIPPED: exact greedy text on stories260K (model absent)\n");
        (*skipped)++;
        return;
    }
    char ref_path[1100];
    snprintf(ref_path, sizeof ref_path, "%s/reference/stories260K.greedy.json", test_models_dir());
    cJSON *ref = test_load_json(ref_path);
    const char *ref_text = "";
    cJSON *runs = cJSON_GetObjectItem(ref, "runs");
    for (cJSON *r = runs ? runs->child : NULL; r != NULL; r = r->next) {
        if (strcmp(jstr(r, "prompt", NULL), "Once upon a time") == 0) {
            ref_text = jstr(r, "text", NULL);
        }
    }
    const char *after = strstr(ref_text, "Once upon a time");
    CHECK_MSG(after != NULL, "reference text not found in %s", ref_path);
    if (after == NULL) {
        cJSON_Delete(ref);
        return;
    }
    after += strlen("Once upon a time");
    node s = {.id = "stories"};
    if (node_start(&s, c, b->port, model, 4, false)) {
        char sub_topic[128];
        snprintf(sub_topic, sizeof sub_topic, "edgelm/%s/response/#", s.id);
        client_subscribe(c, sub_topic);
        const char *id = send_request(c, s.id,
                                      "\"prompt\":\"Once upon a time\",\"max_tokens\":64,"
                                      "\"temperature\":0,\"stream\":true",
                                      "exact-1");
        msg *m = wait_final(c, s.id, id, WAIT_MS);
        cJSON *j = msg_json(m);
        CHECK_MSG(j != NULL && strcmp(jstr(j, "text", NULL), after) == 0,
                  "stories260K greedy text differs:\n got: %s\nwant: %s", jstr(j, "text", NULL),
                  after);
        CHECK(jnum(j, "usage", "completion_tokens") == 64);
        CHECK(strcmp(jstr(j, "finish_reason", NULL), "length") == 0);
        char streamed[8192];
        CHECK(collect_stream(c, s.id, id, 64, streamed, sizeof streamed));
        /* one chunk per token here (ASCII text), so 64 chunks add up to the text */
        CHECK_MSG(strcmp(streamed, after) == 0, "stream '%s' != text", streamed);
        fprintf(stderr, "stories260K over MQTT: %.1f tok/s, ttft %.1f ms\n",
                jnum(j, "timings", "predicted_per_second"), jnum(j, "timings", "ttft_ms"));
        cJSON_Delete(j);

        /* engine-backed fields: stop, format (json / schema), messages, prefix cache */
        struct {
            const char *id, *fields, *needle1, *needle2;
        } cases[] = {
            {"stop1",
             "\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"temperature\":0,"
             "\"stop\":[\"Lily\"]",
             "\"text\":\", there was a little girl named \"", "\"finish_reason\":\"stop_word\""},
            {"prefix1",
             "\"prompt\":\"Once upon a time, there was\",\"max_tokens\":4,"
             "\"temperature\":0",
             "\"cached_tokens\":", "\"type\":\"result\""},
            {"json1",
             "\"prompt\":\"Once upon a time\",\"max_tokens\":60,\"temperature\":0,"
             "\"format\":\"json\"",
             "\"json\":{", "\"type\":\"result\""},
            {"schema1",
             "\"prompt\":\"Once upon a time\",\"max_tokens\":80,\"temperature\":0,"
             "\"format\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":"
             "\"string\"}},\"required\":[\"name\"]}",
             "\"json\":{\"name\":", "\"type\":\"result\""},
            {"chat1",
             "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":5,"
             "\"temperature\":0",
             "\"type\":\"result\"", NULL},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            send_request(c, s.id, cases[i].fields, cases[i].id);
            m = wait_final(c, s.id, cases[i].id, WAIT_MS);
            CHECK_MSG(
                m != NULL && strstr(m->payload, cases[i].needle1) != NULL &&
                    (cases[i].needle2 == NULL || strstr(m->payload, cases[i].needle2) != NULL),
                "%s: %s", cases[i].id, m ? m->payload : "(none)");
        }
        /* prefix1 shares "Once upon a time" (+BOS) with the requests before it */
        m = NULL;
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->n; i++) {
            if (strcmp(c->msgs[i]->topic, "edgelm/stories/response/prefix1") == 0) {
                m = c->msgs[i];
            }
        }
        pthread_mutex_unlock(&c->lock);
        j = msg_json(m);
        CHECK_MSG(jnum(j, "usage", "cached_tokens") >= 5, "prefix cache: %s",
                  m ? m->payload : "(none)");
        cJSON_Delete(j);
        node_stop(&s, c);
    }
    cJSON_Delete(ref);
}

int main(void) {
    const char *mosq = find_mosquitto();
    if (mosq == NULL) {
        test_skip("mosquitto is not installed (Debian: apt-get install mosquitto)");
    }
    if (access(edgelmd_path(), X_OK) != 0) {
        test_skip("edgelmd binary not found ($EDGELMD)");
    }
    atexit(process_kill_all);
    signal(SIGPIPE, SIG_IGN);
    int skipped = 0;
    char model[600];
    snprintf(model, sizeof model, "%s/endless-tiny.gguf", test_temp_dir());
    CHECK_MSG(make_endless_model(model), "cannot make the endless test model");

    broker b;
    CHECK_MSG(broker_create(&b, "broker"), "mosquitto did not start (%s)", b.log);
    client *c = client_new(b.port, "tester5", 5, true);
    if (c == NULL || test_failures > 0) {
        return test_finish("test_service_mqtt", 0);
    }

    test_exact_text(c, &b, &skipped);

    node a = {.id = "a"};
    if (!node_start(&a, c, b.port, model, 1, false)) {
        return test_finish("test_service_mqtt", 0);
    }
    client_subscribe(c, "edgelm/a/response/#");
    client_subscribe(c, "edgelm/a/errors");
    client_subscribe(c, "edgelm/a/health");
    client_subscribe(c, "edgelm/a/metrics");
    client_subscribe(c, "test/#");

    /* 1. request -> stream -> result: seq without gaps, chunks add up to the text */
    double tps = 0.0;
    {
        const char *id =
            send_request(c, "a", "\"prompt\":\"Hello\",\"max_tokens\":200,\"stream\":true", "s1");
        msg *m = wait_final(c, "a", id, WAIT_MS);
        cJSON *j = msg_json(m);
        CHECK_MSG(j != NULL && strcmp(jstr(j, "type", NULL), "result") == 0, "no result for s1");
        CHECK(strcmp(jstr(j, "finish_reason", NULL), "length") == 0);
        CHECK(jnum(j, "usage", "completion_tokens") == 200);
        CHECK(strcmp(jstr(j, "node", NULL), "a") == 0 && jnum(j, "v", NULL) == 1);
        CHECK(jnum(j, "timings", "predicted_per_second") > 0);
        tps = jnum(j, "timings", "predicted_per_second");
        int n_chunks = client_count_msgs(c, "edgelm/a/response/s1/stream", NULL);
        char streamed[65536];
        CHECK(n_chunks > 0 && collect_stream(c, "a", id, n_chunks, streamed, sizeof streamed));
        CHECK_MSG(strcmp(streamed, jstr(j, "text", NULL)) == 0, "stream != text for s1");
        cJSON_Delete(j);
    }

    /* 1b. top_p 0 (documented: only the most probable token) is a result, the greedy text */
    {
        const char *id = send_request(
            c, "a", "\"prompt\":\"Hello\",\"max_tokens\":8,\"temperature\":1.5,\"top_p\":0", "p0");
        cJSON *j = msg_json(wait_final(c, "a", id, WAIT_MS));
        id = send_request(c, "a", "\"prompt\":\"Hello\",\"max_tokens\":8,\"temperature\":0", "p0g");
        cJSON *g = msg_json(wait_final(c, "a", id, WAIT_MS));
        CHECK_MSG(j != NULL && strcmp(jstr(j, "type", NULL), "result") == 0,
                  "top_p 0 was not answered with a result: %s",
                  j != NULL ? jstr(j, "error", "message") : "(none)");
        CHECK(j != NULL && g != NULL && strcmp(jstr(j, "text", NULL), jstr(g, "text", NULL)) == 0);
        cJSON_Delete(j);
        cJSON_Delete(g);
    }

    /* 2. MQTT 5 Response Topic and Correlation Data echoed (result and chunks) */
    {
        static const char corr[] = {'\x00', '\x01', 'c', 'o', 'r', 'r', '\xff'};
        const char *payload = "{\"v\":1,\"id\":\"r5\",\"prompt\":\"Hi\",\"max_tokens\":5,"
                              "\"stream\":true}";
        client_publish_full(c, "edgelm/a/request", payload, strlen(payload), "test/rt/answer", corr,
                            (int)sizeof corr, 0);
        msg *m = client_wait_msg(c, "test/rt/answer", "\"type\":\"result\"", NULL, WAIT_MS);
        CHECK_MSG(m != NULL, "no result on the MQTT 5 response topic");
        CHECK(m != NULL && m->corr_len == (int)sizeof corr &&
              memcmp(m->corr, corr, sizeof corr) == 0);
        msg *chunk = client_wait_msg(c, "test/rt/answer/stream", "\"seq\":0,", NULL, WAIT_MS);
        CHECK(chunk != NULL && chunk->corr_len == (int)sizeof corr);
        CHECK(client_count_msgs(c, "edgelm/a/response/r5", NULL) == 0);
    }

    /* 3. an MQTT 3.1.1 client with reply_to */
    {
        client *c3 = client_new(b.port, "tester311", 3, true);
        CHECK(c3 != NULL);
        if (c3 != NULL) {
            client_subscribe(c3, "test/v3/#");
            client_publish(
                c3, "edgelm/a/request",
                "{\"v\":1,\"id\":\"v3\",\"prompt\":\"Hi\",\"max_tokens\":4,\"stream\":true,"
                "\"reply_to\":\"test/v3/answer\"}");
            msg *m = client_wait_msg(c3, "test/v3/answer", "\"type\":\"result\"", NULL, WAIT_MS);
            CHECK_MSG(m != NULL, "3.1.1 client got no result on reply_to");
            CHECK(client_wait_msg(c3, "test/v3/answer/stream", "\"seq\":0,", NULL, WAIT_MS) !=
                  NULL);
            client_free(c3);
        }
    }

    /* 4. malformed payloads, each answered with its code; the node keeps serving */
    {
        client_publish(c, "edgelm/a/request", "this is not json");
        CHECK(client_wait_msg(c, "edgelm/a/errors", "invalid_request", "not valid JSON", WAIT_MS) !=
              NULL);
        const char *bad = "{\"v\":1,\"id\":\"m0\",\"prompt\":\"x\"";
        client_publish_full(c, "edgelm/a/request", bad, strlen(bad), "test/bad/0", NULL, 0, 0);
        CHECK(client_wait_msg(c, "test/bad/0", "invalid_request", NULL, WAIT_MS) != NULL);
        struct {
            const char *fields, *code, *needle;
        } cases[] = {
            {"\"prompt\":\"x\",\"max_token\":3", "invalid_request", "max_token"},
            {"\"prompt\":7", "invalid_request", "'prompt'"},
            {"\"prompt\":\"x\",\"temperature\":\"hot\"", "invalid_request", "'temperature'"},
            {"\"prompt\":\"x\",\"max_tokens\":-5", "invalid_request", "'max_tokens'"},
            {"\"prompt\":\"x\",\"stream\":\"yes\"", "invalid_request", "'stream'"},
            {"\"v\":2,\"prompt\":\"x\"", "unsupported", "'v'"},
            {"\"max_tokens\":3", "invalid_request", "prompt"},
            /* a schema whose shortest value cannot fit in max_tokens: refused, not cut off */
            {"\"prompt\":\"x\",\"max_tokens\":2,\"format\":{\"type\":\"object\","
             "\"properties\":{\"temperature_celsius\":{\"type\":\"number\"}},"
             "\"required\":[\"temperature_celsius\"]}",
             "invalid_request", "too small"},
            {"\"prompt\":\"one two three four five six seven eight nine ten eleven twelve "
             "thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty twenty-one "
             "twenty-two twenty-three twenty-four twenty-five twenty-six\"",
             "too_large", "tokens"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            char id[16];
            snprintf(id, sizeof id, "m%zu", i + 1);
            char payload[1024];
            /* "v" first when the case sets it, so the payload has no duplicate field */
            snprintf(payload, sizeof payload, "{\"id\":\"%s\",%s}", id, cases[i].fields);
            client_publish(c, "edgelm/a/request", payload);
            msg *m = wait_final(c, "a", id, WAIT_MS);
            cJSON *j = msg_json(m);
            CHECK_MSG(j != NULL && strcmp(jstr(j, "error", "code"), cases[i].code) == 0 &&
                          strstr(jstr(j, "error", "message"), cases[i].needle) != NULL,
                      "case %s: %s", cases[i].fields, m ? m->payload : "(no answer)");
            cJSON_Delete(j);
        }
        /* a burst of requests the worker ends as soon as it takes them (the schema cannot fit
         * in max_tokens): each is answered, none is touched after the worker freed it (this is
         * where ASan saw edgelmd read a freed job), and the node keeps serving */
        enum { N_BURST = 40 };
        for (int i = 0; i < N_BURST; i++) {
            char payload[1024];
            snprintf(payload, sizeof payload, "{\"id\":\"burst%d\",%s}", i, cases[7].fields);
            client_publish(c, "edgelm/a/request", payload);
        }
        int n_answered = 0;
        for (int i = 0; i < N_BURST; i++) {
            char id[16];
            snprintf(id, sizeof id, "burst%d", i);
            msg *m = wait_final(c, "a", id, WAIT_MS);
            n_answered += m != NULL && (strstr(m->payload, "\"invalid_request\"") != NULL ||
                                        strstr(m->payload, "\"busy\"") != NULL);
        }
        CHECK_MSG(n_answered == N_BURST, "%d of %d burst requests answered", n_answered, N_BURST);
        if (n_answered < N_BURST) {
            return test_finish("test_service_mqtt", 0); /* the rest would only time out */
        }
        /* larger than limits.max_payload_bytes (64 KB) */
        size_t big_len = 70000;
        char *big = malloc(big_len);
        memset(big, 'x', big_len);
        client_publish_full(c, "edgelm/a/request", big, big_len, "test/bad/big", NULL, 0, 0);
        free(big);
        CHECK(client_wait_msg(c, "test/bad/big", "too_large", NULL, WAIT_MS) != NULL);
        /* still serving */
        const char *id =
            send_request(c, "a", "\"prompt\":\"Still there?\",\"max_tokens\":3", "alive");
        msg *m = wait_final(c, "a", id, WAIT_MS);
        CHECK_MSG(m != NULL && strstr(m->payload, "\"type\":\"result\"") != NULL,
                  "node stopped serving after malformed payloads");
    }

    /* a run of ~1.5 s at this machine's speed (nothing asserts on speed) */
    int long_tokens = (int)(tps * 1.5);
    if (long_tokens < 300) {
        long_tokens = 300;
    }
    char long_fields[256];
    snprintf(long_fields, sizeof long_fields,
             "\"prompt\":\"Once\",\"max_tokens\":5000000,\"stream\":true");

    /* 5. queue full -> busy; cancel of a queued and of a running request; duplicates */
    {
        const char *id1 = "q1";
        send_request(c, "a", long_fields, id1);
        CHECK_MSG(wait_first_chunk(c, "a", id1), "q1 did not start");
        send_request(c, "a", long_fields, "q2"); /* waits (queue depth 1) */
        send_request(c, "a", long_fields, "q3"); /* no room */
        msg *m = wait_final(c, "a", "q3", WAIT_MS);
        CHECK_MSG(m != NULL && strstr(m->payload, "\"busy\"") != NULL, "q3 was not refused busy");
        /* a duplicate of a running and of a queued id is ignored */
        send_request(c, "a", long_fields, "q1");
        send_request(c, "a", long_fields, "q2");
        /* the running id reused for a different request (another question, another reply
         * topic) is not a duplicate: it is refused busy on its own reply topic */
        send_request(c, "a", "\"prompt\":\"Is the door open?\",\"reply_to\":\"test/conflict\"",
                     "q1");
        m = client_wait_msg(c, "test/conflict", "\"busy\"", "in use by a different request",
                            WAIT_MS);
        CHECK_MSG(m != NULL, "a reused running id with another payload was not refused busy");
        send_cancel(c, "a", "q2");
        m = wait_final(c, "a", "q2", WAIT_MS);
        CHECK_MSG(m != NULL && strstr(m->payload, "\"cancelled\"") != NULL &&
                      strstr(m->payload, "\"type\":\"error\"") != NULL,
                  "queued q2 not cancelled: %s", m ? m->payload : "(none)");
        send_cancel(c, "a", "q1");
        m = wait_final(c, "a", "q1", WAIT_MS);
        cJSON *j = msg_json(m);
        CHECK_MSG(j != NULL && strcmp(jstr(j, "finish_reason", NULL), "cancelled") == 0,
                  "running q1 not cancelled: %s", m ? m->payload : "(none)");
        CHECK(jnum(j, "usage", "completion_tokens") > 0 &&
              jnum(j, "usage", "completion_tokens") < 5000000);
        cJSON_Delete(j);
        usleep(500000);
        CHECK_MSG(client_count_msgs(c, "edgelm/a/response/q1", "\"type\"") == 1,
                  "q1 answered more than once");
        CHECK(client_count_msgs(c, "edgelm/a/response/q2", "\"type\"") == 1);
        /* a finished id sent again gets the same result again, without running */
        send_request(c, "a", "\"prompt\":\"Hello\",\"max_tokens\":200,\"stream\":true", "s1");
        msg *again = wait_final(c, "a", "s1", WAIT_MS);
        msg *first = NULL;
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->n && first == NULL; i++) {
            if (strcmp(c->msgs[i]->topic, "edgelm/a/response/s1") == 0) {
                first = c->msgs[i];
            }
        }
        pthread_mutex_unlock(&c->lock);
        CHECK_MSG(again != NULL && first != NULL && again != first &&
                      strcmp(again->payload, first->payload) == 0,
                  "duplicate s1 did not get the same result");
        CHECK(client_count_msgs(c, "edgelm/a/response/s1/stream", NULL) <= 200);
        /* the finished id reused for another question is a new request with its own answer
         * (a fixed id in a Home Assistant script used to get the first answer forever) */
        send_request(c, "a", "\"prompt\":\"Is the door open?\",\"max_tokens\":5", "s1");
        cJSON *reused = msg_json(wait_final(c, "a", "s1", WAIT_MS));
        CHECK_MSG(reused != NULL && strcmp(jstr(reused, "type", NULL), "result") == 0 &&
                      jnum(reused, "usage", "completion_tokens") == 5,
                  "a finished id reused with another prompt was not run again: %s",
                  reused != NULL ? jstr(reused, "text", NULL) : "(no answer)");
        cJSON_Delete(reused);
    }

    /* 6. deadlines: while running (result, finish deadline) and while queued (error) */
    {
        char fields[400];
        snprintf(fields, sizeof fields, "%s,\"deadline_ms\":1500", long_fields);
        send_request(c, "a", fields, "d1");
        CHECK(wait_first_chunk(c, "a", "d1"));
        snprintf(fields, sizeof fields, "%s,\"deadline_ms\":300", long_fields);
        send_request(c, "a", fields, "d2"); /* queued behind d1; expires there */
        msg *m = wait_final(c, "a", "d2", WAIT_MS);
        CHECK_MSG(m != NULL && strstr(m->payload, "\"deadline\"") != NULL &&
                      strstr(m->payload, "\"type\":\"error\"") != NULL,
                  "queued d2: %s", m ? m->payload : "(none)");
        m = wait_final(c, "a", "d1", WAIT_MS);
        cJSON *j = msg_json(m);
        CHECK_MSG(j != NULL && strcmp(jstr(j, "finish_reason", NULL), "deadline") == 0,
                  "running d1: %s", m ? m->payload : "(none)");
        CHECK(jnum(j, "usage", "completion_tokens") > 0);
        cJSON_Delete(j);
    }

    /* 7. health, metrics (tokens/s > 0) and Home Assistant discovery (re-sent on HA online) */
    {
        msg *health = client_wait_msg(c, "edgelm/a/health", "\"state\":\"idle\"", NULL, WAIT_MS);
        cJSON *hj = msg_json(health);
        CHECK(hj != NULL && jnum(hj, "ts", NULL) > 1.7e12 &&
              strcmp(jstr(hj, "node", NULL), "a") == 0);
        cJSON_Delete(hj);
        /* metrics come every second: take them until one reflects the requests above */
        cJSON *j = NULL;
        for (double until = test_now_ms() + WAIT_MS; j == NULL && test_now_ms() < until;) {
            msg *m = client_wait_msg(c, "edgelm/a/metrics", "\"requests_total\"", NULL, WAIT_MS);
            j = msg_json(m);
            if (j != NULL && (jnum(j, "requests_total", "cancelled") < 2 ||
                              jnum(j, "requests_total", "ok") < 3)) {
                cJSON_Delete(j);
                j = NULL;
            }
        }
        msg *m = NULL;
        CHECK(j != NULL && jnum(j, "last_predicted_tokens_seconds", NULL) > 0);
        CHECK(j != NULL && jnum(j, "predicted_tokens_per_second", NULL) > 0); /* deprecated */
        CHECK(j != NULL && jnum(j, "n_decode_total", NULL) > 200);
        CHECK(j != NULL && jnum(j, "n_tokens_max", NULL) > 200);
        CHECK(j != NULL && jnum(j, "requests_deferred", NULL) == 0);
        CHECK(j != NULL && jnum(j, "ts", NULL) > 1.7e12 && strcmp(jstr(j, "node", NULL), "a") == 0);
        CHECK(j != NULL && jnum(j, "tokens_predicted_total", NULL) > 200);
        CHECK(j != NULL && jnum(j, "requests_total", "ok") >= 3);
        CHECK(j != NULL && jnum(j, "requests_total", "cancelled") >= 2);
        CHECK(j != NULL && jnum(j, "requests_total", "rejected") >= 5);
        CHECK(j != NULL && jnum(j, "rss_bytes", NULL) > 0);
        cJSON_Delete(j);
        client_subscribe(c, "homeassistant/device/a/config");
        m = client_wait_msg(c, "homeassistant/device/a/config", NULL, NULL, WAIT_MS);
        j = msg_json(m);
        CHECK_MSG(j != NULL, "no discovery document");
        CHECK(strcmp(jstr(j, "device", "identifiers"), "edgelm_a") == 0);
        CHECK(strcmp(jstr(j, "availability_topic", NULL), "edgelm/a/status") == 0);
        CHECK(strcmp(jstr(j, "origin", "name"), "edgelmd") == 0);
        cJSON *cmps = cJSON_GetObjectItem(j, "components");
        /* the components (their schema and templates: tests/service/test_home_assistant.py) */
        const char *keys[] = {
            "ask",         "last_answer", "tokens_per_second", "prompt_tokens_per_second",
            "queue_depth", "busy",        "requests_total",    "last_error",
            "memory"};
        const size_t n_keys = sizeof keys / sizeof keys[0];
        int n_cmps = cJSON_GetArraySize(cmps);
        CHECK_MSG(n_cmps == (int)n_keys || n_cmps == (int)n_keys + 1, /* + CPU temperature */
                  "%d discovery components", n_cmps);
        for (size_t i = 0; i < n_keys; i++) {
            char k[64];
            snprintf(k, sizeof k, "edgelm_a_%s", keys[i]);
            const cJSON *comp = cJSON_GetObjectItem(cmps, k);
            const char *topic_key = i == 0 ? "command_topic" : "state_topic";
            CHECK_MSG(comp != NULL && jstr(comp, "platform", NULL)[0] != '\0' &&
                          jstr(comp, topic_key, NULL)[0] != '\0',
                      "discovery component %s", k);
        }
        CHECK(cJSON_GetObjectItem(cmps, "edgelm_a_online") == NULL); /* only ever unavailable */
        cJSON_Delete(j);
        client_publish(c, "homeassistant/status", "online");
        CHECK_MSG(client_wait_msg(c, "homeassistant/device/a/config", "edgelm_a", NULL, WAIT_MS) !=
                      NULL,
                  "discovery not re-sent when Home Assistant came online");
    }

    /* 8. SIGHUP reloads limits (max_prompt_tokens 64 -> 2) */
    {
        write_node_conf(&a, b.port, model, 1, 2);
        kill(a.pid, SIGHUP);
        usleep(500000);
        const char *id =
            send_request(c, "a", "\"prompt\":\"one two three four\",\"max_tokens\":2", "hup1");
        msg *m = wait_final(c, "a", id, WAIT_MS);
        CHECK_MSG(m != NULL && strstr(m->payload, "too_large") != NULL, "SIGHUP: %s",
                  m ? m->payload : "(none)");
        write_node_conf(&a, b.port, model, 1, 64);
        kill(a.pid, SIGHUP);
        usleep(500000);
    }

    /* 9. two fleet nodes on the shared subscription answer N requests exactly once */
    node f1 = {.id = "f1"}, f2 = {.id = "f2"};
    bool fleet_up =
        node_start(&f1, c, b.port, model, 8, true) && node_start(&f2, c, b.port, model, 8, true);
    if (fleet_up) {
        enum { N = 8 };
        for (int i = 0; i < N; i++) {
            char payload[256];
            snprintf(payload, sizeof payload,
                     "{\"v\":1,\"id\":\"fl%d\",\"prompt\":\"Hi\",\"max_tokens\":8,"
                     "\"reply_to\":\"test/fleet/fl%d\"}",
                     i, i);
            client_publish(c, "edgelm/fleet/request", payload);
        }
        int by_f1 = 0, by_f2 = 0;
        for (int i = 0; i < N; i++) {
            char topic[64];
            snprintf(topic, sizeof topic, "test/fleet/fl%d", i);
            msg *m = client_wait_msg(c, topic, "\"type\":\"result\"", NULL, WAIT_MS);
            CHECK_MSG(m != NULL, "fleet request fl%d unanswered", i);
            by_f1 += m != NULL && strstr(m->payload, "\"node\":\"f1\"") != NULL;
            by_f2 += m != NULL && strstr(m->payload, "\"node\":\"f2\"") != NULL;
        }
        usleep(1000000);
        for (int i = 0; i < N; i++) {
            char topic[64];
            snprintf(topic, sizeof topic, "test/fleet/fl%d", i);
            CHECK_MSG(client_count_msgs(c, topic, NULL) == 1,
                      "fleet request fl%d answered %d times", i, client_count_msgs(c, topic, NULL));
        }
        CHECK_MSG(by_f1 + by_f2 == N && by_f1 > 0 && by_f2 > 0,
                  "fleet split f1=%d f2=%d (node a must not take fleet work)", by_f1, by_f2);
        fprintf(stderr, "fleet: f1 answered %d, f2 answered %d\n", by_f1, by_f2);
        node_stop(&f1, c);
        /* 10. kill -9 -> the broker publishes the Will: offline */
        kill(f2.pid, SIGKILL);
        process_wait_exit(f2.pid, WAIT_MS);
        CHECK_MSG(client_wait_msg(c, "edgelm/f2/status", "offline", NULL, WAIT_MS) != NULL,
                  "no Last Will after kill -9");
    }

    /* 11. broker killed and restarted mid-generation: the final result still arrives */
    {
        broker b2;
        CHECK(broker_create(&b2, "broker2"));
        client *w = client_new(b2.port, "tester-restart", 5, false); /* persistent session */
        node r = {.id = "r"};
        if (w != NULL && node_start(&r, w, b2.port, model, 1, false)) {
            client_subscribe(w, "edgelm/r/response/#");
            usleep(1500000); /* let the broker autosave the subscriptions */
            char fields[256];
            snprintf(fields, sizeof fields, "\"prompt\":\"Once\",\"max_tokens\":%d,\"stream\":true",
                     long_tokens);
            send_request(w, "r", fields, "rs1");
            CHECK(wait_first_chunk(w, "r", "rs1"));
            kill(b2.pid, SIGKILL);
            process_wait_exit(b2.pid, WAIT_MS);
            /* keep the broker down until the node has finished: its result must wait in the
             * node's buffer and go out after the reconnect */
            bool finished = false;
            for (double until = test_now_ms() + WAIT_MS; !finished && test_now_ms() < until;) {
                size_t n = 0;
                unsigned char *log = test_read_file(r.log, &n);
                finished = log != NULL && strstr((const char *)log, "request rs1: length") != NULL;
                free(log);
                usleep(100000);
            }
            CHECK_MSG(finished, "rs1 did not finish while the broker was down (%s)", r.log);
            CHECK(broker_start(&b2));
            /* the test client reconnects to its persistent session */
            bool back = false;
            for (int i = 0; i < 100 && !back; i++) {
                back = client_connect(w, false);
                if (!back) {
                    usleep(100000);
                }
            }
            CHECK_MSG(back, "test client could not reconnect");
            client_subscribe(w,
                             "edgelm/r/response/#"); /* a no-op when the broker kept the session */
            client_subscribe(w, "edgelm/r/status");
            msg *m = wait_final(w, "r", "rs1", WAIT_MS * 2);
            cJSON *j = msg_json(m);
            CHECK_MSG(j != NULL && strcmp(jstr(j, "type", NULL), "result") == 0 &&
                          jnum(j, "usage", "completion_tokens") == long_tokens,
                      "result after broker restart: %s", m ? m->payload : "(none)");
            cJSON_Delete(j);
            node_stop(&r, w);
        }
        client_free(w);
        kill(b2.pid, SIGTERM);
        process_wait_exit(b2.pid, WAIT_MS);
    }

    /* SIGTERM with a request running: it finishes (grace), queued ones get an error, exit 0 */
    {
        char fields[256];
        snprintf(fields, sizeof fields, "\"prompt\":\"Once\",\"max_tokens\":%d,\"stream\":true",
                 long_tokens);
        send_request(c, "a", fields, "end1");
        CHECK(wait_first_chunk(c, "a", "end1"));
        send_request(c, "a", "\"prompt\":\"Once\",\"max_tokens\":300", "end2");
        usleep(200000);
        node_stop(&a, c);
        msg *m = wait_final(c, "a", "end1", WAIT_MS);
        CHECK_MSG(m != NULL && strstr(m->payload, "\"finish_reason\":\"length\"") != NULL,
                  "running request during SIGTERM: %s", m ? m->payload : "(none)");
        m = wait_final(c, "a", "end2", WAIT_MS);
        CHECK_MSG(m != NULL && strstr(m->payload, "\"type\":\"error\"") != NULL,
                  "queued request during SIGTERM: %s", m ? m->payload : "(none)");
    }

    client_free(c);
    kill(b.pid, SIGTERM);
    process_wait_exit(b.pid, WAIT_MS);
    return test_finish("test_service_mqtt", skipped);
}
