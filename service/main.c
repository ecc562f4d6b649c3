/* main.c - edgelmd: answers LLM requests over MQTT (contract: docs/protocol.md).
 * This file only wires the modules together: command line and configuration (config.c), the
 * engine model, the MQTT client (mqtt_client.c), admission of requests into the bounded queue
 * (request_queue.c, protocol.c, results.c), the worker thread (worker.c) and health/metrics
 * (metrics.c). The main loop is the only consumer of MQTT events; signal handlers only set flags.
 */
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "mqtt_client.h"
#include "protocol.h"
#include "request_queue.h"
#include "results.h"
#include "worker.h"

#include <edgelm.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#define LOOP_TICK_MS 50
#define TOPIC_SIZE (CONFIG_STR_MAX * 3 + PROTOCOL_ID_MAX + 64)

static volatile sig_atomic_t g_stop_signals = 0;
static volatile sig_atomic_t g_reload = 0;

static void on_stop_signal(int sig) {
    (void)sig;
    g_stop_signals = g_stop_signals + 1;
}

static void on_hup(int sig) {
    (void)sig;
    g_reload = 1;
}

/* Command-line overrides, kept so a SIGHUP reload applies them again over the file. */
typedef struct cli_overrides {
    const char *config_path;
    const char *broker;
    const char *model;
    const char *node;
    const char *log_level;
    int threads; /* -1 = not given */
    bool fleet;
    bool check_config;
} cli_overrides;

typedef struct app {
    svc_config cfg;
    cli_overrides cli;
    edgelm_model *model;
    char model_name[256];
    int32_t n_ctx;
    metrics *metrics;
    results *results;
    request_queue *queue;
    mqtt_client *mqtt;
    worker *worker;
    char t_request[TOPIC_SIZE], t_cancel[TOPIC_SIZE], t_fleet_sub[TOPIC_SIZE];
    char t_fleet_request[TOPIC_SIZE], t_fleet_cancel[TOPIC_SIZE];
    char t_status[TOPIC_SIZE], t_health[TOPIC_SIZE], t_metrics[TOPIC_SIZE], t_errors[TOPIC_SIZE];
    char t_ha_status[TOPIC_SIZE], t_ha_config[TOPIC_SIZE];
    bool announced; /* CONNECTED handled since the last loss (ignore duplicates) */
    uint64_t health_sent, metrics_sent;
    double metrics_at_ms;
    uint64_t id_counter;
} app;

static void usage(FILE *f) {
    fprintf(f,
            "usage: edgelmd [--config FILE] [--model PATH] [--broker URI] [--node ID]\n"
            "               [--threads N] [--fleet] [--log-level LEVEL] [--check-config]\n"
            "Answers language-model requests over MQTT (see docs/protocol.md).\n"
            "\n"
            "  --config FILE   libconfig file (see config/edgelm.conf); default: built-in\n"
            "  --model PATH    GGUF model (overrides model.path)\n"
            "  --broker URI    tcp://host:port or ssl://host:port (default tcp://localhost:1883)\n"
            "  --node ID       node id used in topics (default: the host name)\n"
            "  --threads N     engine threads (0 = online CPUs)\n"
            "  --fleet         also take work from the fleet queue ($share/<group>/...)\n"
            "  --log-level L   error | warn | info | debug\n"
            "  --check-config  validate, print the effective configuration and exit\n"
            "  --help, --version\n"
            "Signals: SIGTERM/SIGINT finish the running request (grace period) and exit;\n"
            "SIGHUP reloads log level, sampling defaults, limits and the metrics interval.\n"
            "Exit status: 0 ok, 1 runtime or configuration error, 2 usage error.\n");
}

