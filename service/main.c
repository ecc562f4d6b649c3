/* main.c - edgelmd: answers LLM requests over MQTT (contract: docs/protocol.md).
 * This file only wires the modules together: command line and configuration (config.c), the
 * engine model, the topic names (topics.c), the MQTT client (mqtt_client.c), the bounded queue
 * (request_queue.c) and duplicate ids (results.c), the worker thread (worker.c), health/metrics
 * (metrics.c) and what each MQTT event and tick does (event_handler.c). The main loop is the
 * only consumer of MQTT events; signal handlers only set flags; SIGHUP reloads here.
 */
#include "config.h"
#include "crash_report.h"
#include "event_handler.h"
#include "log.h"
#include "metrics.h"
#include "mqtt_client.h"
#include "request_queue.h"
#include "results.h"
#include "topics.h"
#include "worker.h"

#include <edgelm.h>
#include <errno.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOOP_TICK_MS 50
/* Shutdown: after the broker confirmed the unsubscribe, messages it had already sent may still be
 * arriving; wait until none came for QUIET_MS (at most CLOSE_MAX_MS in all), answering each. */
#define SHUTDOWN_QUIET_MS 300.0
#define SHUTDOWN_CLOSE_MAX_MS 3000.0

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
    metrics *metrics;
    results *results;
    request_queue *queue;
    topics topics;
    mqtt_client *mqtt;
    worker *worker;
    event_handler *events;
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
        if (strs[i].value != NULL &&
            !config_set_string(strs[i].field, strs[i].size, strs[i].value)) {
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
    if (!crash_report_install()) {
        return false;
    }
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

/* The main loop: events, timers, signals; then the orderly shutdown: finish or cancel the running
 * request, stop the broker sending requests (unsubscribe) while still answering every request that
 * arrives (busy), and only then leave, so no request is acknowledged and never answered. */
static void run(app *a) {
    bool stopping = false, closing = false, awaiting_unsubscribe = false;
    double grace_until = 0.0, close_until = 0.0, last_message_ms = 0.0;
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
                event_handler_cancel_queued(a->events, "node is shutting down");
            } else {
                log_msg(LOG_INFO, "second stop signal: cancelling the running request");
                grace_until = 0.0;
            }
        }
        const double now = svc_now_ms();
        if (stopping && !closing && !worker_busy(a->worker)) {
            closing = true;
            close_until = now + SHUTDOWN_CLOSE_MAX_MS;
            last_message_ms = now;
            awaiting_unsubscribe = event_handler_stop_requests(a->events);
        }
        if (closing) {
            bool unsubscribed = !awaiting_unsubscribe || event_handler_requests_stopped(a->events);
            if ((unsubscribed && now - last_message_ms >= SHUTDOWN_QUIET_MS) ||
                now >= close_until) {
                break;
            }
        } else if (stopping && now >= grace_until) {
            worker_stop_running(a->worker, JOB_STOP_SHUTDOWN);
        }
        mq_event *ev = mqtt_client_next_event(a->mqtt, LOOP_TICK_MS);
        if (ev != NULL) {
            if (ev->type == MQ_EV_MESSAGE) {
                last_message_ms = svc_now_ms();
            }
            event_handler_handle_event(a->events, ev, stopping);
            mq_event_free(ev);
        }
        event_handler_tick(a->events);
    }
    /* whatever is still in the event queue was acknowledged by Paho: answer it too */
    mq_event *ev;
    while ((ev = mqtt_client_next_event(a->mqtt, 0)) != NULL) {
        event_handler_handle_event(a->events, ev, true);
        mq_event_free(ev);
    }
}

/* --check-config goes as far as start-up would: the files named exist and can be read, and the
 * model loads (the engine maps it and checks every field, so this is cheap), then is freed. */
