/* test_service_config.c - edgelmd's configuration module: the shipped config/edgelm.conf loads
 * and names every option; every file under tests/data/config/bad/ is refused with "file:line"
 * and the text its first line expects, every file under good/ loads; the printed effective
 * configuration reads back to the same values; and `edgelmd --check-config` refuses a missing
 * model, a file that is not a model and a missing TLS file (exit 1), and passes a good one.
 * Where libconfig versions differ (1.5: Debian 12; 1.7: Debian 13, our riscv64 build), what the
 * library linked here does is probed at run time and the expectation follows it.
 */
#include "config.h"
#include "test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <libconfig.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* a and b hold the same values, wherever each came from. */
static bool same_values(const svc_config *a, const svc_config *b) {
    svc_config a_copy = *a;
    memcpy(a_copy.source, b->source, sizeof a_copy.source);
    memcpy(a_copy.origin, b->origin, sizeof a_copy.origin);
    return memcmp(&a_copy, b, sizeof a_copy) == 0;
}

static const char *write_temp(const char *name, const char *text) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", test_temp_dir(), name);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return NULL;
    }
    fputs(text, f);
    fclose(f);
    return path;
}

/* Load text; expect failure whose message contains every needle. */
static void expect_error(const char *text, const char *needle1, const char *needle2) {
    svc_config c;
    config_defaults(&c);
    const char *path = write_temp("bad.conf", text);
    char err[512] = "";
    bool ok = config_load_file(&c, path, err, sizeof err);
    CHECK_MSG(!ok, "accepted: %s", text);
    CHECK_MSG(strstr(err, needle1) != NULL, "error '%s' lacks '%s'", err, needle1);
    if (needle2 != NULL) {
        CHECK_MSG(strstr(err, needle2) != NULL, "error '%s' lacks '%s'", err, needle2);
    }
}

/* ---- what this libconfig does ---------------------------------------------------------------- */

/* How the libconfig linked here reads `x = literal;`: true and the value, false when it refuses
 * the literal. */
static bool libconfig_reads(const char *literal, long long *value) {
    char text[128];
    snprintf(text, sizeof text, "x = %s;\n", literal);
    config_t cf;
    config_init(&cf);
    bool ok = config_read_string(&cf, text) == CONFIG_TRUE;
    const config_setting_t *s = ok ? config_lookup(&cf, "x") : NULL;
    ok = s != NULL;
    *value = ok ? config_setting_get_int64(s) : 0;
    config_destroy(&cf);
    return ok;
}

/* libconfig 1.7 refuses a literal beyond 64 bits as a syntax error (1.5 saturates it, and
 * edgelmd then names the option and its range); it is the version the "# expect with libconfig
 * 1.7: " lines of the fixtures are for. */
static bool is_libconfig_1_7(void) {
    long long v;
    return !libconfig_reads("99999999999999999999", &v);
}

/* ---- the fixture directories ----------------------------------------------------------------- */

#define EXPECT_PREFIX "# expect: "
#define EXPECT_1_7_PREFIX "# expect with libconfig 1.7: "

static int is_conf_file(const struct dirent *e) {
    size_t n = strlen(e->d_name);
    return n > 5 && strcmp(e->d_name + n - 5, ".conf") == 0;
}

/* The text after "# expect: " on path's first line into buf; false when the line lacks it. With
 * libconfig 1.7, the text after "# expect with libconfig 1.7: " on the second line instead, when
 * there is one. */
static bool read_expectation(const char *path, char *buf, size_t buf_size) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    char line[1024], second[1024];
    bool ok = fgets(line, sizeof line, f) != NULL &&
              strncmp(line, EXPECT_PREFIX, strlen(EXPECT_PREFIX)) == 0;
    const char *expect = line + strlen(EXPECT_PREFIX);
    if (ok && fgets(second, sizeof second, f) != NULL &&
        strncmp(second, EXPECT_1_7_PREFIX, strlen(EXPECT_1_7_PREFIX)) == 0 && is_libconfig_1_7()) {
        expect = second + strlen(EXPECT_1_7_PREFIX);
    }
    fclose(f);
    if (ok) {
        snprintf(buf, buf_size, "%.*s", (int)strcspn(expect, "\n"), expect);
    }
    return ok;
}