/* Parse argv into cli. Returns -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, cli_overrides *cli) {
    memset(cli, 0, sizeof *cli);
    cli->threads = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **target = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("edgelmd %s (engine %s)\n", EDGELM_VERSION, edgelm_version());
            return 0;
        } else if (strcmp(a, "--fleet") == 0) {
            cli->fleet = true;
            continue;
        } else if (strcmp(a, "--check-config") == 0) {
            cli->check_config = true;
            continue;
        } else if (strcmp(a, "--config") == 0) {
            target = &cli->config_path;
        } else if (strcmp(a, "--broker") == 0) {
            target = &cli->broker;
        } else if (strcmp(a, "--model") == 0) {
            target = &cli->model;
        } else if (strcmp(a, "--node") == 0) {
            target = &cli->node;
        } else if (strcmp(a, "--log-level") == 0) {
            target = &cli->log_level;
        } else if (strcmp(a, "--threads") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "edgelmd: --threads needs a number\n");
                return 2;
            }
            char *end = NULL;
            errno = 0;
            long v = strtol(argv[++i], &end, 10);
            if (errno != 0 || end == argv[i] || *end != '\0' || v < 0 || v > 1024) {
                fprintf(stderr, "edgelmd: --threads: '%s' is not a number 0..1024\n", argv[i]);
                return 2;
            }
            cli->threads = (int)v;
            continue;
        } else {
            fprintf(stderr, "edgelmd: unknown argument '%s' (see --help)\n", a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "edgelmd: %s needs a value\n", a);
            return 2;
        }
        *target = argv[++i];
    }
    return -1;
}

/* Defaults, then the file, then the command line, then derived values. */
static bool build_config(const cli_overrides *cli, svc_config *c, char *err, size_t err_size) {
    config_defaults(c);
    if (cli->config_path != NULL && !config_load_file(c, cli->config_path, err, err_size)) {
        return false;
    }
    struct {
        const char *value;
        char *field;
        size_t size;
        const char *name;
    } strs[] = {
        {cli->broker, c->broker, sizeof c->broker, "--broker"},
        {cli->model, c->model_path, sizeof c->model_path, "--model"},
        {cli->node, c->node_id, sizeof c->node_id, "--node"},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        if (strs[i].value != NULL && !config_set_string(strs[i].field, strs[i].size, strs[i].value)) {
            snprintf(err, err_size, "%s: value too long", strs[i].name);
            return false;
        }
    }
    if (cli->threads >= 0) {
        c->threads = cli->threads;
    }
    if (cli->fleet) {
        c->fleet_enabled = true;
    }
    if (cli->log_level != NULL) {
        log_level lv;
        if (!log_level_parse(cli->log_level, &lv)) {
            snprintf(err, err_size, "--log-level: '%s' is not one of error, warn, info, debug",
                     cli->log_level);
            return false;
        }
        c->log_level = (int32_t)lv;
    }
    return config_finish(c, err, err_size);
}

static void make_topics(app *a) {
    const char *p = a->cfg.topic_prefix, *n = a->cfg.node_id;
    snprintf(a->t_request, TOPIC_SIZE, "%s/%s/request", p, n);
    snprintf(a->t_cancel, TOPIC_SIZE, "%s/%s/cancel", p, n);
    snprintf(a->t_fleet_request, TOPIC_SIZE, "%s/fleet/request", p);
    snprintf(a->t_fleet_sub, TOPIC_SIZE, "$share/%s/%s/fleet/request", a->cfg.fleet_group, p);
    snprintf(a->t_fleet_cancel, TOPIC_SIZE, "%s/fleet/cancel", p);
    snprintf(a->t_status, TOPIC_SIZE, "%s/%s/status", p, n);
    snprintf(a->t_health, TOPIC_SIZE, "%s/%s/health", p, n);
    snprintf(a->t_metrics, TOPIC_SIZE, "%s/%s/metrics", p, n);
    snprintf(a->t_errors, TOPIC_SIZE, "%s/%s/errors", p, n);
    snprintf(a->t_ha_status, TOPIC_SIZE, "%s/status", a->cfg.ha_prefix);
    snprintf(a->t_ha_config, TOPIC_SIZE, "%s/device/%s/config", a->cfg.ha_prefix, n);
}

