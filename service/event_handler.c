/* event_handler.c - MQTT events and timers on the main loop (see event_handler.h).
 * A request is either refused here (an error to its reply topic, else to the errors topic) or
 * becomes a job that the queue, then the worker, owns; once pushed, the job is no longer ours.
 * Its id is claimed in results before it is queued, so a redelivery never runs twice.
 */
#include "event_handler.h"

#include "log.h"
#include "protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONNECTED_DUPLICATE_MS 500.0

struct event_handler {
    event_handler_deps deps;
    bool announced;         /* CONNECTED handled since the last loss */
    double announced_at_ms; /* when: a second CONNECTED moments later is Paho's duplicate */
    uint64_t health_sent, metrics_sent;
    double metrics_at_ms;
    uint64_t id_counter;
    bool stopping_requests; /* shutdown: request topics unsubscribed (or being) */
    bool requests_stopped;  /* ... and the broker confirmed */
};

event_handler *event_handler_create(const event_handler_deps *deps) {
    event_handler *h = calloc(1, sizeof *h);
    if (h != NULL) {
        h->deps = *deps;
    }
    return h;
}

void event_handler_free(event_handler *h) { free(h); }

static void publish_text(event_handler *h, const char *topic, const char *text, int qos,
                         bool retain, bool drop_when_offline) {
    if (text == NULL) {
        return;
    }
    mq_publish p = {.topic = topic,
                    .payload = text,
                    .payload_len = strlen(text),
                    .qos = qos,
                    .retain = retain,
                    .drop_when_offline = drop_when_offline};
    mqtt_client_publish(h->deps.mqtt, &p);
}

static void publish_health(event_handler *h) {
    h->health_sent = metrics_health_version(h->deps.metrics);
    char *s = metrics_health_json(h->deps.metrics);
    publish_text(h, h->deps.topics->health, s, 1, true, true);
    free(s);
}

static void publish_metrics(event_handler *h) {
    h->metrics_sent = metrics_metrics_version(h->deps.metrics);
    h->metrics_at_ms = svc_now_ms();
    char *s = metrics_json(h->deps.metrics);
    publish_text(h, h->deps.topics->metrics, s, 0, true, true);
    free(s);
}

static void publish_discovery(event_handler *h) {
    if (!h->deps.cfg->ha_discovery) {
        return;
    }
    const topics *t = h->deps.topics;
    char *s = metrics_discovery_json(h->deps.metrics, t);
    publish_text(h, t->ha_config, s, 1, true, true);
    free(s);
}

/* An error for a request that never became a job: to its reply topic when it has one, else to
 * the node's errors topic. */
static void reject(event_handler *h, const mq_event *ev, const char *reply_topic, const char *id,
                   svc_error_code code, const char *message) {
    char *json = protocol_error_json(id, code, message);
    if (json == NULL) {
        return;
    }
    bool addressed = reply_topic != NULL && reply_topic[0] != '\0';
    mq_publish p = {
        .topic = addressed ? reply_topic : h->deps.topics->errors,
        .payload = json,
        .payload_len = strlen(json),
        .qos = 1,
        .retain = addressed && strcmp(reply_topic, h->deps.topics->answer) == 0,
        .correlation = addressed ? ev->correlation : NULL,
        .correlation_len = addressed ? ev->correlation_len : 0,
    };
    mqtt_client_publish(h->deps.mqtt, &p);
    free(json);
    if (code != SVC_ERR_BUSY) {
        metrics_set_last_error(h->deps.metrics, message);
    }
    metrics_record(h->deps.metrics, SVC_OUTCOME_REJECTED, NULL);
    log_msg(LOG_INFO, "request %s refused (%s): %s", id && id[0] ? id : "(no id)",
            svc_error_code_name(code), message);
}

