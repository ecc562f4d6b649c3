/* topics.c - the node's topic names (see topics.h). Built with snprintf into fixed buffers sized
 * for the longest configured prefix, node id and group, so nothing is ever truncated.
 */
#include "topics.h"

#include <stdio.h>
#include <string.h>

void topics_build(topics *t, const svc_config *cfg) {
    const char *p = cfg->topic_prefix, *n = cfg->node_id;
    snprintf(t->request, TOPIC_SIZE, "%s/%s/request", p, n);
    snprintf(t->cancel, TOPIC_SIZE, "%s/%s/cancel", p, n);
    snprintf(t->fleet_request, TOPIC_SIZE, "%s/fleet/request", p);
    snprintf(t->fleet_subscription, TOPIC_SIZE, "$share/%s/%s/fleet/request", cfg->fleet_group, p);
    snprintf(t->fleet_cancel, TOPIC_SIZE, "%s/fleet/cancel", p);
    snprintf(t->status, TOPIC_SIZE, "%s/%s/status", p, n);
    snprintf(t->health, TOPIC_SIZE, "%s/%s/health", p, n);
    snprintf(t->metrics, TOPIC_SIZE, "%s/%s/metrics", p, n);
    snprintf(t->errors, TOPIC_SIZE, "%s/%s/errors", p, n);
    snprintf(t->response, TOPIC_SIZE, "%s/%s/response", p, n);
    snprintf(t->answer, TOPIC_SIZE, "%s/%s/answer", p, n);
    snprintf(t->ha_status, TOPIC_SIZE, "%s/status", cfg->ha_prefix);
    snprintf(t->ha_config, TOPIC_SIZE, "%s/device/%s/config", cfg->ha_prefix, n);
    snprintf(t->prefix, sizeof t->prefix, "%s", p);
    snprintf(t->ha_prefix, sizeof t->ha_prefix, "%s", cfg->ha_prefix);
}

/* topic equals root or lies below it (root + "/..."). */
static bool topic_under(const char *topic, const char *root) {
    size_t n = strlen(root);
    return n > 0 && strncmp(topic, root, n) == 0 && (topic[n] == '\0' || topic[n] == '/');
}

topic_kind topics_kind(const topics *t, const char *topic, bool fleet_enabled) {
    if (strcmp(topic, t->request) == 0 || (fleet_enabled && strcmp(topic, t->fleet_request) == 0)) {
        return TOPIC_REQUEST;
    }
    if (strcmp(topic, t->cancel) == 0 || (fleet_enabled && strcmp(topic, t->fleet_cancel) == 0)) {
        return TOPIC_CANCEL;
    }
    if (strcmp(topic, t->ha_status) == 0) {
        return TOPIC_HA_STATUS;
    }
    return TOPIC_OTHER;
}

void topics_response(const topics *t, const char *id, char *out, size_t out_size) {
    snprintf(out, out_size, "%s/%s", t->response, id);
}

bool topics_reply_allowed(const topics *t, const char *topic,
                          const char (*allowed_prefixes)[CONFIG_STR_MAX], size_t n_allowed,
                          char *why, size_t why_size) {
    static const char *const node_owned[] = {"request", "cancel", "status", "health",
                                             "metrics", "errors", "answer"};
    if (topic[0] == '$') {
        snprintf(why, why_size, "topics starting with '$' belong to the broker");
        return false;
    }
    if (topic_under(topic, t->ha_prefix)) {
        snprintf(why, why_size, "'%s' is Home Assistant's discovery prefix", t->ha_prefix);
        return false;
    }
    if (topic_under(topic, t->answer)) {
        return true; /* this node's own answer topic (retained; Home Assistant's Ask entity) */
    }
    const size_t prefix_len = strlen(t->prefix);
    if (topic_under(topic, t->prefix) && topic[prefix_len] == '/') {
        const char *node_level = topic + prefix_len + 1;
        const char *kind = strchr(node_level, '/');
        for (size_t i = 0; kind != NULL && i < sizeof node_owned / sizeof node_owned[0]; i++) {
            if (topic_under(kind + 1, node_owned[i])) {
                snprintf(why, why_size, "it is a node's %s topic", node_owned[i]);
                return false;
            }
        }
    }
    if (n_allowed == 0 || topic_under(topic, t->response)) {
        return true;
    }
    for (size_t i = 0; i < n_allowed; i++) {
        if (strncmp(topic, allowed_prefixes[i], strlen(allowed_prefixes[i])) == 0) {
            return true;
        }
    }
    snprintf(why, why_size, "it starts with none of mqtt.reply_prefixes");
    return false;
}
