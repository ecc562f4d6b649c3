/* metrics.c - counters, health, metrics and Home Assistant discovery JSON (see metrics.h). */
#include "metrics.h"

#include "protocol.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    uint64_t requests[4]; /* by svc_outcome */
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
    cJSON_AddNumberToObject(root, "v", 1);
    cJSON_AddNumberToObject(root, "prompt_tokens_total", (double)m->prompt_tokens_total);
    cJSON_AddNumberToObject(root, "prompt_seconds_total",
                            round2(m->prompt_seconds_total * 1000.0) / 1000.0);
    cJSON_AddNumberToObject(root, "tokens_predicted_total", (double)m->tokens_predicted_total);
    cJSON_AddNumberToObject(root, "tokens_predicted_seconds_total",
                            round2(m->tokens_predicted_seconds_total * 1000.0) / 1000.0);
    cJSON_AddNumberToObject(root, "predicted_tokens_per_second", round2(m->predicted_tps_last));
    cJSON_AddNumberToObject(root, "predicted_tokens_per_second_avg", round2(m->predicted_tps_avg));
    cJSON_AddNumberToObject(root, "prompt_tokens_per_second", round2(m->prompt_tps_last));
    cJSON_AddNumberToObject(root, "prompt_tokens_per_second_avg", round2(m->prompt_tps_avg));
    cJSON_AddNumberToObject(root, "ttft_ms", round2(m->ttft_ms_last));
    cJSON_AddNumberToObject(req, "ok", (double)m->requests[SVC_OUTCOME_OK]);
    cJSON_AddNumberToObject(req, "error", (double)m->requests[SVC_OUTCOME_ERROR]);
    cJSON_AddNumberToObject(req, "cancelled", (double)m->requests[SVC_OUTCOME_CANCELLED]);
    cJSON_AddNumberToObject(req, "rejected", (double)m->requests[SVC_OUTCOME_REJECTED]);
    cJSON_AddItemToObject(root, "requests_total", req);
    cJSON_AddNumberToObject(root, "requests_processing", m->state == SVC_STATE_BUSY ? 1 : 0);
    cJSON_AddNumberToObject(root, "queue_depth", (double)m->queue_depth);
    cJSON_AddNumberToObject(root, "kv_cache_hits_total", (double)m->kv_cache_hits_total);
    cJSON_AddNumberToObject(root, "cached_tokens_total", (double)m->cached_tokens_total);
    cJSON_AddNumberToObject(root, "rss_bytes", (double)rss);
    if (have_temp) {
        cJSON_AddNumberToObject(root, "cpu_temp_c", round2(temp));
    }
    cJSON_AddNumberToObject(root, "uptime_s", floor(mono_s() - m->started_s));
    cJSON_AddStringToObject(root, "last_error", m->last_error);
    pthread_mutex_unlock(&m->lock);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* One discovery component. */
static cJSON *component(const char *platform, const char *name, const char *uid,
                        const char *state_topic, const char *value_template) {
    cJSON *c = cJSON_CreateObject();
    if (c == NULL) {
        return NULL;
    }
    cJSON_AddStringToObject(c, "platform", platform);
    cJSON_AddStringToObject(c, "name", name);
    cJSON_AddStringToObject(c, "unique_id", uid);
    cJSON_AddStringToObject(c, "state_topic", state_topic);
    if (value_template != NULL) {
        cJSON_AddStringToObject(c, "value_template", value_template);
    }
    return c;
}

char *metrics_discovery_json(metrics *m, const char *status_topic, const char *health_topic,
                             const char *metrics_topic) {
    char node[256], version[32], model[256];
    pthread_mutex_lock(&m->lock);
    snprintf(node, sizeof node, "%s", m->node);
    snprintf(version, sizeof version, "%s", m->version);
    snprintf(model, sizeof model, "%s", m->model);
    pthread_mutex_unlock(&m->lock);

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
    cJSON_AddStringToObject(origin, "name", "edgelmd");
    cJSON_AddStringToObject(origin, "sw_version", version);
    cJSON_AddStringToObject(root, "availability_topic", status_topic);
    cJSON_AddStringToObject(root, "payload_available", "online");
    cJSON_AddStringToObject(root, "payload_not_available", "offline");
    cJSON_AddNumberToObject(root, "qos", 1);

    struct {
        const char *key, *platform, *name, *topic, *tpl, *unit, *dev_class, *state_class, *category;
    } defs[] = {
        {"online", "binary_sensor", "Online", status_topic, NULL, NULL, "connectivity", NULL,
         "diagnostic"},
        {"tokens_per_second", "sensor", "Tokens per second", metrics_topic,
         "{{ value_json.predicted_tokens_per_second }}", "tok/s", NULL, "measurement", NULL},
        {"prompt_tokens_per_second", "sensor", "Prompt tokens per second", metrics_topic,
         "{{ value_json.prompt_tokens_per_second }}", "tok/s", NULL, "measurement", NULL},
        {"queue_depth", "sensor", "Queue depth", health_topic, "{{ value_json.queue_depth }}", NULL,
         NULL, "measurement", NULL},
        {"busy", "binary_sensor", "Busy", health_topic,
         "{{ 'ON' if value_json.state == 'busy' else 'OFF' }}", NULL, "running", NULL, NULL},
        {"requests_total", "sensor", "Requests", metrics_topic,
         "{{ value_json.requests_total.ok + value_json.requests_total.error + "
         "value_json.requests_total.cancelled + value_json.requests_total.rejected }}",
         NULL, NULL, "total_increasing", NULL},
        {"last_error", "sensor", "Last error", metrics_topic, "{{ value_json.last_error }}", NULL,
         NULL, NULL, "diagnostic"},
    };
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        snprintf(uid, sizeof uid, "%s_%s", ident, defs[i].key);
        cJSON *c = component(defs[i].platform, defs[i].name, uid, defs[i].topic, defs[i].tpl);
        if (c == NULL) {
            cJSON_Delete(root);
            return NULL;
        }
        if (strcmp(defs[i].key, "online") == 0) {
            cJSON_AddStringToObject(c, "payload_on", "online");
            cJSON_AddStringToObject(c, "payload_off", "offline");
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
        if (defs[i].category != NULL) {
            cJSON_AddStringToObject(c, "entity_category", defs[i].category);
        }
        cJSON_AddItemToObject(cmps, uid, c);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}
