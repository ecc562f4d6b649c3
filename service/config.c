/* config.c - libconfig file -> validated svc_config (see config.h).
 * One table lists every option with its type, range, built-in default and place in the struct;
 * the defaults, loading, the unknown-option check and --check-config printing all walk that
 * table, so they cannot drift.
 */
#include "config.h"

#include "log.h"

#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

typedef enum opt_kind {
    OPT_STR,
    OPT_PATH,
    OPT_INT,
    OPT_INT64,
    OPT_FLOAT,
    OPT_BOOL,
    OPT_LOG_LEVEL,
    OPT_MQTT_VERSION,
} opt_kind;

typedef struct opt_def {
    const char *path; /* "group.name" */
    opt_kind kind;
    size_t offset;
    size_t size;              /* for strings: the field's capacity */
    double min, max;          /* for numbers: the accepted range */
    double default_number;    /* numbers, bools (0 or 1) and enums (their value) */
    const char *default_text; /* strings; NULL = "" */
    bool secret;              /* masked by config_print */
} opt_def;

/* Columns after F(): min, max, default for numbers; named ones for the rest (unnamed = 0, "").
 * The defaults are those of config/edgelm.conf (test_service_config checks they match). */
#define F(field) .offset = offsetof(svc_config, field), .size = sizeof(((svc_config *)0)->field)
static const opt_def options[] = {
    {"mqtt.broker", OPT_STR, F(broker), .default_text = "tcp://localhost:1883"},
    {"mqtt.client_id", OPT_STR, F(client_id)},
    {"mqtt.username", OPT_STR, F(username)},
    {"mqtt.password", OPT_STR, F(password), .secret = true},
    {"mqtt.version", OPT_MQTT_VERSION, F(mqtt_version), .default_number = 0},
    {"mqtt.keepalive_s", OPT_INT, F(keepalive_s), 5, 3600, 30},
    {"mqtt.session_expiry_s", OPT_INT, F(session_expiry_s), 0, INT32_MAX, 3600},
    {"mqtt.max_buffered", OPT_INT, F(max_buffered), 1, 1000000, 1000},
    {"mqtt.stream_expiry_s", OPT_INT, F(stream_expiry_s), 1, 3600, 10},
    {"mqtt.topic_prefix", OPT_STR, F(topic_prefix), .default_text = "edgelm"},
    {"mqtt.tls.ca_file", OPT_PATH, F(tls_ca_file)},
    {"mqtt.tls.cert_file", OPT_PATH, F(tls_cert_file)},
    {"mqtt.tls.key_file", OPT_PATH, F(tls_key_file)},
    {"mqtt.tls.key_password", OPT_STR, F(tls_key_password), .secret = true},
    {"mqtt.tls.verify", OPT_BOOL, F(tls_verify), .default_number = true},
    {"node.id", OPT_STR, F(node_id)},
    {"fleet.enabled", OPT_BOOL, F(fleet_enabled), .default_number = false},
    {"fleet.group", OPT_STR, F(fleet_group), .default_text = "edgelm"},
    {"model.path", OPT_PATH, F(model_path)},
    {"model.threads", OPT_INT, F(threads), 0, 1024, 0},
    {"model.context", OPT_INT, F(context), 0, 1048576, 0},
    {"sampling.max_tokens", OPT_INT, F(sampling.max_tokens), 1, 1048576, 128},
    {"sampling.temperature", OPT_FLOAT, F(sampling.temperature), 0, 5, 0.8},
    {"sampling.top_p", OPT_FLOAT, F(sampling.top_p), 0, 1, 0.95},
    {"sampling.top_k", OPT_INT, F(sampling.top_k), 0, 1000000, 40},
    {"sampling.min_p", OPT_FLOAT, F(sampling.min_p), 0, 1, 0.05},
    {"sampling.repeat_penalty", OPT_FLOAT, F(sampling.repeat_penalty), 0.5, 5, 1.0},
    {"sampling.repeat_last_n", OPT_INT, F(sampling.repeat_last_n), 0, 65536, 64},
    {"sampling.seed", OPT_INT64, F(sampling.seed), -1, UINT32_MAX, -1},
    {"limits.max_payload_bytes", OPT_INT, F(limits.max_payload_bytes), 256, 268435455, 65536},
    {"limits.max_prompt_tokens", OPT_INT, F(limits.max_prompt_tokens), 1, 1048576, 1024},
    {"limits.max_tokens", OPT_INT, F(limits.max_tokens), 1, 16777216, 2048},
    {"limits.max_deadline_ms", OPT_INT, F(limits.max_deadline_ms), 0, INT32_MAX, 0},
    {"limits.queue_depth", OPT_INT, F(limits.queue_depth), 0, 65536, 8},
    {"limits.result_cache", OPT_INT, F(limits.result_cache), 1, 65536, 256},
    {"limits.shutdown_grace_ms", OPT_INT, F(limits.shutdown_grace_ms), 0, 600000, 10000},
    {"metrics.interval_s", OPT_INT, F(metrics_interval_s), 0, 86400, 30},
    {"homeassistant.discovery", OPT_BOOL, F(ha_discovery), .default_number = true},
    {"homeassistant.prefix", OPT_STR, F(ha_prefix), .default_text = "homeassistant"},
    {"log.level", OPT_LOG_LEVEL, F(log_level), .default_number = LOG_INFO},
};
#undef F
#define N_OPTIONS (sizeof options / sizeof options[0])

