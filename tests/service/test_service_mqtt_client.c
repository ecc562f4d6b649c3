/* test_service_mqtt_client.c - edgelmd's MQTT client says in words why it cannot connect: a real
 * mosquitto with a TLS listener (certificates made here with the openssl tool) and a password
 * listener; edgelmd is pointed at each with a mistake (a CA that did not sign the broker's
 * certificate, a plaintext port behind ssl://, a wrong password over MQTT 5 and 3.1.1, a port
 * nobody listens on) and its log must name the cause, not just "error -1" or "reason 135".
 * Skipped (loudly) when mosquitto or openssl is missing.
 */
#define _DEFAULT_SOURCE 1
#include "service_harness.h"
#include "test_util.h"

#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

static bool run_shell(const char *command) {
    int rc = system(command);
    CHECK_MSG(rc == 0, "'%s' failed (%d)", command, rc);
    return rc == 0;
}

/* A test CA, a broker certificate it signed for 127.0.0.1, and an unrelated CA. */
static bool make_certificates(void) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && "
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 "
             "-subj /CN=edgelm-test-ca >/dev/null 2>&1 && "
             "openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr "
             "-subj /CN=127.0.0.1 >/dev/null 2>&1 && "
             "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && "
             "openssl x509 -req -in broker.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-out broker.crt -days 30 -extfile san.ext >/dev/null 2>&1 && "
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other-ca.crt "
             "-days 30 -subj /CN=other-ca >/dev/null 2>&1 && "
             "mosquitto_passwd -c -b passwords user secret >/dev/null 2>&1",
             dir);
    return run_shell(cmd);
}

/* Run edgelmd with the given mqtt settings until its log says it cannot connect; then check the
 * reason's words. */
static void expect_connect_error(const char *name, const char *mqtt_settings, const char *model,
                                 const char *want1, const char *want2) {
    char conf[700], log[700];
    snprintf(conf, sizeof conf, "%s/%s.conf", dir, name);
    snprintf(log, sizeof log, "%s/%s.log", dir, name);
    FILE *f = fopen(conf, "w");
    CHECK(f != NULL);
    if (f == NULL) {
        return;
    }
    fprintf(f, "mqtt = { %s };\nnode = { id = \"%s\"; };\nmodel = { path = \"%s\"; };\n",
            mqtt_settings, name, model);
    fclose(f);
    char *argv[] = {(char *)edgelmd_path(), "--config", conf, NULL};
    pid_t pid = process_spawn(argv, log);
    char *line = NULL;
    for (double until = test_now_ms() + WAIT_MS; line == NULL && test_now_ms() < until;) {
        usleep(100000);
        size_t n = 0;
        char *text = (char *)test_read_file(log, &n);
        const char *at = text != NULL ? strstr(text, "cannot connect to") : NULL;
        if (at != NULL) {
            line = strndup(at, strcspn(at, "\n"));
        }
        free(text);
    }
    kill(pid, SIGTERM);
    process_wait_exit(pid, WAIT_MS);
    CHECK_MSG(line != NULL, "%s: no connect failure logged (%s)", name, log);
    if (line != NULL) {
        fprintf(stderr, "%s: %s\n", name, line);
        CHECK_MSG(strstr(line, want1) != NULL && (want2 == NULL || strstr(line, want2) != NULL),
                  "%s: the log line does not say '%s'%s%s: %s", name, want1,
                  want2 != NULL ? " and " : "", want2 != NULL ? want2 : "", line);
    }
    free(line);
}

