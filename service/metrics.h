/* metrics.h - edgelmd's health, counters and Home Assistant discovery (docs/protocol.md).
 * The worker records each finished request; the main loop publishes health when something
 * changed, metrics every metrics.interval_s (and after requests), and the discovery document.
 * Names follow llama.cpp server's Prometheus metrics (llamacpp:<name>) where one exists, with
 * its meaning: the *_tokens_seconds rates cover the requests finished since the previous metrics
 * message (0 when none), as llama.cpp's cover those since the previous scrape. Every message
 * carries the node id and a wall-clock time stamp, so a stale retained one shows as such.
 * Thread-safe (one mutex).
 */
#ifndef EDGELMD_METRICS_H
#define EDGELMD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "topics.h"

typedef enum svc_state {
    SVC_STATE_LOADING = 0,
    SVC_STATE_IDLE,
    SVC_STATE_BUSY,
    SVC_STATE_ERROR,
} svc_state;

typedef enum svc_outcome {
    SVC_OUTCOME_OK = 0,
    SVC_OUTCOME_ERROR,
    SVC_OUTCOME_CANCELLED,
    SVC_OUTCOME_REJECTED, /* refused before running: invalid, too large, busy */
} svc_outcome;

typedef struct metrics_sample {
    int32_t prompt_tokens; /* prefilled (not reused from the cache) */
    int32_t cached_tokens;
    double prompt_ms;
    int32_t predicted_tokens;
    double predicted_ms;
    double ttft_ms;
    int32_t n_forward_passes; /* model evaluations (llama.cpp's n_decode) */
    int32_t n_context_tokens; /* context positions the request used: prompt + generated */
} metrics_sample;

typedef struct metrics metrics;

metrics *metrics_create(const char *node, const char *version);
void metrics_free(metrics *m);
void metrics_set_model(metrics *m, const char *model_name);
void metrics_set_state(metrics *m, svc_state state);
svc_state metrics_state(metrics *m);
void metrics_set_queue_depth(metrics *m, size_t depth);
/* One request ended with outcome; sample may be NULL (nothing was generated). */
void metrics_record(metrics *m, svc_outcome outcome, const metrics_sample *sample);
void metrics_set_last_error(metrics *m, const char *message);
/* Change counters: health_version moves on state/queue changes, metrics_version on records. */
uint64_t metrics_health_version(metrics *m);
uint64_t metrics_metrics_version(metrics *m);

/* JSON documents (malloc'd, NULL on out of memory). metrics_json also starts the next
 * measurement period of the *_tokens_seconds rates (call it once per published message). */
char *metrics_health_json(metrics *m);
char *metrics_json(metrics *m);
/* Home Assistant device discovery for <ha prefix>/device/<node>/config: an Ask text entity that
 * publishes a request answered on the node's retained answer topic, a Last answer sensor on that
 * topic, and sensors on the health and metrics topics; availability from the status topic. */
char *metrics_discovery_json(metrics *m, const topics *t);

/* Resident set size of this process from /proc/self/status (0 when unknown). */
uint64_t metrics_rss_bytes(void);
/* CPU temperature from /sys/class/thermal (false when the board exposes none). */
bool metrics_cpu_temp_c(double *out);

#endif