/* err starts with "path:N: " for a line N >= 1. */
static bool starts_with_file_line(const char *err, const char *path) {
    size_t n = strlen(path);
    if (strncmp(err, path, n) != 0 || err[n] != ':') {
        return false;
    }
    char *end = NULL;
    long line = strtol(err + n + 1, &end, 10);
    return line >= 1 && end[0] == ':' && end[1] == ' ';
}

/* Defaults, the file, then the derived values and cross-checks: what edgelmd does at start. */
static bool load_and_finish(const char *path, svc_config *c, char *err, size_t err_size) {
    config_defaults(c);
    return config_load_file(c, path, err, err_size) && config_finish(c, err, err_size);
}

/* Every .conf file in tests/data/config/bad/ is refused with "<file>:<line>: " and the text of its
 * first line's "# expect: ". */
static void check_bad_fixtures(void) {
    char dir[1024];
    test_data_path("config/bad", dir, sizeof dir);
    struct dirent **names = NULL;
    int n = scandir(dir, &names, is_conf_file, alphasort);
    CHECK_MSG(n >= 40, "%s: %d bad configurations, expected at least 40", dir, n);
    for (int i = 0; i < n; i++) {
        char path[2048], expect[1024], err[2048] = "";
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        free(names[i]);
        if (!read_expectation(path, expect, sizeof expect)) {
            CHECK_MSG(false, "%s: the first line is not '%s...'", path, EXPECT_PREFIX);
            continue;
        }
        svc_config c;
        bool ok = load_and_finish(path, &c, err, sizeof err);
        CHECK_MSG(!ok, "%s: accepted", path);
        if (!ok) {
            CHECK_MSG(starts_with_file_line(err, path),
                      "error '%s' does not start with %s:LINE: ", err, path);
            CHECK_MSG(strstr(err, expect) != NULL, "error '%s'\n  lacks '%s'", err, expect);
        }
    }
    free(names);
}

/* Every .conf file in tests/data/config/good/ loads. */
static void check_good_fixtures(void) {
    char dir[1024];
    test_data_path("config/good", dir, sizeof dir);
    struct dirent **names = NULL;
    int n = scandir(dir, &names, is_conf_file, alphasort);
    CHECK_MSG(n >= 3, "%s: %d good configurations, expected at least 3", dir, n);
    for (int i = 0; i < n; i++) {
        char path[2048], err[2048] = "";
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        free(names[i]);
        svc_config c;
        config_defaults(&c);
        CHECK_MSG(config_load_file(&c, path, err, sizeof err), "%s", err);
    }
    free(names);
}

/* The config read from good/name (it must load) into c. */
static void load_good(const char *name, svc_config *c) {
    char rel[256], path[1024], err[2048] = "";
    snprintf(rel, sizeof rel, "config/good/%s", name);
    test_data_path(rel, path, sizeof path);
    config_defaults(c);
    CHECK_MSG(config_load_file(c, path, err, sizeof err), "%s", err);
}

/* Integer literals in every form libconfig 1.5 accepts, each read as the number its text says
 * (016: as the libconfig linked here reads it, 16 for 1.5, octal 14 for 1.7). */
