/* test_service_results.c - edgelmd's request-id registry (service/results.c): a redelivery of a
 * request (same id, payload, reply topic and correlation data) never runs twice and a finished
 * one gets its answer again, while an id reused for a different request is not taken for a
 * redelivery (a Node-RED template or Home Assistant script with a fixed "id" got its first answer
 * back for every later question before the fingerprint). Also the LRU bound on finished answers.
 */
#include "results.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t print_of(const char *payload, const char *reply, const char *correlation) {
    return results_fingerprint(payload, strlen(payload), reply, correlation,
                               correlation != NULL ? strlen(correlation) : 0);
}

static void test_fingerprint(void) {
    const char *p = "{\"v\":1,\"id\":\"kitchen\",\"prompt\":\"Is the door open?\"}";
    uint64_t base = print_of(p, "ha/answer", NULL);
    CHECK(base == print_of(p, "ha/answer", NULL));
    CHECK(base != print_of("{\"v\":1,\"id\":\"kitchen\",\"prompt\":\"Is it raining?\"}",
                           "ha/answer", NULL));
    CHECK(base != print_of(p, "nodered/answer", NULL));
    CHECK(base != print_of(p, "ha/answer", "c1"));
    CHECK(print_of(p, "ha/answer", "c1") != print_of(p, "ha/answer", "c2"));
    /* fields are length-prefixed: moving bytes from one field to the next changes the print */
    CHECK(print_of("ab", "c", NULL) != print_of("a", "bc", NULL));
    CHECK(print_of(p, "", NULL) == print_of(p, NULL, NULL));
}

static void test_redelivery_and_reuse(void) {
    results *r = results_create(4, 4);
    CHECK(r != NULL);
    if (r == NULL) {
        return;
    }
    char *message = NULL;
    uint64_t first = print_of("{\"id\":\"kitchen\",\"prompt\":\"one\"}", "ha/answer", NULL);
    uint64_t second = print_of("{\"id\":\"kitchen\",\"prompt\":\"two\"}", "ha/answer", NULL);

    CHECK(results_claim(r, "kitchen", first, &message) == RESULT_NEW && message == NULL);
    /* redeliveries while queued and running are duplicates; a different request is a conflict */
    CHECK(results_claim(r, "kitchen", first, &message) == RESULT_QUEUED && message == NULL);
    CHECK(results_claim(r, "kitchen", second, &message) == RESULT_CONFLICT && message == NULL);
    results_set_running(r, "kitchen");
    CHECK(results_claim(r, "kitchen", first, &message) == RESULT_RUNNING);
    CHECK(results_claim(r, "kitchen", second, &message) == RESULT_CONFLICT);
    results_finish(r, "kitchen", "{\"text\":\"answer one\"}");

    /* the same request again: its answer again, without running */
    CHECK(results_claim(r, "kitchen", first, &message) == RESULT_DONE);
    CHECK(message != NULL && strcmp(message, "{\"text\":\"answer one\"}") == 0);
    free(message);
    message = NULL;

    /* the id reused for another question: a new request, and the old answer is forgotten */
    CHECK(results_claim(r, "kitchen", second, &message) == RESULT_NEW && message == NULL);
    CHECK(results_claim(r, "kitchen", second, &message) == RESULT_QUEUED);
    CHECK(results_claim(r, "kitchen", first, &message) == RESULT_CONFLICT);
    results_set_running(r, "kitchen");
    results_finish(r, "kitchen", "{\"text\":\"answer two\"}");
    CHECK(results_claim(r, "kitchen", second, &message) == RESULT_DONE);
    CHECK(message != NULL && strcmp(message, "{\"text\":\"answer two\"}") == 0);
    free(message);
    message = NULL;
    /* and asking the first question again with that id runs it again */
    CHECK(results_claim(r, "kitchen", first, &message) == RESULT_NEW && message == NULL);

    /* a request refused `busy` is forgotten, so its retry runs */
    CHECK(results_claim(r, "retry", first, &message) == RESULT_NEW);
    results_forget(r, "retry");
    CHECK(results_claim(r, "retry", first, &message) == RESULT_NEW);
    results_free(r);
}

static void test_lru_bound(void) {
    /* two finished answers kept: the least recently used one is evicted; live ids never are */
    results *r = results_create(2, 2);
    CHECK(r != NULL);
    if (r == NULL) {
        return;
    }
    char *message = NULL;
    const char *ids[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        CHECK(results_claim(r, ids[i], 7, &message) == RESULT_NEW);
        results_finish(r, ids[i], ids[i]);
    }
    CHECK(results_claim(r, "a", 7, &message) == RESULT_NEW); /* evicted: runs again */
    CHECK(results_claim(r, "c", 7, &message) == RESULT_DONE && message != NULL &&
          strcmp(message, "c") == 0);
    free(message);
    message = NULL;
    CHECK(results_claim(r, "live1", 7, &message) == RESULT_NEW);
    CHECK(results_claim(r, "live2", 7, &message) == RESULT_NEW);
    CHECK(results_claim(r, "live1", 7, &message) == RESULT_QUEUED);
    CHECK(results_claim(r, "live2", 7, &message) == RESULT_QUEUED);
    CHECK(results_claim(r, "a", 7, &message) == RESULT_QUEUED);
    results_free(r);
}

int main(void) {
    test_fingerprint();
    test_redelivery_and_reuse();
    test_lru_bound();
    return test_finish("test_service_results", 0);
}
