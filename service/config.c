/* config.c - libconfig file -> validated svc_config (see config.h).
 * One table lists every option with its type, range, built-in default and place in the struct;
 * the defaults, loading, the unknown-option check and --check-config printing all walk that
 * table, so they cannot drift. Integers are range-checked on the literal's own text, re-read from
 * the file: libconfig 1.5 silently wraps a plain literal beyond 32 bits (see read_integer).
 */
#include "config.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    OPT_TOPIC_PREFIXES, /* a list of strings into an svc_reply_prefixes */
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
    const char *flag;         /* the edgelmd flag that overrides it, for messages; NULL = none */
} opt_def;

/* Columns after F(): min, max, default for numbers; named ones for the rest (unnamed = 0, "").
 * The defaults are those of config/edgelm.conf (test_service_config checks they match). */
#define F(field) .offset = offsetof(svc_config, field), .size = sizeof(((svc_config *)0)->field)
static const opt_def options[] = {
    {"mqtt.broker", OPT_STR, F(broker), .default_text = "tcp://localhost:1883", .flag = "--broker"},
    {"mqtt.client_id", OPT_STR, F(client_id)},
    {"mqtt.username", OPT_STR, F(username)},
    {"mqtt.password", OPT_STR, F(password), .secret = true},
    {"mqtt.version", OPT_MQTT_VERSION, F(mqtt_version), .default_number = 0},
    {"mqtt.keepalive_s", OPT_INT, F(keepalive_s), 5, 3600, 30},
    {"mqtt.session_expiry_s", OPT_INT, F(session_expiry_s), 0, INT32_MAX, 3600},
    {"mqtt.max_buffered", OPT_INT, F(max_buffered), 1, 1000000, 1000},
    {"mqtt.stream_expiry_s", OPT_INT, F(stream_expiry_s), 1, 3600, 10},
    {"mqtt.topic_prefix", OPT_STR, F(topic_prefix), .default_text = "edgelm"},
    {"mqtt.reply_prefixes", OPT_TOPIC_PREFIXES, F(reply_prefixes)},
    {"mqtt.tls.ca_file", OPT_PATH, F(tls_ca_file)},
    {"mqtt.tls.cert_file", OPT_PATH, F(tls_cert_file)},
    {"mqtt.tls.key_file", OPT_PATH, F(tls_key_file)},
    {"mqtt.tls.key_password", OPT_STR, F(tls_key_password), .secret = true},
    {"mqtt.tls.verify", OPT_BOOL, F(tls_verify), .default_number = true},
    {"node.id", OPT_STR, F(node_id), .flag = "--node"},
    {"fleet.enabled", OPT_BOOL, F(fleet_enabled), .default_number = false, .flag = "--fleet"},
    {"fleet.group", OPT_STR, F(fleet_group), .default_text = "edgelm"},
    {"model.path", OPT_PATH, F(model_path), .flag = "--model"},
    {"model.threads", OPT_INT, F(threads), 0, 1024, 0, .flag = "--threads"},
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
    {"log.level", OPT_LOG_LEVEL, F(log_level), .default_number = LOG_INFO, .flag = "--log-level"},
};
#undef F
#define N_OPTIONS (sizeof options / sizeof options[0])
_Static_assert(N_OPTIONS == CONFIG_N_OPTIONS, "config.h's CONFIG_N_OPTIONS must count options[]");

/* The index of the option named path; N_OPTIONS when there is none. */
static size_t option_index(const char *path) {
    size_t k = 0;
    while (k < N_OPTIONS && strcmp(options[k].path, path) != 0) {
        k++;
    }
    return k;
}

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
    case OPT_TOPIC_PREFIXES:
        break;
    }
}

/* FNV-1a of an option's value: a string up to its NUL (the bytes after it are stale), any other
 * field whole. Only compared with itself, to notice that something replaced the value. */
static uint64_t value_hash(const svc_config *c, size_t k) {
    const opt_def *o = &options[k];
    const unsigned char *field = (const unsigned char *)c + o->offset;
    size_t n =
        o->kind == OPT_STR || o->kind == OPT_PATH ? strnlen((const char *)field, o->size) : o->size;
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ field[i]) * 1099511628211u;
    }
    return h;
}

