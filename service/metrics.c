/* metrics.c - counters, health, metrics and Home Assistant discovery JSON (see metrics.h). */
#include "metrics.h"

#include "protocol.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#define EMA_ALPHA 0.25 /* weight of the newest request in the moving averages */

struct metrics {
    pthread_mutex_t lock;
    char node[256];
    char version[32];
    char model[256];
    double started_s;
    svc_state state;
    size_t queue_depth;
    uint64_t health_version, metrics_version;
    /* totals */
    uint64_t prompt_tokens_total;
    double prompt_seconds_total;
    uint64_t tokens_predicted_total;
    double tokens_predicted_seconds_total;
    uint64_t kv_cache_hits_total;
    uint64_t cached_tokens_total;
    uint64_t n_decode_total;
    int32_t n_tokens_max;
    uint64_t requests[4]; /* by svc_outcome */
    /* this measurement period: requests finished since the previous metrics message */
    uint64_t period_prompt_tokens, period_predicted_tokens;
    double period_prompt_s, period_predicted_s;
    /* last request and moving averages */
    double predicted_tps_last, predicted_tps_avg;
    double prompt_tps_last, prompt_tps_avg;
    double ttft_ms_last;
    bool have_avg;
    char last_error[256];
};

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall-clock Unix time in milliseconds, for the ts field. */
static double unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return floor((double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6);
}

static const char *const state_names[] = {"loading", "idle", "busy", "error"};

metrics *metrics_create(const char *node, const char *version) {
    metrics *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return NULL;
    }
    pthread_mutex_init(&m->lock, NULL);
    snprintf(m->node, sizeof m->node, "%s", node);
    snprintf(m->version, sizeof m->version, "%s", version);
    m->started_s = mono_s();
    m->state = SVC_STATE_LOADING;
    return m;
}

void metrics_free(metrics *m) {
    if (m == NULL) {
        return;
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void metrics_set_model(metrics *m, const char *model_name) {
    pthread_mutex_lock(&m->lock);
    snprintf(m->model, sizeof m->model, "%s", model_name);
    m->health_version++;
    pthread_mutex_unlock(&m->lock);
}

void metrics_set_state(metrics *m, svc_state state) {
    pthread_mutex_lock(&m->lock);
    if (m->state != state) {
        m->state = state;
        m->health_version++;
    }
    pthread_mutex_unlock(&m->lock);
}

svc_state metrics_state(metrics *m) {
    pthread_mutex_lock(&m->lock);
    svc_state s = m->state;
    pthread_mutex_unlock(&m->lock);
    return s;
}

void metrics_set_queue_depth(metrics *m, size_t depth) {
    pthread_mutex_lock(&m->lock);
    if (m->queue_depth != depth) {
        m->queue_depth = depth;
        m->health_version++;
    }
    pthread_mutex_unlock(&m->lock);
}

void metrics_record(metrics *m, svc_outcome outcome, const metrics_sample *s) {
    pthread_mutex_lock(&m->lock);
    m->requests[outcome]++;
    if (s != NULL) {
        m->prompt_tokens_total += (uint64_t)(s->prompt_tokens > 0 ? s->prompt_tokens : 0);
        m->prompt_seconds_total += s->prompt_ms / 1000.0;
        m->tokens_predicted_total += (uint64_t)(s->predicted_tokens > 0 ? s->predicted_tokens : 0);
        m->tokens_predicted_seconds_total += s->predicted_ms / 1000.0;
        m->cached_tokens_total += (uint64_t)(s->cached_tokens > 0 ? s->cached_tokens : 0);
        m->kv_cache_hits_total += s->cached_tokens > 0;
        m->n_decode_total += (uint64_t)(s->n_forward_passes > 0 ? s->n_forward_passes : 0);
        if (s->n_context_tokens > m->n_tokens_max) {
            m->n_tokens_max = s->n_context_tokens;
        }
        m->period_prompt_tokens += (uint64_t)(s->prompt_tokens > 0 ? s->prompt_tokens : 0);
        m->period_prompt_s += s->prompt_ms / 1000.0;
        m->period_predicted_tokens += (uint64_t)(s->predicted_tokens > 0 ? s->predicted_tokens : 0);
        m->period_predicted_s += s->predicted_ms / 1000.0;
        double ptps = s->predicted_ms > 0 ? s->predicted_tokens * 1000.0 / s->predicted_ms : 0.0;
        double itps = s->prompt_ms > 0 ? s->prompt_tokens * 1000.0 / s->prompt_ms : 0.0;
        if (s->predicted_tokens > 0) {
            m->predicted_tps_last = ptps;
            m->prompt_tps_last = itps;
            m->ttft_ms_last = s->ttft_ms;
            if (!m->have_avg) {
                m->predicted_tps_avg = ptps;
                m->prompt_tps_avg = itps;
                m->have_avg = true;
            } else {
                m->predicted_tps_avg += EMA_ALPHA * (ptps - m->predicted_tps_avg);
                m->prompt_tps_avg += EMA_ALPHA * (itps - m->prompt_tps_avg);
            }
        }
    }
    m->metrics_version++;
    pthread_mutex_unlock(&m->lock);
}

void metrics_set_last_error(metrics *m, const char *message) {
    /* The message may quote what a client sent: bytes that are not UTF-8 become U+FFFD (it goes
     * into JSON for strict parsers), and it is cut at a character boundary to fit. */
    size_t clean_len = 0;
    char *clean = protocol_utf8_clean(message, strlen(message), &clean_len);
    pthread_mutex_lock(&m->lock);
    size_t n = clean != NULL ? clean_len : 0;
    if (n >= sizeof m->last_error) {
        n = sizeof m->last_error - 1;
        while (n > 0 && ((unsigned char)clean[n] & 0xC0) == 0x80) {
            n--; /* clean[n] continues a character: cut before that character */
        }
    }
    memcpy(m->last_error, clean != NULL ? clean : "", n);
    m->last_error[n] = '\0';
    pthread_mutex_unlock(&m->lock);
    free(clean);
}

/* One of m's change counters, read under the lock. */
static uint64_t read_version(metrics *m, const uint64_t *version) {
    pthread_mutex_lock(&m->lock);
    uint64_t v = *version;
    pthread_mutex_unlock(&m->lock);
    return v;
}

uint64_t metrics_health_version(metrics *m) { return read_version(m, &m->health_version); }

uint64_t metrics_metrics_version(metrics *m) { return read_version(m, &m->metrics_version); }

uint64_t metrics_rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) {
        return 0;
    }
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) {
            break;
        }
    }
    fclose(f);
    return (uint64_t)kb * 1024u;
}

