/* request_queue.h - accepted requests (svc_job) and the bounded FIFO between the main loop and
 * the worker. push never blocks: a full queue is the caller's cue to answer `busy`. pop blocks
 * until a job arrives or the queue is closed. A queued job can be taken out by id (cancel) or
 * by deadline. The queue owns nothing: jobs move between owners (main loop -> queue -> worker).
 */
#ifndef EDGELMD_REQUEST_QUEUE_H
#define EDGELMD_REQUEST_QUEUE_H

#include "protocol.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum job_stop {
    JOB_STOP_NONE = 0,
    JOB_STOP_CANCEL,   /* cancel topic */
    JOB_STOP_DEADLINE, /* deadline_ms passed */
    JOB_STOP_SHUTDOWN, /* SIGTERM grace period over */
} job_stop;

typedef struct svc_job {
    svc_request req;
    char *prompt_text;       /* the text to generate from (messages already rendered) */
    int32_t n_prompt_tokens; /* counted at admission */
    double repeat_penalty;   /* sampling defaults not carried by the request */
    int32_t repeat_last_n;
    char reply_topic[PROTOCOL_TOPIC_MAX + 1];
    char stream_topic[PROTOCOL_TOPIC_MAX + 8];
    bool retain_reply; /* the reply goes to the node's answer topic, where it is retained */
    unsigned char *correlation; /* MQTT 5 correlation data to echo, or NULL */
    size_t correlation_len;
    double received_ms;    /* monotonic clock */
    double deadline_at_ms; /* monotonic; 0 = none */
    atomic_int stop;       /* job_stop, set by the main loop, read by the worker */
} svc_job;

void job_free(svc_job *job);

typedef struct request_queue request_queue;

request_queue *request_queue_create(size_t capacity);
void request_queue_free(request_queue *q); /* the queue must be empty */
/* false when full or closed (the job stays with the caller). */
bool request_queue_push(request_queue *q, svc_job *job);
/* Block until a job is available (returns it) or the queue is closed (returns NULL). */
svc_job *request_queue_pop(request_queue *q);
/* Take out the queued job with this id; NULL when none. */
svc_job *request_queue_remove(request_queue *q, const char *id);
/* Take out one queued job whose deadline is at or before now_ms; NULL when none. */
svc_job *request_queue_take_expired(request_queue *q, double now_ms);
/* Take out the oldest job regardless (shutdown drain); NULL when empty. */
svc_job *request_queue_take_any(request_queue *q);
size_t request_queue_depth(request_queue *q);
/* Wake pop() with NULL from now on; push() refuses. */
void request_queue_close(request_queue *q);

#endif