/* Note that option k now holds the value from line `line` of the file (0: a default). */
static void record_origin(svc_config *c, size_t k, uint32_t line) {
    c->origin[k].line = line;
    c->origin[k].value_hash = value_hash(c, k);
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
        record_origin(c, k, 0);
    }
}

const char *config_option_where(const svc_config *c, const char *option, char *buf,
                                size_t buf_size) {
    const char *file = c->source[0] ? c->source : "edgelmd";
    size_t k = option_index(option);
    if (k == N_OPTIONS) {
        snprintf(buf, buf_size, "%s", file);
    } else if (c->origin[k].value_hash != value_hash(c, k)) {
        /* only the command line changes a value after config_load_file */
        snprintf(buf, buf_size, "%s", options[k].flag ? options[k].flag : "edgelmd");
    } else if (c->origin[k].line > 0) {
        snprintf(buf, buf_size, "%s:%u", file, (unsigned)c->origin[k].line);
    } else {
        snprintf(buf, buf_size, "%s", file);
    }
    return buf;
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

/* ---- integer literals, re-read from the file ------------------------------------------------
 * libconfig 1.5's scanner stores a plain integer literal into an int (atoi; hex: strtoul), so
 * 4294967301 is read as 5 and 99999999999999 as 276447231 with no error; only a literal with the
 * L suffix keeps 64 bits. The value alone cannot show it, so the literal is found again in the
 * file (after the setting's name on the setting's line, by a scan that skips comments and strings
 * and follows the group nesting) and its text is parsed whole. libconfig's value must equal the
 * text's as libconfig truncates it; when it does not, the setting is refused, never guessed at.
 * Where long has 32 bits (armhf) libconfig 1.5 saturates instead of wrapping; libconfig 1.7
 * (Debian 13) keeps a decimal literal beyond 32 bits in 64, refuses one beyond 64 bits as a
 * syntax error, and reads a leading 0 as octal (see libconfig_agrees). */

/* The text of the file settings come from, read once per config_load_file. */
typedef struct source_text {
    char *path; /* the file text holds; NULL = none read yet */
    char *text; /* NUL-terminated; NULL when it could not be read */
} source_text;

static void source_text_free(source_text *st) {
    free(st->path);
    free(st->text);
    st->path = NULL;
    st->text = NULL;
}

/* The whole file, NUL-terminated (caller frees); NULL when it cannot be read. */
static char *read_whole_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            char *grown = cap < (SIZE_MAX - 4097) / 2 ? realloc(text, cap * 2 + 4096 + 1) : NULL;
            if (grown == NULL) {
                free(text);
                fclose(f);
                return NULL;
            }
            text = grown;
            cap = cap * 2 + 4096;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            break;
        }
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed) {
        free(text);
        return NULL;
    }
    text[len] = '\0';
    return text;
}

/* The text of file (an @include'd one is another file than the last). */
static const char *source_text_of(source_text *st, const char *file) {
    if (st->path == NULL || strcmp(st->path, file) != 0) {
        source_text_free(st);
        st->path = malloc(strlen(file) + 1);
        if (st->path == NULL) {
            return NULL;
        }
        strcpy(st->path, file);
        st->text = read_whole_file(file);
    }
    return st->text;
}

/* A scan of libconfig text, token by token, counting lines. */
typedef struct scan {
    const char *p;
    uint32_t line;
} scan;

typedef struct token {
    const char *start;
    size_t len;
    uint32_t line;
    char kind; /* 'w': a name or a number; '"': a string; else the punctuation byte; 0: the end */
} token;

/* Skip blanks and comments: # and // to the end of the line, C block comments. */
static void skip_blanks(scan *sc) {
    for (;;) {
        char ch = sc->p[0];
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' || ch == '\v' || ch == '\n') {
            sc->line += ch == '\n';
            sc->p++;
        } else if (ch == '#' || (ch == '/' && sc->p[1] == '/')) {
            while (sc->p[0] != '\0' && sc->p[0] != '\n') {
                sc->p++;
            }
        } else if (ch == '/' && sc->p[1] == '*') {
            sc->p += 2;
            while (sc->p[0] != '\0' && !(sc->p[0] == '*' && sc->p[1] == '/')) {
                sc->line += sc->p[0] == '\n';
                sc->p++;
            }
            sc->p += sc->p[0] != '\0' ? 2 : 0;
        } else {
            return;
        }
    }
}