static void check_integer_literals(void) {
    long long leading_zero = 0;
    CHECK(libconfig_reads("016", &leading_zero) && (leading_zero == 16 || leading_zero == 14));
    svc_config def, c;
    config_defaults(&def);
    load_good("empty.conf", &c);
    CHECK_MSG(same_values(&c, &def), "an empty file must leave the defaults");
    load_good("comments_only.conf", &c);
    CHECK_MSG(same_values(&c, &def), "a file of comments must leave the defaults");
    load_good("integer_forms.conf", &c);
    CHECK(c.keepalive_s == 60);                  /* 0x3C */
    CHECK(c.limits.queue_depth == leading_zero); /* 016 */
    CHECK(c.max_buffered == 500);                /* +500 */
    CHECK(c.session_expiry_s == INT32_MAX);      /* 2147483647 */
    CHECK(c.sampling.seed == 4294967295ll);      /* 0xFFFFFFFF: libconfig itself says -1 */
    CHECK(c.sampling.max_tokens == 5 && c.limits.max_tokens == 7); /* one line, one name */
    CHECK(c.limits.result_cache == 300);                           /* 300L */
    CHECK(c.sampling.repeat_last_n == 0);                          /* -0 */
    CHECK(c.stream_expiry_s == 20);                /* name and value on different lines */
    CHECK(c.sampling.temperature == 2.0);          /* an integer for a float */
    CHECK(c.limits.max_deadline_ms == 0x7FFFFFFF); /* 0x7FFFFFFFL */

    /* in the seed's range but not in 32 bits: libconfig wraps it (1.5 with a 64-bit long),
     * saturates it (1.5 on 32-bit ARM) or keeps 64 bits (1.7); edgelmd reads it whole each time */
    const char *path = write_temp("seed.conf", "sampling = { seed = 3000000000; };\n");
    char err[512] = "";
    config_defaults(&c);
    CHECK_MSG(config_load_file(&c, path, err, sizeof err), "%s", err);
    CHECK(c.sampling.seed == 3000000000ll);
}

/* ---- edgelmd --check-config ------------------------------------------------------------------ */

/* Run argv with stdout and stderr into files; *stderr_text (caller frees) gets stderr. Returns
 * the exit status, -1 when it could not run or died of a signal. */
static int run_program(char *const argv[], char **stderr_text) {
    char out_path[1024], err_path[1024];
    test_temp_path("run.out", out_path, sizeof out_path);
    test_temp_path("run.err", err_path, sizeof err_path);
    *stderr_text = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
            _exit(127);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        return -1;
    }
    size_t size = 0;
    *stderr_text = (char *)test_read_file(err_path, &size);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* `edgelmd --config <conf> [flag value] --check-config` exits `status` with every needle on
 * stderr. */
static void expect_check_config(const char *edgelmd, const char *conf, const char *flag,
                                const char *value, int status, const char *needle1,
                                const char *needle2) {
    char *argv[] = {(char *)edgelmd, "--config", (char *)conf, "--check-config", NULL, NULL, NULL};
    if (flag != NULL) {
        argv[4] = (char *)flag;
        argv[5] = (char *)value;
    }
    char *err = NULL;
    int rc = run_program(argv, &err);
    const char *text = err ? err : "";
    CHECK_MSG(rc == status, "%s %s: exit %d, expected %d; stderr: %s", conf, flag ? flag : "", rc,
              status, text);
    CHECK_MSG(strstr(text, needle1) != NULL, "%s: stderr '%s' lacks '%s'", conf, text, needle1);
    if (needle2 != NULL) {
        CHECK_MSG(strstr(text, needle2) != NULL, "%s: stderr '%s' lacks '%s'", conf, text, needle2);
    }
    free(err);
}

/* A config file in the temp dir; its path into path. */
static void write_conf(const char *name, const char *text, char *path, size_t path_size) {
    test_temp_path(name, path, path_size);
    CHECK_MSG(test_write_file(path, text, strlen(text)), "cannot write %s", path);
}

/* The real daemon: the files a configuration names are checked, not only its syntax. Returns 1
 * when it had to be skipped. */
