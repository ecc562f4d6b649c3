/* service_harness.c - shared helpers of edgelmd's end-to-end tests (see service_harness.h). */
#define _DEFAULT_SOURCE 1
#include "service_harness.h"

#include "test_util.h"

#include <arpa/inet.h>
#include <edgelm.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
/* ---- processes ------------------------------------------------------------------------------ */

static pid_t spawned[16];
static int n_spawned;

void process_kill_all(void) {
    for (int i = 0; i < n_spawned; i++) {
        if (spawned[i] > 0) {
            kill(spawned[i], SIGKILL);
            waitpid(spawned[i], NULL, 0);
        }
    }
}

pid_t process_spawn(char *const argv[], const char *log_path) {
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        /* the test's own sockets (its MQTT clients, the proxy's connections) stay in the test:
         * a copy held by the child would keep a "cut" connection half alive */
        for (int other = 3; other < 1024; other++) {
            close(other);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    if (pid > 0 && n_spawned < 16) {
        spawned[n_spawned++] = pid;
    }
    return pid;
}

void process_forget(pid_t pid) {
    for (int i = 0; i < n_spawned; i++) {
        if (spawned[i] == pid) {
            spawned[i] = -1;
        }
    }
}

/* Wait for pid to exit; its exit status, 128 + signal, or -1 on timeout. */
int process_wait_exit(pid_t pid, int timeout_ms) {
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            process_forget(pid);
            return WIFEXITED(status)     ? WEXITSTATUS(status)
                   : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                         : -1;
        }
        usleep(20000);
    }
    return -1;
}

long process_rss_anon_kb(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "RssAnon: %ld kB", &kb) == 1) {
            break;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return kb;
}

int free_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    if (s >= 0) {
        close(s);
    }
    return port;
}

bool port_open(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    bool ok = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    if (s >= 0) {
        close(s);
    }
    return ok;
}

const char *find_mosquitto(void) {
    static const char *const candidates[] = {"/usr/sbin/mosquitto", "/usr/bin/mosquitto",
                                             "/usr/local/sbin/mosquitto",
                                             "/usr/local/bin/mosquitto"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        if (access(candidates[i], X_OK) == 0) {
            return candidates[i];
        }
    }
    return NULL;
}

bool broker_start(broker *b) {
    char *argv[] = {(char *)find_mosquitto(), "-c", b->conf, NULL};
    b->pid = process_spawn(argv, b->log);
    for (int i = 0; i < 500 && !port_open(b->port); i++) {
        usleep(20000);
    }
    return port_open(b->port);
}

/* A broker on a free loopback port, with persistence (for the restart test) in the temp dir. */
bool broker_create(broker *b, const char *name) {
    const char *dir = test_temp_dir();
    b->port = free_port();
    snprintf(b->conf, sizeof b->conf, "%s/%s.conf", dir, name);
    snprintf(b->log, sizeof b->log, "%s/%s.log", dir, name);
    char db[512];
    snprintf(db, sizeof db, "%s/%s-db/", dir, name);
    mkdir(db, 0755);
    FILE *f = fopen(b->conf, "w");
    if (f == NULL) {
        return false;
    }
    /* run as ourselves: as root, mosquitto would otherwise switch to the user "mosquitto",
     * which cannot write the persistence file into our private temp dir */
    const struct passwd *pw = getpwuid(geteuid());
    fprintf(f,
            "listener %d 127.0.0.1\nallow_anonymous true\npersistence true\n"
            "persistence_location %s\nautosave_interval 1\nmax_queued_messages 100000\n"
            "log_type error\nlog_type warning\nset_tcp_nodelay true\nuser %s\n",
            b->port, db, pw != NULL ? pw->pw_name : "root");
    fclose(f);
    return broker_start(b);
}

/* ---- the test client (Paho synchronous library in callback mode) ---------------------------- */

