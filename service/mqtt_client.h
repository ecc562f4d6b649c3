/* mqtt_client.h - edgelmd's wrapper around Paho MQTTAsync (MQTT 5, falling back to 3.1.1).
 * Paho's callbacks run on Paho's threads and only copy what arrived into an event and enqueue
 * it; the main loop takes events with mqtt_client_next_event() and does all the thinking
 * (subscribing after a connect included). Publishing is thread-safe. QoS 1 messages (results,
 * errors, status) stay in the client's outbox until the broker acknowledges them, and are sent
 * again on the next connection if it went first; token chunks (QoS 0) are dropped when not
 * connected. Each connection has its own Paho handle (see mqtt_client.c for why).
 * Session: clean start off + session expiry, Last Will "offline" retained on the status topic.
 */
#ifndef EDGELMD_MQTT_CLIENT_H
#define EDGELMD_MQTT_CLIENT_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum mq_event_type {
    MQ_EV_MESSAGE = 0,
    MQ_EV_CONNECTED, /* (re)connected: subscribe and announce again */
    MQ_EV_CONNECTION_LOST,
    MQ_EV_CONNECT_FAILED, /* a connect attempt failed; code says why */
    MQ_EV_UNSUBSCRIBED,   /* mqtt_client_unsubscribe completed (code 0) or failed */
} mq_event_type;

typedef struct mq_event {
    mq_event_type type;
    char *topic;            /* MESSAGE */
    unsigned char *payload; /* MESSAGE; NUL-terminated copy, payload_len bytes before the NUL */
    size_t payload_len;
    bool oversize;              /* payload_len exceeds the limit: payload was not copied (empty) */
    char *response_topic;       /* MQTT 5 Response Topic, or NULL */
    unsigned char *correlation; /* MQTT 5 Correlation Data, or NULL */
    size_t correlation_len;
    int code;         /* CONNECT_FAILED: Paho code or MQTT reason code */
    int mqtt_version; /* the connection's version: 5 or 4 */
    struct mq_event *next;
} mq_event;

/* Frees the event and everything it points to (one allocation for a message). */
void mq_event_free(mq_event *ev);

typedef struct mqtt_client mqtt_client;

/* Create the client for the configured broker (no connection yet); status_topic is where the
 * Last Will and the `offline` of a disconnect go. NULL + message on error. */
mqtt_client *mqtt_client_create(const svc_config *cfg, const char *status_topic, char *err,
                                size_t err_size);
/* Start connecting (asynchronously). After a loss, mqtt_client_tick reconnects: at once when the
 * connection had held for a second, else after the back-off delay. */
bool mqtt_client_connect(mqtt_client *mc);
/* Handle a CONNECT_FAILED event: falls back to MQTT 3.1.1 when the broker refused version 5
 * (and the configuration allows it), else retries later with back-off. Call from the main loop. */
void mqtt_client_on_connect_failed(mqtt_client *mc, int code);
/* Why the last connect failed, in words: the broker's reason (not authorized, bad user name or
 * password), the TLS error (certificate verify failed; a plaintext port) or Paho's message. */
void mqtt_client_describe_failure(mqtt_client *mc, int code, char *out, size_t out_size);
/* Call periodically from the main loop: replaces a lost connection's handle, runs scheduled
 * connects and sends what waits in the outbox once connected. */
void mqtt_client_tick(mqtt_client *mc);
/* Wait up to timeout_ms for an event; NULL on timeout. Caller frees with mq_event_free. */
mq_event *mqtt_client_next_event(mqtt_client *mc, int timeout_ms);

bool mqtt_client_connected(mqtt_client *mc);
/* Payloads above this many bytes are not copied (the event says oversize). SIGHUP may change it;
 * the MQTT 5 Maximum Packet Size told to the broker (this + 16 KiB) changes at the next connect. */
void mqtt_client_set_max_payload(mqtt_client *mc, size_t max_bytes);
/* 5 or 4 (3.1.1): the protocol version in use (or being tried). */
int mqtt_client_version(mqtt_client *mc);

bool mqtt_client_subscribe(mqtt_client *mc, const char *topic, int qos);
/* Unsubscribe from topics; an MQ_EV_UNSUBSCRIBED event follows when the broker has answered (the
 * messages it sent before are then already events). false when not connected. */
bool mqtt_client_unsubscribe(mqtt_client *mc, char *const *topics, int n_topics);

typedef struct mq_publish {
    const char *topic;
    const void *payload;
    size_t payload_len;
    int qos;
    bool retain;
    int expiry_s;            /* MQTT 5 message expiry; 0 = none */
    const void *correlation; /* MQTT 5 correlation data to echo, or NULL */
    size_t correlation_len;
    bool drop_when_offline; /* QoS 0 token chunks: never buffer */
} mq_publish;

/* Publish (any thread). QoS 1 is copied into the outbox (false when mqtt.max_buffered messages
 * already wait); QoS 0, and QoS 1 with drop_when_offline, give false when not connected. */
bool mqtt_client_publish(mqtt_client *mc, const mq_publish *p);

/* Publish `offline` on the status topic, then disconnect, letting queued QoS 1 messages go out
 * for up to timeout_ms. */
void mqtt_client_disconnect(mqtt_client *mc, int timeout_ms);
void mqtt_client_free(mqtt_client *mc);

#endif