int main(void) {
    const char *mosquitto = find_mosquitto();
    if (mosquitto == NULL) {
        test_skip("mosquitto is not installed (Debian: apt-get install mosquitto)");
    }
    if (system("openssl version >/dev/null 2>&1") != 0 ||
        system("command -v mosquitto_passwd >/dev/null 2>&1") != 0) {
        test_skip("openssl or mosquitto_passwd missing (Debian: openssl, mosquitto)");
    }
    if (access(edgelmd_path(), X_OK) != 0) {
        test_skip("edgelmd binary not found ($EDGELMD)");
    }
    atexit(process_kill_all);
    snprintf(dir, sizeof dir, "%s", test_temp_dir());
    char model[700];
    snprintf(model, sizeof model, "%s/tiny.gguf", dir);
    CHECK_MSG(make_endless_model(model), "cannot make the test model");
    if (!make_certificates()) {
        return test_finish("test_service_mqtt_client", 0);
    }
    broker b;
    b.port = free_port();
    const int tls_port = free_port(), closed_port = free_port();
    snprintf(b.conf, sizeof b.conf, "%s/tls-broker.conf", dir);
    snprintf(b.log, sizeof b.log, "%s/tls-broker.log", dir);
    /* as root, mosquitto would switch to the user "mosquitto", who cannot read our temp dir */
    const struct passwd *pw = getpwuid(geteuid());
    FILE *f = fopen(b.conf, "w");
    CHECK(f != NULL);
    if (f == NULL) {
        return test_finish("test_service_mqtt_client", 0);
    }
    /* b.port: passwords; tls_port: TLS with the test CA's certificate */
    fprintf(f,
            "per_listener_settings true\n"
            "listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s/passwords\n"
            "listener %d 127.0.0.1\nallow_anonymous true\ncafile %s/ca.crt\n"
            "certfile %s/broker.crt\nkeyfile %s/broker.key\n"
            "log_type error\nuser %s\n",
            b.port, dir, tls_port, dir, dir, dir, pw != NULL ? pw->pw_name : "root");
    fclose(f);
    CHECK_MSG(broker_start(&b), "mosquitto did not start (%s)", b.log);
    for (int i = 0; i < 100 && !port_open(tls_port); i++) {
        usleep(20000);
    }

    char settings[1024];
    snprintf(settings, sizeof settings,
             "broker = \"ssl://127.0.0.1:%d\"; tls = { ca_file = \"%s/other-ca.crt\"; };", tls_port,
             dir);
    expect_connect_error("wrong-ca", settings, model, "certificate verify failed", "tls.ca_file");
    snprintf(settings, sizeof settings,
             "broker = \"ssl://127.0.0.1:%d\"; tls = { ca_file = \"%s/ca.crt\"; };", b.port, dir);
    expect_connect_error("plaintext-port", settings, model, "plaintext listener", "tcp://");
    snprintf(settings, sizeof settings,
             "broker = \"tcp://127.0.0.1:%d\"; username = \"user\"; password = \"wrong\";", b.port);
    expect_connect_error("wrong-password-5", settings, model, "refused the connection",
                         "mqtt.password");
    snprintf(settings, sizeof settings,
             "broker = \"tcp://127.0.0.1:%d\"; version = \"3.1.1\"; username = \"user\"; "
             "password = \"wrong\";",
             b.port);
    expect_connect_error("wrong-password-311", settings, model, "refused the connection",
                         "mqtt.password");
    snprintf(settings, sizeof settings, "broker = \"tcp://127.0.0.1:%d\";", closed_port);
    expect_connect_error("nobody-listening", settings, model, "Connection refused", NULL);

    /* and the right settings connect */
    snprintf(settings, sizeof settings,
             "broker = \"ssl://127.0.0.1:%d\"; tls = { ca_file = \"%s/ca.crt\"; };", tls_port, dir);
    char conf[700], log[700];
    snprintf(conf, sizeof conf, "%s/right.conf", dir);
    snprintf(log, sizeof log, "%s/right.log", dir);
    f = fopen(conf, "w");
    if (f != NULL) {
        fprintf(f, "mqtt = { %s };\nnode = { id = \"right\"; };\nmodel = { path = \"%s\"; };\n",
                settings, model);
        fclose(f);
    }
    char *argv[] = {(char *)edgelmd_path(), "--config", conf, NULL};
    pid_t pid = process_spawn(argv, log);
    bool connected = false;
    for (double until = test_now_ms() + WAIT_MS; !connected && test_now_ms() < until;) {
        usleep(100000);
        size_t n = 0;
        char *text = (char *)test_read_file(log, &n);
        connected = text != NULL && strstr(text, "mqtt: connected") != NULL;
        free(text);
    }
    CHECK_MSG(connected, "edgelmd did not connect over TLS with the right CA (%s)", log);
    kill(pid, SIGTERM);
    CHECK(process_wait_exit(pid, WAIT_MS) == 0);
    kill(b.pid, SIGTERM);
    process_wait_exit(b.pid, WAIT_MS);
    return test_finish("test_service_mqtt_client", 0);
}
