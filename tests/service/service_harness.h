/* service_harness.h - what edgelmd's end-to-end tests share: child processes (mosquitto,
 * edgelmd, edgelm-gen) killed at exit, a real mosquitto on a free loopback port, a Paho test
 * client that records every message it receives, the node's configuration and lifecycle, the
 * endless test model and the request/cancel/stream helpers of the protocol (docs/protocol.md).
 * Checks made here count as failures of the calling test (test_util.h).
 */
#ifndef EDGELM_TESTS_SERVICE_HARNESS_H
#define EDGELM_TESTS_SERVICE_HARNESS_H

#include <MQTTClient.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define WAIT_MS 60000 /* generous: ASan on a loaded 2-core machine */

/* ---- processes (at most 16 live children; process_kill_all at exit) ---- */
void process_kill_all(void);
/* fork + exec argv[0] with stdout and stderr appended to log_path; the pid, or -1 */
pid_t process_spawn(char *const argv[], const char *log_path);
/* Stop tracking pid (it was reaped elsewhere). */
void process_forget(pid_t pid);
/* Wait for pid to exit; returns its exit status, 128 + the signal when a signal killed it (as a
 * shell says), or -1 on timeout. */
int process_wait_exit(pid_t pid, int timeout_ms);
/* RssAnon of pid in KiB from /proc/<pid>/status, -1 when unreadable. */
long process_rss_anon_kb(pid_t pid);
int free_port(void);
bool port_open(int port);
const char *find_mosquitto(void);

/* ---- mosquitto ---- */
typedef struct broker {
    int port;
    pid_t pid;
    char conf[512];
    char log[512];
} broker;

/* Start (again) the broker b was created with; waits until its port accepts connections. */
bool broker_start(broker *b);
/* A broker on a free loopback port, with persistence (for the restart tests) in the temp dir. */
bool broker_create(broker *b, const char *name);

/* ---- the test client (Paho synchronous library in callback mode) ---- */
typedef struct msg {
    char *topic;
    char *payload;
    int len;
    char *corr;
    int corr_len;
    int retained;
    bool taken;
} msg;

typedef struct client {
    MQTTClient handle;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    msg **msgs; /* each message allocated once: a msg * stays valid as more arrive */
    size_t n, cap;
    int version;
    volatile int lost;
    struct {
        int token, reason;
    } acks[256]; /* PUBACK reason codes of recent publishes (MQTT 5), by delivery token */
    unsigned n_acks;
} client;

typedef struct node {
    char id[32];
    pid_t pid;
    char conf[512];
    char log[512];
    const char *mqtt_extra;   /* more settings inside mqtt = {...}, or NULL */
    const char *limits_extra; /* more settings inside limits = {...}, or NULL */
} node;

bool client_connect(client *c, bool clean);
/* A connected client for MQTT version 5 or 4 (3.1.1); NULL when it cannot connect. */
client *client_new(int port, const char *id, int version, bool clean);
void client_free(client *c);
bool client_subscribe(client *c, const char *topic);
/* Publish at QoS 1 and wait for the PUBACK; response_topic / corr only for MQTT 5. */
void client_publish_full(client *c, const char *topic, const void *payload, size_t len,
                         const char *response_topic, const char *corr, int corr_len, int retained);
void client_publish(client *c, const char *topic, const char *payload);
/* Publish at QoS 1 over MQTT 5 and return the PUBACK's reason code (0 = delivered to a
 * subscriber or a session, 16 = no matching subscribers), -1 when no PUBACK came. */
int client_publish_acked(client *c, const char *topic, const void *payload, size_t len);
/* The first message not yet taken on topic whose payload contains needle1 and needle2 (NULL =
 * any); waits up to timeout_ms. The message stays owned by the client. */
msg *client_wait_msg(client *c, const char *topic, const char *needle1, const char *needle2,
                     int timeout_ms);
/* Count messages (taken or not) on topic containing needle (NULL = any). */
int client_count_msgs(client *c, const char *topic, const char *needle);
cJSON *msg_json(const msg *m);
/* o.path1[.path2] as a string ("" if absent) or a number (-1 if absent) */
const char *jstr(const cJSON *o, const char *path1, const char *path2);
double jnum(const cJSON *o, const char *path1, const char *path2);

/* ---- a TCP proxy the test controls (between edgelmd and the broker) ---- */
typedef struct tcp_proxy tcp_proxy;
/* Listen on a free loopback port and forward every connection to target_port. */
tcp_proxy *tcp_proxy_start(int target_port);
int tcp_proxy_port(const tcp_proxy *p);
/* Close every forwarded connection at once (both sides), as a cut cable would; new connections
 * are still accepted. Returns how many were cut. */
int tcp_proxy_cut(tcp_proxy *p);
void tcp_proxy_stop(tcp_proxy *p);

/* ---- edgelmd ---- */
const char *edgelmd_path(void);
void write_node_conf(node *n, int port, const char *model, int queue_depth, int max_prompt_tokens);
/* Start edgelmd and wait until it says online (watcher subscribed to its status). */
bool node_start(node *n, client *watcher, int port, const char *model, int queue_depth, bool fleet);
/* SIGTERM; checks exit status 0 and the retained offline status. */
bool node_stop(node *n, client *watcher);
/* After a failed check about n: print whether edgelmd is still running (or how it ended, reaping
 * it) and the last lines of its log, so a failure in CI shows its cause (the temporary directory
 * with the log is removed when the test ends). */
void node_report(node *n, const char *why);
/* Generate a tiny model and zero the output.weight rows of its end-of-generation tokens, so
 * greedy decoding never picks them (every other logit of a random model beats 0 somewhere). */
bool make_endless_model(const char *path);

/* ---- protocol ---- */
/* A request for node_id with the given JSON fields; id NULL = a fresh "t<n>". Returns the id
 * (a static buffer when generated). */
const char *send_request(client *c, const char *node_id, const char *fields, const char *id);
/* The result or error of id on the node's default response topic. */
msg *wait_final(client *c, const char *node_id, const char *id, int timeout_ms);
void send_cancel(client *c, const char *node_id, const char *id);
/* Wait for the first stream chunk of id (so the request is generating). */
bool wait_first_chunk(client *c, const char *node_id, const char *id);
/* Collect the stream of id: chunks seq 0..n-1 without gaps, concatenated. false on a gap. */
bool collect_stream(client *c, const char *node_id, const char *id, int n_expected, char *text,
                    size_t text_size);

#endif