static int check_edgelmd_check_config(void) {
    const char *edgelmd = getenv("EDGELMD");
    const char *gen = getenv("EDGELM_GEN");
    if (edgelmd == NULL || gen == NULL || access(edgelmd, X_OK) != 0 || access(gen, X_OK) != 0) {
        fprintf(stderr, "*** SKIPPED: edgelmd --check-config: $EDGELMD or $EDGELM_GEN missing\n");
        return 1;
    }
    char model[1024], conf[1024], text[4096], *err = NULL;
    test_temp_path("tiny.gguf", model, sizeof model);
    char *gen_argv[] = {(char *)gen, model, "--preset", "tiny", "--quiet", NULL};
    int rc = run_program(gen_argv, &err);
    CHECK_MSG(rc == 0, "edgelm-gen: exit %d: %s", rc, err ? err : "");
    free(err);

    snprintf(text, sizeof text, "node = { id = \"n1\"; };\nmodel = { path = \"%s\"; };\n", model);
    write_conf("good.conf", text, conf, sizeof conf);
    expect_check_config(edgelmd, conf, NULL, NULL, 0, "configuration OK", NULL);

    write_conf("no_model.conf",
               "node = { id = \"n1\"; };\nmodel = { path = \"/nonexistent/x.gguf\"; };\n", conf,
               sizeof conf);
    expect_check_config(edgelmd, conf, NULL, NULL, 1, "no_model.conf:2: option 'model.path'",
                        "'/nonexistent/x.gguf': No such file or directory");
    expect_check_config(edgelmd, conf, "--model", "/nonexistent/y.gguf", 1,
                        "--model: option 'model.path'",
                        "'/nonexistent/y.gguf': No such file or directory");

    write_conf("passwd.conf", "node = { id = \"n1\"; };\nmodel = { path = \"/etc/passwd\"; };\n",
               conf, sizeof conf);
    expect_check_config(edgelmd, conf, NULL, NULL, 1, "passwd.conf:2: option 'model.path'",
                        "not a GGUF");

    snprintf(text, sizeof text,
             "node = { id = \"n1\"; };\nmodel = { path = \"%s\"; };\n"
             "mqtt = {\n  broker = \"ssl://localhost:8883\";\n"
             "  tls = { ca_file = \"/nonexistent/ca.pem\"; };\n};\n",
             model);
    write_conf("no_ca.conf", text, conf, sizeof conf);
    expect_check_config(edgelmd, conf, NULL, NULL, 1, "no_ca.conf:5: option 'mqtt.tls.ca_file'",
                        "'/nonexistent/ca.pem': No such file or directory");

    snprintf(text, sizeof text,
             "node = { id = \"n1\"; };\nmodel = { path = \"%s\"; };\n"
             "mqtt = { tls = {\n  cert_file = \"%s\";\n  key_file = \"/nonexistent/key.pem\";\n"
             "}; };\n",
             model, test_temp_dir());
    write_conf("dir_cert.conf", text, conf, sizeof conf);
    expect_check_config(edgelmd, conf, NULL, NULL, 1,
                        "dir_cert.conf:4: option 'mqtt.tls.cert_file'", "Is a directory");

    if (geteuid() != 0) { /* root reads every file, so the check cannot be seen as root */
        char key[1024];
        write_conf("unreadable.pem", "-----BEGIN PRIVATE KEY-----\n", key, sizeof key);
        CHECK(chmod(key, 0) == 0);
        snprintf(text, sizeof text,
                 "node = { id = \"n1\"; };\nmodel = { path = \"%s\"; };\n"
                 "mqtt = { tls = { cert_file = \"%s\"; key_file = \"%s\"; }; };\n",
                 model, key, key);
        write_conf("unreadable.conf", text, conf, sizeof conf);
        expect_check_config(edgelmd, conf, NULL, NULL, 1,
                            "unreadable.conf:3: option 'mqtt.tls.cert_file'", "Permission denied");
    }
    return 0;
}