/* Store a number into an option's field of its kind (strings take none). */
static void store_number(char *field, opt_kind kind, double v) {
    switch (kind) {
    case OPT_INT:
    case OPT_LOG_LEVEL:
    case OPT_MQTT_VERSION:
        *(int32_t *)(void *)field = (int32_t)v;
        break;
    case OPT_INT64:
        *(int64_t *)(void *)field = (int64_t)v;
        break;
    case OPT_FLOAT:
        *(double *)(void *)field = v;
        break;
    case OPT_BOOL:
        *(bool *)(void *)field = v != 0.0;
        break;
    case OPT_STR:
    case OPT_PATH:
        break;
    }
}

void config_defaults(svc_config *c) {
    memset(c, 0, sizeof *c);
    for (size_t k = 0; k < N_OPTIONS; k++) {
        const opt_def *o = &options[k];
        char *field = (char *)c + o->offset;
        if (o->default_text != NULL) {
            config_set_string(field, o->size, o->default_text);
        } else {
            store_number(field, o->kind, o->default_number);
        }
    }
}

bool config_set_string(char *dst, size_t dst_size, const char *src) {
    size_t n = strlen(src);
    if (n >= dst_size) {
        return false;
    }
    memcpy(dst, src, n + 1);
    return true;
}

#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static bool
fail_at(char *err, size_t err_size, const config_setting_t *s, const char *fallback_file,
        const char *fmt, ...) {
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    const char *file = s ? config_setting_source_file(s) : NULL;
    unsigned line = s ? config_setting_source_line(s) : 0;
    snprintf(err, err_size, "%s:%u: %s", file ? file : fallback_file, line, why);
    return false;
}

static const char *mqtt_version_name(int32_t v) { return v == 5 ? "5" : v == 4 ? "3.1.1" : "auto"; }

/* Read one option's setting into the struct. */
static bool load_option(svc_config *c, const opt_def *o, const config_setting_t *s,
                        const char *file, char *err, size_t err_size) {
    char *field = (char *)c + o->offset;
    int type = config_setting_type(s);
    switch (o->kind) {
    case OPT_STR:
    case OPT_PATH:
    case OPT_LOG_LEVEL:
    case OPT_MQTT_VERSION: {
        if (type != CONFIG_TYPE_STRING) {
            return fail_at(err, err_size, s, file, "option '%s': expected a string", o->path);
        }
        const char *v = config_setting_get_string(s);
        if (o->kind == OPT_LOG_LEVEL) {
            log_level lv;
            if (!log_level_parse(v, &lv)) {
                return fail_at(err, err_size, s, file,
                               "option '%s': \"%s\" is not one of error, warn, info, debug",
                               o->path, v);
            }
            store_number(field, o->kind, lv);
            return true;
        }
        if (o->kind == OPT_MQTT_VERSION) {
            int32_t ver = strcmp(v, "auto") == 0    ? 0
                          : strcmp(v, "5") == 0     ? 5
                          : strcmp(v, "3.1.1") == 0 ? 4
                                                    : -1;
            if (ver < 0) {
                return fail_at(err, err_size, s, file,
                               "option '%s': \"%s\" is not one of auto, 5, 3.1.1", o->path, v);
            }
            store_number(field, o->kind, ver);
            return true;
        }
        if (!config_set_string(field, o->size, v)) {
            return fail_at(err, err_size, s, file, "option '%s': longer than %zu bytes", o->path,
                           o->size - 1);
        }
        return true;
    }
    case OPT_BOOL:
        if (type != CONFIG_TYPE_BOOL) {
            return fail_at(err, err_size, s, file, "option '%s': expected true or false", o->path);
        }
        store_number(field, o->kind, config_setting_get_bool(s));
        return true;
    case OPT_INT:
    case OPT_INT64: {
        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
            return fail_at(err, err_size, s, file, "option '%s': expected an integer", o->path);
        }
        long long v = config_setting_get_int64(s);
        if ((double)v < o->min || (double)v > o->max) {
            return fail_at(err, err_size, s, file, "option '%s': %lld is outside %.0f..%.0f",
                           o->path, v, o->min, o->max);
        }
        store_number(field, o->kind, (double)v);
        return true;
    }
    case OPT_FLOAT: {
        double v;
        if (type == CONFIG_TYPE_FLOAT) {
            v = config_setting_get_float(s);
        } else if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
            v = (double)config_setting_get_int64(s);
        } else {
            return fail_at(err, err_size, s, file, "option '%s': expected a number", o->path);
        }
        if (!(v >= o->min && v <= o->max)) {
            return fail_at(err, err_size, s, file, "option '%s': %g is outside %g..%g", o->path, v,
                           o->min, o->max);
        }
        store_number(field, o->kind, v);
        return true;
    }
    }
    return false;
}