static int on_arrived(void *ctx, char *topic, int topic_len, MQTTClient_message *m) {
    client *c = ctx;
    msg *x = calloc(1, sizeof *x);
    if (x == NULL) {
        MQTTClient_freeMessage(&m);
        MQTTClient_free(topic);
        return 1;
    }
    size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    x->topic = strndup(topic, tl);
    x->payload = malloc((size_t)m->payloadlen + 1);
    memcpy(x->payload, m->payload, (size_t)m->payloadlen);
    x->payload[m->payloadlen] = '\0';
    x->len = m->payloadlen;
    x->retained = m->retained;
    MQTTProperty *p =
        MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
    if (p != NULL) {
        x->corr = malloc((size_t)p->value.data.len + 1);
        memcpy(x->corr, p->value.data.data, (size_t)p->value.data.len);
        x->corr_len = p->value.data.len;
    }
    pthread_mutex_lock(&c->lock);
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->msgs = realloc(c->msgs, c->cap * sizeof *c->msgs);
    }
    c->msgs[c->n++] = x; /* the array of pointers moves; the messages do not */
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    MQTTClient_freeMessage(&m);
    MQTTClient_free(topic);
    return 1;
}

static void on_published(void *ctx, int token, int packet_type, MQTTProperties *props,
                         enum MQTTReasonCodes reason) {
    client *c = ctx;
    pthread_mutex_lock(&c->lock);
    unsigned slot = c->n_acks++ % (sizeof c->acks / sizeof c->acks[0]);
    c->acks[slot].token = token;
    c->acks[slot].reason = (int)reason;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    (void)packet_type;
    (void)props;
}

static void on_lost(void *ctx, char *cause) {
    client *c = ctx;
    c->lost = 1;
    (void)cause;
}

bool client_connect(client *c, bool clean) {
    MQTTResponse r = MQTTResponse_initializer;
    int rc;
    if (c->version == 5) {
        MQTTClient_connectOptions co = MQTTClient_connectOptions_initializer5;
        co.cleanstart = clean;
        co.keepAliveInterval = 30;
        MQTTProperties props = MQTTProperties_initializer;
        MQTTProperty p;
        memset(&p, 0, sizeof p);
        p.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
        p.value.integer4 = clean ? 0 : 600;
        MQTTProperties_add(&props, &p);
        r = MQTTClient_connect5(c->handle, &co, &props, NULL);
        MQTTProperties_free(&props);
        rc = r.reasonCode;
        MQTTResponse_free(r);
    } else {
        MQTTClient_connectOptions co = MQTTClient_connectOptions_initializer;
        co.cleansession = clean;
        co.MQTTVersion = MQTTVERSION_3_1_1;
        rc = MQTTClient_connect(c->handle, &co);
    }
    c->lost = 0;
    return rc == 0;
}

client *client_new(int port, const char *id, int version, bool clean) {
    client *c = calloc(1, sizeof *c);
    char uri[64];
    snprintf(uri, sizeof uri, "tcp://127.0.0.1:%d", port);
    MQTTClient_createOptions co = MQTTClient_createOptions_initializer;
    co.MQTTVersion = version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
    c->version = version;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    if (MQTTClient_createWithOptions(&c->handle, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL, &co) !=
            MQTTCLIENT_SUCCESS ||
        MQTTClient_setCallbacks(c->handle, c, on_lost, on_arrived, NULL) != MQTTCLIENT_SUCCESS ||
        (version == 5 &&
         MQTTClient_setPublished(c->handle, c, on_published) != MQTTCLIENT_SUCCESS) ||
        !client_connect(c, clean)) {
        fprintf(stderr, "test client %s cannot connect to %s\n", id, uri);
        return NULL;
    }
    return c;
}

void client_free(client *c) {
    if (c == NULL) {
        return;
    }
    if (c->version == 5) {
        MQTTClient_disconnect5(c->handle, 1000, MQTTREASONCODE_SUCCESS, NULL);
    } else {
        MQTTClient_disconnect(c->handle, 1000);
    }
    MQTTClient_destroy(&c->handle);
    for (size_t i = 0; i < c->n; i++) {
        free(c->msgs[i]->topic);
        free(c->msgs[i]->payload);
        free(c->msgs[i]->corr);
        free(c->msgs[i]);
    }
    free(c->msgs);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}

