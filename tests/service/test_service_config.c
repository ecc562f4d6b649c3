/* test_service_config.c - edgelmd's configuration module: the shipped config/edgelm.conf loads
 * and names every option; each kind of mistake is refused with "file:line" and the option's
 * name; the printed effective configuration reads back to the same values.
 */
#include "config.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

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
    strcpy(def.source, c.source);
    CHECK_MSG(memcmp(&def, &c, sizeof c) == 0, "config/edgelm.conf differs from the defaults");

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
        CHECK(!config_finish(&c, err, sizeof err) && strstr(err, "node id") != NULL);
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
            strcpy(c.source, back.source);
            CHECK_MSG(memcmp(&back, &c, sizeof c) == 0, "printed config does not read back");
        }
    }
    return test_finish("test_service_config", 0);
}
