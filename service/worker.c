/* worker.c - the engine thread (see worker.h). Only this thread touches the session, except
 * edgelm_session_cancel(), which is safe from any thread. running_lock guards the pointer to
 * the running job so a cancel never races with the job being freed.
 */
#include "worker.h"

#include "log.h"
#include "protocol.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct worker {
    worker_deps deps;
    edgelm_session *session;
    pthread_t thread;
    pthread_mutex_t running_lock;
    svc_job *running; /* under running_lock */
    uint64_t seed_counter;
};

double svc_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void worker_reply(mqtt_client *mqtt, const svc_job *job, const char *json) {
    mq_publish p = {
        .topic = job->reply_topic,
        .payload = json,
        .payload_len = strlen(json),
        .qos = 1,
        .retain = job->retain_reply,
        .correlation = job->correlation,
        .correlation_len = job->correlation_len,
    };
    if (!mqtt_client_publish(mqtt, &p)) {
        log_msg(LOG_ERROR, "request %s: could not queue the reply to %s", job->req.id,
                job->reply_topic);
    }
}

typedef struct gen_state {
    worker *w;
    svc_job *job;
    char *text; /* the cleaned text so far (what the stream chunks add up to) */
    size_t len, cap;
    int64_t seq;
    bool oom;
} gen_state;

static bool append(gen_state *g, const char *s, size_t n) {
    if (g->len + n + 1 > g->cap) {
        size_t cap = g->cap ? g->cap : 256;
        while (cap < g->len + n + 1) {
            cap *= 2;
        }
        char *t = realloc(g->text, cap);
        if (t == NULL) {
            return false;
        }
        g->text = t;
        g->cap = cap;
    }
    memcpy(g->text + g->len, s, n);
    g->len += n;
    g->text[g->len] = '\0';
    return true;
}

static bool on_token(void *user_data, int32_t token, const char *text, size_t text_len) {
    gen_state *g = user_data;
    svc_job *job = g->job;
    (void)token;
    if (text_len > 0) {
        size_t clen = 0;
        char *clean = protocol_utf8_clean(text, text_len, &clen);
        if (clean == NULL || !append(g, clean, clen)) {
            free(clean);
            g->oom = true;
            return false;
        }
        if (job->req.stream) {
            char *chunk = protocol_token_json(job->req.id, g->seq, clean);
            if (chunk != NULL) {
                mq_publish p = {
                    .topic = job->stream_topic,
                    .payload = chunk,
                    .payload_len = strlen(chunk),
                    .qos = 0,
                    .expiry_s = g->w->deps.stream_expiry_s,
                    .correlation = job->correlation,
                    .correlation_len = job->correlation_len,
                    .drop_when_offline = true,
                };
                mqtt_client_publish(g->w->deps.mqtt, &p);
                free(chunk);
            }
            g->seq++; /* a chunk lost while offline still used its number: gaps mean loss */
        }
        free(clean);
    }
    if (job->deadline_at_ms > 0 && svc_now_ms() >= job->deadline_at_ms) {
        int expected = JOB_STOP_NONE;
        atomic_compare_exchange_strong(&job->stop, &expected, JOB_STOP_DEADLINE);
    }
    return atomic_load(&job->stop) == JOB_STOP_NONE;
}

static const char *finish_name(edgelm_finish_reason reason, job_stop stop) {
    if (stop == JOB_STOP_DEADLINE) {
        return "deadline";
    }
    if (stop != JOB_STOP_NONE) {
        return "cancelled";
    }
    switch (reason) {
    case EDGELM_FINISH_EOG:
    case EDGELM_FINISH_GRAMMAR:
        return "stop";
    case EDGELM_FINISH_STOP_STRING:
        return "stop_word";
    case EDGELM_FINISH_CANCELLED:
    case EDGELM_FINISH_CALLBACK:
        return "cancelled";
    case EDGELM_FINISH_LENGTH:
    case EDGELM_FINISH_CONTEXT_FULL:
    default:
        return "length";
    }
}

static uint64_t fresh_seed(worker *w) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (++w->seed_counter << 17);
    x ^= x >> 33; /* splitmix-style finalizer */
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x & 0xFFFFFFFFu;
}