/* Every setting in the file must be a known option or a group on the way to one. */
static bool check_known(const config_setting_t *group, const char *prefix, const char *file,
                        char *err, size_t err_size) {
    int n = config_setting_length(group);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(s);
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", name ? name : "?");
        size_t plen = strlen(path);
        bool known = false;
        for (size_t k = 0; k < N_OPTIONS && !known; k++) {
            if (config_setting_is_group(s)) {
                known = strncmp(options[k].path, path, plen) == 0 && options[k].path[plen] == '.';
            } else {
                known = strcmp(options[k].path, path) == 0;
            }
        }
        if (!known) {
            return fail_at(err, err_size, s, file, "unknown option '%s'", path);
        }
        if (config_setting_is_group(s) && !check_known(s, path, file, err, err_size)) {
            return false;
        }
    }
    return true;
}

bool config_load_file(svc_config *c, const char *path, char *err, size_t err_size) {
    config_t cf;
    config_init(&cf);
    bool ok = false;
    if (config_read_file(&cf, path) != CONFIG_TRUE) {
        if (config_error_type(&cf) == CONFIG_ERR_FILE_IO) {
            snprintf(err, err_size, "%s: cannot read the file", path);
        } else {
            snprintf(err, err_size, "%s:%d: %s",
                     config_error_file(&cf) ? config_error_file(&cf) : path, config_error_line(&cf),
                     config_error_text(&cf));
        }
        goto fail;
    }
    if (!check_known(config_root_setting(&cf), "", path, err, err_size)) {
        goto fail;
    }
    for (size_t k = 0; k < N_OPTIONS; k++) {
        const config_setting_t *s = config_lookup(&cf, options[k].path);
        if (s != NULL && !load_option(c, &options[k], s, path, err, err_size)) {
            goto fail;
        }
    }
    if (!config_set_string(c->source, sizeof c->source, path)) {
        snprintf(err, err_size, "%s: path too long", path);
        goto fail;
    }
    ok = true;
fail:
    config_destroy(&cf);
    return ok;
}

/* Topic segments we build from config must not contain MQTT wildcards or separators. */
static bool topic_segment_ok(const char *s, bool allow_slash) {
    if (s[0] == '\0') {
        return false;
    }
    for (const char *p = s; *p; p++) {
        if (*p == '+' || *p == '#' || (!allow_slash && *p == '/') || (unsigned char)*p < 0x20) {
            return false;
        }
    }
    return true;
}

bool config_finish(svc_config *c, char *err, size_t err_size) {
    const char *where = c->source[0] ? c->source : "edgelmd";
    if (c->node_id[0] == '\0') {
        char host[256];
        if (gethostname(host, sizeof host) != 0) {
            strcpy(host, "edgelm");
        }
        host[sizeof host - 1] = '\0';
        /* host names may carry a domain: the first label is the node id */
        char *dot = strchr(host, '.');
        if (dot != NULL && dot != host) {
            *dot = '\0';
        }
        config_set_string(c->node_id, sizeof c->node_id, host);
    }
    if (!topic_segment_ok(c->node_id, false)) {
        snprintf(err, err_size, "%s: node id \"%s\" must be non-empty without / + #", where,
                 c->node_id);
        return false;
    }
    if (!topic_segment_ok(c->topic_prefix, true) || c->topic_prefix[0] == '$') {
        snprintf(err, err_size,
                 "%s: mqtt.topic_prefix \"%s\" must be a topic without + # or a "
                 "leading $",
                 where, c->topic_prefix);
        return false;
    }
    if (!topic_segment_ok(c->fleet_group, false)) {
        snprintf(err, err_size, "%s: fleet.group \"%s\" must be non-empty without / + #", where,
                 c->fleet_group);
        return false;
    }
    if (!topic_segment_ok(c->ha_prefix, true)) {
        snprintf(err, err_size, "%s: homeassistant.prefix \"%s\" must be a topic without + #",
                 where, c->ha_prefix);
        return false;
    }
    if (c->client_id[0] == '\0') {
        snprintf(c->client_id, sizeof c->client_id, "edgelmd-%.200s", c->node_id);
    }
    if (strncmp(c->broker, "tcp://", 6) != 0 && strncmp(c->broker, "ssl://", 6) != 0 &&
        strncmp(c->broker, "mqtt://", 7) != 0 && strncmp(c->broker, "mqtts://", 8) != 0 &&
        strncmp(c->broker, "ws://", 5) != 0 && strncmp(c->broker, "wss://", 6) != 0) {
        snprintf(err, err_size,
                 "%s: mqtt.broker \"%s\" must start with tcp://, ssl://, mqtt://, mqtts://, "
                 "ws:// or wss://",
                 where, c->broker);
        return false;
    }
    if (c->model_path[0] == '\0') {
        snprintf(err, err_size, "%s: no model: set model.path or pass --model FILE", where);
        return false;
    }
    if (c->sampling.max_tokens > c->limits.max_tokens) {
        snprintf(err, err_size, "%s: sampling.max_tokens %d exceeds limits.max_tokens %d", where,
                 (int)c->sampling.max_tokens, (int)c->limits.max_tokens);
        return false;
    }
    if ((c->tls_cert_file[0] == '\0') != (c->tls_key_file[0] == '\0') &&
        c->tls_key_file[0] != '\0') {
        snprintf(err, err_size, "%s: mqtt.tls.key_file needs mqtt.tls.cert_file", where);
        return false;
    }
    return true;
}