/* Render the request's text: the prompt itself, or the messages through the chat template. */
static svc_error_code render_prompt(const edgelm_model *model, const svc_request *req, char **out,
                                    char *msg, size_t msg_size) {
    if (req->prompt != NULL) {
        *out = strdup(req->prompt);
        return *out != NULL ? SVC_OK : SVC_ERR_INTERNAL;
    }
    edgelm_chat_message *msgs = calloc(req->n_messages, sizeof *msgs);
    if (msgs == NULL) {
        return SVC_ERR_INTERNAL;
    }
    for (size_t i = 0; i < req->n_messages; i++) {
        msgs[i].role = req->messages[i].role;
        msgs[i].content = req->messages[i].content;
    }
    int32_t n = edgelm_chat_apply(model, msgs, req->n_messages, true, NULL, 0);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf != NULL &&
        edgelm_chat_apply(model, msgs, req->n_messages, true, buf, (size_t)n + 1) != n) {
        free(buf);
        buf = NULL;
    }
    free(msgs);
    if (buf == NULL) {
        snprintf(msg, msg_size, "field 'messages': the chat template could not be applied%s%s",
                 n < 0 ? ": " : "", n < 0 ? edgelm_strerror((edgelm_status)-n) : "");
        return n < 0 ? SVC_ERR_MODEL_ERROR : SVC_ERR_INTERNAL;
    }
    *out = buf;
    return SVC_OK;
}

/* Where the answer goes: the MQTT 5 Response Topic, else the payload's reply_to, else (once the
 * id is known) the node's response topic for the id; "" while none is known, or when the topic
 * asked for may not be used (then *refusal says why, and the refusal goes to the errors topic:
 * a request must not make the node publish where it should not, not even an error). */
static void choose_reply_topic(const event_handler *h, const mq_event *ev, const svc_request *req,
                               char *out, size_t out_size, char *refusal, size_t refusal_size) {
    const svc_config *cfg = h->deps.cfg;
    const char *asked = ev->response_topic != NULL ? ev->response_topic
                        : req->reply_to[0] != '\0' ? req->reply_to
                                                   : NULL;
    const char *what =
        ev->response_topic != NULL ? "the MQTT 5 Response Topic:" : "field 'reply_to':";
    out[0] = '\0';
    refusal[0] = '\0';
    char why[256];
    if (asked == NULL) {
        if (req->has_id) {
            topics_response(h->deps.topics, req->id, out, out_size);
        }
    } else if (!protocol_topic_ok(asked, strlen(asked))) {
        snprintf(refusal, refusal_size,
                 "%s expected a topic name of 1..%d bytes without wildcards or a leading $", what,
                 PROTOCOL_TOPIC_MAX);
    } else if (!topics_reply_allowed(h->deps.topics, asked, cfg->reply_prefixes.prefix,
                                     (size_t)cfg->reply_prefixes.n, why, sizeof why)) {
        snprintf(refusal, refusal_size, "%s '%.200s' is not allowed: %s", what, asked, why);
    } else {
        snprintf(out, out_size, "%s", asked);
    }
}