/* Bytes of names and numbers: [A-Za-z*][-A-Za-z0-9_*]*, [-+]?[0-9]+L, 0x1F, 1.5e-3. */
static bool is_word_byte(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '*' || ch == '.' || ch == '+' || ch == '-';
}

static token next_token(scan *sc) {
    skip_blanks(sc);
    token t = {sc->p, 0, sc->line, sc->p[0]};
    if (t.kind == '\0') {
        return t;
    }
    if (is_word_byte(sc->p[0])) {
        t.kind = 'w';
        while (is_word_byte(sc->p[0])) {
            sc->p++;
        }
    } else if (sc->p[0] == '"') {
        sc->p++;
        while (sc->p[0] != '\0' && sc->p[0] != '"') {
            sc->p += sc->p[0] == '\\' && sc->p[1] != '\0';
            sc->line += sc->p[0] == '\n';
            sc->p++;
        }
        sc->p += sc->p[0] != '\0';
    } else {
        sc->p++;
    }
    t.len = (size_t)(sc->p - t.start);
    return t;
}

#define SCAN_MAX_DEPTH 16

/* The groups open at a point of the scan, dotted ("mqtt.tls"); lists and unnamed groups add
 * "[", which no option path has. */
typedef struct group_path {
    char text[256];
    size_t len_before[SCAN_MAX_DEPTH];
    size_t depth;
} group_path;

/* false when too deep or too long to be an option's groups (then no option is inside). */
static bool group_push(group_path *g, const char *name, size_t name_len) {
    size_t len = strlen(g->text);
    if (g->depth == SCAN_MAX_DEPTH || len + 1 + name_len >= sizeof g->text) {
        return false;
    }
    g->len_before[g->depth++] = len;
    snprintf(g->text + len, sizeof g->text - len, "%s%.*s", len ? "." : "", (int)name_len, name);
    return true;
}

static bool group_pop(group_path *g) {
    if (g->depth == 0) {
        return false;
    }
    g->text[g->len_before[--g->depth]] = '\0';
    return true;
}

/* The setting `name` inside groups g is option, or its tail when the file is @include'd inside
 * a group of option's. */
static bool is_option_tail(const group_path *g, const token *name, const char *option) {
    char path[320];
    int n = snprintf(path, sizeof path, "%s%s%.*s", g->text, g->text[0] ? "." : "", (int)name->len,
                     name->start);
    size_t path_len = (size_t)n, option_len = strlen(option);
    if (n < 0 || path_len >= sizeof path || path_len > option_len) {
        return false;
    }
    const char *tail = option + option_len - path_len;
    return strcmp(tail, path) == 0 && (tail == option || tail[-1] == '.');
}

/* The value token after "name =" (or ':') of the setting of option whose name is at `line`;
 * false when there is none. */
static bool find_literal(const char *text, uint32_t line, const char *option, token *literal) {
    group_path groups = {.text = "", .depth = 0};
    scan sc = {text, 1};
    token prev = {NULL, 0, 0, '\0'};
    token name = prev;         /* the word before the last '=' or ':' */
    bool after_assign = false; /* t is the value of name */
    for (token t = next_token(&sc); t.kind != '\0'; prev = t, t = next_token(&sc)) {
        if (after_assign) {
            after_assign = false;
            if (t.kind == '{') {
                if (!group_push(&groups, name.start, name.len)) {
                    return false;
                }
                continue;
            }
            if (t.kind == 'w' && name.line == line && is_option_tail(&groups, &name, option)) {
                *literal = t;
                return true;
            }
        }
        if ((t.kind == '=' || t.kind == ':') && prev.kind == 'w') {
            name = prev;
            after_assign = true;
        } else if (t.kind == '{' || t.kind == '(' || t.kind == '[') {
            if (!group_push(&groups, "[", 1)) {
                return false;
            }
        } else if ((t.kind == '}' || t.kind == ')' || t.kind == ']') && !group_pop(&groups)) {
            return false;
        }
    }
    return false;
}

