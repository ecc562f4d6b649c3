/* test_service_mqtt.c - edgelmd end to end: a real mosquitto on a free loopback port, real
 * edgelmd processes, and Paho clients (MQTT 5 and 3.1.1) speaking the documented protocol.
 * Long generations use a generated tiny model whose end-of-generation rows of output.weight are
 * zeroed, so greedy decoding never ends by itself (runs end by max_tokens, cancel or deadline).
 * stories260K (shared models) checks the exact greedy text; that part is skipped loudly when the
 * file is absent. No assertion depends on speed; every wait is generous (ASan, loaded 2 cores).
 */
#define _DEFAULT_SOURCE 1
#include "test_util.h"

#include <MQTTClient.h>
#include <arpa/inet.h>
#include <edgelm.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 60000 /* generous: ASan on a loaded 2-core machine */

/* ---- processes ------------------------------------------------------------------------------ */

static pid_t spawned[16];
static int n_spawned;

static void kill_all(void) {
    for (int i = 0; i < n_spawned; i++) {
        if (spawned[i] > 0) {
            kill(spawned[i], SIGKILL);
            waitpid(spawned[i], NULL, 0);
        }
    }
}

static pid_t spawn(char *const argv[], const char *log_path) {
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    if (pid > 0 && n_spawned < 16) {
        spawned[n_spawned++] = pid;
    }
    return pid;
}

static void forget_pid(pid_t pid) {
    for (int i = 0; i < n_spawned; i++) {
        if (spawned[i] == pid) {
            spawned[i] = -1;
        }
    }
}

/* Wait for pid to exit; returns its exit status, or -1 on timeout / signal death. */
static int wait_exit(pid_t pid, int timeout_ms) {
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            forget_pid(pid);
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        usleep(20000);
    }
    return -1;
}