static void publish_text(app *a, const char *topic, const char *text, int qos, bool retain,
                         bool drop_when_offline) {
    if (text == NULL) {
        return;
    }
    mq_publish p = {.topic = topic, .payload = text, .payload_len = strlen(text), .qos = qos,
                    .retain = retain, .drop_when_offline = drop_when_offline};
    mqtt_client_publish(a->mqtt, &p);
}

static void publish_health(app *a) {
    a->health_sent = metrics_health_version(a->metrics);
    char *s = metrics_health_json(a->metrics);
    publish_text(a, a->t_health, s, 1, true, true);
    free(s);
}

static void publish_metrics(app *a) {
    a->metrics_sent = metrics_metrics_version(a->metrics);
    a->metrics_at_ms = svc_now_ms();
    char *s = metrics_json(a->metrics);
    publish_text(a, a->t_metrics, s, 0, true, true);
    free(s);
}

static void publish_discovery(app *a) {
    if (!a->cfg.ha_discovery) {
        return;
    }
    char *s = metrics_discovery_json(a->metrics, a->cfg.topic_prefix);
    publish_text(a, a->t_ha_config, s, 1, true, true);
    free(s);
}

/* An error for a request that never became a job: to its reply topic when it has one, else to
 * the node's errors topic. */
static void reject(app *a, const mq_event *ev, const char *reply_topic, const char *id,
                   svc_error_code code, const char *message) {
    char *json = protocol_error_json(id, code, message);
    if (json == NULL) {
        return;
    }
    bool addressed = reply_topic != NULL && reply_topic[0] != '\0';
    mq_publish p = {
        .topic = addressed ? reply_topic : a->t_errors,
        .payload = json,
        .payload_len = strlen(json),
        .qos = 1,
        .correlation = addressed ? ev->correlation : NULL,
        .correlation_len = addressed ? ev->correlation_len : 0,
    };
    mqtt_client_publish(a->mqtt, &p);
    free(json);
    if (code != SVC_ERR_BUSY) {
        metrics_set_last_error(a->metrics, message);
    }
    metrics_record(a->metrics, SVC_OUTCOME_REJECTED, NULL);
    log_msg(LOG_INFO, "request %s refused (%s): %s", id && id[0] ? id : "(no id)",
            svc_error_code_name(code), message);
}