static int digit_value(char ch, unsigned base) {
    int d = ch >= '0' && ch <= '9'   ? ch - '0'
            : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
            : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                     : -1;
    return d >= 0 && (unsigned)d < base ? d : -1;
}

/* An integer literal as written in the file. */
typedef struct int_literal {
    char text[48];         /* as written, e.g. "0x100000005" or "4294967301L" (cut if longer) */
    bool in_int64;         /* its value fits in 64 bits; beyond, it is outside every range */
    long long value;       /* when in_int64 */
    bool hex;              /* 0x...: libconfig reads it with strtoul, a decimal one with atoi */
    bool octal;            /* 0[0-7]+, no suffix: octal for libconfig 1.7, decimal for 1.5 */
    long long octal_value; /* then its value read as octal */
} int_literal;

/* Parse libconfig's integer syntax, [-+]?[0-9]+ or 0[xX][0-9A-Fa-f]+, then L or LL (decimal even
 * with leading zeros, as libconfig 1.5 reads it; the octal reading too, for 1.7). false when text
 * is not one. */
static bool parse_integer_literal(const char *text, size_t len, int_literal *lit) {
    snprintf(lit->text, sizeof lit->text, "%.*s", (int)len, text);
    size_t i = 0;
    bool negative = false;
    if (i < len && (text[i] == '+' || text[i] == '-')) {
        negative = text[i] == '-';
        i++;
    }
    unsigned base = 10;
    if (len - i > 2 && text[i] == '0' && (text[i + 1] == 'x' || text[i + 1] == 'X')) {
        base = 16;
        i += 2;
    }
    lit->hex = base == 16;
    lit->octal = base == 10 && len - i >= 2 && text[i] == '0';
    lit->octal_value = 0;
    for (size_t k = i; lit->octal && k < len; k++) {
        int d = digit_value(text[k], 8);
        if (d < 0 || lit->octal_value > (LLONG_MAX - d) / 8) {
            lit->octal = false;
        } else {
            lit->octal_value = lit->octal_value * 8 + d;
        }
    }
    if (negative) {
        lit->octal_value = -lit->octal_value;
    }
    uint64_t magnitude = 0;
    bool overflow = false;
    size_t first_digit = i;
    for (int d; i < len && (d = digit_value(text[i], base)) >= 0; i++) {
        overflow = overflow || magnitude > (UINT64_MAX - (uint64_t)d) / base;
        magnitude = magnitude * base + (uint64_t)d;
    }
    size_t n_suffix = len - i;
    if (i == first_digit || n_suffix > 2 || (n_suffix >= 1 && text[i] != 'L') ||
        (n_suffix == 2 && text[i + 1] != 'L')) {
        return false;
    }
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    lit->in_int64 = !overflow && magnitude <= limit;
    if (lit->in_int64) {
        lit->value = !negative            ? (long long)magnitude
                     : magnitude == limit ? LLONG_MIN
                                          : -(long long)magnitude;
    }
    return true;
}

/* libconfig read the same number as lit says, as far as it can hold it. A leading-zero literal
 * that libconfig read as octal (1.7 does) takes that value. */
static bool libconfig_agrees(const config_setting_t *s, int_literal *lit) {
    if (!lit->in_int64) {
        return true; /* libconfig saturated it; it is out of every range anyway */
    }
    bool int64 = config_setting_type(s) == CONFIG_TYPE_INT64;
    long long got = int64 ? config_setting_get_int64(s) : config_setting_get_int(s);
    if (lit->octal && got == lit->octal_value) {
        lit->value = got;
        return true;
    }
    if (int64) {
        return got == lit->value;
    }
    /* a plain literal: libconfig kept its low 32 bits (atoi, strtoul with a 64-bit long) or,
     * where long has 32 bits (armhf), saturated it: a decimal to INT32_MAX or INT32_MIN, hex to
     * all ones */
    if ((uint32_t)(uint64_t)got == (uint32_t)(uint64_t)lit->value) {
        return true;
    }
    if (lit->hex) {
        return lit->value > (long long)UINT32_MAX && got == -1;
    }
    return (lit->value > INT32_MAX && got == INT32_MAX) ||
           (lit->value < INT32_MIN && got == INT32_MIN);
}