bool client_subscribe(client *c, const char *topic) {
    int rc;
    if (c->version == 5) {
        MQTTResponse r = MQTTClient_subscribe5(c->handle, topic, 1, NULL, NULL);
        rc = r.reasonCode <= 2 ? 0 : (int)r.reasonCode;
        MQTTResponse_free(r);
    } else {
        rc = MQTTClient_subscribe(c->handle, topic, 1);
    }
    CHECK_MSG(rc == 0, "subscribe %s: %d", topic, rc);
    return rc == 0;
}

/* Publish; response_topic / corr only for MQTT 5. */
void client_publish_full(client *c, const char *topic, const void *payload, size_t len,
                         const char *response_topic, const char *corr, int corr_len, int retained) {
    MQTTClient_message m = MQTTClient_message_initializer;
    m.payload = (void *)(uintptr_t)payload;
    m.payloadlen = (int)len;
    m.qos = 1;
    m.retained = retained;
    MQTTClient_deliveryToken dt = 0;
    int rc;
    if (c->version == 5) {
        MQTTProperty p;
        if (response_topic != NULL) {
            memset(&p, 0, sizeof p);
            p.identifier = MQTTPROPERTY_CODE_RESPONSE_TOPIC;
            p.value.data.data = (char *)(uintptr_t)response_topic;
            p.value.data.len = (int)strlen(response_topic);
            MQTTProperties_add(&m.properties, &p);
        }
        if (corr != NULL) {
            memset(&p, 0, sizeof p);
            p.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA;
            p.value.data.data = (char *)(uintptr_t)corr;
            p.value.data.len = corr_len;
            MQTTProperties_add(&m.properties, &p);
        }
        MQTTResponse r = MQTTClient_publishMessage5(c->handle, topic, &m, &dt);
        rc = r.reasonCode;
        MQTTResponse_free(r);
        MQTTProperties_free(&m.properties);
    } else {
        rc = MQTTClient_publishMessage(c->handle, topic, &m, &dt);
    }
    if (rc == 0) {
        rc = MQTTClient_waitForCompletion(c->handle, dt, 10000);
    }
    CHECK_MSG(rc == 0, "publish to %s: %d", topic, rc);
}

void client_publish(client *c, const char *topic, const char *payload) {
    client_publish_full(c, topic, payload, strlen(payload), NULL, NULL, 0, 0);
}

int client_publish_acked(client *c, const char *topic, const void *payload, size_t len) {
    MQTTClient_message m = MQTTClient_message_initializer;
    m.payload = (void *)(uintptr_t)payload;
    m.payloadlen = (int)len;
    m.qos = 1;
    MQTTClient_deliveryToken dt = 0;
    MQTTResponse r = MQTTClient_publishMessage5(c->handle, topic, &m, &dt);
    int rc = r.reasonCode;
    MQTTResponse_free(r);
    if (rc != 0 || MQTTClient_waitForCompletion(c->handle, dt, 10000) != MQTTCLIENT_SUCCESS) {
        return -1;
    }
    /* the published callback runs on Paho's thread, maybe just after the completion */
    int reason = -1;
    double until = test_now_ms() + 2000.0;
    pthread_mutex_lock(&c->lock);
    while (reason < 0 && test_now_ms() < until) {
        for (unsigned i = 0; i < sizeof c->acks / sizeof c->acks[0] && i < c->n_acks; i++) {
            if (c->acks[i].token == dt) {
                reason = c->acks[i].reason;
            }
        }
        if (reason < 0) {
            pthread_mutex_unlock(&c->lock);
            usleep(1000);
            pthread_mutex_lock(&c->lock);
        }
    }
    pthread_mutex_unlock(&c->lock);
    return reason;
}

/* The first message not yet taken on topic whose payload contains needle1 and needle2 (NULL =
 * any); waits up to timeout_ms. The message stays owned by the client. */