static void handle_request(event_handler *h, const mq_event *ev, bool stopping) {
    const svc_config *cfg = h->deps.cfg;
    svc_request req;
    char msg[512];
    svc_error_code code = protocol_parse_request(ev->payload, ev->payload_len, &cfg->limits,
                                                 &cfg->sampling, &req, msg, sizeof msg);
    char reply_topic[PROTOCOL_TOPIC_MAX + 1], refusal[512];
    choose_reply_topic(h, ev, &req, reply_topic, sizeof reply_topic, refusal, sizeof refusal);
    if (refusal[0] != '\0' && code == SVC_OK) {
        code = SVC_ERR_INVALID_REQUEST;
        snprintf(msg, sizeof msg, "%s", refusal);
    }
    svc_job *job = NULL;
    if (code != SVC_OK) {
        reject(h, ev, reply_topic, req.id, code, msg);
        goto done;
    }
    if (!req.has_id) {
        snprintf(req.id, sizeof req.id, "%.64s-%llu-%04x", cfg->node_id,
                 (unsigned long long)++h->id_counter, (unsigned)(svc_now_ms()) & 0xFFFFu);
        if (reply_topic[0] == '\0') {
            topics_response(h->deps.topics, req.id, reply_topic, sizeof reply_topic);
        }
    }
    if (stopping) {
        reject(h, ev, reply_topic, req.id, SVC_ERR_BUSY, "node is shutting down; retry later");
        goto done;
    }
    char *prior = NULL;
    uint64_t fingerprint = results_fingerprint(ev->payload, ev->payload_len, reply_topic,
                                               ev->correlation, ev->correlation_len);
    result_state st = results_claim(h->deps.results, req.id, fingerprint, &prior);
    if (st == RESULT_CONFLICT) {
        log_msg(LOG_INFO, "request %s: the id is in use by another queued or running request",
                req.id);
        reject(h, ev, reply_topic, req.id, SVC_ERR_BUSY,
               "id is in use by a different request that is still queued or running; use a "
               "new id for each request, or retry when it has finished");
        goto done;
    }
    if (st == RESULT_DONE) {
        log_msg(LOG_INFO, "request %s: duplicate of a finished request; sending its reply again",
                req.id);
        if (prior != NULL) {
            mq_publish p = {.topic = reply_topic,
                            .payload = prior,
                            .payload_len = strlen(prior),
                            .qos = 1,
                            .correlation = ev->correlation,
                            .correlation_len = ev->correlation_len};
            mqtt_client_publish(h->deps.mqtt, &p);
        }
        free(prior);
        goto done;
    }
    if (st != RESULT_NEW) {
        log_msg(LOG_INFO, "request %s: duplicate of a %s request; ignored", req.id,
                st == RESULT_RUNNING ? "running" : "queued");
        goto done;
    }
    job = calloc(1, sizeof *job);
    if (job == NULL) {
        results_forget(h->deps.results, req.id);
        reject(h, ev, reply_topic, req.id, SVC_ERR_INTERNAL, "out of memory");
        goto done;
    }
    job->req = req;
    memset(&req, 0, sizeof req); /* the job owns the strings now */
    code = render_prompt(h->deps.model, &job->req, &job->prompt_text, msg, sizeof msg);
    if (code == SVC_OK) {
        int32_t n_ctx = h->deps.n_ctx;
        bool add_bos = edgelm_model_add_bos(h->deps.model);
        int32_t n = edgelm_tokenize(h->deps.model, job->prompt_text, strlen(job->prompt_text),
                                    add_bos, true, NULL, 0);
        if (n < 0) {
            code = SVC_ERR_INVALID_REQUEST;
            snprintf(msg, sizeof msg, "field 'prompt': cannot be tokenized: %s",
                     edgelm_strerror((edgelm_status)-n));
        } else if (n > cfg->limits.max_prompt_tokens || n >= n_ctx) {
            code = SVC_ERR_TOO_LARGE;
            snprintf(msg, sizeof msg, "field '%s': %d tokens exceed the limit of %d",
                     job->req.prompt != NULL ? "prompt" : "messages", (int)n,
                     (int)(cfg->limits.max_prompt_tokens < n_ctx - 1 ? cfg->limits.max_prompt_tokens
                                                                     : n_ctx - 1));
        }
        job->n_prompt_tokens = n;
    } else if (msg[0] == '\0') {
        snprintf(msg, sizeof msg, "out of memory");
    }
    if (code != SVC_OK) {
        char *json = protocol_error_json(job->req.id, code, msg);
        if (json != NULL) {
            results_finish(h->deps.results, job->req.id, json);
        }
        free(json);
        reject(h, ev, reply_topic, job->req.id, code, msg);
        goto done;
    }
    snprintf(job->reply_topic, sizeof job->reply_topic, "%s", reply_topic);
    snprintf(job->stream_topic, sizeof job->stream_topic, "%s/stream", reply_topic);
    job->retain_reply = strcmp(reply_topic, h->deps.topics->answer) == 0;
    if (ev->correlation != NULL) {
        job->correlation = malloc(ev->correlation_len);
        if (job->correlation != NULL) {
            memcpy(job->correlation, ev->correlation, ev->correlation_len);
            job->correlation_len = ev->correlation_len;
        }
    }
    job->repeat_penalty = cfg->sampling.repeat_penalty;
    job->repeat_last_n = cfg->sampling.repeat_last_n;
    job->received_ms = svc_now_ms();
    job->deadline_at_ms =
        job->req.deadline_ms > 0 ? job->received_ms + (double)job->req.deadline_ms : 0.0;
    atomic_init(&job->stop, JOB_STOP_NONE);
    /* What the log line needs, read now: once pushed, the job is the worker's, which may run it
     * and free it before the push even returns. */
    char id[PROTOCOL_ID_MAX + 1];
    snprintf(id, sizeof id, "%s", job->req.id);
    const int n_prompt_tokens = (int)job->n_prompt_tokens;
    if (!request_queue_push(h->deps.queue, job)) {
        results_forget(h->deps.results, job->req.id);
        char busy[128];
        snprintf(busy, sizeof busy, "the queue is full (%d waiting); retry later",
                 (int)cfg->limits.queue_depth);
        reject(h, ev, reply_topic, job->req.id, SVC_ERR_BUSY, busy);
        goto done;
    }
    job = NULL; /* the queue has it */
    log_msg(LOG_DEBUG, "request %s queued (%d prompt tokens, reply to %s)", id, n_prompt_tokens,
            reply_topic);
    metrics_set_queue_depth(h->deps.metrics, request_queue_depth(h->deps.queue));
done:
    protocol_request_free(&req);
    job_free(job);
}