/* The integer literal of an INT or INT64 setting, from its text in the file (see above). false
 * + message when it cannot be found there or libconfig's value is not the text's. */
static bool read_integer(const config_setting_t *s, const char *option, const char *file,
                         source_text *st, int_literal *lit, char *err, size_t err_size) {
    const char *from = config_setting_source_file(s) ? config_setting_source_file(s) : file;
    const char *text = source_text_of(st, from);
    token t;
    if (text == NULL || !find_literal(text, config_setting_source_line(s), option, &t) ||
        !parse_integer_literal(t.start, t.len, lit)) {
        return fail_at(err, err_size, s, file,
                       "option '%s': cannot find its number in the file again to check that "
                       "it was read whole",
                       option);
    }
    if (!libconfig_agrees(s, lit)) {
        return fail_at(err, err_size, s, file,
                       "option '%s': libconfig read %lld where the file says %s", option,
                       config_setting_get_int64(s), lit->text);
    }
    return true;
}

static const char *mqtt_version_name(int32_t v) { return v == 5 ? "5" : v == 4 ? "3.1.1" : "auto"; }

/* Read one option's setting into the struct (st: the file's text, for integers). */
static bool load_option(svc_config *c, const opt_def *o, const config_setting_t *s,
                        const char *file, source_text *st, char *err, size_t err_size) {
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
        int_literal lit;
        if (!read_integer(s, o->path, file, st, &lit, err, err_size)) {
            return false;
        }
        if (!lit.in_int64 || (double)lit.value < o->min || (double)lit.value > o->max) {
            return fail_at(err, err_size, s, file, "option '%s': %s is outside %.0f..%.0f", o->path,
                           lit.text, o->min, o->max);
        }
        store_number(field, o->kind, (double)lit.value);
        return true;
    }
    case OPT_FLOAT: {
        double v;
        if (type == CONFIG_TYPE_FLOAT) {
            v = config_setting_get_float(s);
        } else if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
            int_literal lit;
            if (!read_integer(s, o->path, file, st, &lit, err, err_size)) {
                return false;
            }
            if (!lit.in_int64 || (double)lit.value < o->min || (double)lit.value > o->max) {
                return fail_at(err, err_size, s, file, "option '%s': %s is outside %g..%g", o->path,
                               lit.text, o->min, o->max);
            }
            v = (double)lit.value;
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
    case OPT_TOPIC_PREFIXES: {
        if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST) {
            return fail_at(err, err_size, s, file, "option '%s': expected a list of strings",
                           o->path);
        }
        svc_reply_prefixes *list = (svc_reply_prefixes *)(void *)field;
        const int n = config_setting_length(s);
        if (n > CONFIG_REPLY_PREFIXES_MAX) {
            return fail_at(err, err_size, s, file, "option '%s': more than %d prefixes", o->path,
                           CONFIG_REPLY_PREFIXES_MAX);
        }
        memset(list, 0, sizeof *list);
        for (int i = 0; i < n; i++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            const char *v =
                config_setting_type(e) == CONFIG_TYPE_STRING ? config_setting_get_string(e) : NULL;
            if (v == NULL || v[0] == '\0' || v[0] == '$' || strpbrk(v, "+#") != NULL) {
                return fail_at(err, err_size, s, file,
                               "option '%s': element %d: expected a topic prefix (a non-empty "
                               "string without + or # that does not start with $)",
                               o->path, i + 1);
            }
            if (!config_set_string(list->prefix[i], sizeof list->prefix[i], v)) {
                return fail_at(err, err_size, s, file,
                               "option '%s': element %d is longer than "
                               "%d bytes",
                               o->path, i + 1, CONFIG_STR_MAX - 1);
            }
        }
        list->n = n;
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
    source_text st = {NULL, NULL};
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
        if (s == NULL) {
            continue;
        }
        if (!load_option(c, &options[k], s, path, &st, err, err_size)) {
            goto fail;
        }
        /* a line in an @include'd file would be misread as one of path's */
        const char *from = config_setting_source_file(s);
        bool in_path = from == NULL || strcmp(from, path) == 0;
        record_origin(c, k, in_path ? config_setting_source_line(s) : 0);
    }
    if (!config_set_string(c->source, sizeof c->source, path)) {
        snprintf(err, err_size, "%.1024s: path too long", path); /* bounded: 32-bit -Wformat */
        goto fail;
    }
    ok = true;