msg *client_wait_msg(client *c, const char *topic, const char *needle1, const char *needle2,
                     int timeout_ms) {
    double until = test_now_ms() + timeout_ms;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        for (size_t i = 0; i < c->n; i++) {
            msg *m = c->msgs[i];
            if (!m->taken && strcmp(m->topic, topic) == 0 &&
                (needle1 == NULL || strstr(m->payload, needle1) != NULL) &&
                (needle2 == NULL || strstr(m->payload, needle2) != NULL)) {
                m->taken = true;
                pthread_mutex_unlock(&c->lock);
                return m;
            }
        }
        double left = until - test_now_ms();
        if (left <= 0) {
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long add_ms = left > 50 ? 50 : (long)left + 1;
        ts.tv_nsec += add_ms * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->cond, &c->lock, &ts);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* Count messages (taken or not) on topic containing needle. */
int client_count_msgs(client *c, const char *topic, const char *needle) {
    int n = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->msgs[i]->topic, topic) == 0 &&
            (needle == NULL || strstr(c->msgs[i]->payload, needle) != NULL)) {
            n++;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return n;
}

cJSON *msg_json(const msg *m) {
    return m ? cJSON_ParseWithLength(m->payload, (size_t)m->len) : NULL;
}

const char *jstr(const cJSON *o, const char *path1, const char *path2) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, path1);
    if (path2 != NULL) {
        v = cJSON_GetObjectItemCaseSensitive(v, path2);
    }
    return cJSON_IsString(v) ? v->valuestring : "";
}

double jnum(const cJSON *o, const char *path1, const char *path2) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, path1);
    if (path2 != NULL) {
        v = cJSON_GetObjectItemCaseSensitive(v, path2);
    }
    return cJSON_IsNumber(v) ? v->valuedouble : -1.0;
}

/* ---- edgelmd ----------------------------------------------------------------------------------
 */

const char *edgelmd_path(void) {
    const char *p = getenv("EDGELMD");
    return p != NULL ? p : "edgelmd";
}

void write_node_conf(node *n, int port, const char *model, int queue_depth, int max_prompt_tokens) {
    FILE *f = fopen(n->conf, "w");
    if (f == NULL) {
        return;
    }
    fprintf(f,
            "mqtt = { broker = \"tcp://127.0.0.1:%d\"; keepalive_s = 5; %s };\n"
            "node = { id = \"%s\"; };\n"
            "model = { path = \"%s\"; threads = 1; };\n"
            "sampling = { temperature = 0.0; };\n"
            "limits = { queue_depth = %d; max_prompt_tokens = %d; %s };\n"
            "metrics = { interval_s = 1; };\n"
            "log = { level = \"debug\"; };\n",
            port, n->mqtt_extra != NULL ? n->mqtt_extra : "", n->id, model, queue_depth,
            max_prompt_tokens,
            n->limits_extra != NULL ? n->limits_extra
                                    : "max_tokens = 10000000; shutdown_grace_ms = 20000;");
    fclose(f);
}

/* Start edgelmd and wait until it says online (watcher subscribed to its status). */
bool node_start(node *n, client *watcher, int port, const char *model, int queue_depth,
                bool fleet) {
    snprintf(n->conf, sizeof n->conf, "%s/%s.conf", test_temp_dir(), n->id);
    snprintf(n->log, sizeof n->log, "%s/%s.log", test_temp_dir(), n->id);
    write_node_conf(n, port, model, queue_depth, 64);
    char status[64];
    snprintf(status, sizeof status, "edgelm/%s/status", n->id);
    client_subscribe(watcher, status);
    char *argv[] = {(char *)edgelmd_path(), "--config", n->conf, fleet ? "--fleet" : NULL, NULL};
    n->pid = process_spawn(argv, n->log);
    bool ok = client_wait_msg(watcher, status, "online", NULL, WAIT_MS) != NULL;
    CHECK_MSG(ok, "edgelmd %s did not come online (log: %s)", n->id, n->log);
    return ok;
}

