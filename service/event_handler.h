/* event_handler.h - what edgelmd does with each MQTT event and on each main-loop tick: admits
 * requests into the queue (parse, reply topic, refuse, dedupe by id, count tokens, enqueue),
 * cancels, announces the node and subscribes on (re)connect, ends queued jobs whose deadline
 * passed and publishes health/metrics when they changed. Main-loop thread only: Paho callbacks
 * never call it (they only enqueue events). Generating is the worker's; wiring is main.c's.
 */
#ifndef EDGELMD_EVENT_HANDLER_H
#define EDGELMD_EVENT_HANDLER_H

#include "config.h"
#include "metrics.h"
#include "mqtt_client.h"
#include "request_queue.h"
#include "results.h"
#include "topics.h"
#include "worker.h"

#include <edgelm.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct event_handler_deps {
    const svc_config *cfg; /* read at every event: a SIGHUP reload changes sampling and limits */
    const topics *topics;
    const edgelm_model *model; /* renders and counts prompts at admission */
    int32_t n_ctx;             /* the session's context size: prompts must be shorter */
    request_queue *queue;
    results *results;
    metrics *metrics;
    mqtt_client *mqtt;
    worker *worker;
} event_handler_deps;

typedef struct event_handler event_handler;

/* NULL on out of memory. deps' pointers must outlive the handler. */
event_handler *event_handler_create(const event_handler_deps *deps);
void event_handler_free(event_handler *h);
/* Handle one event from mqtt_client_next_event(). While stopping, requests are refused (busy). */
void event_handler_handle_event(event_handler *h, const mq_event *ev, bool stopping);
/* Timers, once per main-loop turn: connect retries, queued and running deadlines, health and
 * metrics publishing. */
void event_handler_tick(event_handler *h);
/* End every queued job with a `cancelled` error carrying message (shutdown). */
void event_handler_cancel_queued(event_handler *h, const char *message);
/* Shutdown, once the worker is idle: unsubscribe from the request topics (the node's and the
 * fleet's) so the broker sends no request the node would acknowledge and never answer. Requests
 * that arrive until then are still answered (busy). false when nothing needs waiting for (not
 * connected: the persistent session keeps the subscription and the broker queues requests). */
bool event_handler_stop_requests(event_handler *h);
/* The broker has confirmed the unsubscribe (or refused it). */
bool event_handler_requests_stopped(const event_handler *h);

#endif