/* End a queued job with an error (it never ran). */
static void end_queued(event_handler *h, svc_job *job, svc_error_code code, const char *message) {
    char *json = protocol_error_json(job->req.id, code, message);
    if (json != NULL) {
        results_finish(h->deps.results, job->req.id, json);
        worker_reply(h->deps.mqtt, job, json);
    }
    free(json);
    metrics_record(h->deps.metrics, SVC_OUTCOME_CANCELLED, NULL);
    log_msg(LOG_INFO, "request %s: %s", job->req.id, message);
    job_free(job);
}

void event_handler_cancel_queued(event_handler *h, const char *message) {
    svc_job *job;
    while ((job = request_queue_take_any(h->deps.queue)) != NULL) {
        end_queued(h, job, SVC_ERR_CANCELLED, message);
    }
}

static void handle_cancel(event_handler *h, const mq_event *ev) {
    char id[PROTOCOL_ID_MAX + 1], msg[256];
    if (ev->oversize ||
        !protocol_parse_cancel(ev->payload, ev->payload_len, id, sizeof id, msg, sizeof msg)) {
        char *json = protocol_error_json(NULL, SVC_ERR_INVALID_REQUEST,
                                         ev->oversize ? "cancel payload too large" : msg);
        publish_text(h, h->deps.topics->errors, json, 1, false, false);
        free(json);
        return;
    }
    svc_job *job = request_queue_remove(h->deps.queue, id);
    if (job != NULL) {
        end_queued(h, job, SVC_ERR_CANCELLED, "cancelled while queued");
    } else if (worker_stop_job(h->deps.worker, id, JOB_STOP_CANCEL)) {
        log_msg(LOG_INFO, "request %s: cancelling", id);
    } else {
        log_msg(LOG_DEBUG, "cancel for %s: not queued or running here", id);
    }
}

static void handle_connected(event_handler *h) {
    const svc_config *cfg = h->deps.cfg;
    const topics *t = h->deps.topics;
    mqtt_client *mqtt = h->deps.mqtt;
    /* Paho 1.3 may call the connected callback twice for one connect (moments apart), and a
     * connection cut while it is being set up may end without a connection-lost callback: so a
     * CONNECTED is a duplicate only if it comes right after the last one. Announcing twice is
     * harmless (subscriptions and retained messages are idempotent); not announcing a real
     * reconnect would leave the broker's Will "offline" standing. */
    const double now = svc_now_ms();
    if (h->announced && now - h->announced_at_ms < CONNECTED_DUPLICATE_MS) {
        log_msg(LOG_DEBUG, "mqtt: duplicate connected callback ignored");
        return;
    }
    h->announced = true;
    h->announced_at_ms = now;
    log_msg(LOG_INFO, "mqtt: connected (MQTT %s); node %s serving %s",
            mqtt_client_version(mqtt) == 5 ? "5" : "3.1.1", cfg->node_id, t->request);
    if (!h->stopping_requests) {
        mqtt_client_subscribe(mqtt, t->request, 1);
        if (cfg->fleet_enabled) {
            mqtt_client_subscribe(mqtt, t->fleet_subscription, 1);
        }
    }
    mqtt_client_subscribe(mqtt, t->cancel, 1);
    if (cfg->fleet_enabled) {
        mqtt_client_subscribe(mqtt, t->fleet_cancel, 1);
    }
    if (cfg->ha_discovery) {
        mqtt_client_subscribe(mqtt, t->ha_status, 1);
    }
    publish_text(h, t->status, "online", 1, true, true);
    publish_health(h);
    publish_discovery(h);
    publish_metrics(h);
}