/* Render the request's text: the prompt itself, or the messages through the chat template. */
static svc_error_code render_prompt(app *a, const svc_request *req, char **out, char *msg,
                                    size_t msg_size) {
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
    int32_t n = edgelm_chat_apply(a->model, msgs, req->n_messages, true, NULL, 0);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf != NULL && edgelm_chat_apply(a->model, msgs, req->n_messages, true, buf,
                                         (size_t)n + 1) != n) {
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

static void handle_request(app *a, const mq_event *ev, bool stopping) {
    svc_request req;
    char msg[512];
    svc_error_code code = protocol_parse_request(ev->payload, ev->payload_len, &a->cfg.limits,
                                                 &a->cfg.sampling, &req, msg, sizeof msg);
    char reply_topic[PROTOCOL_TOPIC_MAX + 1] = "";
    if (ev->response_topic != NULL &&
        protocol_topic_ok(ev->response_topic, strlen(ev->response_topic))) {
        snprintf(reply_topic, sizeof reply_topic, "%s", ev->response_topic);
    } else if (req.reply_to[0] != '\0') {
        snprintf(reply_topic, sizeof reply_topic, "%s", req.reply_to);
    } else if (req.has_id) {
        snprintf(reply_topic, sizeof reply_topic, "%s/%s/response/%s", a->cfg.topic_prefix,
                 a->cfg.node_id, req.id);
    }
    svc_job *job = NULL;
    if (code != SVC_OK) {
        reject(a, ev, reply_topic, req.id, code, msg);
        goto done;
    }
    if (!req.has_id) {
        snprintf(req.id, sizeof req.id, "%.64s-%llu-%04x", a->cfg.node_id,
                 (unsigned long long)++a->id_counter, (unsigned)(svc_now_ms()) & 0xFFFFu);
        if (reply_topic[0] == '\0') {
            snprintf(reply_topic, sizeof reply_topic, "%s/%s/response/%s", a->cfg.topic_prefix,
                     a->cfg.node_id, req.id);
        }
    }
    if (stopping) {
        reject(a, ev, reply_topic, req.id, SVC_ERR_BUSY, "node is shutting down; retry later");
        goto done;
    }
    char *prior = NULL;
    result_state st = results_claim(a->results, req.id, &prior);
    if (st == RESULT_DONE) {
        log_msg(LOG_INFO, "request %s: duplicate of a finished request; sending its reply again",
                req.id);
        if (prior != NULL) {
            mq_publish p = {.topic = reply_topic, .payload = prior, .payload_len = strlen(prior),
                            .qos = 1, .correlation = ev->correlation,
                            .correlation_len = ev->correlation_len};
            mqtt_client_publish(a->mqtt, &p);
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
        results_forget(a->results, req.id);
        reject(a, ev, reply_topic, req.id, SVC_ERR_INTERNAL, "out of memory");
        goto done;
    }
    job->req = req;
    memset(&req, 0, sizeof req); /* the job owns the strings now */
    code = render_prompt(a, &job->req, &job->prompt_text, msg, sizeof msg);
    if (code == SVC_OK) {
        bool add_bos = edgelm_model_add_bos(a->model);
        int32_t n = edgelm_tokenize(a->model, job->prompt_text, strlen(job->prompt_text),
                                    add_bos, true, NULL, 0);
        if (n < 0) {
            code = SVC_ERR_INVALID_REQUEST;
            snprintf(msg, sizeof msg, "field 'prompt': cannot be tokenized: %s",
                     edgelm_strerror((edgelm_status)-n));
        } else if (n > a->cfg.limits.max_prompt_tokens || n >= a->n_ctx) {
            code = SVC_ERR_TOO_LARGE;
            snprintf(msg, sizeof msg, "field '%s': %d tokens exceed the limit of %d",
                     job->req.prompt != NULL ? "prompt" : "messages", (int)n,
                     (int)(a->cfg.limits.max_prompt_tokens < a->n_ctx - 1
                               ? a->cfg.limits.max_prompt_tokens
                               : a->n_ctx - 1));
        }
        job->n_prompt_tokens = n;
    } else if (msg[0] == '\0') {
        snprintf(msg, sizeof msg, "out of memory");
    }
    if (code != SVC_OK) {
        char *json = protocol_error_json(job->req.id, code, msg);
        if (json != NULL) {
            results_finish(a->results, job->req.id, json);
        }
        free(json);
        reject(a, ev, reply_topic, job->req.id, code, msg);
        goto done;
    }
    snprintf(job->reply_topic, sizeof job->reply_topic, "%s", reply_topic);
    snprintf(job->stream_topic, sizeof job->stream_topic, "%s/stream", reply_topic);
    if (ev->correlation != NULL) {
        job->correlation = malloc(ev->correlation_len);
        if (job->correlation != NULL) {
            memcpy(job->correlation, ev->correlation, ev->correlation_len);
            job->correlation_len = ev->correlation_len;
        }
    }
    job->repeat_penalty = a->cfg.sampling.repeat_penalty;
    job->repeat_last_n = a->cfg.sampling.repeat_last_n;
    job->received_ms = svc_now_ms();
    job->deadline_at_ms = job->req.deadline_ms > 0 ? job->received_ms + (double)job->req.deadline_ms
                                                   : 0.0;
    atomic_init(&job->stop, JOB_STOP_NONE);
    if (!request_queue_push(a->queue, job)) {
        results_forget(a->results, job->req.id);
        char busy[128];
        snprintf(busy, sizeof busy, "the queue is full (%d waiting); retry later",
                 (int)a->cfg.limits.queue_depth);
        reject(a, ev, reply_topic, job->req.id, SVC_ERR_BUSY, busy);
        goto done;
    }
    log_msg(LOG_DEBUG, "request %s queued (%d prompt tokens, reply to %s)", job->req.id,
            (int)job->n_prompt_tokens, job->reply_topic);
    job = NULL; /* the queue has it */
    metrics_set_queue_depth(a->metrics, request_queue_depth(a->queue));
done:
    protocol_request_free(&req);
    job_free(job);
}

/* End a queued job with an error (it never ran). */
static void end_queued(app *a, svc_job *job, svc_error_code code, const char *message) {
    char *json = protocol_error_json(job->req.id, code, message);
    if (json != NULL) {
        results_finish(a->results, job->req.id, json);
        worker_reply(a->mqtt, job, json);
    }
    free(json);
    metrics_record(a->metrics, SVC_OUTCOME_CANCELLED, NULL);
    log_msg(LOG_INFO, "request %s: %s", job->req.id, message);
    job_free(job);
}

static void handle_cancel(app *a, const mq_event *ev) {
    char id[PROTOCOL_ID_MAX + 1], msg[256];
    if (ev->oversize ||
        !protocol_parse_cancel(ev->payload, ev->payload_len, id, sizeof id, msg, sizeof msg)) {
        char *json = protocol_error_json(NULL, SVC_ERR_INVALID_REQUEST,
                                         ev->oversize ? "cancel payload too large" : msg);
        publish_text(a, a->t_errors, json, 1, false, false);
        free(json);
        return;
    }
    svc_job *job = request_queue_remove(a->queue, id);
    if (job != NULL) {
        end_queued(a, job, SVC_ERR_CANCELLED, "cancelled while queued");
    } else if (worker_stop_job(a->worker, id, JOB_STOP_CANCEL)) {
        log_msg(LOG_INFO, "request %s: cancelling", id);
    } else {
        log_msg(LOG_DEBUG, "cancel for %s: not queued or running here", id);
    }
}

static void handle_connected(app *a) {
    if (a->announced) {
        log_msg(LOG_DEBUG, "mqtt: duplicate connected callback ignored");
        return;
    }
    a->announced = true;
    log_msg(LOG_INFO, "mqtt: connected (MQTT %s); node %s serving %s",
            mqtt_client_version(a->mqtt) == 5 ? "5" : "3.1.1", a->cfg.node_id, a->t_request);
    mqtt_client_subscribe(a->mqtt, a->t_request, 1);
    mqtt_client_subscribe(a->mqtt, a->t_cancel, 1);
    if (a->cfg.fleet_enabled) {
        mqtt_client_subscribe(a->mqtt, a->t_fleet_sub, 1);
        mqtt_client_subscribe(a->mqtt, a->t_fleet_cancel, 1);
    }
    if (a->cfg.ha_discovery) {
        mqtt_client_subscribe(a->mqtt, a->t_ha_status, 1);
    }
    publish_text(a, a->t_status, "online", 1, true, true);
    publish_health(a);
    publish_discovery(a);
    publish_metrics(a);
}

static void handle_event(app *a, const mq_event *ev, bool stopping) {
    switch (ev->type) {
    case MQ_EV_CONNECTED:
        handle_connected(a);
        break;
    case MQ_EV_CONNECTION_LOST:
        if (a->announced) {
            log_msg(LOG_WARN, "mqtt: connection lost; reconnecting (results are buffered)");
        }
        a->announced = false;
        break;
    case MQ_EV_CONNECT_FAILED:
        mqtt_client_on_connect_failed(a->mqtt, ev->code);
        break;
    case MQ_EV_MESSAGE:
        if (strcmp(ev->topic, a->t_request) == 0 ||
            (a->cfg.fleet_enabled && strcmp(ev->topic, a->t_fleet_request) == 0)) {
            handle_request(a, ev, stopping);
        } else if (strcmp(ev->topic, a->t_cancel) == 0 ||
                   (a->cfg.fleet_enabled && strcmp(ev->topic, a->t_fleet_cancel) == 0)) {
            handle_cancel(a, ev);
        } else if (strcmp(ev->topic, a->t_ha_status) == 0) {
            if (ev->payload_len == 6 && memcmp(ev->payload, "online", 6) == 0) {
                log_msg(LOG_INFO, "home assistant is online: sending discovery again");
                publish_discovery(a);
                publish_health(a);
                publish_metrics(a);
            }
        } else {
            log_msg(LOG_DEBUG, "message on unexpected topic %s ignored", ev->topic);
        }
        break;
    }
}

static void tick(app *a) {
    double now = svc_now_ms();
    mqtt_client_tick(a->mqtt);
    svc_job *job;
    while ((job = request_queue_take_expired(a->queue, now)) != NULL) {
        end_queued(a, job, SVC_ERR_DEADLINE, "deadline passed while queued");
    }
    worker_check_deadline(a->worker, now);
    metrics_set_queue_depth(a->metrics, request_queue_depth(a->queue));
    if (!mqtt_client_connected(a->mqtt) || !a->announced) {
        return;
    }
    if (metrics_health_version(a->metrics) != a->health_sent) {
        publish_health(a);
    }
    bool interval_due = a->cfg.metrics_interval_s > 0 &&
                        now - a->metrics_at_ms >= a->cfg.metrics_interval_s * 1000.0;
    if (interval_due || metrics_metrics_version(a->metrics) != a->metrics_sent) {
        publish_metrics(a);
    }
}

static void reload(app *a) {
    svc_config fresh;
    char err[512];
    if (!build_config(&a->cli, &fresh, err, sizeof err)) {
        log_msg(LOG_ERROR, "SIGHUP: configuration not reloaded: %s", err);
        return;
    }
    log_set_level((log_level)fresh.log_level);
    a->cfg.log_level = fresh.log_level;
    a->cfg.sampling = fresh.sampling;
    int32_t keep_depth = a->cfg.limits.queue_depth, keep_cache = a->cfg.limits.result_cache;
    if (fresh.limits.queue_depth != keep_depth || fresh.limits.result_cache != keep_cache) {
        log_msg(LOG_WARN, "SIGHUP: limits.queue_depth and limits.result_cache change only on "
                "restart");
    }
    a->cfg.limits = fresh.limits;
    a->cfg.limits.queue_depth = keep_depth;
    a->cfg.limits.result_cache = keep_cache;
    a->cfg.metrics_interval_s = fresh.metrics_interval_s;
    mqtt_client_set_max_payload(a->mqtt, (size_t)a->cfg.limits.max_payload_bytes);
    log_msg(LOG_INFO, "SIGHUP: reloaded log level, sampling defaults, limits, metrics interval");
}

static bool install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop_signal;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
        return false;
    }
    sa.sa_handler = on_hup;
    if (sigaction(SIGHUP, &sa, NULL) != 0) {
        return false;
    }
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL) == 0;
}

