/* worker.h - the one thread that owns the engine session and runs requests one at a time.
 * It pops jobs from the request queue, streams token chunks, publishes the final result or
 * error to the job's reply topic, records it for duplicate ids and updates the metrics. Other
 * threads stop the running job only through worker_stop_job()/worker_check_deadline(), which
 * set the job's stop reason and call edgelm_session_cancel() (generation ends within a token).
 */
#ifndef EDGELMD_WORKER_H
#define EDGELMD_WORKER_H

#include "metrics.h"
#include "mqtt_client.h"
#include "request_queue.h"
#include "results.h"

#include <edgelm.h>

typedef struct worker_deps {
    const edgelm_model *model; /* shared, outlives the worker */
    const char *node_id;
    const char *model_name;
    int32_t threads;
    int32_t context;
    int32_t stream_expiry_s;
    request_queue *queue;
    results *results;
    metrics *metrics;
    mqtt_client *mqtt;
} worker_deps;

typedef struct worker worker;

/* Create the session and start the thread. NULL + message on failure. */
worker *worker_start(const worker_deps *deps, char *err, size_t err_size);
/* Stop the running job if its id is id; true when it was running. */
bool worker_stop_job(worker *w, const char *id, job_stop why);
/* Stop whatever runs. */
void worker_stop_running(worker *w, job_stop why);
/* Stop the running job if its deadline has passed. */
void worker_check_deadline(worker *w, double now_ms);
/* The session's context size in tokens. */
int32_t worker_n_ctx(worker *w);
/* True while a job runs. */
bool worker_busy(worker *w);
/* After request_queue_close(): wait for the thread to finish its job and exit, then free. */
void worker_join(worker *w);

/* Publish a final message (result or error JSON) for job to its reply topic, QoS 1, with the
 * job's correlation data. Used by the worker and by the main loop (queued jobs it ends). */
void worker_reply(mqtt_client *mqtt, const svc_job *job, const char *json);

double svc_now_ms(void); /* monotonic clock in ms */

#endif