static void run_job(worker *w, svc_job *job) {
    const svc_request *req = &job->req;
    double t_start = svc_now_ms();
    edgelm_generate_params gp = edgelm_generate_params_default();
    gp.prompt = job->prompt_text;
    gp.prompt_len = strlen(job->prompt_text);
    gp.n_predict = req->max_tokens;
    gp.sampling.temperature = (float)req->temperature;
    gp.sampling.top_p = (float)req->top_p;
    gp.sampling.top_k = req->top_k;
    gp.sampling.min_p = (float)req->min_p;
    gp.sampling.repeat_penalty = (float)job->repeat_penalty;
    gp.sampling.repeat_last_n = job->repeat_last_n;
    gp.sampling.seed = req->seed >= 0 ? (uint64_t)req->seed : fresh_seed(w);
    gp.reuse_prefix = req->cache_prompt;
    gp.stop = (const char *const *)req->stop;
    gp.n_stop = req->n_stop;
    gp.format = req->format == SVC_FORMAT_JSON          ? EDGELM_FORMAT_JSON
                : req->format == SVC_FORMAT_JSON_SCHEMA ? EDGELM_FORMAT_JSON_SCHEMA
                                                        : EDGELM_FORMAT_TEXT;
    gp.json_schema = req->json_schema;
    gen_state g = {.w = w, .job = job};
    edgelm_finish_reason reason = EDGELM_FINISH_LENGTH;
    edgelm_status st = edgelm_generate(w->session, &gp, on_token, &g, &reason);
    edgelm_timings t;
    edgelm_session_timings(w->session, &t);
    job_stop stop = (job_stop)atomic_load(&job->stop);
    char *json = NULL;
    svc_outcome outcome = SVC_OUTCOME_OK;
    metrics_sample sample = {0};
    if (g.oom) {
        json = protocol_error_json(req->id, SVC_ERR_INTERNAL, "out of memory while generating");
        outcome = SVC_OUTCOME_ERROR;
    } else if (st != EDGELM_OK && !(st == EDGELM_ERR_CANCELLED && stop != JOB_STOP_NONE)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s: %s", edgelm_strerror(st), edgelm_session_errmsg(w->session));
        json =
            protocol_error_json(req->id,
                                st == EDGELM_ERR_CONTEXT_FULL ? SVC_ERR_TOO_LARGE
                                /* a bad schema, or max_tokens below its shortest value */
                                : st == EDGELM_ERR_BAD_SCHEMA || st == EDGELM_ERR_INVALID_ARGUMENT
                                    ? SVC_ERR_INVALID_REQUEST
                                    : SVC_ERR_MODEL_ERROR,
                                msg);
        metrics_set_last_error(w->deps.metrics, msg);
        outcome = SVC_OUTCOME_ERROR;
        log_msg(LOG_WARN, "request %s: %s", req->id, msg);
    } else {
        /* the first token's own time is ttft - prefill; decode_ms covers the rest */
        double predicted_ms =
            t.n_generated_tokens > 0 ? t.ttft_ms - t.prompt_ms + t.decode_ms : 0.0;
        svc_result r = {
            .id = req->id,
            .node = w->deps.node_id,
            .model = w->deps.model_name,
            .text = g.text != NULL ? g.text : "",
            .with_json = req->format != SVC_FORMAT_TEXT,
            .finish_reason = finish_name(reason, stop),
            .prompt_tokens = t.n_prompt_tokens,
            .completion_tokens = t.n_generated_tokens,
            .cached_tokens = t.n_cached_tokens,
            .queue_ms = t_start - job->received_ms,
            .ttft_ms = t.ttft_ms,
            .prompt_ms = t.prompt_ms,
            .predicted_ms = predicted_ms,
        };
        json = protocol_result_json(&r);
        outcome = stop != JOB_STOP_NONE ? SVC_OUTCOME_CANCELLED : SVC_OUTCOME_OK;
        sample = (metrics_sample){
            .prompt_tokens = t.n_prompt_tokens - r.cached_tokens,
            .cached_tokens = r.cached_tokens,
            .prompt_ms = t.prompt_ms,
            .predicted_tokens = t.n_generated_tokens,
            .predicted_ms = predicted_ms,
            .ttft_ms = t.ttft_ms,
            .n_forward_passes = t.n_forward_passes,
            /* a context shift keeps the count at n_ctx at most */
            .n_context_tokens =
                t.n_prompt_tokens + t.n_generated_tokens < (int32_t)edgelm_session_n_ctx(w->session)
                    ? t.n_prompt_tokens + t.n_generated_tokens
                    : (int32_t)edgelm_session_n_ctx(w->session),
        };
        log_msg(LOG_INFO, "request %s: %s, %d+%d tokens, %.1f tok/s, ttft %.1f ms", req->id,
                r.finish_reason, (int)t.n_prompt_tokens, (int)t.n_generated_tokens,
                predicted_ms > 0 ? t.n_generated_tokens * 1000.0 / predicted_ms : 0.0, t.ttft_ms);
    }
    if (json == NULL) {
        json = protocol_error_json(req->id, SVC_ERR_INTERNAL, "out of memory");
    }
    if (json != NULL) {
        results_finish(w->deps.results, req->id, json);
        worker_reply(w->deps.mqtt, job, json);
    }
    metrics_record(w->deps.metrics, outcome, outcome == SVC_OUTCOME_ERROR ? NULL : &sample);
    free(json);
    free(g.text);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    metrics_set_state(w->deps.metrics, SVC_STATE_IDLE);
    for (;;) {
        svc_job *job = request_queue_pop(w->deps.queue);
        if (job == NULL) {
            break;
        }
        pthread_mutex_lock(&w->running_lock);
        w->running = job;
        pthread_mutex_unlock(&w->running_lock);
        results_set_running(w->deps.results, job->req.id);
        metrics_set_state(w->deps.metrics, SVC_STATE_BUSY);
        run_job(w, job);
        pthread_mutex_lock(&w->running_lock);
        w->running = NULL;
        pthread_mutex_unlock(&w->running_lock);
        job_free(job);
        metrics_set_state(w->deps.metrics, SVC_STATE_IDLE);
    }
    return NULL;
}