/* The main loop: events, timers, signals; then the orderly shutdown. */
static void run(app *a) {
    bool stopping = false;
    double grace_until = 0.0;
    int seen_stop_signals = 0;
    for (;;) {
        if (g_reload) {
            g_reload = 0;
            reload(a);
        }
        if (g_stop_signals != seen_stop_signals) {
            seen_stop_signals = g_stop_signals;
            if (!stopping) {
                stopping = true;
                grace_until = svc_now_ms() + a->cfg.limits.shutdown_grace_ms;
                log_msg(LOG_INFO, "shutting down: finishing the running request (up to %d ms)",
                        (int)a->cfg.limits.shutdown_grace_ms);
                svc_job *job;
                while ((job = request_queue_take_any(a->queue)) != NULL) {
                    end_queued(a, job, SVC_ERR_CANCELLED, "node is shutting down");
                }
            } else {
                log_msg(LOG_INFO, "second stop signal: cancelling the running request");
                grace_until = 0.0;
            }
        }
        if (stopping) {
            if (!worker_busy(a->worker)) {
                break;
            }
            if (svc_now_ms() >= grace_until) {
                worker_stop_running(a->worker, JOB_STOP_SHUTDOWN);
            }
        }
        mq_event *ev = mqtt_client_next_event(a->mqtt, LOOP_TICK_MS);
        if (ev != NULL) {
            handle_event(a, ev, stopping);
            mq_event_free(ev);
        }
        tick(a);
    }
}