void node_report(node *n, const char *why) {
    int status;
    pid_t r = n->pid > 0 ? waitpid(n->pid, &status, WNOHANG) : -1;
    if (r == n->pid) {
        process_forget(n->pid);
        if (WIFSIGNALED(status)) {
            fprintf(stderr, "edgelmd %s (%s): killed by signal %d (%s)\n", n->id, why,
                    WTERMSIG(status), strsignal(WTERMSIG(status)));
        } else {
            fprintf(stderr, "edgelmd %s (%s): exited with status %d\n", n->id, why,
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
        n->pid = -1;
    } else if (r == 0) {
        fprintf(stderr, "edgelmd %s (%s): still running as pid %d; its threads:\n", n->id, why,
                (int)n->pid);
        /* where it hangs, when gdb is there (a hang is otherwise invisible in CI's log) */
        char cmd[200];
        snprintf(cmd, sizeof cmd,
                 "command -v gdb >/dev/null && timeout 60 gdb -p %d -batch -nx "
                 "-ex 'thread apply all bt' 2>/dev/null | grep -E '^(Thread|#)' | head -n 120 >&2",
                 (int)n->pid);
        if (system(cmd) != 0) {
            fprintf(stderr, "(no stacks: gdb missing or failed)\n");
        }
    } else {
        fprintf(stderr, "edgelmd %s: %s\n", n->id, why);
    }
    enum { TAIL_LINES = 40 };
    FILE *f = fopen(n->log, "r");
    if (f == NULL) {
        fprintf(stderr, "edgelmd %s: no log at %s\n", n->id, n->log);
        return;
    }
    char lines[TAIL_LINES][512];
    long count = 0;
    while (fgets(lines[count % TAIL_LINES], sizeof lines[0], f) != NULL) {
        count++;
    }
    fclose(f);
    fprintf(stderr, "---- last lines of %s ----\n", n->log);
    for (long i = count > TAIL_LINES ? count - TAIL_LINES : 0; i < count; i++) {
        fputs(lines[i % TAIL_LINES], stderr);
    }
    fprintf(stderr, "----\n");
}

bool node_stop(node *n, client *watcher) {
    char status[64];
    snprintf(status, sizeof status, "edgelm/%s/status", n->id);
    if (n->pid <= 0) {
        CHECK_MSG(false, "edgelmd %s was not running at its stop (log %s)", n->id, n->log);
        return false;
    }
    kill(n->pid, SIGTERM);
    int rc = process_wait_exit(n->pid, WAIT_MS);
    CHECK_MSG(rc == 0, "edgelmd %s: SIGTERM exit status %d (log %s)", n->id, rc, n->log);
    if (rc != 0) {
        node_report(n, rc > 128 ? "died of a signal" : rc < 0 ? "no exit after SIGTERM" : "exit");
        if (rc < 0) {
            kill(n->pid, SIGKILL);
            process_wait_exit(n->pid, WAIT_MS);
        }
    }
    CHECK_MSG(client_wait_msg(watcher, status, "offline", NULL, WAIT_MS) != NULL,
              "edgelmd %s: no offline status after SIGTERM", n->id);
    return rc == 0;
}

/* ---- models -----------------------------------------------------------------------------------
 */

/* Generate a tiny model and zero the output.weight rows of its end-of-generation tokens, so
 * greedy decoding never picks them (every other logit of a random model beats 0 somewhere). */
bool make_endless_model(const char *path) {
    const char *gen = getenv("EDGELM_GEN");
    char *argv[] = {
        (char *)(gen ? gen : "edgelm-gen"), (char *)path, "--preset", "tiny", "--quiet", NULL};
    char log[700];
    snprintf(log, sizeof log, "%s.log", path);
    pid_t pid = process_spawn(argv, log);
    if (pid <= 0 || process_wait_exit(pid, 120000) != 0) {
        return false;
    }
    edgelm_model *m = NULL;
    char err[256];
    if (edgelm_model_load(path, NULL, &m, err, sizeof err) != EDGELM_OK) {
        fprintf(stderr, "%s\n", err);
        return false;
    }
    edgelm_tensor_info out = {0};
    bool found = false;
    for (int64_t i = 0; i < edgelm_model_n_tensors(m) && !found; i++) {
        found = edgelm_model_tensor(m, i, &out) && strcmp(out.name, "output.weight") == 0;
    }
    int32_t n_vocab = edgelm_model_n_vocab(m);
    bool ok = found && strcmp(out.type_name, "f32") == 0 && out.n_dims == 2 &&
              out.ne[1] == (uint64_t)n_vocab;
    int32_t eog[16];
    int n_eog = 0;
    for (int32_t t = 0; ok && t < n_vocab && n_eog < 16; t++) {
        if (edgelm_model_token_is_eog(m, t)) {
            eog[n_eog++] = t;
        }
    }
    uint64_t row_bytes = out.ne[0] * 4, offset = out.file_offset;
    edgelm_model_free(m);
    if (!ok) {
        fprintf(stderr, "unexpected output.weight in %s\n", path);
        return false;
    }
    int fd = open(path, O_WRONLY);
    char *zeros = calloc(1, (size_t)row_bytes);
    for (int i = 0; fd >= 0 && zeros != NULL && i < n_eog; i++) {
        if (pwrite(fd, zeros, (size_t)row_bytes, (off_t)(offset + (uint64_t)eog[i] * row_bytes)) !=
            (ssize_t)row_bytes) {
            ok = false;
        }
    }
    free(zeros);
    if (fd >= 0) {
        close(fd);
    }
    return ok && fd >= 0 && n_eog > 0;
}

/* ---- protocol ---------------------------------------------------------------------------------
 */

static int seq_no;

/* A request for node n; returns the id used. */
const char *send_request(client *c, const char *node_id, const char *fields, const char *id) {
    static char idbuf[64];
    if (id == NULL) {
        snprintf(idbuf, sizeof idbuf, "t%d", ++seq_no);
        id = idbuf;
    }
    char topic[128], payload[4096];
    snprintf(topic, sizeof topic, "edgelm/%s/request", node_id);
    snprintf(payload, sizeof payload, "{\"v\":1,\"id\":\"%s\",%s}", id, fields);
    client_publish(c, topic, payload);
    return id;
}

msg *wait_final(client *c, const char *node_id, const char *id, int timeout_ms) {
    char topic[160], needle[96];
    snprintf(topic, sizeof topic, "edgelm/%s/response/%s", node_id, id);
    snprintf(needle, sizeof needle, "\"id\":\"%s\"", id);
    return client_wait_msg(c, topic, needle, NULL, timeout_ms);
}

void send_cancel(client *c, const char *node_id, const char *id) {
    char topic[128], payload[128];
    snprintf(topic, sizeof topic, "edgelm/%s/cancel", node_id);
    snprintf(payload, sizeof payload, "{\"v\":1,\"id\":\"%s\"}", id);
    client_publish(c, topic, payload);
}

/* Wait for the first stream chunk of id (so the request is generating). */
bool wait_first_chunk(client *c, const char *node_id, const char *id) {
    char topic[160];
    snprintf(topic, sizeof topic, "edgelm/%s/response/%s/stream", node_id, id);
    return client_wait_msg(c, topic, "\"seq\":0,", NULL, WAIT_MS) != NULL;
}

/* Collect the stream of id: chunks seq 0..n-1 without gaps, concatenated. Returns false on a gap.
 */
bool collect_stream(client *c, const char *node_id, const char *id, int n_expected, char *text,
                    size_t text_size) {
    char topic[160];
    snprintf(topic, sizeof topic, "edgelm/%s/response/%s/stream", node_id, id);
    text[0] = '\0';
    for (int seq = 0; seq < n_expected; seq++) {
        char needle[48];
        snprintf(needle, sizeof needle, "\"seq\":%d,", seq);
        msg *m = client_wait_msg(c, topic, needle, NULL, WAIT_MS);
        if (m == NULL) {
            fprintf(stderr, "stream of %s: chunk %d missing\n", id, seq);
            return false;
        }
        cJSON *j = msg_json(m);
        strncat(text, jstr(j, "text", NULL), text_size - strlen(text) - 1);
        CHECK(strcmp(jstr(j, "type", NULL), "token") == 0 && jnum(j, "v", NULL) == 1);
        cJSON_Delete(j);
    }
    return true;
}

/* ---- TCP proxy --------------------------------------------------------------------------------
 */

#define PROXY_MAX_PAIRS 16

struct tcp_proxy {
    int listen_fd, port, target_port;
    pthread_t thread;
    pthread_mutex_t lock;
    int pairs[PROXY_MAX_PAIRS][2]; /* client side, broker side; -1 = free */
    atomic_bool stop;              /* set by tcp_proxy_stop, polled by the proxy thread */
};

static int connect_loopback(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        close(s);
        s = -1;
    }
    return s;
}

static void proxy_close_pair(tcp_proxy *p, int i) {
    for (int side = 0; side < 2; side++) {
        if (p->pairs[i][side] >= 0) {
            shutdown(p->pairs[i][side], SHUT_RDWR);
            close(p->pairs[i][side]);
            p->pairs[i][side] = -1;
        }
    }
}

/* One thread: accept, and copy bytes both ways for every pair (poll over all sockets). */
static void *proxy_main(void *arg) {
    tcp_proxy *p = arg;
    char buf[65536];
    while (!atomic_load(&p->stop)) {
        struct pollfd fds[1 + 2 * PROXY_MAX_PAIRS];
        int who[1 + 2 * PROXY_MAX_PAIRS][2];
        nfds_t n = 0;
        fds[n].fd = p->listen_fd;
        fds[n].events = POLLIN;
        n++;
        pthread_mutex_lock(&p->lock);
        for (int i = 0; i < PROXY_MAX_PAIRS; i++) {
            for (int side = 0; side < 2; side++) {
                if (p->pairs[i][side] >= 0) {
                    fds[n].fd = p->pairs[i][side];
                    fds[n].events = POLLIN;
                    who[n][0] = i;
                    who[n][1] = side;
                    n++;
                }
            }
        }
        pthread_mutex_unlock(&p->lock);
        if (poll(fds, n, 50) <= 0) {
            continue;
        }
        pthread_mutex_lock(&p->lock);
        if (fds[0].revents & POLLIN) {
            int c = accept(p->listen_fd, NULL, NULL);
            int b = c >= 0 ? connect_loopback(p->target_port) : -1;
            int slot = -1;
            for (int i = 0; i < PROXY_MAX_PAIRS && slot < 0; i++) {
                slot = p->pairs[i][0] < 0 ? i : -1;
            }
            if (c >= 0 && b >= 0 && slot >= 0) {
                p->pairs[slot][0] = c;
                p->pairs[slot][1] = b;
            } else {
                if (c >= 0) {
                    close(c);
                }
                if (b >= 0) {
                    close(b);
                }
            }
        }
        for (nfds_t k = 1; k < n; k++) {
            int i = who[k][0], side = who[k][1];
            if (fds[k].revents == 0 || p->pairs[i][side] != fds[k].fd) {
                continue; /* nothing, or cut meanwhile */
            }
            ssize_t got = read(fds[k].fd, buf, sizeof buf);
            bool ok = got > 0;
            for (ssize_t sent = 0; ok && sent < got;) {
                ssize_t w = write(p->pairs[i][1 - side], buf + sent, (size_t)(got - sent));
                ok = w > 0;
                sent += w > 0 ? w : 0;
            }
            if (!ok) {
                proxy_close_pair(p, i);
            }
        }
        pthread_mutex_unlock(&p->lock);
    }
    return NULL;
}

tcp_proxy *tcp_proxy_start(int target_port) {
    tcp_proxy *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return NULL;
    }
    memset(p->pairs, -1, sizeof p->pairs);
    atomic_init(&p->stop, false);
    p->target_port = target_port;
    p->port = free_port();
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)p->port);
    pthread_mutex_init(&p->lock, NULL);
    if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(p->listen_fd, 8) != 0 || pthread_create(&p->thread, NULL, proxy_main, p) != 0) {
        if (p->listen_fd >= 0) {
            close(p->listen_fd);
        }
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
    }
    return p;
}

int tcp_proxy_port(const tcp_proxy *p) { return p->port; }

int tcp_proxy_cut(tcp_proxy *p) {
    int n = 0;
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < PROXY_MAX_PAIRS; i++) {
        if (p->pairs[i][0] >= 0) {
            proxy_close_pair(p, i);
            n++;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return n;
}

void tcp_proxy_stop(tcp_proxy *p) {
    if (p == NULL) {
        return;
    }
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    tcp_proxy_cut(p);
    close(p->listen_fd);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
