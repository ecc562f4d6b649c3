/* config.h - edgelmd's configuration as a validated plain struct.
 * config_load_file() reads a libconfig file (config/edgelm.conf documents every option), copies
 * every string into the struct and checks every type and range, reporting "file:line: option
 * 'x.y': why"; unknown options are errors too (a typo must not silently fall back to a default).
 * Command-line overrides are applied by the caller, then config_finish() fills derived defaults
 * and cross-checks, and config_check_files() checks that the files named exist and are readable;
 * their messages name where the value came from: file:line, the command-line flag, or the file.
 */
#ifndef EDGELMD_CONFIG_H
#define EDGELMD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_STR_MAX 256
#define CONFIG_PATH_MAX 1024

typedef struct svc_sampling_defaults {
    int32_t max_tokens;
    double temperature;
    double top_p;
    int32_t top_k;
    double min_p;
    double repeat_penalty;
    int32_t repeat_last_n;
    int64_t seed; /* -1 = a fresh random seed per request */
} svc_sampling_defaults;

typedef struct svc_limits {
    int32_t max_payload_bytes; /* larger request payloads are refused (too_large) */
    int32_t max_prompt_tokens; /* longer prompts are refused (too_large) */
    int32_t max_tokens;        /* the largest max_tokens a request may ask for */
    int32_t max_deadline_ms;   /* the largest deadline_ms; also the default when 0 < it */
    int32_t queue_depth;       /* requests waiting behind the running one; more -> busy */
    int32_t result_cache;      /* finished results kept for duplicate ids */
    int32_t shutdown_grace_ms; /* how long SIGTERM lets the running request finish */
} svc_limits;

/* The number of options (config.c's table, which checks it). */
#define CONFIG_N_OPTIONS 41
/* The most reply-topic prefixes mqtt.reply_prefixes may list. */
#define CONFIG_REPLY_PREFIXES_MAX 16

/* Topic prefixes a request's reply topic must start with (topics_reply_allowed); none = any
 * topic the fixed rules allow. */
typedef struct svc_reply_prefixes {
    int32_t n;
    char prefix[CONFIG_REPLY_PREFIXES_MAX][CONFIG_STR_MAX];
} svc_reply_prefixes;

/* Where one option's value came from, so later messages can say file:line: the line of the
 * setting in the file read (0 = not set there, or set in an @include'd file) and a fingerprint
 * of the value as loaded, which a command-line override changes. */
typedef struct svc_option_origin {
    uint32_t line;
    uint64_t value_hash;
} svc_option_origin;

typedef struct svc_config {
    char source[CONFIG_PATH_MAX];               /* the file read, "" for built-in defaults */
    svc_option_origin origin[CONFIG_N_OPTIONS]; /* in the order of config.c's option table */
    /* mqtt */
    char broker[CONFIG_STR_MAX];
    char client_id[CONFIG_STR_MAX]; /* "" = "edgelmd-<node>" */
    char username[CONFIG_STR_MAX];
    char password[CONFIG_STR_MAX];
    int32_t mqtt_version; /* 0 = 5 with fallback to 3.1.1, 5, or 4 (= 3.1.1) */
    int32_t keepalive_s;
    int32_t session_expiry_s;
    int32_t max_buffered;    /* QoS 1 messages held while disconnected */
    int32_t stream_expiry_s; /* MQTT 5 message expiry of token chunks */
    char topic_prefix[CONFIG_STR_MAX];
    svc_reply_prefixes reply_prefixes;
    char tls_ca_file[CONFIG_PATH_MAX];
    char tls_cert_file[CONFIG_PATH_MAX];
    char tls_key_file[CONFIG_PATH_MAX];
    char tls_key_password[CONFIG_STR_MAX];
    bool tls_verify; /* check the broker's certificate chain and host name */
    /* node / fleet */
    char node_id[CONFIG_STR_MAX]; /* "" = host name */
    bool fleet_enabled;
    char fleet_group[CONFIG_STR_MAX];
    /* model */
    char model_path[CONFIG_PATH_MAX];
    int32_t threads; /* 0 = online CPUs */
    int32_t context; /* 0 = the model's, capped by the engine */
    svc_sampling_defaults sampling;
    svc_limits limits;
    int32_t metrics_interval_s; /* 0 = metrics only after each request */
    bool ha_discovery;
    char ha_prefix[CONFIG_STR_MAX];
    int32_t log_level; /* log_level */
} svc_config;

void config_defaults(svc_config *c);
/* Read path over c (which holds defaults). false with "file:line: ..." in err on any mistake. */
bool config_load_file(svc_config *c, const char *path, char *err, size_t err_size);
/* After overrides: fill node id (host name), client id; cross-check. false + message on error. */
bool config_finish(svc_config *c, char *err, size_t err_size);
/* The model and the TLS files that are set exist, are not directories and can be opened for
 * reading; false + "where: option 'x.y': 'path': why" on the first that cannot. edgelmd calls it
 * at start so a missing CA file is a clear error, not a connection retried forever. */
bool config_check_files(const svc_config *c, char *err, size_t err_size);
/* Where option's value (a path such as "model.path") came from, into buf: "file:line", the
 * command-line flag that set it, or the file / "edgelmd" for a default. Returns buf. */
const char *config_option_where(const svc_config *c, const char *option, char *buf,
                                size_t buf_size);
/* Copy src into a config string field; false when it does not fit. */
bool config_set_string(char *dst, size_t dst_size, const char *src);
/* The effective configuration in the file's own syntax (password masked). */
void config_print(const svc_config *c, FILE *f);

#endif