static void print_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            fputc('\\', f);
        }
        fputc(*p, f);
    }
    fputc('"', f);
}

/* Number of leading dot-separated group components a and b share (the last component, the
 * option name, is not a group). */
static size_t shared_groups(const char *a, const char *b) {
    size_t n = 0;
    for (size_t i = 0;; i++) {
        if (a[i] != b[i]) {
            return n;
        }
        if (a[i] == '\0') {
            return n;
        }
        if (a[i] == '.') {
            n++;
        }
    }
}

static size_t n_groups(const char *path) {
    size_t n = 0;
    for (const char *p = path; *p; p++) {
        n += *p == '.';
    }
    return n;
}

/* Component i (0-based) of a dotted path into buf. */
static const char *component(const char *path, size_t i, char *buf, size_t buf_size) {
    const char *p = path;
    for (size_t k = 0; k < i; k++) {
        p = strchr(p, '.') + 1;
    }
    const char *end = strchr(p, '.');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    snprintf(buf, buf_size, "%.*s", (int)len, p);
    return buf;
}

void config_print(const svc_config *c, FILE *f) {
    fprintf(f, "# effective configuration (%s)\n", c->source[0] ? c->source : "built-in defaults");
    const char *prev = "";
    size_t depth = 0;
    char name[64];
    for (size_t k = 0; k < N_OPTIONS; k++) {
        const opt_def *o = &options[k];
        size_t keep = shared_groups(prev, o->path);
        if (keep > n_groups(prev)) {
            keep = n_groups(prev);
        }
        while (depth > keep) {
            depth--;
            fprintf(f, "%*s};\n", (int)(2 * depth), "");
        }
        while (depth < n_groups(o->path)) {
            fprintf(f, "%*s%s = {\n", (int)(2 * depth), "",
                    component(o->path, depth, name, sizeof name));
            depth++;
        }
        fprintf(f, "%*s%s = ", (int)(2 * depth), "", component(o->path, depth, name, sizeof name));
        prev = o->path;
        const char *field = (const char *)c + o->offset;
        switch (o->kind) {
        case OPT_STR:
        case OPT_PATH:
            print_string(f, o->secret && field[0] != '\0' ? "********" : field);
            break;
        case OPT_INT:
            fprintf(f, "%d", (int)*(const int32_t *)(const void *)field);
            break;
        case OPT_INT64: {
            long long v = (long long)*(const int64_t *)(const void *)field;
            /* libconfig wants the L suffix on integers beyond 32 bits */
            fprintf(f, "%lld%s", v, v > INT32_MAX || v < INT32_MIN ? "L" : "");
            break;
        }
        case OPT_FLOAT: {
            double v = *(const double *)(const void *)field;
            char num[64];
            snprintf(num, sizeof num, "%.10g", v);
            /* keep it a float for libconfig ("1" would read back as an integer, also fine) */
            fputs(num, f);
            if (strpbrk(num, ".eEn") == NULL) {
                fputs(".0", f);
            }
            break;
        }
        case OPT_BOOL:
            fputs(*(const bool *)(const void *)field ? "true" : "false", f);
            break;
        case OPT_LOG_LEVEL:
            print_string(f, log_level_name((log_level) * (const int32_t *)(const void *)field));
            break;
        case OPT_MQTT_VERSION:
            print_string(f, mqtt_version_name(*(const int32_t *)(const void *)field));
            break;
        }
        fputs(";\n", f);
    }
    while (depth > 0) {
        depth--;
        fprintf(f, "%*s};\n", (int)(2 * depth), "");
    }
}
