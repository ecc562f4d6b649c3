/* topics.h - the MQTT topic names of one edgelmd node (docs/protocol.md), built once from the
 * configuration: what it subscribes to, where it publishes status/health/metrics/errors, the
 * Home Assistant topics and the default reply topic of a request. Plain strings, no MQTT calls.
 * Every topic string edgelmd uses is built here; config_finish() has already checked that
 * prefix, node id and group contain no wildcards, and TOPIC_SIZE holds the longest of them.
 */
#ifndef EDGELMD_TOPICS_H
#define EDGELMD_TOPICS_H

#include "config.h"
#include "protocol.h"

#include <stdbool.h>
#include <stddef.h>

#define TOPIC_SIZE (CONFIG_STR_MAX * 3 + PROTOCOL_ID_MAX + 64)

typedef struct topics {
    char request[TOPIC_SIZE];            /* <prefix>/<node>/request */
    char cancel[TOPIC_SIZE];             /* <prefix>/<node>/cancel */
    char fleet_request[TOPIC_SIZE];      /* <prefix>/fleet/request (as messages arrive) */
    char fleet_subscription[TOPIC_SIZE]; /* $share/<group>/<prefix>/fleet/request */
    char fleet_cancel[TOPIC_SIZE];       /* <prefix>/fleet/cancel */
    char status[TOPIC_SIZE];             /* <prefix>/<node>/status: online/offline, Last Will */
    char health[TOPIC_SIZE];             /* <prefix>/<node>/health */
    char metrics[TOPIC_SIZE];            /* <prefix>/<node>/metrics */
    char errors[TOPIC_SIZE];             /* <prefix>/<node>/errors: refusals with no reply topic */
    char response[TOPIC_SIZE];           /* <prefix>/<node>/response (+ /<id>) */
    char answer[TOPIC_SIZE];             /* <prefix>/<node>/answer: retained last answer (HA) */
    char ha_status[TOPIC_SIZE];          /* <ha prefix>/status: Home Assistant's birth message */
    char ha_config[TOPIC_SIZE];          /* <ha prefix>/device/<node>/config: discovery */
    char prefix[CONFIG_STR_MAX];         /* mqtt.topic_prefix */
    char ha_prefix[CONFIG_STR_MAX];      /* homeassistant.prefix */
} topics;

/* What an incoming message's topic is for. */
typedef enum topic_kind {
    TOPIC_OTHER = 0,
    TOPIC_REQUEST,   /* the node's request topic, or the fleet's when fleet is enabled */
    TOPIC_CANCEL,    /* the node's cancel topic, or the fleet's when fleet is enabled */
    TOPIC_HA_STATUS, /* Home Assistant's status */
} topic_kind;

void topics_build(topics *t, const svc_config *cfg);
topic_kind topics_kind(const topics *t, const char *topic, bool fleet_enabled);
/* The default reply topic of request id: <prefix>/<node>/response/<id>. */
void topics_response(const topics *t, const char *id, char *out, size_t out_size);
/* Whether a request may have its answer (and its stream, topic + "/stream") published on topic,
 * so that nobody can make the node publish into topics others rely on (a confused deputy):
 * never `$` topics, the Home Assistant prefix, or any node's request, cancel, status, health,
 * metrics, errors or answer topics (<prefix>/<any>/<kind>[/...]) but this node's own answer
 * topic; and when allowed_prefixes is not empty, only topics starting with one of them (or the
 * node's own response and answer topics). false + why. */
bool topics_reply_allowed(const topics *t, const char *topic,
                          const char (*allowed_prefixes)[CONFIG_STR_MAX], size_t n_allowed,
                          char *why, size_t why_size);

#endif