static int free_port(void) {
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

static bool port_open(int port) {
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

static const char *find_mosquitto(void) {
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

typedef struct broker {
    int port;
    pid_t pid;
    char conf[512];
    char log[512];
} broker;

static bool broker_start(broker *b) {
    char *argv[] = {(char *)find_mosquitto(), "-c", b->conf, NULL};
    b->pid = spawn(argv, b->log);
    for (int i = 0; i < 500 && !port_open(b->port); i++) {
        usleep(20000);
    }
    return port_open(b->port);
}

/* A broker on a free loopback port, with persistence (for the restart test) in the temp dir. */
static bool broker_create(broker *b, const char *name) {
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
    msg *msgs;
    size_t n, cap;
    int version;
    volatile int lost;
} client;

static int on_arrived(void *ctx, char *topic, int topic_len, MQTTClient_message *m) {
    client *c = ctx;
    msg x;
    memset(&x, 0, sizeof x);
    size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    x.topic = strndup(topic, tl);
    x.payload = malloc((size_t)m->payloadlen + 1);
    memcpy(x.payload, m->payload, (size_t)m->payloadlen);
    x.payload[m->payloadlen] = '\0';
    x.len = m->payloadlen;
    x.retained = m->retained;
    MQTTProperty *p =
        MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
    if (p != NULL) {
        x.corr = malloc((size_t)p->value.data.len + 1);
        memcpy(x.corr, p->value.data.data, (size_t)p->value.data.len);
        x.corr_len = p->value.data.len;
    }
    pthread_mutex_lock(&c->lock);
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->msgs = realloc(c->msgs, c->cap * sizeof *c->msgs);
    }
    c->msgs[c->n++] = x;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    MQTTClient_freeMessage(&m);
    MQTTClient_free(topic);
    return 1;
}

static void on_lost(void *ctx, char *cause) {
    client *c = ctx;
    c->lost = 1;
    (void)cause;
}

static bool client_connect(client *c, bool clean) {
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

static client *client_new(int port, const char *id, int version, bool clean) {
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
        !client_connect(c, clean)) {
        fprintf(stderr, "test client %s cannot connect to %s\n", id, uri);
        return NULL;
    }
    return c;
}

static void client_free(client *c) {
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
        free(c->msgs[i].topic);
        free(c->msgs[i].payload);
        free(c->msgs[i].corr);
    }
    free(c->msgs);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}

static bool sub(client *c, const char *topic) {
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
static void pub_full(client *c, const char *topic, const void *payload, size_t len,
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

static void pub(client *c, const char *topic, const char *payload) {
    pub_full(c, topic, payload, strlen(payload), NULL, NULL, 0, 0);
}

/* The first message not yet taken on topic whose payload contains needle1 and needle2 (NULL =
 * any); waits up to timeout_ms. The message stays owned by the client. */
static msg *wait_msg(client *c, const char *topic, const char *needle1, const char *needle2,
                     int timeout_ms) {
    double until = test_now_ms() + timeout_ms;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        for (size_t i = 0; i < c->n; i++) {
            msg *m = &c->msgs[i];
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
static int count_msgs(client *c, const char *topic, const char *needle) {
    int n = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->msgs[i].topic, topic) == 0 &&
            (needle == NULL || strstr(c->msgs[i].payload, needle) != NULL)) {
            n++;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return n;
}

static cJSON *parse(const msg *m) {
    return m ? cJSON_ParseWithLength(m->payload, (size_t)m->len) : NULL;
}

static const char *jstr(const cJSON *o, const char *path1, const char *path2) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, path1);
    if (path2 != NULL) {
        v = cJSON_GetObjectItemCaseSensitive(v, path2);
    }
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double jnum(const cJSON *o, const char *path1, const char *path2) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, path1);
    if (path2 != NULL) {
        v = cJSON_GetObjectItemCaseSensitive(v, path2);
    }
    return cJSON_IsNumber(v) ? v->valuedouble : -1.0;
}

/* ---- edgelmd ----------------------------------------------------------------------------------
 */

typedef struct node {
    char id[32];
    pid_t pid;
    char conf[512];
    char log[512];
} node;

static const char *edgelmd_path(void) {
    const char *p = getenv("EDGELMD");
    return p != NULL ? p : "edgelmd";
}

static void write_node_conf(node *n, int port, const char *model, int queue_depth,
                            int max_prompt_tokens) {
    FILE *f = fopen(n->conf, "w");
    if (f == NULL) {
        return;
    }
    fprintf(f,
            "mqtt = { broker = \"tcp://127.0.0.1:%d\"; keepalive_s = 5; };\n"
            "node = { id = \"%s\"; };\n"
            "model = { path = \"%s\"; threads = 1; };\n"
            "sampling = { temperature = 0.0; };\n"
            "limits = { queue_depth = %d; max_prompt_tokens = %d; max_tokens = 10000000; "
            "shutdown_grace_ms = 20000; };\n"
            "metrics = { interval_s = 1; };\n"
            "log = { level = \"debug\"; };\n",
            port, n->id, model, queue_depth, max_prompt_tokens);
    fclose(f);
}

/* Start edgelmd and wait until it says online (watcher subscribed to its status). */
static bool node_start(node *n, client *watcher, int port, const char *model, int queue_depth,
                       bool fleet) {
    snprintf(n->conf, sizeof n->conf, "%s/%s.conf", test_temp_dir(), n->id);
    snprintf(n->log, sizeof n->log, "%s/%s.log", test_temp_dir(), n->id);
    write_node_conf(n, port, model, queue_depth, 64);
    char status[64];
    snprintf(status, sizeof status, "edgelm/%s/status", n->id);
    sub(watcher, status);
    char *argv[] = {(char *)edgelmd_path(), "--config", n->conf, fleet ? "--fleet" : NULL, NULL};
    n->pid = spawn(argv, n->log);
    bool ok = wait_msg(watcher, status, "online", NULL, WAIT_MS) != NULL;
    CHECK_MSG(ok, "edgelmd %s did not come online (log: %s)", n->id, n->log);
    return ok;
}

static bool node_stop(node *n, client *watcher) {
    char status[64];
    snprintf(status, sizeof status, "edgelm/%s/status", n->id);
    kill(n->pid, SIGTERM);
    int rc = wait_exit(n->pid, WAIT_MS);
    CHECK_MSG(rc == 0, "edgelmd %s: SIGTERM exit status %d (log %s)", n->id, rc, n->log);
    CHECK_MSG(wait_msg(watcher, status, "offline", NULL, WAIT_MS) != NULL,
              "edgelmd %s: no offline status after SIGTERM", n->id);
    return rc == 0;
}

/* ---- models -----------------------------------------------------------------------------------
 */

/* Generate a tiny model and zero the output.weight rows of its end-of-generation tokens, so
 * greedy decoding never picks them (every other logit of a random model beats 0 somewhere). */
static bool make_endless_model(const char *path) {
    const char *gen = getenv("EDGELM_GEN");
    char *argv[] = {
        (char *)(gen ? gen : "edgelm-gen"), (char *)path, "--preset", "tiny", "--quiet", NULL};
    char log[700];
    snprintf(log, sizeof log, "%s.log", path);
    pid_t pid = spawn(argv, log);
    if (pid <= 0 || wait_exit(pid, 120000) != 0) {
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

/* ---- the cases ----------------------------------------------------------------------------------
 */

static int seq_no;

/* A request for node n; returns the id used. */
static const char *request(client *c, const char *node_id, const char *fields, const char *id) {
    static char idbuf[64];
    if (id == NULL) {
        snprintf(idbuf, sizeof idbuf, "t%d", ++seq_no);
        id = idbuf;
    }
    char topic[128], payload[4096];
    snprintf(topic, sizeof topic, "edgelm/%s/request", node_id);
    snprintf(payload, sizeof payload, "{\"v\":1,\"id\":\"%s\",%s}", id, fields);
    pub(c, topic, payload);
    return id;
}

static msg *wait_final(client *c, const char *node_id, const char *id, int timeout_ms) {
    char topic[160], needle[96];
    snprintf(topic, sizeof topic, "edgelm/%s/response/%s", node_id, id);
    snprintf(needle, sizeof needle, "\"id\":\"%s\"", id);
    return wait_msg(c, topic, needle, NULL, timeout_ms);
}

static void cancel(client *c, const char *node_id, const char *id) {
    char topic[128], payload[128];
    snprintf(topic, sizeof topic, "edgelm/%s/cancel", node_id);
    snprintf(payload, sizeof payload, "{\"v\":1,\"id\":\"%s\"}", id);
    pub(c, topic, payload);
}

/* Wait for the first stream chunk of id (so the request is generating). */
static bool wait_first_chunk(client *c, const char *node_id, const char *id) {
    char topic[160];
    snprintf(topic, sizeof topic, "edgelm/%s/response/%s/stream", node_id, id);
    return wait_msg(c, topic, "\"seq\":0,", NULL, WAIT_MS) != NULL;
}

/* Collect the stream of id: chunks seq 0..n-1 without gaps, concatenated. Returns false on a gap.
 */
static bool collect_stream(client *c, const char *node_id, const char *id, int n_expected,
                           char *text, size_t text_size) {
    char topic[160];
    snprintf(topic, sizeof topic, "edgelm/%s/response/%s/stream", node_id, id);
    text[0] = '\0';
    for (int seq = 0; seq < n_expected; seq++) {
        char needle[48];
        snprintf(needle, sizeof needle, "\"seq\":%d,", seq);
        msg *m = wait_msg(c, topic, needle, NULL, WAIT_MS);
        if (m == NULL) {
            fprintf(stderr, "stream of %s: chunk %d missing\n", id, seq);
            return false;
        }
        cJSON *j = parse(m);
        strncat(text, jstr(j, "text", NULL), text_size - strlen(text) - 1);
        CHECK(strcmp(jstr(j, "type", NULL), "token") == 0 && jnum(j, "v", NULL) == 1);
        cJSON_Delete(j);
    }
    return true;
}

static void test_exact_text(client *c, broker *b, int *skipped) {
    char model[1024];
    if (!test_model_path("stories260K.gguf", model, sizeof model)) {
        fprintf(stderr, "*** SKIPPED: exact greedy text on stories260K (model absent)\n");
        (*skipped)++;
        return;
    }
    char ref_path[1100];
    snprintf(ref_path, sizeof ref_path, "%s/reference/stories260K.greedy.json", test_models_dir());
    cJSON *ref = test_load_json(ref_path);
    const char *ref_text = "";
    cJSON *runs = cJSON_GetObjectItem(ref, "runs");
    for (cJSON *r = runs ? runs->child : NULL; r != NULL; r = r->next) {
        if (strcmp(jstr(r, "prompt", NULL), "Once upon a time") == 0) {
            ref_text = jstr(r, "text", NULL);
        }
    }
    const char *after = strstr(ref_text, "Once upon a time");
    CHECK_MSG(after != NULL, "reference text not found in %s", ref_path);
    if (after == NULL) {
        cJSON_Delete(ref);
        return;
    }
    after += strlen("Once upon a time");
    node s = {.id = "stories"};
    if (node_start(&s, c, b->port, model, 4, false)) {
        char sub_topic[128];
        snprintf(sub_topic, sizeof sub_topic, "edgelm/%s/response/#", s.id);
        sub(c, sub_topic);
        const char *id = request(c, s.id,
                                 "\"prompt\":\"Once upon a time\",\"max_tokens\":64,"
                                 "\"temperature\":0,\"stream\":true",
                                 "exact-1");
        msg *m = wait_final(c, s.id, id, WAIT_MS);
        cJSON *j = parse(m);
        CHECK_MSG(j != NULL && strcmp(jstr(j, "text", NULL), after) == 0,
                  "stories260K greedy text differs:\n got: %s\nwant: %s", jstr(j, "text", NULL),
                  after);
        CHECK(jnum(j, "usage", "completion_tokens") == 64);
        CHECK(strcmp(jstr(j, "finish_reason", NULL), "length") == 0);
        char streamed[8192];
        CHECK(collect_stream(c, s.id, id, 64, streamed, sizeof streamed));
        /* one chunk per token here (ASCII text), so 64 chunks add up to the text */
        CHECK_MSG(strcmp(streamed, after) == 0, "stream '%s' != text", streamed);
        fprintf(stderr, "stories260K over MQTT: %.1f tok/s, ttft %.1f ms\n",
                jnum(j, "timings", "predicted_per_second"), jnum(j, "timings", "ttft_ms"));
        cJSON_Delete(j);

        /* engine-backed fields: stop, format (json / schema), messages, prefix cache */
        struct {
            const char *id, *fields, *needle1, *needle2;
        } cases[] = {
            {"stop1",
             "\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"temperature\":0,"
             "\"stop\":[\"Lily\"]",
             "\"text\":\", there was a little girl named \"", "\"finish_reason\":\"stop_word\""},
            {"prefix1",
             "\"prompt\":\"Once upon a time, there was\",\"max_tokens\":4,"
             "\"temperature\":0",
             "\"cached_tokens\":", "\"type\":\"result\""},
            {"json1",
             "\"prompt\":\"Once upon a time\",\"max_tokens\":60,\"temperature\":0,"
             "\"format\":\"json\"",
             "\"json\":{", "\"type\":\"result\""},
            {"schema1",
             "\"prompt\":\"Once upon a time\",\"max_tokens\":80,\"temperature\":0,"
             "\"format\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":"
             "\"string\"}},\"required\":[\"name\"]}",
             "\"json\":{\"name\":", "\"type\":\"result\""},
            {"chat1",
             "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":5,"
             "\"temperature\":0",
             "\"type\":\"result\"", NULL},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            request(c, s.id, cases[i].fields, cases[i].id);
            m = wait_final(c, s.id, cases[i].id, WAIT_MS);
            CHECK_MSG(
                m != NULL && strstr(m->payload, cases[i].needle1) != NULL &&
                    (cases[i].needle2 == NULL || strstr(m->payload, cases[i].needle2) != NULL),
                "%s: %s", cases[i].id, m ? m->payload : "(none)");
        }
        /* prefix1 shares "Once upon a time" (+BOS) with the requests before it */
        m = NULL;
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->n; i++) {
            if (strcmp(c->msgs[i].topic, "edgelm/stories/response/prefix1") == 0) {
                m = &c->msgs[i];
            }
        }
        pthread_mutex_unlock(&c->lock);
        j = parse(m);
        CHECK_MSG(jnum(j, "usage", "cached_tokens") >= 5, "prefix cache: %s",
                  m ? m->payload : "(none)");
        cJSON_Delete(j);
        node_stop(&s, c);
    }
    cJSON_Delete(ref);
}

int main(void) {
    const char *mosq = find_mosquitto();
    if (mosq == NULL) {
        test_skip("mosquitto is not installed (Debian: apt-get install mosquitto)");
    }
    if (access(edgelmd_path(), X_OK) != 0) {
        test_skip("edgelmd binary not found ($EDGELMD)");
    }
    atexit(kill_all);
    signal(SIGPIPE, SIG_IGN);
    int skipped = 0;
    char model[600];
    snprintf(model, sizeof model, "%s/endless-tiny.gguf", test_temp_dir());
    CHECK_MSG(make_endless_model(model), "cannot make the endless test model");

    broker b;
    CHECK_MSG(broker_create(&b, "broker"), "mosquitto did not start (%s)", b.log);
    client *c = client_new(b.port, "tester5", 5, true);
    if (c == NULL || test_failures > 0) {
        return test_finish("test_service_mqtt", 0);
    }

    test_exact_text(c, &b, &skipped);

    node a = {.id = "a"};
    if (!node_start(&a, c, b.port, model, 1, false)) {
        return test_finish("test_service_mqtt", 0);
    }
    sub(c, "edgelm/a/response/#");
    sub(c, "edgelm/a/errors");
    sub(c, "edgelm/a/health");
    sub(c, "edgelm/a/metrics");
    sub(c, "test/#");

    /* 1. request -> stream -> result: seq without gaps, chunks add up to the text */
    double tps = 0.0;
    {
        const char *id =
            request(c, "a", "\"prompt\":\"Hello\",\"max_tokens\":200,\"stream\":true", "s1");
        msg *m = wait_final(c, "a", id, WAIT_MS);
        cJSON *j = parse(m);
        CHECK_MSG(j != NULL && strcmp(jstr(j, "type", NULL), "result") == 0, "no result for s1");
        CHECK(strcmp(jstr(j, "finish_reason", NULL), "length") == 0);
        CHECK(jnum(j, "usage", "completion_tokens") == 200);
        CHECK(strcmp(jstr(j, "node", NULL), "a") == 0 && jnum(j, "v", NULL) == 1);
        CHECK(jnum(j, "timings", "predicted_per_second") > 0);
        tps = jnum(j, "timings", "predicted_per_second");
        int n_chunks = count_msgs(c, "edgelm/a/response/s1/stream", NULL);
        char streamed[65536];
        CHECK(n_chunks > 0 && collect_stream(c, "a", id, n_chunks, streamed, sizeof streamed));
        CHECK_MSG(strcmp(streamed, jstr(j, "text", NULL)) == 0, "stream != text for s1");
        cJSON_Delete(j);
    }

    /* 2. MQTT 5 Response Topic and Correlation Data echoed (result and chunks) */
    {
        static const char corr[] = {'\x00', '\x01', 'c', 'o', 'r', 'r', '\xff'};
        const char *payload = "{\"v\":1,\"id\":\"r5\",\"prompt\":\"Hi\",\"max_tokens\":5,"
                              "\"stream\":true}";
        pub_full(c, "edgelm/a/request", payload, strlen(payload), "test/rt/answer", corr,
                 (int)sizeof corr, 0);
        msg *m = wait_msg(c, "test/rt/answer", "\"type\":\"result\"", NULL, WAIT_MS);
        CHECK_MSG(m != NULL, "no result on the MQTT 5 response topic");
        CHECK(m != NULL && m->corr_len == (int)sizeof corr &&
              memcmp(m->corr, corr, sizeof corr) == 0);
        msg *chunk = wait_msg(c, "test/rt/answer/stream", "\"seq\":0,", NULL, WAIT_MS);
        CHECK(chunk != NULL && chunk->corr_len == (int)sizeof corr);
        CHECK(count_msgs(c, "edgelm/a/response/r5", NULL) == 0);
    }

    /* 3. an MQTT 3.1.1 client with reply_to */
    {
        client *c3 = client_new(b.port, "tester311", 3, true);
        CHECK(c3 != NULL);
        if (c3 != NULL) {
            sub(c3, "test/v3/#");
            pub(c3, "edgelm/a/request",
                "{\"v\":1,\"id\":\"v3\",\"prompt\":\"Hi\",\"max_tokens\":4,\"stream\":true,"
                "\"reply_to\":\"test/v3/answer\"}");
            msg *m = wait_msg(c3, "test/v3/answer", "\"type\":\"result\"", NULL, WAIT_MS);
            CHECK_MSG(m != NULL, "3.1.1 client got no result on reply_to");
            CHECK(wait_msg(c3, "test/v3/answer/stream", "\"seq\":0,", NULL, WAIT_MS) != NULL);
            client_free(c3);
        }
    }

    /* 4. malformed payloads, each answered with its code; the node keeps serving */
    {
        pub(c, "edgelm/a/request", "this is not json");
        CHECK(wait_msg(c, "edgelm/a/errors", "invalid_request", "not valid JSON", WAIT_MS) != NULL);
        const char *bad = "{\"v\":1,\"id\":\"m0\",\"prompt\":\"x\"";
        pub_full(c, "edgelm/a/request", bad, strlen(bad), "test/bad/0", NULL, 0, 0);
        CHECK(wait_msg(c, "test/bad/0", "invalid_request", NULL, WAIT_MS) != NULL);
        struct {
            const char *fields, *code, *needle;
        } cases[] = {
            {"\"prompt\":\"x\",\"max_token\":3", "invalid_request", "max_token"},
            {"\"prompt\":7", "invalid_request", "'prompt'"},
            {"\"prompt\":\"x\",\"temperature\":\"hot\"", "invalid_request", "'temperature'"},
            {"\"prompt\":\"x\",\"max_tokens\":-5", "invalid_request", "'max_tokens'"},
            {"\"prompt\":\"x\",\"stream\":\"yes\"", "invalid_request", "'stream'"},
            {"\"v\":2,\"prompt\":\"x\"", "unsupported", "'v'"},
            {"\"max_tokens\":3", "invalid_request", "prompt"},
            /* a schema whose shortest value cannot fit in max_tokens: refused, not cut off */
            {"\"prompt\":\"x\",\"max_tokens\":2,\"format\":{\"type\":\"object\","
             "\"properties\":{\"temperature_celsius\":{\"type\":\"number\"}},"
             "\"required\":[\"temperature_celsius\"]}",
             "invalid_request", "too small"},
            {"\"prompt\":\"one two three four five six seven eight nine ten eleven twelve "
             "thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty twenty-one "
             "twenty-two twenty-three twenty-four twenty-five twenty-six\"",
             "too_large", "tokens"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            char id[16];
            snprintf(id, sizeof id, "m%zu", i + 1);
            char payload[1024];
            /* "v" first when the case sets it, so the payload has no duplicate field */
            snprintf(payload, sizeof payload, "{\"id\":\"%s\",%s}", id, cases[i].fields);
            pub(c, "edgelm/a/request", payload);
            msg *m = wait_final(c, "a", id, WAIT_MS);
            cJSON *j = parse(m);
            CHECK_MSG(j != NULL && strcmp(jstr(j, "error", "code"), cases[i].code) == 0 &&
                          strstr(jstr(j, "error", "message"), cases[i].needle) != NULL,
                      "case %s: %s", cases[i].fields, m ? m->payload : "(no answer)");
            cJSON_Delete(j);
        }
        /* a burst of requests the worker ends as soon as it takes them (the schema cannot fit
         * in max_tokens): each is answered, none is touched after the worker freed it (this is
         * where ASan saw edgelmd read a freed job), and the node keeps serving */
        enum { N_BURST = 40 };
        for (int i = 0; i < N_BURST; i++) {
            char payload[1024];
            snprintf(payload, sizeof payload, "{\"id\":\"burst%d\",%s}", i, cases[7].fields);
            pub(c, "edgelm/a/request", payload);
        }
        int n_answered = 0;
        for (int i = 0; i < N_BURST; i++) {
            char id[16];
            snprintf(id, sizeof id, "burst%d", i);
            msg *m = wait_final(c, "a", id, WAIT_MS);
            n_answered += m != NULL && (strstr(m->payload, "\"invalid_request\"") != NULL ||
                                        strstr(m->payload, "\"busy\"") != NULL);
        }
        CHECK_MSG(n_answered == N_BURST, "%d of %d burst requests answered", n_answered, N_BURST);
        if (n_answered < N_BURST) {
            return test_finish("test_service_mqtt", 0); /* the rest would only time out */
        }
        /* larger than limits.max_payload_bytes (64 KB) */
        size_t big_len = 70000;
        char *big = malloc(big_len);
        memset(big, 'x', big_len);
        pub_full(c, "edgelm/a/request", big, big_len, "test/bad/big", NULL, 0, 0);
        free(big);
        CHECK(wait_msg(c, "test/bad/big", "too_large", NULL, WAIT_MS) != NULL);
        /* still serving */
        const char *id = request(c, "a", "\"prompt\":\"Still there?\",\"max_tokens\":3", "alive");
        msg *m = wait_final(c, "a", id, WAIT_MS);
        CHECK_MSG(m != NULL && strstr(m->payload, "\"type\":\"result\"") != NULL,
                  "node stopped serving after malformed payloads");
    }

    /* a run of ~1.5 s at this machine's speed (nothing asserts on speed) */
    int long_tokens = (int)(tps * 1.5);
    if (long_tokens < 300) {
        long_tokens = 300;
    }
    char long_fields[256];
    snprintf(long_fields, sizeof long_fields,
             "\"prompt\":\"Once\",\"max_tokens\":5000000,\"stream\":true");

    /* 5. queue full -> busy; cancel of a queued and of a running request; duplicates */
    {
        const char *id1 = "q1";
        request(c, "a", long_fields, id1);
        CHECK_MSG(wait_first_chunk(c, "a", id1), "q1 did not start");
        request(c, "a", long_fields, "q2"); /* waits (queue depth 1) */
        request(c, "a", long_fields, "q3"); /* no room */
        msg *m = wait_final(c, "a", "q3", WAIT_MS);
        CHECK_MSG(m != NULL && strstr(m->payload, "\"busy\"") != NULL, "q3 was not refused busy");
        /* a duplicate of a running and of a queued id is ignored */
        request(c, "a", long_fields, "q1");
        request(c, "a", long_fields, "q2");
        cancel(c, "a", "q2");
        m = wait_final(c, "a", "q2", WAIT_MS);
        CHECK_MSG(m != NULL && strstr(m->payload, "\"cancelled\"") != NULL &&
                      strstr(m->payload, "\"type\":\"error\"") != NULL,
                  "queued q2 not cancelled: %s", m ? m->payload : "(none)");
        cancel(c, "a", "q1");
        m = wait_final(c, "a", "q1", WAIT_MS);
        cJSON *j = parse(m);
        CHECK_MSG(j != NULL && strcmp(jstr(j, "finish_reason", NULL), "cancelled") == 0,
                  "running q1 not cancelled: %s", m ? m->payload : "(none)");
        CHECK(jnum(j, "usage", "completion_tokens") > 0 &&
              jnum(j, "usage", "completion_tokens") < 5000000);
        cJSON_Delete(j);
        usleep(500000);
        CHECK_MSG(count_msgs(c, "edgelm/a/response/q1", "\"type\"") == 1,
                  "q1 answered more than once");
        CHECK(count_msgs(c, "edgelm/a/response/q2", "\"type\"") == 1);
        /* a finished id sent again gets the same result again, without running */
        request(c, "a", "\"prompt\":\"Hello\",\"max_tokens\":200,\"stream\":true", "s1");
        msg *again = wait_final(c, "a", "s1", WAIT_MS);
        msg *first = NULL;
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->n && first == NULL; i++) {
            if (strcmp(c->msgs[i].topic, "edgelm/a/response/s1") == 0) {
                first = &c->msgs[i];
            }
        }
        pthread_mutex_unlock(&c->lock);
        CHECK_MSG(again != NULL && first != NULL && again != first &&
                      strcmp(again->payload, first->payload) == 0,
                  "duplicate s1 did not get the same result");
        CHECK(count_msgs(c, "edgelm/a/response/s1/stream", NULL) <= 200);
    }

    /* 6. deadlines: while running (result, finish deadline) and while queued (error) */
    {
        char fields[400];
        snprintf(fields, sizeof fields, "%s,\"deadline_ms\":1500", long_fields);
        request(c, "a", fields, "d1");
        CHECK(wait_first_chunk(c, "a", "d1"));
        snprintf(fields, sizeof fields, "%s,\"deadline_ms\":300", long_fields);
        request(c, "a", fields, "d2"); /* queued behind d1; expires there */
        msg *m = wait_final(c, "a", "d2", WAIT_MS);
        CHECK_MSG(m != NULL && strstr(m->payload, "\"deadline\"") != NULL &&
                      strstr(m->payload, "\"type\":\"error\"") != NULL,
                  "queued d2: %s", m ? m->payload : "(none)");
        m = wait_final(c, "a", "d1", WAIT_MS);
        cJSON *j = parse(m);
        CHECK_MSG(j != NULL && strcmp(jstr(j, "finish_reason", NULL), "deadline") == 0,
                  "running d1: %s", m ? m->payload : "(none)");
        CHECK(jnum(j, "usage", "completion_tokens") > 0);
        cJSON_Delete(j);
    }

    /* 7. health, metrics (tokens/s > 0) and Home Assistant discovery (re-sent on HA online) */
    {
        CHECK(wait_msg(c, "edgelm/a/health", "\"state\":\"idle\"", NULL, WAIT_MS) != NULL);
        /* metrics come every second: take them until one reflects the requests above */
        cJSON *j = NULL;
        for (double until = test_now_ms() + WAIT_MS; j == NULL && test_now_ms() < until;) {
            msg *m = wait_msg(c, "edgelm/a/metrics", "\"requests_total\"", NULL, WAIT_MS);
            j = parse(m);
            if (j != NULL && (jnum(j, "requests_total", "cancelled") < 2 ||
                              jnum(j, "requests_total", "ok") < 3)) {
                cJSON_Delete(j);
                j = NULL;
            }
        }
        msg *m = NULL;
        CHECK(j != NULL && jnum(j, "predicted_tokens_per_second", NULL) > 0);
        CHECK(j != NULL && jnum(j, "tokens_predicted_total", NULL) > 200);
        CHECK(j != NULL && jnum(j, "requests_total", "ok") >= 3);
        CHECK(j != NULL && jnum(j, "requests_total", "cancelled") >= 2);
        CHECK(j != NULL && jnum(j, "requests_total", "rejected") >= 5);
        CHECK(j != NULL && jnum(j, "rss_bytes", NULL) > 0);
        cJSON_Delete(j);
        sub(c, "homeassistant/device/a/config");
        m = wait_msg(c, "homeassistant/device/a/config", NULL, NULL, WAIT_MS);
        j = parse(m);
        CHECK_MSG(j != NULL, "no discovery document");
        CHECK(strcmp(jstr(j, "device", "identifiers"), "edgelm_a") == 0);
        CHECK(strcmp(jstr(j, "availability_topic", NULL), "edgelm/a/status") == 0);
        CHECK(strcmp(jstr(j, "origin", "name"), "edgelmd") == 0);
        cJSON *cmps = cJSON_GetObjectItem(j, "components");
        CHECK(cJSON_GetArraySize(cmps) == 7);
        const char *keys[] = {"online",
                              "tokens_per_second",
                              "prompt_tokens_per_second",
                              "queue_depth",
                              "busy",
                              "requests_total",
                              "last_error"};
        for (size_t i = 0; i < 7; i++) {
            char k[64];
            snprintf(k, sizeof k, "edgelm_a_%s", keys[i]);
            const cJSON *comp = cJSON_GetObjectItem(cmps, k);
            CHECK_MSG(comp != NULL && jstr(comp, "platform", NULL)[0] != '\0' &&
                          jstr(comp, "state_topic", NULL)[0] != '\0',
                      "discovery component %s", k);
        }
        cJSON_Delete(j);
        pub(c, "homeassistant/status", "online");
        CHECK_MSG(wait_msg(c, "homeassistant/device/a/config", "edgelm_a", NULL, WAIT_MS) != NULL,
                  "discovery not re-sent when Home Assistant came online");
    }

    /* 8. SIGHUP reloads limits (max_prompt_tokens 64 -> 2) */
    {
        write_node_conf(&a, b.port, model, 1, 2);
        kill(a.pid, SIGHUP);
        usleep(500000);
        const char *id =
            request(c, "a", "\"prompt\":\"one two three four\",\"max_tokens\":2", "hup1");
        msg *m = wait_final(c, "a", id, WAIT_MS);
        CHECK_MSG(m != NULL && strstr(m->payload, "too_large") != NULL, "SIGHUP: %s",
                  m ? m->payload : "(none)");
        write_node_conf(&a, b.port, model, 1, 64);
        kill(a.pid, SIGHUP);
        usleep(500000);
    }

    /* 9. two fleet nodes on the shared subscription answer N requests exactly once */
    node f1 = {.id = "f1"}, f2 = {.id = "f2"};
    bool fleet_up =
        node_start(&f1, c, b.port, model, 8, true) && node_start(&f2, c, b.port, model, 8, true);
    if (fleet_up) {
        enum { N = 8 };
        for (int i = 0; i < N; i++) {
            char payload[256];
            snprintf(payload, sizeof payload,
                     "{\"v\":1,\"id\":\"fl%d\",\"prompt\":\"Hi\",\"max_tokens\":8,"
                     "\"reply_to\":\"test/fleet/fl%d\"}",
                     i, i);
            pub(c, "edgelm/fleet/request", payload);
        }
        int by_f1 = 0, by_f2 = 0;
        for (int i = 0; i < N; i++) {
            char topic[64];
            snprintf(topic, sizeof topic, "test/fleet/fl%d", i);
            msg *m = wait_msg(c, topic, "\"type\":\"result\"", NULL, WAIT_MS);
            CHECK_MSG(m != NULL, "fleet request fl%d unanswered", i);
            by_f1 += m != NULL && strstr(m->payload, "\"node\":\"f1\"") != NULL;
            by_f2 += m != NULL && strstr(m->payload, "\"node\":\"f2\"") != NULL;
        }
        usleep(1000000);
        for (int i = 0; i < N; i++) {
            char topic[64];
            snprintf(topic, sizeof topic, "test/fleet/fl%d", i);
            CHECK_MSG(count_msgs(c, topic, NULL) == 1, "fleet request fl%d answered %d times", i,
                      count_msgs(c, topic, NULL));
        }
        CHECK_MSG(by_f1 + by_f2 == N && by_f1 > 0 && by_f2 > 0,
                  "fleet split f1=%d f2=%d (node a must not take fleet work)", by_f1, by_f2);
        fprintf(stderr, "fleet: f1 answered %d, f2 answered %d\n", by_f1, by_f2);
        node_stop(&f1, c);
        /* 10. kill -9 -> the broker publishes the Will: offline */
        kill(f2.pid, SIGKILL);
        wait_exit(f2.pid, WAIT_MS);
        CHECK_MSG(wait_msg(c, "edgelm/f2/status", "offline", NULL, WAIT_MS) != NULL,
                  "no Last Will after kill -9");
    }

    /* 11. broker killed and restarted mid-generation: the final result still arrives */
    {
        broker b2;
        CHECK(broker_create(&b2, "broker2"));
        client *w = client_new(b2.port, "tester-restart", 5, false); /* persistent session */
        node r = {.id = "r"};
        if (w != NULL && node_start(&r, w, b2.port, model, 1, false)) {
            sub(w, "edgelm/r/response/#");
            usleep(1500000); /* let the broker autosave the subscriptions */
            char fields[256];
            snprintf(fields, sizeof fields, "\"prompt\":\"Once\",\"max_tokens\":%d,\"stream\":true",
                     long_tokens);
            request(w, "r", fields, "rs1");
            CHECK(wait_first_chunk(w, "r", "rs1"));
            kill(b2.pid, SIGKILL);
            wait_exit(b2.pid, WAIT_MS);
            /* keep the broker down until the node has finished: its result must wait in the
             * node's buffer and go out after the reconnect */
            bool finished = false;
            for (double until = test_now_ms() + WAIT_MS; !finished && test_now_ms() < until;) {
                size_t n = 0;
                unsigned char *log = test_read_file(r.log, &n);
                finished = log != NULL && strstr((const char *)log, "request rs1: length") != NULL;
                free(log);
                usleep(100000);
            }
            CHECK_MSG(finished, "rs1 did not finish while the broker was down (%s)", r.log);
            CHECK(broker_start(&b2));
            /* the test client reconnects to its persistent session */
            bool back = false;
            for (int i = 0; i < 100 && !back; i++) {
                back = client_connect(w, false);
                if (!back) {
                    usleep(100000);
                }
            }
            CHECK_MSG(back, "test client could not reconnect");
            sub(w, "edgelm/r/response/#"); /* a no-op when the broker kept the session */
            sub(w, "edgelm/r/status");
            msg *m = wait_final(w, "r", "rs1", WAIT_MS * 2);
            cJSON *j = parse(m);
            CHECK_MSG(j != NULL && strcmp(jstr(j, "type", NULL), "result") == 0 &&
                          jnum(j, "usage", "completion_tokens") == long_tokens,
                      "result after broker restart: %s", m ? m->payload : "(none)");
            cJSON_Delete(j);
            node_stop(&r, w);
        }
        client_free(w);
        kill(b2.pid, SIGTERM);
        wait_exit(b2.pid, WAIT_MS);
    }

    /* SIGTERM with a request running: it finishes (grace), queued ones get an error, exit 0 */
    {
        char fields[256];
        snprintf(fields, sizeof fields, "\"prompt\":\"Once\",\"max_tokens\":%d,\"stream\":true",
                 long_tokens);
        request(c, "a", fields, "end1");
        CHECK(wait_first_chunk(c, "a", "end1"));
        request(c, "a", "\"prompt\":\"Once\",\"max_tokens\":300", "end2");
        usleep(200000);
        node_stop(&a, c);
        msg *m = wait_final(c, "a", "end1", WAIT_MS);
        CHECK_MSG(m != NULL && strstr(m->payload, "\"finish_reason\":\"length\"") != NULL,
                  "running request during SIGTERM: %s", m ? m->payload : "(none)");
        m = wait_final(c, "a", "end2", WAIT_MS);
        CHECK_MSG(m != NULL && strstr(m->payload, "\"type\":\"error\"") != NULL,
                  "queued request during SIGTERM: %s", m ? m->payload : "(none)");
    }

    client_free(c);
    kill(b.pid, SIGTERM);
    wait_exit(b.pid, WAIT_MS);
    return test_finish("test_service_mqtt", skipped);
}
