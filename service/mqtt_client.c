/* mqtt_client.c - the Paho MQTTAsync wrapper (see mqtt_client.h).
 * Threads: Paho's callbacks (its receive thread) copy into mq_event and signal the main loop;
 * publishing may come from the worker and the main loop at once, so the handle is used under
 * handle_lock (which also guards its re-creation).
 *
 * One Paho handle per connection. Paho 1.3.12 (Debian 12) has a use-after-free in its own
 * reconnect path: when a QoS 1 publish meets a socket that just died, the message stays in the
 * client's outbound list while its topic is freed with the command; resending it after a
 * reconnect reads freed memory (ASan: strlen in the receive thread), and dropping it frees the
 * topic twice. So Paho's automaticReconnect and its offline buffer are not used:
 *  - after a connection loss the main loop (mqtt_client_tick) retires the handle and connects a
 *    new one, at once and then with back-off (1 s doubling to MQ_RETRY_MAX_S). A retired handle
 *    that still holds in-flight messages is never touched again (it is inert without
 *    reconnecting; only its few KB stay); one with none is destroyed;
 *  - QoS 1 messages live in our own outbox until the broker's PUBACK; those not acknowledged on a
 *    connection are sent again on the next one (at-least-once, as QoS 1 promises). Messages
 *    published while disconnected wait there too, up to mqtt.max_buffered.
 * Every callback carries its handle's generation; callbacks of a retired handle are ignored.
 * Other Paho quirks handled here: the connected callback may fire twice for one connect (the main
 * loop ignores a CONNECTED while already announced), a QoS 1 message may be handed over twice
 * (recent deliveries are remembered by msgid + content hash for a few seconds and dropped).
 */
#include "mqtt_client.h"

#include "log.h"

#include <MQTTAsync.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MQ_MAX_EVENTS 256 /* beyond this, Paho keeps the message and offers it again later */
#define MQ_DEDUPE_SLOTS 64
#define MQ_DEDUPE_WINDOW_MS 5000.0
#define MQ_RETRY_MAX_S 30
/* Maximum Packet Size announced on an MQTT 5 connect: the payload limit plus room for the topic
 * and the properties a request carries (response topic, correlation data), so the broker drops a
 * far larger message instead of making the node receive it before refusing it. */
#define MQ_PACKET_OVERHEAD (16 * 1024)
#define MQ_FAILURE_TEXT_MAX 256

/* The identity Paho's callbacks carry: which client and which of its handles. One per handle; a
 * retired handle's stays allocated (Paho may hold it), on the client's list until it is freed. */
typedef struct handle_context {
    struct mqtt_client *mc;
    unsigned generation;
    bool kept;                 /* its handle was retired but not destroyed */
    atomic_bool has_connected; /* a later connect failure is the connection's end, not a refusal */
    struct handle_context *next;
} handle_context;

/* A QoS 1 message until the broker acknowledges it. */
typedef struct outbox_entry {
    char *topic;
    unsigned char *payload;
    size_t payload_len;
    bool retain;
    int expiry_s;
    unsigned char *correlation;
    size_t correlation_len;
    unsigned sent_generation; /* handle it was handed to; 0 = waiting to be sent */
    int token;                /* Paho's token on that handle */
    int connections_lost;     /* connections that ended while it was in flight */
    struct outbox_entry *next;
} outbox_entry;

/* An acknowledgement that arrived before its publisher had recorded the token (see outbox_send). */
typedef struct early_ack {
    unsigned generation;
    int token;
    bool refused; /* the broker refused the message (reason >= 0x80): drop, do not resend */
} early_ack;

#define MQ_EARLY_ACKS 32
/* A message in flight on this many connections in a row that all ended is given up: a message the
 * broker will never take (larger than its max_packet_size: it drops the connection instead of
 * answering) must not bring the connection down forever. */
#define MQ_MAX_CONNECTIONS_LOST 5

typedef struct delivery_key {
    uint64_t hash;
    int msgid;
    double at_ms;
} delivery_key;

struct mqtt_client {
    /* configuration (copied) */
    char broker[CONFIG_STR_MAX];
    char client_id[CONFIG_STR_MAX];
    char username[CONFIG_STR_MAX];
    char password[CONFIG_STR_MAX];
    char tls_ca_file[CONFIG_PATH_MAX];
    char tls_cert_file[CONFIG_PATH_MAX];
    char tls_key_file[CONFIG_PATH_MAX];
    char tls_key_password[CONFIG_STR_MAX];
    bool tls_verify;
    int keepalive_s;
    int session_expiry_s;
    int max_buffered;
    char status_topic[CONFIG_STR_MAX * 2 + 16];
    bool allow_fallback;

    pthread_mutex_t handle_lock;
    MQTTAsync handle;
    handle_context *contexts; /* the current handle's first, then retired ones (under handle_lock) */
    atomic_uint generation;   /* the current handle's */
    int version;              /* 5 or 4 */
    atomic_bool connected;
    atomic_bool ever_connected;
    atomic_bool lost; /* the current connection was lost: the main loop replaces the handle */
    atomic_size_t max_payload;
    unsigned retired_kept; /* retired handles left alone because they held in-flight messages */

    /* QoS 1 messages not yet acknowledged, oldest first (under outbox_lock) */
    pthread_mutex_t outbox_lock;
    outbox_entry *outbox_head, *outbox_tail;
    int outbox_count;
    early_ack early[MQ_EARLY_ACKS];
    int early_next;

    pthread_mutex_t ev_lock;
    pthread_cond_t ev_cond;
    mq_event *head, *tail;
    size_t n_events;
    delivery_key recent[MQ_DEDUPE_SLOTS]; /* under ev_lock */
    size_t recent_next;

    /* connect retries (main loop only) */
    bool retry_pending;
    double retry_at_ms;
    int retry_delay_s;
    bool was_connected;        /* as last seen by mqtt_client_tick */
    double connected_since_ms; /* when it saw the connection come up */

    /* disconnect completion */
    atomic_bool disconnected;

    /* why the last connect failed, in words: set on Paho's threads, read by the main loop */
    pthread_mutex_t failure_lock;
    char failure_text[MQ_FAILURE_TEXT_MAX]; /* Paho's message, if any */
    char tls_error[MQ_FAILURE_TEXT_MAX];    /* OpenSSL's reason, if any */
};