void event_handler_handle_event(event_handler *h, const mq_event *ev, bool stopping) {
    switch (ev->type) {
    case MQ_EV_CONNECTED:
        handle_connected(h);
        break;
    case MQ_EV_CONNECTION_LOST:
        if (h->announced) {
            log_msg(LOG_WARN, "mqtt: connection lost; reconnecting (results are buffered)");
        }
        h->announced = false;
        break;
    case MQ_EV_CONNECT_FAILED:
        mqtt_client_on_connect_failed(h->deps.mqtt, ev->code);
        break;
    case MQ_EV_UNSUBSCRIBED:
        if (ev->code != 0) {
            log_msg(LOG_WARN, "mqtt: unsubscribing the request topics failed (error %d)", ev->code);
        }
        h->requests_stopped = true;
        break;
    case MQ_EV_MESSAGE:
        switch (topics_kind(h->deps.topics, ev->topic, h->deps.cfg->fleet_enabled)) {
        case TOPIC_REQUEST:
            handle_request(h, ev, stopping);
            break;
        case TOPIC_CANCEL:
            handle_cancel(h, ev);
            break;
        case TOPIC_HA_STATUS:
            if (ev->payload_len == 6 && memcmp(ev->payload, "online", 6) == 0) {
                log_msg(LOG_INFO, "home assistant is online: sending discovery again");
                publish_discovery(h);
                publish_health(h);
                publish_metrics(h);
            }
            break;
        case TOPIC_OTHER:
            log_msg(LOG_DEBUG, "message on unexpected topic %s ignored", ev->topic);
            break;
        }
        break;
    }
}

bool event_handler_stop_requests(event_handler *h) {
    const topics *t = h->deps.topics;
    char *request_topics[2] = {(char *)t->request, (char *)t->fleet_subscription};
    h->stopping_requests = true;
    if (!mqtt_client_connected(h->deps.mqtt) || !h->announced) {
        return false;
    }
    int n = h->deps.cfg->fleet_enabled ? 2 : 1;
    if (!mqtt_client_unsubscribe(h->deps.mqtt, request_topics, n)) {
        return false;
    }
    log_msg(LOG_DEBUG, "shutting down: unsubscribing from %s%s", t->request,
            n == 2 ? " and the fleet queue" : "");
    return true;
}

bool event_handler_requests_stopped(const event_handler *h) { return h->requests_stopped; }

void event_handler_tick(event_handler *h) {
    double now = svc_now_ms();
    mqtt_client_tick(h->deps.mqtt);
    svc_job *job;
    while ((job = request_queue_take_expired(h->deps.queue, now)) != NULL) {
        end_queued(h, job, SVC_ERR_DEADLINE, "deadline passed while queued");
    }
    worker_check_deadline(h->deps.worker, now);
    metrics_set_queue_depth(h->deps.metrics, request_queue_depth(h->deps.queue));
    if (!mqtt_client_connected(h->deps.mqtt) || !h->announced) {
        return;
    }
    if (metrics_health_version(h->deps.metrics) != h->health_sent) {
        publish_health(h);
    }
    int32_t interval_s = h->deps.cfg->metrics_interval_s;
    bool interval_due = interval_s > 0 && now - h->metrics_at_ms >= interval_s * 1000.0;
    if (interval_due || metrics_metrics_version(h->deps.metrics) != h->metrics_sent) {
        publish_metrics(h);
    }
}