fail:
    source_text_free(&st);
    config_destroy(&cf);
    return ok;
}

#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
/* "where: option 'x.y': why", where is where option's value came from (config_option_where). */
static bool
fail_option(const svc_config *c, const char *option, char *err, size_t err_size, const char *fmt,
            ...) {
    char why[512], where[CONFIG_PATH_MAX + 16];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(err, err_size, "%s: option '%s': %s",
             config_option_where(c, option, where, sizeof where), option, why);
    return false;
}

/* An option still holds its built-in default: neither the file nor the command line set it. */
static bool option_is_default(const svc_config *c, const char *option) {
    size_t k = option_index(option);
    return c->origin[k].line == 0 && c->origin[k].value_hash == value_hash(c, k);
}

/* Home Assistant takes a discovery topic's node id only from A-Z a-z 0-9 _ - (its
 * discovery topic pattern); anything else and the device silently never appears. */
static bool node_id_fits_home_assistant(const char *id) {
    for (const char *p = id; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-')) {
            return false;
        }
    }
    return id[0] != '\0';
}

/* id with every run of other bytes (a UTF-8 character counts once) made one '_'. */
static void node_id_suggest(const char *id, char *out, size_t out_size) {
    size_t n = 0;
    bool in_run = false;
    for (const char *p = id; *p && n + 1 < out_size; p++) {
        char one[2] = {*p, '\0'};
        if (node_id_fits_home_assistant(one)) {
            out[n++] = *p;
            in_run = false;
        } else if (!in_run) {
            out[n++] = '_';
            in_run = true;
        }
    }
    out[n] = '\0';
}

/* node.id "" = this machine's host name without its domain; client_id "" = "edgelmd-<node>".
 * Derived values count as defaults, so messages about them name the file, not a flag. */
static void derive_ids(svc_config *c) {
    if (c->node_id[0] == '\0') {
        char host[256];
        if (gethostname(host, sizeof host) != 0) {
            strcpy(host, "edgelm");
        }
        host[sizeof host - 1] = '\0';
        char *dot = strchr(host, '.');
        if (dot != NULL && dot != host) {
            *dot = '\0';
        }
        /* a host name may hold what a Home Assistant discovery topic may not */
        char fitted[256];
        node_id_suggest(host, fitted, sizeof fitted);
        config_set_string(c->node_id, sizeof c->node_id, fitted);
        record_origin(c, option_index("node.id"), 0);
    }
    if (c->client_id[0] == '\0') {
        snprintf(c->client_id, sizeof c->client_id, "edgelmd-%.200s", c->node_id);
        record_origin(c, option_index("mqtt.client_id"), 0);
    }
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

/* Every string that becomes part of a topic can be one. */
static bool check_topic_parts(const svc_config *c, char *err, size_t err_size) {
    if (!topic_segment_ok(c->node_id, false)) {
        return fail_option(c, "node.id", err, err_size, "\"%s\" must be non-empty without / + #",
                           c->node_id);
    }
    if (c->ha_discovery && !node_id_fits_home_assistant(c->node_id)) {
        char suggestion[CONFIG_STR_MAX];
        node_id_suggest(c->node_id, suggestion, sizeof suggestion);
        return fail_option(c, "node.id", err, err_size,
                           "\"%s\": Home Assistant discovery takes only letters A-Z a-z, digits, "
                           "'_' and '-' (try \"%s\"), or set homeassistant.discovery = false",
                           c->node_id, suggestion);
    }
    if (!topic_segment_ok(c->topic_prefix, true) || c->topic_prefix[0] == '$') {
        return fail_option(c, "mqtt.topic_prefix", err, err_size,
                           "\"%s\" must be a topic without + # or a leading $", c->topic_prefix);
    }
    if (!topic_segment_ok(c->fleet_group, false)) {
        return fail_option(c, "fleet.group", err, err_size,
                           "\"%s\" must be non-empty without / + #", c->fleet_group);
    }
    if (!topic_segment_ok(c->ha_prefix, true)) {
        return fail_option(c, "homeassistant.prefix", err, err_size,
                           "\"%s\" must be a topic without + #", c->ha_prefix);
    }
    return true;
}

static bool broker_scheme_ok(const char *broker) {
    static const char *const schemes[] = {"tcp://",   "ssl://", "mqtt://",
                                          "mqtts://", "ws://",  "wss://"};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        if (strncmp(broker, schemes[i], strlen(schemes[i])) == 0) {
            return true;
        }
    }
    return false;
}

