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
    snprintf(t->ha_status, TOPIC_SIZE, "%s/status", cfg->ha_prefix);
    snprintf(t->ha_config, TOPIC_SIZE, "%s/device/%s/config", cfg->ha_prefix, n);
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