static void outbox_requeue(mqtt_client *mc);
static void outbox_flush_locked(mqtt_client *mc);

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

/* An event and the bytes it points to are one allocation (see on_message). */
void mq_event_free(mq_event *ev) { free(ev); }

/* Append an event; false when the queue is full (only messages are refused). */
static bool enqueue(mqtt_client *mc, mq_event *ev, bool may_refuse) {
    pthread_mutex_lock(&mc->ev_lock);
    if (may_refuse && mc->n_events >= MQ_MAX_EVENTS) {
        pthread_mutex_unlock(&mc->ev_lock);
        return false;
    }
    ev->next = NULL;
    if (mc->tail != NULL) {
        mc->tail->next = ev;
    } else {
        mc->head = ev;
    }
    mc->tail = ev;
    mc->n_events++;
    pthread_cond_signal(&mc->ev_cond);
    pthread_mutex_unlock(&mc->ev_lock);
    return true;
}

static void enqueue_simple(mqtt_client *mc, mq_event_type type, int code) {
    mq_event *ev = calloc(1, sizeof *ev);
    if (ev == NULL) {
        log_msg(LOG_ERROR, "mqtt: out of memory for an event");
        return;
    }
    ev->type = type;
    ev->code = code;
    ev->mqtt_version = mc->version;
    enqueue(mc, ev, false);
}

/* True when this delivery (same msgid and content) was seen moments ago. */
static bool seen_recently(mqtt_client *mc, uint64_t hash, int msgid) {
    if (msgid == 0) {
        return false; /* QoS 0: no identity to compare */
    }
    double t = now_ms();
    bool seen = false;
    pthread_mutex_lock(&mc->ev_lock);
    for (size_t i = 0; i < MQ_DEDUPE_SLOTS; i++) {
        const delivery_key *k = &mc->recent[i];
        if (k->msgid == msgid && k->hash == hash && t - k->at_ms < MQ_DEDUPE_WINDOW_MS) {
            seen = true;
        }
    }
    if (!seen) {
        mc->recent[mc->recent_next] = (delivery_key){hash, msgid, t};
        mc->recent_next = (mc->recent_next + 1) % MQ_DEDUPE_SLOTS;
    }
    pthread_mutex_unlock(&mc->ev_lock);
    return seen;
}

/* Copy n bytes and a NUL to *cursor, advance it past them; returns where they went. */
static char *take_copy(char **cursor, const void *src, size_t n) {
    char *d = *cursor;
    if (n > 0) {
        memcpy(d, src, n);
    }
    d[n] = '\0';
    *cursor += n + 1;
    return d;
}

/* ---- Paho callbacks: copy, enqueue, return ----------------------------------------------------
 */

/* The client when the callback's handle is the current one, else NULL (a retired handle). */
static mqtt_client *current_client(void *context) {
    handle_context *hc = context;
    return hc->generation == atomic_load(&hc->mc->generation) ? hc->mc : NULL;
}

static int on_message(void *context, char *topic_name, int topic_len, MQTTAsync_message *message) {
    mqtt_client *mc = ((handle_context *)context)->mc;
    size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic_name);
    size_t plen = message->payloadlen > 0 ? (size_t)message->payloadlen : 0;
    uint64_t hash = fnv1a(fnv1a(14695981039346656037ull, topic_name, tlen), message->payload, plen);
    if (message->qos > 0 && seen_recently(mc, hash, message->msgid)) {
        log_msg(LOG_DEBUG, "mqtt: dropped a duplicate delivery of msgid %d", message->msgid);
        goto consumed;
    }
    const bool oversize = plen > atomic_load(&mc->max_payload);
    const size_t copied = oversize ? 0 : plen;
    const MQTTProperty *rt =
        MQTTProperties_getProperty(&message->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC);
    const size_t rt_len = rt != NULL && rt->value.data.len > 0 ? (size_t)rt->value.data.len : 0;
    const MQTTProperty *corr =
        MQTTProperties_getProperty(&message->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
    const size_t corr_len =
        corr != NULL && corr->value.data.len > 0 ? (size_t)corr->value.data.len : 0;
    /* one allocation: the event, then topic, payload, response topic and correlation data, each
     * followed by a NUL (the lengths are at most the payload limit and 3 x 64 KiB: no overflow) */
    mq_event *ev = calloc(1, sizeof *ev + tlen + copied + rt_len + corr_len + 4);
    if (ev == NULL) {
        return 0; /* Paho offers it again later */
    }
    char *cursor = (char *)(ev + 1);
    ev->type = MQ_EV_MESSAGE;
    ev->mqtt_version = mc->version;
    ev->payload_len = plen;
    ev->oversize = oversize;
    ev->topic = take_copy(&cursor, topic_name, tlen);
    ev->payload = (unsigned char *)take_copy(&cursor, message->payload, copied);
    if (rt_len > 0) {
        ev->response_topic = take_copy(&cursor, rt->value.data.data, rt_len);
    }
    if (corr_len > 0) {
        ev->correlation_len = corr_len;
        ev->correlation = (unsigned char *)take_copy(&cursor, corr->value.data.data, corr_len);
    }
    if (!enqueue(mc, ev, true)) {
        mq_event_free(ev);
        return 0; /* the main loop is behind: Paho offers it again later */
    }
consumed:
    MQTTAsync_freeMessage(&message);
    MQTTAsync_free(topic_name);
    return 1;
}

static void on_connection_lost(void *context, char *cause) {
    mqtt_client *mc = current_client(context);
    if (mc == NULL) {
        return;
    }
    atomic_store(&mc->connected, false);
    atomic_store(&mc->lost, true);
    enqueue_simple(mc, MQ_EV_CONNECTION_LOST, 0);
    (void)cause;
}

static void on_connected(void *context, char *cause) {
    mqtt_client *mc = current_client(context);
    if (mc == NULL) {
        return;
    }
    atomic_store(&((handle_context *)context)->has_connected, true);
    atomic_store(&mc->connected, true);
    atomic_store(&mc->ever_connected, true);
    enqueue_simple(mc, MQ_EV_CONNECTED, 0);
    (void)cause;
}