int main(int argc, char **argv) {
    static app a; /* large (topics, config); one per process */
    int rc = parse_args(argc, argv, &a.cli);
    if (rc >= 0) {
        return rc;
    }
    char err[1024];
    if (!build_config(&a.cli, &a.cfg, err, sizeof err)) {
        fprintf(stderr, "edgelmd: %s\n", err);
        return 1;
    }
    if (a.cli.check_config) {
        config_print(&a.cfg, stdout);
        fprintf(stderr, "edgelmd: configuration OK\n");
        return 0;
    }
    log_set_level((log_level)a.cfg.log_level);
    if (!install_signals()) {
        fprintf(stderr, "edgelmd: cannot install signal handlers\n");
        return 1;
    }
    make_topics(&a);
    rc = 1;
    a.metrics = metrics_create(a.cfg.node_id, EDGELM_VERSION);
    a.results = results_create((size_t)a.cfg.limits.result_cache,
                               (size_t)a.cfg.limits.queue_depth + 2);
    a.queue = request_queue_create((size_t)a.cfg.limits.queue_depth);
    if (a.metrics == NULL || a.results == NULL || a.queue == NULL) {
        log_msg(LOG_ERROR, "out of memory");
        goto fail;
    }
    log_msg(LOG_INFO, "edgelmd %s: loading %s", EDGELM_VERSION, a.cfg.model_path);
    if (edgelm_model_load(a.cfg.model_path, NULL, &a.model, err, sizeof err) != EDGELM_OK) {
        log_msg(LOG_ERROR, "cannot load the model: %s", err);
        goto fail;
    }
    if (!edgelm_model_metadata_string(a.model, "general.name", a.model_name,
                                      sizeof a.model_name)) {
        const char *slash = strrchr(a.cfg.model_path, '/');
        snprintf(a.model_name, sizeof a.model_name, "%.200s", slash ? slash + 1 : a.cfg.model_path);
    }
    metrics_set_model(a.metrics, a.model_name);
    a.mqtt = mqtt_client_create(&a.cfg, err, sizeof err);
    if (a.mqtt == NULL) {
        log_msg(LOG_ERROR, "%s", err);
        goto fail;
    }
    worker_deps deps = {
        .model = a.model,
        .node_id = a.cfg.node_id,
        .model_name = a.model_name,
        .threads = a.cfg.threads,
        .context = a.cfg.context,
        .stream_expiry_s = a.cfg.stream_expiry_s,
        .queue = a.queue,
        .results = a.results,
        .metrics = a.metrics,
        .mqtt = a.mqtt,
    };
    a.worker = worker_start(&deps, err, sizeof err);
    if (a.worker == NULL) {
        log_msg(LOG_ERROR, "cannot create the engine session: %s", err);
        goto fail;
    }
    a.n_ctx = worker_n_ctx(a.worker);
    mqtt_client_connect(a.mqtt);
    run(&a);
    rc = 0;
fail:
    if (a.queue != NULL) {
        request_queue_close(a.queue);
    }
    worker_join(a.worker);
    if (a.mqtt != NULL) {
        metrics_set_state(a.metrics, SVC_STATE_IDLE);
        mqtt_client_disconnect(a.mqtt, 5000);
        mqtt_client_free(a.mqtt);
    }
    /* jobs still queued after a failed start were never accepted over MQTT */
    if (a.queue != NULL) {
        svc_job *job;
        while ((job = request_queue_take_any(a.queue)) != NULL) {
            job_free(job);
        }
    }
    request_queue_free(a.queue);
    results_free(a.results);
    metrics_free(a.metrics);
    edgelm_model_free(a.model);
    log_msg(LOG_INFO, "stopped");
    return rc;
}