int main(void) {
    char shipped[1024];
    const char *src = getenv("EDGELM_SOURCE_DIR");
    snprintf(shipped, sizeof shipped, "%s/config/edgelm.conf", src ? src : ".");

    /* the shipped file: loads, equals the built-in defaults, mentions every option */
    svc_config def, c;
    config_defaults(&def);
    config_defaults(&c);
    char err[512] = "";
    CHECK_MSG(config_load_file(&c, shipped, err, sizeof err), "%s", err);
    CHECK_MSG(same_values(&c, &def), "config/edgelm.conf differs from the defaults");

    /* mistakes: file:line and the option's name */
    expect_error("mqtt = { keepalive_s = \"thirty\"; };\n", "bad.conf:1:", "mqtt.keepalive_s");
    expect_error("\n\nmqtt = {\n  keepalive_s = 1;\n};\n", "bad.conf:4:", "outside");
    expect_error("mqtt = { brokr = \"tcp://x:1\"; };\n", "unknown option 'mqtt.brokr'", NULL);
    expect_error("modle = { path = \"x\"; };\n", "unknown option 'modle'", NULL);
    expect_error("sampling = { temperature = 9.5; };\n", "sampling.temperature", "outside");
    expect_error("sampling = { temperature = \"hot\"; };\n", "sampling.temperature",
                 "expected a number");
    expect_error("log = { level = \"loud\"; };\n", "log.level", "error, warn, info, debug");
    expect_error("mqtt = { version = \"4\"; };\n", "mqtt.version", NULL);
    expect_error("fleet = { enabled = 1; };\n", "fleet.enabled", "true or false");
    expect_error("limits = { queue_depth = -1; };\n", "limits.queue_depth", NULL);
    expect_error("mqtt = { broker = \"tcp://x\" \n", "bad.conf:", NULL); /* syntax error */

    /* integers are accepted for floats; the cross-checks of config_finish */
    {
        const char *path = write_temp("ok.conf", "sampling = { temperature = 0; top_p = 1; };\n"
                                                 "model = { path = \"m.gguf\"; };\n"
                                                 "node = { id = \"kitchen\"; };\n");
        config_defaults(&c);
        CHECK_MSG(config_load_file(&c, path, err, sizeof err), "%s", err);
        CHECK(c.sampling.temperature == 0.0 && c.sampling.top_p == 1.0);
        CHECK_MSG(config_finish(&c, err, sizeof err), "%s", err);
        CHECK(strcmp(c.client_id, "edgelmd-kitchen") == 0);
        CHECK(strcmp(c.node_id, "kitchen") == 0);
    }
    {
        config_defaults(&c);
        CHECK(!config_finish(&c, err, sizeof err) && strstr(err, "model") != NULL);
        config_defaults(&c);
        strcpy(c.model_path, "m.gguf");
        strcpy(c.node_id, "a/b");
        CHECK(!config_finish(&c, err, sizeof err) && strstr(err, "option 'node.id'") != NULL);
        config_defaults(&c);
        strcpy(c.model_path, "m.gguf");
        strcpy(c.broker, "localhost:1883");
        CHECK(!config_finish(&c, err, sizeof err) && strstr(err, "mqtt.broker") != NULL);
        config_defaults(&c);
        strcpy(c.model_path, "m.gguf");
        c.sampling.max_tokens = 4096;
        CHECK(!config_finish(&c, err, sizeof err) && strstr(err, "max_tokens") != NULL);
    }

    /* --check-config output reads back to the same configuration (password masked aside) */
    {
        config_defaults(&c);
        strcpy(c.model_path, "/models/a b \"q\".gguf");
        c.sampling.temperature = 0.35;
        c.fleet_enabled = true;
        c.mqtt_version = 4;
        c.log_level = 3;
        c.sampling.seed = 4294967295ll;
        char printed[1024];
        snprintf(printed, sizeof printed, "%s/printed.conf", test_temp_dir());
        FILE *f = fopen(printed, "w");
        CHECK(f != NULL);
        if (f != NULL) {
            config_print(&c, f);
            fclose(f);
            svc_config back;
            config_defaults(&back);
            CHECK_MSG(config_load_file(&back, printed, err, sizeof err), "%s", err);
            CHECK_MSG(same_values(&back, &c), "printed config does not read back");
        }
    }
    check_bad_fixtures();
    check_good_fixtures();
    check_integer_literals();
    int skipped = check_edgelmd_check_config();
    return test_finish("test_service_config", skipped);
}