static void remember_failure_text(mqtt_client *mc, const char *message) {
    pthread_mutex_lock(&mc->failure_lock);
    snprintf(mc->failure_text, sizeof mc->failure_text, "%s", message != NULL ? message : "");
    pthread_mutex_unlock(&mc->failure_lock);
}

/* OpenSSL's error queue, line by line (ERR_print_errors_cb), during a failed TLS connect. A line
 * reads "<thread>:error:<code>:<library>:<function>:<reason>:<file>:<line>:<data>"; the reason
 * ("certificate verify failed", "wrong version number") is what a user can act on. */
static int on_tls_error(const char *str, size_t len, void *context) {
    mqtt_client *mc = context;
    char line[MQ_FAILURE_TEXT_MAX];
    snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), str);
    const char *reason = line;
    char *field = line;
    for (int i = 0; i < 5 && field != NULL; i++) {
        field = strchr(field, ':');
        field = field != NULL ? field + 1 : NULL;
    }
    if (field != NULL && strstr(line, ":error:") != NULL) {
        char *end = strchr(field, ':');
        if (end != NULL) {
            *end = '\0';
        }
        reason = field;
    }
    line[strcspn(line, "\r\n")] = '\0';
    pthread_mutex_lock(&mc->failure_lock);
    if (mc->tls_error[0] == '\0' && reason[0] != '\0') {
        snprintf(mc->tls_error, sizeof mc->tls_error, "%s", reason); /* the first is the cause */
    }
    pthread_mutex_unlock(&mc->failure_lock);
    return 1;
}

/* Paho also reports a connect failure when a connection that was up dies (its connect command is
 * still open): that is a loss, handled through on_connection_lost, not a refused connect. */
static void on_connect_failure5(void *context, MQTTAsync_failureData5 *response) {
    mqtt_client *mc = current_client(context);
    if (mc == NULL || atomic_load(&((handle_context *)context)->has_connected)) {
        return;
    }
    remember_failure_text(mc, response != NULL ? response->message : NULL);
    int code = response == NULL                                 ? -1
               : response->reasonCode != MQTTREASONCODE_SUCCESS ? (int)response->reasonCode
                                                                : response->code;
    enqueue_simple(mc, MQ_EV_CONNECT_FAILED, code);
}

static void on_connect_failure(void *context, MQTTAsync_failureData *response) {
    mqtt_client *mc = current_client(context);
    if (mc == NULL || atomic_load(&((handle_context *)context)->has_connected)) {
        return;
    }
    remember_failure_text(mc, response != NULL ? response->message : NULL);
    enqueue_simple(mc, MQ_EV_CONNECT_FAILED, response != NULL ? response->code : -1);
}

static void on_disconnect_done(void *context, MQTTAsync_successData *response) {
    mqtt_client *mc = ((handle_context *)context)->mc;
    atomic_store(&mc->disconnected, true);
    (void)response;
}