static bool read_line(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    bool ok = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    return ok;
}

bool metrics_cpu_temp_c(double *out) {
    /* Prefer a zone whose type names the CPU/SoC; else the first readable one. */
    bool found = false;
    for (int pass = 0; pass < 2 && !found; pass++) {
        for (int i = 0; i < 32 && !found; i++) {
            char path[96], buf[64];
            if (pass == 0) {
                snprintf(path, sizeof path, "/sys/class/thermal/thermal_zone%d/type", i);
                if (!read_line(path, buf, sizeof buf) ||
                    (strstr(buf, "cpu") == NULL && strstr(buf, "soc") == NULL &&
                     strstr(buf, "x86_pkg") == NULL)) {
                    continue;
                }
            }
            snprintf(path, sizeof path, "/sys/class/thermal/thermal_zone%d/temp", i);
            long milli;
            if (read_line(path, buf, sizeof buf) && sscanf(buf, "%ld", &milli) == 1) {
                *out = (double)milli / 1000.0;
                found = true;
            }
        }
    }
    return found;
}

static double round2(double x) { return round(x * 100.0) / 100.0; }

char *metrics_health_json(metrics *m) {
    cJSON *root = cJSON_CreateObject();
    if (root == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&m->lock);
    cJSON_AddNumberToObject(root, "v", 1);
    cJSON_AddNumberToObject(root, "ts", unix_ms());
    cJSON_AddStringToObject(root, "node", m->node);
    cJSON_AddStringToObject(root, "state", state_names[m->state]);
    cJSON_AddStringToObject(root, "model", m->model);
    cJSON_AddNumberToObject(root, "queue_depth", (double)m->queue_depth);
    cJSON_AddNumberToObject(root, "uptime_s", floor(mono_s() - m->started_s));
    cJSON_AddStringToObject(root, "version", m->version);
    pthread_mutex_unlock(&m->lock);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

char *metrics_json(metrics *m) {
    cJSON *root = cJSON_CreateObject();
    cJSON *req = cJSON_CreateObject();
    if (root == NULL || req == NULL) {
        cJSON_Delete(root);
        cJSON_Delete(req);
        return NULL;
    }
    uint64_t rss = metrics_rss_bytes();
    double temp = 0.0;
    bool have_temp = metrics_cpu_temp_c(&temp);
    pthread_mutex_lock(&m->lock);
    double prompt_rate =
        m->period_prompt_s > 0 ? (double)m->period_prompt_tokens / m->period_prompt_s : 0.0;
    double predicted_rate = m->period_predicted_s > 0
                                ? (double)m->period_predicted_tokens / m->period_predicted_s
                                : 0.0;
    m->period_prompt_tokens = m->period_predicted_tokens = 0;
    m->period_prompt_s = m->period_predicted_s = 0.0;
    const double deferred = (double)m->queue_depth;
    cJSON_AddNumberToObject(root, "v", 1);
    cJSON_AddNumberToObject(root, "ts", unix_ms());
    cJSON_AddStringToObject(root, "node", m->node);
    /* llama.cpp's names and meanings */
    cJSON_AddNumberToObject(root, "prompt_tokens_total", (double)m->prompt_tokens_total);
    cJSON_AddNumberToObject(root, "prompt_seconds_total",
                            round2(m->prompt_seconds_total * 1000.0) / 1000.0);
    cJSON_AddNumberToObject(root, "tokens_predicted_total", (double)m->tokens_predicted_total);
    cJSON_AddNumberToObject(root, "tokens_predicted_seconds_total",
                            round2(m->tokens_predicted_seconds_total * 1000.0) / 1000.0);
    cJSON_AddNumberToObject(root, "prompt_tokens_seconds", round2(prompt_rate));
    cJSON_AddNumberToObject(root, "predicted_tokens_seconds", round2(predicted_rate));
    cJSON_AddNumberToObject(root, "n_decode_total", (double)m->n_decode_total);
    cJSON_AddNumberToObject(root, "n_tokens_max", (double)m->n_tokens_max);
    cJSON_AddNumberToObject(root, "requests_processing", m->state == SVC_STATE_BUSY ? 1 : 0);
    cJSON_AddNumberToObject(root, "requests_deferred", deferred);
    cJSON_AddNumberToObject(root, "prompt_tokens_cached_total", (double)m->cached_tokens_total);
    /* edgelmd's own */
    cJSON_AddNumberToObject(root, "last_predicted_tokens_seconds", round2(m->predicted_tps_last));
    cJSON_AddNumberToObject(root, "last_prompt_tokens_seconds", round2(m->prompt_tps_last));
    cJSON_AddNumberToObject(root, "last_ttft_ms", round2(m->ttft_ms_last));
    cJSON_AddNumberToObject(req, "ok", (double)m->requests[SVC_OUTCOME_OK]);
    cJSON_AddNumberToObject(req, "error", (double)m->requests[SVC_OUTCOME_ERROR]);
    cJSON_AddNumberToObject(req, "cancelled", (double)m->requests[SVC_OUTCOME_CANCELLED]);
    cJSON_AddNumberToObject(req, "rejected", (double)m->requests[SVC_OUTCOME_REJECTED]);
    cJSON_AddItemToObject(root, "requests_total", req);
    cJSON_AddNumberToObject(root, "kv_cache_hits_total", (double)m->kv_cache_hits_total);
    cJSON_AddNumberToObject(root, "rss_bytes", (double)rss);
    if (have_temp) {
        cJSON_AddNumberToObject(root, "cpu_temp_c", round2(temp));
    }
    cJSON_AddNumberToObject(root, "uptime_s", floor(mono_s() - m->started_s));
    cJSON_AddStringToObject(root, "last_error", m->last_error);
    /* deprecated names of protocol 1.0 (docs/protocol.md): kept for one release */
    cJSON_AddNumberToObject(root, "predicted_tokens_per_second", round2(m->predicted_tps_last));
    cJSON_AddNumberToObject(root, "predicted_tokens_per_second_avg", round2(m->predicted_tps_avg));
    cJSON_AddNumberToObject(root, "prompt_tokens_per_second", round2(m->prompt_tps_last));
    cJSON_AddNumberToObject(root, "prompt_tokens_per_second_avg", round2(m->prompt_tps_avg));
    cJSON_AddNumberToObject(root, "ttft_ms", round2(m->ttft_ms_last));
    cJSON_AddNumberToObject(root, "queue_depth", deferred);
    cJSON_AddNumberToObject(root, "cached_tokens_total", (double)m->cached_tokens_total);
    pthread_mutex_unlock(&m->lock);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* s as the body of a single-quoted Jinja string literal (a topic prefix or node id may hold a
 * quote or a backslash; the template must still parse). */
static void jinja_quote(const char *s, char *out, size_t out_size) {
    size_t n = 0;
    for (; *s != '\0' && n + 3 < out_size; s++) {
        if (*s == '\'' || *s == '\\') {
            out[n++] = '\\';
        }
        out[n++] = *s;
    }
    out[n] = '\0';
}

/* One discovery component: platform, name, unique id, and the topic its state comes from (the
 * command topic for the write-only platforms). */
static cJSON *component(const char *platform, const char *name, const char *uid, const char *topic,
                        const char *value_template) {
    cJSON *c = cJSON_CreateObject();
    if (c == NULL) {
        return NULL;
    }
    bool commands = strcmp(platform, "text") == 0 || strcmp(platform, "button") == 0;
    cJSON_AddStringToObject(c, "platform", platform);
    cJSON_AddStringToObject(c, "name", name);
    cJSON_AddStringToObject(c, "unique_id", uid);
    cJSON_AddStringToObject(c, commands ? "command_topic" : "state_topic", topic);
    if (value_template != NULL) {
        cJSON_AddStringToObject(c, commands ? "command_template" : "value_template",
                                value_template);
    }
    return c;
}

/* The Last answer sensor's state: the text of a result, or the error message, cut to the 255
 * characters a Home Assistant state holds; the rest goes into its attributes. */
#define LAST_ANSWER_STATE                                                                          \
    "{{ (value_json.text if value_json.type == 'result' else 'error: ' ~ "                         \
    "value_json.error.message)[:255] }}"
#define LAST_ANSWER_ATTRIBUTES                                                                     \
    "{{ {'text': value_json.get('text'), 'json': value_json.get('json'), "                         \
    "'finish_reason': value_json.get('finish_reason'), "                                           \
    "'tokens_per_second': value_json.get('timings', {}).get('predicted_per_second'), "             \
    "'id': value_json.get('id'), 'error': value_json.get('error', {}).get('message')} "            \
    "| to_json }}"

char *metrics_discovery_json(metrics *m, const topics *t) {
    char node[256], version[32], model[256];
    pthread_mutex_lock(&m->lock);
    snprintf(node, sizeof node, "%s", m->node);
    snprintf(version, sizeof version, "%s", m->version);
    snprintf(model, sizeof model, "%s", m->model);
    pthread_mutex_unlock(&m->lock);
    double temp = 0.0;
    const bool have_temp = metrics_cpu_temp_c(&temp);
    struct utsname host;
    const bool have_host = uname(&host) == 0;

    /* the Ask entity's request: the typed text as the prompt, a fresh id (ids are the dedupe key:
     * a fixed one would be a different request each time), answered on the retained answer
     * topic so an automation's wait_for_trigger cannot miss a fast reply */
    char answer_quoted[2 * TOPIC_SIZE];
    jinja_quote(t->answer, answer_quoted, sizeof answer_quoted);
    char ask_template[3 * TOPIC_SIZE];
    snprintf(ask_template, sizeof ask_template,
             "{{ {'v': 1, 'id': 'ha-' ~ (as_timestamp(now()) * 1000) | int, 'prompt': value, "
             "'reply_to': '%s'} | to_json }}",
             answer_quoted);

    char ident[300], uid[400], name[300];
    snprintf(ident, sizeof ident, "edgelm_%s", node);
    snprintf(name, sizeof name, "edgelm %s", node);

    cJSON *root = cJSON_CreateObject();
    cJSON *dev = cJSON_AddObjectToObject(root, "device");
    cJSON *origin = cJSON_AddObjectToObject(root, "origin");
    cJSON *cmps = cJSON_AddObjectToObject(root, "components");
    if (root == NULL || dev == NULL || origin == NULL || cmps == NULL) {
        cJSON_Delete(root);
        return NULL;
    }
    cJSON_AddStringToObject(dev, "identifiers", ident);
    cJSON_AddStringToObject(dev, "name", name);
    cJSON_AddStringToObject(dev, "manufacturer", "edgelm");
    cJSON_AddStringToObject(dev, "model", model[0] ? model : "edgelmd");
    cJSON_AddStringToObject(dev, "sw_version", version);
    if (have_host) {
        cJSON_AddStringToObject(dev, "hw_version", host.machine);
    }
    cJSON_AddStringToObject(origin, "name", "edgelmd");
    cJSON_AddStringToObject(origin, "sw_version", version);
    cJSON_AddStringToObject(root, "availability_topic", t->status);
    cJSON_AddStringToObject(root, "payload_available", "online");
    cJSON_AddStringToObject(root, "payload_not_available", "offline");
    cJSON_AddNumberToObject(root, "qos", 1);

    struct {
        const char *key, *platform, *name, *topic, *tpl, *unit, *dev_class, *state_class, *category,
            *icon;
        int precision; /* suggested_display_precision, -1 = none */
    } defs[] = {
        {"ask", "text", "Ask", t->request, ask_template, NULL, NULL, NULL, NULL,
         "mdi:chat-question", -1},
        {"last_answer", "sensor", "Last answer", t->answer, LAST_ANSWER_STATE, NULL, NULL, NULL,
         NULL, "mdi:chat-processing", -1},
        {"tokens_per_second", "sensor", "Tokens per second", t->metrics,
         "{{ value_json.predicted_tokens_seconds }}", "tok/s", NULL, "measurement", NULL,
         "mdi:speedometer", 1},
        {"prompt_tokens_per_second", "sensor", "Prompt tokens per second", t->metrics,
         "{{ value_json.prompt_tokens_seconds }}", "tok/s", NULL, "measurement", NULL,
         "mdi:speedometer", 1},
        {"queue_depth", "sensor", "Requests waiting", t->health, "{{ value_json.queue_depth }}",
         NULL, NULL, "measurement", NULL, "mdi:tray-full", 0},
        {"busy", "binary_sensor", "Busy", t->health,
         "{{ 'ON' if value_json.state == 'busy' else 'OFF' }}", NULL, "running", NULL, NULL, NULL,
         -1},
        {"requests_total", "sensor", "Requests", t->metrics,
         "{{ value_json.requests_total.ok + value_json.requests_total.error + "
         "value_json.requests_total.cancelled + value_json.requests_total.rejected }}",
         NULL, NULL, "total_increasing", NULL, "mdi:counter", 0},
        {"last_error", "sensor", "Last error", t->metrics,
         "{{ value_json.last_error if value_json.last_error else 'none' }}", NULL, NULL, NULL,
         "diagnostic", "mdi:alert-circle-outline", -1},
        {"memory", "sensor", "Memory", t->metrics,
         "{{ (value_json.rss_bytes / 1048576) | round(1) }}", "MiB", "data_size", "measurement",
         "diagnostic", NULL, 1},
        {"cpu_temperature", "sensor", "CPU temperature", t->metrics,
         "{{ value_json.cpu_temp_c | default(None) }}",
         "\xc2\xb0"
         "C",
         "temperature", "measurement", "diagnostic", NULL, 1},
    };
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        if (strcmp(defs[i].key, "cpu_temperature") == 0 && !have_temp) {
            continue; /* this board exposes no thermal zone */
        }
        snprintf(uid, sizeof uid, "%s_%s", ident, defs[i].key);
        cJSON *c = component(defs[i].platform, defs[i].name, uid, defs[i].topic, defs[i].tpl);
        if (c == NULL) {
            cJSON_Delete(root);
            return NULL;
        }
        if (strcmp(defs[i].key, "ask") == 0) {
            cJSON_AddNumberToObject(c, "max", 255);
            cJSON_AddStringToObject(c, "mode", "text");
        } else if (strcmp(defs[i].key, "last_answer") == 0) {
            cJSON_AddStringToObject(c, "json_attributes_topic", t->answer);
            cJSON_AddStringToObject(c, "json_attributes_template", LAST_ANSWER_ATTRIBUTES);
        }
        if (defs[i].unit != NULL) {
            cJSON_AddStringToObject(c, "unit_of_measurement", defs[i].unit);
        }
        if (defs[i].dev_class != NULL) {
            cJSON_AddStringToObject(c, "device_class", defs[i].dev_class);
        }
        if (defs[i].state_class != NULL) {
            cJSON_AddStringToObject(c, "state_class", defs[i].state_class);
        }
        if (defs[i].precision >= 0) {
            cJSON_AddNumberToObject(c, "suggested_display_precision", defs[i].precision);
        }
        if (defs[i].category != NULL) {
            cJSON_AddStringToObject(c, "entity_category", defs[i].category);
        }
        if (defs[i].icon != NULL) {
            cJSON_AddStringToObject(c, "icon", defs[i].icon);
        }
        cJSON_AddItemToObject(cmps, uid, c);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}