static bool check_files_and_model(const svc_config *c, char *err, size_t err_size) {
    if (!config_check_files(c, err, err_size)) {
        return false;
    }
    edgelm_model *model = NULL;
    char why[512], where[CONFIG_PATH_MAX + 16];
    if (edgelm_model_load(c->model_path, NULL, &model, why, sizeof why) != EDGELM_OK) {
        snprintf(err, err_size, "%s: option 'model.path': %s",
                 config_option_where(c, "model.path", where, sizeof where), why);
        return false;
    }
    edgelm_model_free(model);
    return true;
}

/* Request payloads (up to limits.max_payload_bytes, 64 KiB) are copied, parsed and tokenized on
 * three threads; glibc's default raises its mmap threshold as such blocks are freed and then keeps
 * them in per-thread heaps: 3,000 junk payloads of up to 70 KB left RssAnon at 12.8 MB (from 1.3).
 * A fixed 16 KiB threshold sends those blocks to mmap, returned on free, and trimming at 64 KiB
 * gives freed heap tops back: 2.7 MB after the same payloads. The engine's large buffers are
 * allocated once per session, so the extra mmap calls cost nothing per token. */
static void limit_heap_retention(void) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 16 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024);
#endif
}

/* The name results, health and Home Assistant show for the model: general.name, unless it is
 * absent or only repeats the architecture (llama2.c conversions such as stories260K say "llama"),
 * then the file name without its directory and ".gguf". */
static void choose_model_name(const edgelm_model *model, const char *path, char *out,
                              size_t out_size) {
    char arch[64] = "";
    edgelm_model_metadata_string(model, "general.architecture", arch, sizeof arch);
    if (edgelm_model_metadata_string(model, "general.name", out, out_size) && out[0] != '\0' &&
        strcmp(out, arch) != 0) {
        return;
    }
    const char *slash = strrchr(path, '/');
    const char *base = slash != NULL ? slash + 1 : path;
    size_t len = strlen(base);
    if (len > 5 && strcmp(base + len - 5, ".gguf") == 0) {
        len -= 5;
    }
    snprintf(out, out_size, "%.*s", (int)(len < 200 ? len : 200), base);
}

int main(int argc, char **argv) {
    static app a; /* large (topics, config); one per process */
    limit_heap_retention();
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
        if (!check_files_and_model(&a.cfg, err, sizeof err)) {
            fprintf(stderr, "edgelmd: %s\n", err);
            return 1;
        }
        config_print(&a.cfg, stdout);
        fprintf(stderr, "edgelmd: configuration OK\n");
        return 0;
    }
    /* a missing CA file would otherwise fail every connect attempt, forever */
    if (!config_check_files(&a.cfg, err, sizeof err)) {
        fprintf(stderr, "edgelmd: %s\n", err);
        return 1;
    }
    log_set_level((log_level)a.cfg.log_level);
    if (!install_signals()) {
        fprintf(stderr, "edgelmd: cannot install signal handlers\n");
        return 1;
    }
    topics_build(&a.topics, &a.cfg);
    rc = 1;
    a.metrics = metrics_create(a.cfg.node_id, EDGELM_VERSION);
    a.results =
        results_create((size_t)a.cfg.limits.result_cache, (size_t)a.cfg.limits.queue_depth + 2);
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
    choose_model_name(a.model, a.cfg.model_path, a.model_name, sizeof a.model_name);
    metrics_set_model(a.metrics, a.model_name);
    a.mqtt = mqtt_client_create(&a.cfg, a.topics.status, err, sizeof err);
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
    event_handler_deps handler_deps = {
        .cfg = &a.cfg,
        .topics = &a.topics,
        .model = a.model,
        .n_ctx = worker_n_ctx(a.worker),
        .queue = a.queue,
        .results = a.results,
        .metrics = a.metrics,
        .mqtt = a.mqtt,
        .worker = a.worker,
    };
    a.events = event_handler_create(&handler_deps);
    if (a.events == NULL) {
        log_msg(LOG_ERROR, "out of memory");
        goto fail;
    }
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
    event_handler_free(a.events);
    request_queue_free(a.queue);
    results_free(a.results);
    metrics_free(a.metrics);
    edgelm_model_free(a.model);
    log_msg(LOG_INFO, "stopped");
    return rc;
}