static void on_disconnect_failed(void *context, MQTTAsync_failureData *response) {
    mqtt_client *mc = ((handle_context *)context)->mc;
    atomic_store(&mc->disconnected, true);
    (void)response;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

/* Create a Paho handle for mc->version, with a new generation. Caller holds handle_lock (or has no
 * other thread) and has retired the previous handle. */
static bool create_handle(mqtt_client *mc, char *err, size_t err_size) {
    handle_context *hc = calloc(1, sizeof *hc);
    if (hc == NULL) {
        snprintf(err, err_size, "mqtt: out of memory");
        mc->handle = NULL;
        return false;
    }
    hc->mc = mc;
    hc->generation = atomic_load(&mc->generation) + 1;
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
    co.struct_version = 2;
    co.MQTTVersion = mc->version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
    co.sendWhileDisconnected = 0; /* our outbox holds what waits for a connection */
    int rc = MQTTAsync_createWithOptions(&mc->handle, mc->broker, mc->client_id,
                                         MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
    if (rc != MQTTASYNC_SUCCESS) {
        snprintf(err, err_size, "mqtt: cannot create a client for %s: %s", mc->broker,
                 MQTTAsync_strerror(rc));
        mc->handle = NULL;
        free(hc);
        return false;
    }
    hc->next = mc->contexts;
    mc->contexts = hc;
    atomic_store(&mc->generation, hc->generation);
    MQTTAsync_setCallbacks(mc->handle, hc, on_connection_lost, on_message, NULL);
    MQTTAsync_setConnected(mc->handle, hc, on_connected);
    return true;
}

/* Retire the current handle (caller holds handle_lock). One that still holds in-flight messages
 * may hold the dangling publication described at the top of this file: destroying it would free
 * that topic a second time, so it is left alone, disconnected and idle. */
static void retire_handle(mqtt_client *mc) {
    if (mc->handle == NULL) {
        return;
    }
    MQTTAsync_token *tokens = NULL;
    bool in_flight = MQTTAsync_getPendingTokens(mc->handle, &tokens) != MQTTASYNC_SUCCESS ||
                     (tokens != NULL && tokens[0] != -1);
    if (tokens != NULL) {
        MQTTAsync_free(tokens);
    }
    if (in_flight) {
        mc->contexts->kept = true;
        mc->retired_kept++;
        log_msg(LOG_DEBUG, "mqtt: retired a client with messages in flight (%u so far)",
                mc->retired_kept);
    } else {
        MQTTAsync_destroy(&mc->handle);
    }
    mc->handle = NULL;
}

mqtt_client *mqtt_client_create(const svc_config *cfg, const char *status_topic, char *err,
                                size_t err_size) {
    mqtt_client *mc = calloc(1, sizeof *mc);
    if (mc == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    /* mqtt:// and mqtts:// are the names users know; Paho spells them tcp:// and ssl:// */
    if (strncmp(cfg->broker, "mqtt://", 7) == 0) {
        snprintf(mc->broker, sizeof mc->broker, "tcp://%s", cfg->broker + 7);
    } else if (strncmp(cfg->broker, "mqtts://", 8) == 0) {
        snprintf(mc->broker, sizeof mc->broker, "ssl://%s", cfg->broker + 8);
    } else {
        snprintf(mc->broker, sizeof mc->broker, "%s", cfg->broker);
    }
    snprintf(mc->client_id, sizeof mc->client_id, "%s", cfg->client_id);
    snprintf(mc->username, sizeof mc->username, "%s", cfg->username);
    snprintf(mc->password, sizeof mc->password, "%s", cfg->password);
    snprintf(mc->tls_ca_file, sizeof mc->tls_ca_file, "%s", cfg->tls_ca_file);
    snprintf(mc->tls_cert_file, sizeof mc->tls_cert_file, "%s", cfg->tls_cert_file);
    snprintf(mc->tls_key_file, sizeof mc->tls_key_file, "%s", cfg->tls_key_file);
    snprintf(mc->tls_key_password, sizeof mc->tls_key_password, "%s", cfg->tls_key_password);
    mc->tls_verify = cfg->tls_verify;
    mc->keepalive_s = cfg->keepalive_s;
    mc->session_expiry_s = cfg->session_expiry_s;
    mc->max_buffered = cfg->max_buffered;
    snprintf(mc->status_topic, sizeof mc->status_topic, "%s", status_topic);
    mc->version = cfg->mqtt_version == 4 ? 4 : 5;
    mc->allow_fallback = cfg->mqtt_version == 0;
    atomic_init(&mc->connected, false);
    atomic_init(&mc->ever_connected, false);
    atomic_init(&mc->disconnected, false);
    atomic_init(&mc->lost, false);
    atomic_init(&mc->generation, 0u);
    atomic_init(&mc->max_payload, (size_t)cfg->limits.max_payload_bytes);
    mc->retry_delay_s = 1;
    pthread_mutex_init(&mc->handle_lock, NULL);
    pthread_mutex_init(&mc->ev_lock, NULL);
    pthread_mutex_init(&mc->failure_lock, NULL);
    pthread_mutex_init(&mc->outbox_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&mc->ev_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (!create_handle(mc, err, err_size)) {
        mqtt_client_free(mc);
        return NULL;
    }
    return mc;
}

bool mqtt_client_connect(mqtt_client *mc) {
    static const char offline[] = "offline";
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    will.topicName = mc->status_topic;
    will.message = offline;
    will.qos = 1;
    will.retained = 1;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    bool use_tls = strncmp(mc->broker, "ssl://", 6) == 0 || strncmp(mc->broker, "wss://", 6) == 0;
    if (use_tls) {
        ssl.trustStore = mc->tls_ca_file[0] ? mc->tls_ca_file : NULL;
        ssl.keyStore = mc->tls_cert_file[0] ? mc->tls_cert_file : NULL;
        ssl.privateKey = mc->tls_key_file[0] ? mc->tls_key_file : NULL;
        ssl.privateKeyPassword = mc->tls_key_password[0] ? mc->tls_key_password : NULL;
        ssl.enableServerCertAuth = mc->tls_verify;
        ssl.verify = mc->tls_verify; /* host name check */
        ssl.sslVersion = MQTT_SSL_VERSION_TLS_1_2;
        ssl.ssl_error_cb = on_tls_error;
        ssl.ssl_error_context = mc;
    }
    pthread_mutex_lock(&mc->failure_lock);
    mc->failure_text[0] = '\0';
    mc->tls_error[0] = '\0';
    pthread_mutex_unlock(&mc->failure_lock);
    MQTTProperties props = MQTTProperties_initializer;
    MQTTAsync_connectOptions co;
    if (mc->version == 5) {
        MQTTAsync_connectOptions init5 = MQTTAsync_connectOptions_initializer5;
        co = init5;
        co.cleanstart = 0;
        MQTTProperty expiry;
        memset(&expiry, 0, sizeof expiry);
        expiry.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
        expiry.value.integer4 = (unsigned)mc->session_expiry_s;
        MQTTProperties_add(&props, &expiry);
        MQTTProperty max_packet;
        memset(&max_packet, 0, sizeof max_packet);
        max_packet.identifier = MQTTPROPERTY_CODE_MAXIMUM_PACKET_SIZE;
        max_packet.value.integer4 =
            (unsigned)(atomic_load(&mc->max_payload) + (size_t)MQ_PACKET_OVERHEAD);
        MQTTProperties_add(&props, &max_packet);
        co.connectProperties = &props;
        co.onFailure5 = on_connect_failure5;
    } else {
        MQTTAsync_connectOptions init = MQTTAsync_connectOptions_initializer;
        co = init;
        co.cleansession = 0;
        co.MQTTVersion = MQTTVERSION_3_1_1;
        co.onFailure = on_connect_failure;
    }
    co.keepAliveInterval = mc->keepalive_s;
    co.will = &will;
    co.username = mc->username[0] ? mc->username : NULL;
    co.password = mc->password[0] ? mc->password : NULL;
    co.ssl = use_tls ? &ssl : NULL;
    co.automaticReconnect = 0; /* see the top of this file: mqtt_client_tick reconnects */
    co.connectTimeout = 10;
    pthread_mutex_lock(&mc->handle_lock);
    co.context = mc->contexts; /* the current handle's */
    int rc = mc->handle != NULL ? MQTTAsync_connect(mc->handle, &co) : MQTTASYNC_FAILURE;
    pthread_mutex_unlock(&mc->handle_lock);
    MQTTProperties_free(&props);
    if (rc != MQTTASYNC_SUCCESS) {
        log_msg(LOG_WARN, "mqtt: connect to %s not started: %s", mc->broker,
                MQTTAsync_strerror(rc));
        mqtt_client_on_connect_failed(mc, rc);
        return false;
    }
    log_msg(LOG_INFO, "mqtt: connecting to %s as %s (MQTT %s)", mc->broker, mc->client_id,
            mc->version == 5 ? "5" : "3.1.1");
    return true;
}

/* Connect to the host and port of a tcp:// or ssl:// URI (2 s at most) to tell an unreachable
 * broker from a failed handshake; false + why (connection refused, unknown host, timed out). */
static bool probe_tcp(const char *uri, char *why, size_t why_size) {
    const char *hostport = strstr(uri, "://");
    hostport = hostport != NULL ? hostport + 3 : uri;
    char host[CONFIG_STR_MAX];
    const char *port = "1883";
    if (hostport[0] == '[') { /* [v6 address]:port */
        const char *end = strchr(hostport, ']');
        snprintf(host, sizeof host, "%.*s", end != NULL ? (int)(end - hostport - 1) : 0,
                 hostport + 1);
        port = end != NULL && end[1] == ':' ? end + 2 : port;
    } else {
        const char *colon = strrchr(hostport, ':');
        snprintf(host, sizeof host, "%.*s",
                 colon != NULL ? (int)(colon - hostport) : (int)strlen(hostport), hostport);
        port = colon != NULL ? colon + 1 : port;
    }
    host[strcspn(host, "/")] = '\0';
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        snprintf(why, why_size, "cannot resolve '%s': %s", host, gai_strerror(gai));
        return false;
    }
    int err = ETIMEDOUT;
    for (struct addrinfo *ai = res; ai != NULL && err != 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            err = 0;
        } else if (errno == EINPROGRESS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            socklen_t len = sizeof err;
            err = poll(&pfd, 1, 2000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0
                      ? err
                      : ETIMEDOUT;
        } else {
            err = errno;
        }
        close(fd);
    }
    freeaddrinfo(res);
    snprintf(why, why_size, "cannot reach %s port %s: %s", host, port, strerror(err));
    return err == 0;
}

/* MQTT 3.1.1 CONNACK return codes 1..5 (MQTT 5 uses reason codes >= 128, named by Paho). */
static const char *connack_311_text(int code) {
    static const char *const text[] = {
        NULL,
        "unacceptable protocol version",
        "client identifier rejected",
        "server unavailable",
        "bad user name or password (check mqtt.username / mqtt.password)",
        "not authorized (check mqtt.username / mqtt.password and the broker's ACL)",
    };
    return code >= 1 && code <= 5 ? text[code] : NULL;
}

void mqtt_client_describe_failure(mqtt_client *mc, int code, char *out, size_t out_size) {
    char paho_text[MQ_FAILURE_TEXT_MAX], tls_text[MQ_FAILURE_TEXT_MAX];
    pthread_mutex_lock(&mc->failure_lock);
    snprintf(paho_text, sizeof paho_text, "%s", mc->failure_text);
    snprintf(tls_text, sizeof tls_text, "%s", mc->tls_error);
    pthread_mutex_unlock(&mc->failure_lock);
    const bool tls = strncmp(mc->broker, "ssl://", 6) == 0;
    if (code >= 128) {
        const char *name = MQTTReasonCode_toString((enum MQTTReasonCodes)code);
        const char *hint = code == MQTTREASONCODE_NOT_AUTHORIZED ||
                                   code == MQTTREASONCODE_BAD_USER_NAME_OR_PASSWORD
                               ? " (check mqtt.username / mqtt.password and the broker's ACL)"
                               : "";
        snprintf(out, out_size, "the broker refused the connection: %s (reason %d)%s",
                 name != NULL ? name : "unknown reason", code, hint);
    } else if (code > 0 && connack_311_text(code) != NULL) {
        snprintf(out, out_size, "the broker refused the connection: %s (return code %d)",
                 connack_311_text(code), code);
    } else if (tls && tls_text[0] != '\0') {
        const char *hint = "";
        if (strstr(tls_text, "certificate verify failed") != NULL) {
            hint = " (is mqtt.tls.ca_file the CA that signed the broker's certificate?)";
        } else if (strstr(tls_text, "wrong version number") != NULL ||
                   strstr(tls_text, "packet length too long") != NULL ||
                   strstr(tls_text, "record layer failure") != NULL) {
            hint = " (is this port a plaintext listener? then use tcp://)";
        } else if (strstr(tls_text, "No such file") != NULL ||
                   strstr(tls_text, "no such file") != NULL ||
                   strstr(tls_text, "system lib") != NULL) {
            hint = " (can mqtt.tls.ca_file, cert_file and key_file be read?)";
        }
        snprintf(out, out_size, "TLS handshake failed: %s%s", tls_text, hint);
    } else {
        /* Paho says only "TCP/TLS connect failure": find out which by connecting ourselves */
        char reach[CONFIG_STR_MAX + 160];
        bool reachable = probe_tcp(mc->broker, reach, sizeof reach);
        if (tls && reachable) {
            snprintf(out, out_size,
                     "the TLS handshake failed although the port accepts TCP connections (is it "
                     "a plaintext listener? then use tcp://)");
        } else if (reachable) {
            snprintf(out, out_size, "%s (error %d)",
                     paho_text[0] != '\0' ? paho_text : "the MQTT connect failed", code);
        } else {
            snprintf(out, out_size, "%s%s", reach,
                     strstr(reach, "refused") != NULL ? " (is the broker running there?)" : "");
        }
    }
}

void mqtt_client_on_connect_failed(mqtt_client *mc, int code) {
    /* 132 = MQTT 5 "Unsupported Protocol Version"; 1 = 3.1.1 "unacceptable protocol version"
     * (what a 3.1.1-only broker answers to a version-5 CONNECT). */
    if (mc->version == 5 && mc->allow_fallback &&
        (code == MQTTREASONCODE_UNSUPPORTED_PROTOCOL_VERSION || code == 1)) {
        log_msg(LOG_WARN, "mqtt: %s refused MQTT 5; falling back to 3.1.1", mc->broker);
        char err[256];
        pthread_mutex_lock(&mc->handle_lock);
        retire_handle(mc);
        mc->version = 4;
        bool ok = create_handle(mc, err, sizeof err);
        pthread_mutex_unlock(&mc->handle_lock);
        if (!ok) {
            log_msg(LOG_ERROR, "%s", err);
            return;
        }
        mqtt_client_connect(mc);
        return;
    }
    char why[2 * MQ_FAILURE_TEXT_MAX + CONFIG_STR_MAX + 320];
    mqtt_client_describe_failure(mc, code, why, sizeof why);
    /* after a first connection, failed reconnects are expected while a broker restarts: said once
     * per back-off step at most, at info level */
    log_msg(atomic_load(&mc->ever_connected) ? LOG_INFO : LOG_WARN,
            "mqtt: cannot %s %s: %s; retrying in %d s",
            atomic_load(&mc->ever_connected) ? "reconnect to" : "connect to", mc->broker, why,
            mc->retry_delay_s);
    mc->retry_pending = true;
    mc->retry_at_ms = now_ms() + mc->retry_delay_s * 1000.0;
    mc->retry_delay_s =
        mc->retry_delay_s * 2 > MQ_RETRY_MAX_S ? MQ_RETRY_MAX_S : mc->retry_delay_s * 2;
}

void mqtt_client_tick(mqtt_client *mc) {
    if (atomic_exchange(&mc->lost, false)) {
        /* a fresh handle for the next connection (see the top of this file); the first attempt
         * goes at once, failures back off */
        char err[CONFIG_STR_MAX + 96];
        pthread_mutex_lock(&mc->handle_lock);
        retire_handle(mc);
        bool ok = create_handle(mc, err, sizeof err);
        pthread_mutex_unlock(&mc->handle_lock);
        outbox_requeue(mc);
        if (!ok) {
            log_msg(LOG_ERROR, "%s", err);
        }
        /* a connection that held for a while is retried at once; one dropped right after it came
         * up (a broker refusing us, a session taken over) waits, so it cannot spin */
        const double t = now_ms();
        const bool held = mc->was_connected && t - mc->connected_since_ms >= 1000.0;
        mc->was_connected = false;
        mc->retry_pending = true;
        mc->retry_at_ms = held ? t : t + mc->retry_delay_s * 1000.0;
    }
    if (mc->retry_pending && now_ms() >= mc->retry_at_ms) {
        mc->retry_pending = false;
        if (!atomic_load(&mc->connected)) {
            mqtt_client_connect(mc);
        }
    }
    if (atomic_load(&mc->connected)) {
        if (!mc->was_connected) {
            mc->was_connected = true;
            mc->connected_since_ms = now_ms();
        }
        if (now_ms() - mc->connected_since_ms >= 1000.0) {
            mc->retry_delay_s = 1;
        }
        pthread_mutex_lock(&mc->handle_lock);
        outbox_flush_locked(mc); /* what waited for this connection */
        pthread_mutex_unlock(&mc->handle_lock);
    }
}

mq_event *mqtt_client_next_event(mqtt_client *mc, int timeout_ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&mc->ev_lock);
    while (mc->head == NULL) {
        if (pthread_cond_timedwait(&mc->ev_cond, &mc->ev_lock, &deadline) == ETIMEDOUT) {
            break;
        }
    }
    mq_event *ev = mc->head;
    if (ev != NULL) {
        mc->head = ev->next;
        if (mc->head == NULL) {
            mc->tail = NULL;
        }
        mc->n_events--;
        ev->next = NULL;
    }
    pthread_mutex_unlock(&mc->ev_lock);
    return ev;
}

bool mqtt_client_connected(mqtt_client *mc) { return atomic_load(&mc->connected); }

void mqtt_client_set_max_payload(mqtt_client *mc, size_t max_bytes) {
    atomic_store(&mc->max_payload, max_bytes);
}

int mqtt_client_version(mqtt_client *mc) {
    pthread_mutex_lock(&mc->handle_lock);
    int v = mc->version;
    pthread_mutex_unlock(&mc->handle_lock);
    return v;
}

bool mqtt_client_subscribe(mqtt_client *mc, const char *topic, int qos) {
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    pthread_mutex_lock(&mc->handle_lock);
    int rc =
        mc->handle != NULL ? MQTTAsync_subscribe(mc->handle, topic, qos, &ro) : MQTTASYNC_FAILURE;
    pthread_mutex_unlock(&mc->handle_lock);
    if (rc != MQTTASYNC_SUCCESS) {
        log_msg(LOG_ERROR, "mqtt: subscribe %s failed: %s", topic, MQTTAsync_strerror(rc));
        return false;
    }
    log_msg(LOG_DEBUG, "mqtt: subscribed to %s", topic);
    return true;
}

static void on_unsubscribed(void *context, MQTTAsync_successData *response) {
    enqueue_simple(context, MQ_EV_UNSUBSCRIBED, 0);
    (void)response;
}

static void on_unsubscribed5(void *context, MQTTAsync_successData5 *response) {
    enqueue_simple(context, MQ_EV_UNSUBSCRIBED, 0);
    (void)response;
}

static void on_unsubscribe_failed(void *context, MQTTAsync_failureData *response) {
    enqueue_simple(context, MQ_EV_UNSUBSCRIBED, response != NULL ? response->code : -1);
}

static void on_unsubscribe_failed5(void *context, MQTTAsync_failureData5 *response) {
    enqueue_simple(context, MQ_EV_UNSUBSCRIBED, response != NULL ? response->code : -1);
}

bool mqtt_client_unsubscribe(mqtt_client *mc, char *const *topics, int n_topics) {
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.context = mc;
    pthread_mutex_lock(&mc->handle_lock);
    if (mc->version == 5) {
        ro.onSuccess5 = on_unsubscribed5;
        ro.onFailure5 = on_unsubscribe_failed5;
    } else {
        ro.onSuccess = on_unsubscribed;
        ro.onFailure = on_unsubscribe_failed;
    }
    int rc = mc->handle != NULL && MQTTAsync_isConnected(mc->handle)
                 ? MQTTAsync_unsubscribeMany(mc->handle, n_topics, topics, &ro)
                 : MQTTASYNC_DISCONNECTED;
    pthread_mutex_unlock(&mc->handle_lock);
    if (rc != MQTTASYNC_SUCCESS) {
        log_msg(LOG_DEBUG, "mqtt: unsubscribe not sent: %s", MQTTAsync_strerror(rc));
        return false;
    }
    return true;
}

/* ---- publishing: QoS 0 straight to Paho, QoS 1 through the outbox -----------------------------
 * Lock order: handle_lock, then outbox_lock; outbox_lock is never held while calling Paho (its
 * callbacks take it and may run under Paho's own mutex). handle_lock serialises the senders, so
 * an entry with sent_generation 0 is handed to Paho by one thread at a time. */

static void outbox_entry_free(outbox_entry *e) { free(e); }

/* Unlink e (caller holds outbox_lock). */
static void outbox_remove(mqtt_client *mc, outbox_entry *e) {
    outbox_entry **link = &mc->outbox_head;
    outbox_entry *prev = NULL;
    while (*link != NULL && *link != e) {
        prev = *link;
        link = &(*link)->next;
    }
    if (*link == NULL) {
        return;
    }
    *link = e->next;
    if (mc->outbox_tail == e) {
        mc->outbox_tail = prev;
    }
    mc->outbox_count--;
    outbox_entry_free(e);
}

/* The broker answered the message with this token on handle `generation`: drop it (acknowledged,
 * or refused for good), or remember the answer when its publisher has not recorded the token yet. */
static void outbox_answered(mqtt_client *mc, unsigned generation, int token) {
    pthread_mutex_lock(&mc->outbox_lock);
    outbox_entry *e = mc->outbox_head;
    while (e != NULL && !(e->sent_generation == generation && e->token == token)) {
        e = e->next;
    }
    if (e != NULL) {
        outbox_remove(mc, e);
    } else {
        mc->early[mc->early_next] = (early_ack){generation, token, true};
        mc->early_next = (mc->early_next + 1) % MQ_EARLY_ACKS;
    }
    pthread_mutex_unlock(&mc->outbox_lock);
}

/* A publish failed without the broker refusing it (the connection went): send it again later. */
static void outbox_unsent(mqtt_client *mc, unsigned generation, int token) {
    pthread_mutex_lock(&mc->outbox_lock);
    for (outbox_entry *e = mc->outbox_head; e != NULL; e = e->next) {
        if (e->sent_generation == generation && e->token == token) {
            e->sent_generation = 0;
        }
    }
    pthread_mutex_unlock(&mc->outbox_lock);
}

static void on_published(void *context, MQTTAsync_successData *response) {
    handle_context *hc = context;
    outbox_answered(hc->mc, hc->generation, response != NULL ? response->token : 0);
}

static void on_published5(void *context, MQTTAsync_successData5 *response) {
    handle_context *hc = context;
    outbox_answered(hc->mc, hc->generation, response != NULL ? response->token : 0);
}

static void on_publish_failed(void *context, MQTTAsync_failureData *response) {
    handle_context *hc = context;
    if (response != NULL) {
        outbox_unsent(hc->mc, hc->generation, response->token);
    }
}

static void on_publish_failed5(void *context, MQTTAsync_failureData5 *response) {
    handle_context *hc = context;
    if (response == NULL) {
        return;
    }
    if (response->reasonCode >= 0x80) {
        /* the broker refused it (not authorized, too large, quota...): sending it again would
         * only be refused again */
        log_msg(LOG_WARN, "mqtt: the broker refused a message: %s (reason %d)",
                MQTTReasonCode_toString(response->reasonCode), (int)response->reasonCode);
        outbox_answered(hc->mc, hc->generation, response->token);
    } else {
        outbox_unsent(hc->mc, hc->generation, response->token);
    }
}

/* MQTT 5 properties of a message: expiry and the request's correlation data (echoed). */
static void add_message_properties(MQTTProperties *props, int expiry_s, const void *correlation,
                                   size_t correlation_len) {
    MQTTProperty prop;
    if (expiry_s > 0) {
        memset(&prop, 0, sizeof prop);
        prop.identifier = MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL;
        prop.value.integer4 = (unsigned)expiry_s;
        MQTTProperties_add(props, &prop);
    }
    if (correlation != NULL && correlation_len > 0 && correlation_len < 65536) {
        memset(&prop, 0, sizeof prop);
        prop.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA;
        prop.value.data.data = (char *)(uintptr_t)correlation; /* Paho copies; it only reads */
        prop.value.data.len = (int)correlation_len;
        MQTTProperties_add(props, &prop);
    }
}

/* Hand e to Paho on the current handle (caller holds handle_lock; e is unsent). */
static bool outbox_send(mqtt_client *mc, outbox_entry *e) {
    handle_context *hc = mc->contexts;
    MQTTAsync_message m = MQTTAsync_message_initializer;
    m.payload = e->payload;
    m.payloadlen = (int)e->payload_len;
    m.qos = 1;
    m.retained = e->retain;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.context = hc;
    if (mc->version == 5) {
        ro.onSuccess5 = on_published5;
        ro.onFailure5 = on_publish_failed5;
        add_message_properties(&m.properties, e->expiry_s, e->correlation, e->correlation_len);
    } else {
        ro.onSuccess = on_published;
        ro.onFailure = on_publish_failed;
    }
    int rc = MQTTAsync_sendMessage(mc->handle, e->topic, &m, &ro);
    MQTTProperties_free(&m.properties);
    if (rc != MQTTASYNC_SUCCESS) {
        if (rc != MQTTASYNC_DISCONNECTED) {
            log_msg(LOG_WARN, "mqtt: publish to %s failed: %s (kept for the next connection)",
                    e->topic, MQTTAsync_strerror(rc));
        }
        return false;
    }
    pthread_mutex_lock(&mc->outbox_lock);
    bool answered = false;
    for (int i = 0; i < MQ_EARLY_ACKS; i++) {
        early_ack *a = &mc->early[i];
        if (a->refused && a->generation == hc->generation && a->token == ro.token) {
            a->refused = false;
            answered = true;
        }
    }
    if (answered) {
        outbox_remove(mc, e);
    } else {
        e->sent_generation = hc->generation;
        e->token = ro.token;
    }
    pthread_mutex_unlock(&mc->outbox_lock);
    return true;
}

/* Send what waits, oldest first, while connected (caller holds handle_lock). */
static void outbox_flush_locked(mqtt_client *mc) {
    while (mc->handle != NULL && atomic_load(&mc->connected) && MQTTAsync_isConnected(mc->handle)) {
        pthread_mutex_lock(&mc->outbox_lock);
        outbox_entry *e = mc->outbox_head;
        while (e != NULL && e->sent_generation != 0) {
            e = e->next;
        }
        pthread_mutex_unlock(&mc->outbox_lock);
        if (e == NULL || !outbox_send(mc, e)) {
            return;
        }
    }
}

/* Everything handed to a retired handle waits for the next connection. */
static void outbox_requeue(mqtt_client *mc) {
    pthread_mutex_lock(&mc->outbox_lock);
    outbox_entry *e = mc->outbox_head;
    while (e != NULL) {
        outbox_entry *next = e->next;
        if (e->sent_generation != 0 && ++e->connections_lost >= MQ_MAX_CONNECTIONS_LOST) {
            log_msg(LOG_ERROR,
                    "mqtt: gave up a %zu-byte message to %s: %d connections ended while it was "
                    "in flight (larger than the broker's max_packet_size?)",
                    e->payload_len, e->topic, e->connections_lost);
            outbox_remove(mc, e);
        } else {
            e->sent_generation = 0;
        }
        e = next;
    }
    pthread_mutex_unlock(&mc->outbox_lock);
}

/* Copy p into a new entry (one allocation: entry, topic, payload, correlation data). */
static outbox_entry *outbox_entry_new(const mq_publish *p) {
    const size_t topic_len = strlen(p->topic);
    const size_t corr_len =
        p->correlation != NULL && p->correlation_len < 65536 ? p->correlation_len : 0;
    outbox_entry *e = calloc(1, sizeof *e + topic_len + 1 + p->payload_len + 1 + corr_len + 1);
    if (e == NULL) {
        return NULL;
    }
    char *cursor = (char *)(e + 1);
    e->topic = take_copy(&cursor, p->topic, topic_len);
    e->payload = (unsigned char *)take_copy(&cursor, p->payload, p->payload_len);
    e->payload_len = p->payload_len;
    if (corr_len > 0) {
        e->correlation = (unsigned char *)take_copy(&cursor, p->correlation, corr_len);
        e->correlation_len = corr_len;
    }
    e->retain = p->retain;
    e->expiry_s = p->expiry_s;
    return e;
}

bool mqtt_client_publish(mqtt_client *mc, const mq_publish *p) {
    if (p->payload_len > (size_t)INT32_MAX) {
        return false;
    }
    if (p->qos == 0) {
        MQTTAsync_message m = MQTTAsync_message_initializer;
        m.payload = (void *)(uintptr_t)p->payload; /* Paho's field is not const; it only reads */
        m.payloadlen = (int)p->payload_len;
        m.retained = p->retain;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        pthread_mutex_lock(&mc->handle_lock);
        if (mc->version == 5) {
            add_message_properties(&m.properties, p->expiry_s, p->correlation,
                                   p->correlation_len);
        }
        int rc = mc->handle != NULL && atomic_load(&mc->connected)
                     ? MQTTAsync_sendMessage(mc->handle, p->topic, &m, &ro)
                     : MQTTASYNC_DISCONNECTED;
        pthread_mutex_unlock(&mc->handle_lock);
        MQTTProperties_free(&m.properties);
        if (rc != MQTTASYNC_SUCCESS) {
            log_msg(LOG_DEBUG, "mqtt: QoS 0 publish to %s dropped: %s", p->topic,
                    MQTTAsync_strerror(rc));
            return false;
        }
        return true;
    }
    if (p->drop_when_offline && !atomic_load(&mc->connected)) {
        return false;
    }
    outbox_entry *e = outbox_entry_new(p);
    if (e == NULL) {
        log_msg(LOG_ERROR, "mqtt: out of memory for a message to %s", p->topic);
        return false;
    }
    pthread_mutex_lock(&mc->handle_lock);
    pthread_mutex_lock(&mc->outbox_lock);
    const bool full = mc->outbox_count >= mc->max_buffered;
    if (!full) {
        if (mc->outbox_tail != NULL) {
            mc->outbox_tail->next = e;
        } else {
            mc->outbox_head = e;
        }
        mc->outbox_tail = e;
        mc->outbox_count++;
    }
    pthread_mutex_unlock(&mc->outbox_lock);
    if (full) {
        pthread_mutex_unlock(&mc->handle_lock);
        log_msg(LOG_ERROR, "mqtt: message to %s dropped: %d messages already wait for the broker "
                           "(mqtt.max_buffered)", p->topic, mc->max_buffered);
        outbox_entry_free(e);
        return false;
    }
    outbox_flush_locked(mc);
    pthread_mutex_unlock(&mc->handle_lock);
    return true;
}

void mqtt_client_disconnect(mqtt_client *mc, int timeout_ms) {
    static const char offline[] = "offline";
    mq_publish p = {
        .topic = mc->status_topic, .payload = offline, .payload_len = 7, .qos = 1, .retain = true};
    mqtt_client_publish(mc, &p);
    MQTTAsync_disconnectOptions dopts = MQTTAsync_disconnectOptions_initializer;
    dopts.timeout = timeout_ms;
    dopts.onSuccess = on_disconnect_done;
    dopts.onFailure = on_disconnect_failed;
    pthread_mutex_lock(&mc->handle_lock);
    dopts.context = mc->contexts;
    int rc = mc->handle != NULL ? MQTTAsync_disconnect(mc->handle, &dopts) : MQTTASYNC_FAILURE;
    pthread_mutex_unlock(&mc->handle_lock);
    if (rc != MQTTASYNC_SUCCESS) {
        return;
    }
    log_msg(LOG_DEBUG, "mqtt: disconnecting");
    /* wait for the disconnect to complete (it first lets queued QoS 1 messages go out) */
    double until = now_ms() + timeout_ms + 1000.0;
    while (!atomic_load(&mc->disconnected) && now_ms() < until) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    atomic_store(&mc->connected, false);
    pthread_mutex_lock(&mc->outbox_lock);
    const int undelivered = mc->outbox_count;
    pthread_mutex_unlock(&mc->outbox_lock);
    if (undelivered > 0) {
        log_msg(LOG_WARN, "mqtt: %d message(s) not acknowledged by the broker at exit",
                undelivered);
    }
    log_msg(LOG_DEBUG, "mqtt: disconnected");
}

void mqtt_client_free(mqtt_client *mc) {
    if (mc == NULL) {
        return;
    }
    if (mc->handle != NULL) {
        MQTTAsync_destroy(&mc->handle);
        mc->handle = NULL;
    }
    outbox_entry *e = mc->outbox_head;
    while (e != NULL) {
        outbox_entry *next = e->next;
        outbox_entry_free(e);
        e = next;
    }
    /* the contexts of retired handles that were kept stay: Paho still holds them */
    handle_context *hc = mc->contexts;
    while (hc != NULL) {
        handle_context *next = hc->next;
        if (!hc->kept) {
            free(hc);
        }
        hc = next;
    }
    mq_event *ev = mc->head;
    while (ev != NULL) {
        mq_event *next = ev->next;
        mq_event_free(ev);
        ev = next;
    }
    pthread_mutex_destroy(&mc->handle_lock);
    pthread_mutex_destroy(&mc->ev_lock);
    pthread_mutex_destroy(&mc->failure_lock);
    pthread_mutex_destroy(&mc->outbox_lock);
    pthread_cond_destroy(&mc->ev_cond);
    free(mc);
}