/* Options that are valid alone but not together, or required. */
static bool check_combinations(const svc_config *c, char *err, size_t err_size) {
    if (c->model_path[0] == '\0') {
        return fail_option(c, "model.path", err, err_size,
                           "no model: set model.path or pass --model FILE");
    }
    if (c->sampling.max_tokens > c->limits.max_tokens) {
        /* blame the one that was set; sampling.max_tokens when both were */
        if (!option_is_default(c, "sampling.max_tokens")) {
            return fail_option(c, "sampling.max_tokens", err, err_size,
                               "%d exceeds limits.max_tokens %d", (int)c->sampling.max_tokens,
                               (int)c->limits.max_tokens);
        }
        return fail_option(c, "limits.max_tokens", err, err_size,
                           "%d is below sampling.max_tokens %d", (int)c->limits.max_tokens,
                           (int)c->sampling.max_tokens);
    }
    if (c->tls_key_file[0] != '\0' && c->tls_cert_file[0] == '\0') {
        return fail_option(c, "mqtt.tls.key_file", err, err_size, "needs mqtt.tls.cert_file");
    }
    return true;
}

bool config_finish(svc_config *c, char *err, size_t err_size) {
    derive_ids(c);
    if (!check_topic_parts(c, err, err_size)) {
        return false;
    }
    if (!broker_scheme_ok(c->broker)) {
        return fail_option(c, "mqtt.broker", err, err_size,
                           "\"%s\" must start with tcp://, ssl://, mqtt://, mqtts://, ws:// or "
                           "wss://",
                           c->broker);
    }
    return check_combinations(c, err, err_size);
}

/* path can be opened for reading and is not a directory; else why, in words. */
static bool file_readable(const char *path, const char **why) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *why = strerror(errno);
        return false;
    }
    struct stat st;
    *why = fstat(fd, &st) != 0 ? strerror(errno) : S_ISDIR(st.st_mode) ? strerror(EISDIR) : NULL;
    close(fd);
    return *why == NULL;
}

bool config_check_files(const svc_config *c, char *err, size_t err_size) {
    static const char *const file_options[] = {"model.path", "mqtt.tls.ca_file",
                                               "mqtt.tls.cert_file", "mqtt.tls.key_file"};
    for (size_t i = 0; i < sizeof file_options / sizeof file_options[0]; i++) {
        const char *path = (const char *)c + options[option_index(file_options[i])].offset;
        const char *why = NULL;
        if (path[0] != '\0' && !file_readable(path, &why)) {
            return fail_option(c, file_options[i], err, err_size, "'%s': %s", path, why);
        }
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
        case OPT_TOPIC_PREFIXES: {
            const svc_reply_prefixes *list = (const svc_reply_prefixes *)(const void *)field;
            fputc('[', f);
            for (int32_t i = 0; i < list->n; i++) {
                fputs(i > 0 ? ", " : "", f);
                print_string(f, list->prefix[i]);
            }
            fputc(']', f);
            break;
        }
        }
        fputs(";\n", f);
    }
    while (depth > 0) {
        depth--;
        fprintf(f, "%*s};\n", (int)(2 * depth), "");
    }
}