worker *worker_start(const worker_deps *deps, char *err, size_t err_size) {
    worker *w = calloc(1, sizeof *w);
    if (w == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    w->deps = *deps;
    edgelm_session_params sp = edgelm_session_params_default();
    sp.n_threads = deps->threads;
    sp.n_ctx = (uint32_t)deps->context;
    edgelm_status st = edgelm_session_create(deps->model, &sp, &w->session, err, err_size);
    if (st != EDGELM_OK) {
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->running_lock, NULL);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        snprintf(err, err_size, "cannot start the worker thread");
        edgelm_session_free(w->session);
        pthread_mutex_destroy(&w->running_lock);
        free(w);
        return NULL;
    }
    return w;
}

bool worker_stop_job(worker *w, const char *id, job_stop why) {
    bool hit = false;
    pthread_mutex_lock(&w->running_lock);
    if (w->running != NULL && (id == NULL || strcmp(w->running->req.id, id) == 0)) {
        int expected = JOB_STOP_NONE;
        atomic_compare_exchange_strong(&w->running->stop, &expected, (int)why);
        edgelm_session_cancel(w->session);
        hit = true;
    }
    pthread_mutex_unlock(&w->running_lock);
    return hit;
}

void worker_stop_running(worker *w, job_stop why) { worker_stop_job(w, NULL, why); }

void worker_check_deadline(worker *w, double now_ms) {
    pthread_mutex_lock(&w->running_lock);
    svc_job *job = w->running;
    if (job != NULL && job->deadline_at_ms > 0 && now_ms >= job->deadline_at_ms) {
        int expected = JOB_STOP_NONE;
        if (atomic_compare_exchange_strong(&job->stop, &expected, JOB_STOP_DEADLINE)) {
            edgelm_session_cancel(w->session);
        }
    }
    pthread_mutex_unlock(&w->running_lock);
}

int32_t worker_n_ctx(worker *w) { return (int32_t)edgelm_session_n_ctx(w->session); }

bool worker_busy(worker *w) {
    pthread_mutex_lock(&w->running_lock);
    bool busy = w->running != NULL;
    pthread_mutex_unlock(&w->running_lock);
    return busy;
}

void worker_join(worker *w) {
    if (w == NULL) {
        return;
    }
    pthread_join(w->thread, NULL);
    edgelm_session_free(w->session);
    pthread_mutex_destroy(&w->running_lock);
    free(w);
}
