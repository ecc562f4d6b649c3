/* test_service_topics.c - edgelmd's topic names (service/topics.c): the names built from the
 * configuration, what an incoming topic is for, and the reply-topic policy that keeps a request
 * from making the node publish into topics others rely on. The policy cases are the golden file
 * tests/data/topics/reply_policy.txt.
 */
#include "config.h"
#include "test_util.h"
#include "topics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_names(const topics *t) {
    CHECK(strcmp(t->request, "edgelm/kitchen/request") == 0);
    CHECK(strcmp(t->cancel, "edgelm/kitchen/cancel") == 0);
    CHECK(strcmp(t->fleet_subscription, "$share/edgelm/edgelm/fleet/request") == 0);
    CHECK(strcmp(t->status, "edgelm/kitchen/status") == 0);
    CHECK(strcmp(t->ha_config, "homeassistant/device/kitchen/config") == 0);
    char out[TOPIC_SIZE];
    topics_response(t, "id-7", out, sizeof out);
    CHECK(strcmp(out, "edgelm/kitchen/response/id-7") == 0);
    CHECK(topics_kind(t, "edgelm/kitchen/request", false) == TOPIC_REQUEST);
    CHECK(topics_kind(t, "edgelm/fleet/request", false) == TOPIC_OTHER);
    CHECK(topics_kind(t, "edgelm/fleet/request", true) == TOPIC_REQUEST);
    CHECK(topics_kind(t, "edgelm/kitchen/cancel", false) == TOPIC_CANCEL);
    CHECK(topics_kind(t, "homeassistant/status", false) == TOPIC_HA_STATUS);
    CHECK(topics_kind(t, "edgelm/kitchen/requests", false) == TOPIC_OTHER);
}

static void test_reply_policy(const topics *t) {
    static const char listed[][CONFIG_STR_MAX] = {"replies/", "home/kitchen/"};
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/topics/reply_policy.txt", test_source_dir());
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (f == NULL) {
        return;
    }
    char line[512];
    int cases = 0, line_no = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        line_no++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') {
            continue;
        }
        char list[16], verdict[16], topic[400];
        if (sscanf(line, "%15s %15s %399s", list, verdict, topic) != 3) {
            CHECK_MSG(false, "%s:%d: unreadable case", path, line_no);
            continue;
        }
        const bool use_list = strcmp(list, "listed") == 0;
        char why[256] = "";
        bool allowed = topics_reply_allowed(t, topic, use_list ? listed : NULL, use_list ? 2 : 0,
                                            why, sizeof why);
        CHECK_MSG(allowed == (strcmp(verdict, "allow") == 0), "%s:%d: %s %s: got %s (%s)", path,
                  line_no, list, topic, allowed ? "allow" : "deny", why);
        CHECK_MSG(allowed || why[0] != '\0', "%s:%d: denied without a reason", path, line_no);
        cases++;
    }
    fclose(f);
    CHECK_MSG(cases >= 30, "only %d policy cases read from %s", cases, path);
}

int main(void) {
    svc_config cfg;
    config_defaults(&cfg);
    snprintf(cfg.node_id, sizeof cfg.node_id, "kitchen");
    snprintf(cfg.topic_prefix, sizeof cfg.topic_prefix, "edgelm");
    snprintf(cfg.ha_prefix, sizeof cfg.ha_prefix, "homeassistant");
    topics t;
    topics_build(&t, &cfg);
    test_names(&t);
    test_reply_policy(&t);
    return test_finish("test_service_topics", 0);
}
