/* fuzz_config.c - libFuzzer target for edgelmd's config loader (service/config.c): the input is
 * a whole libconfig file, written to a scratch file and read with config_load_file over the
 * defaults, then config_finish and config_print (to /dev/null). A refusal must come with a
 * message; an accepted file must leave every string NUL-terminated within its field.
 */
#include "config.h"
#include "fuzz_support.h"
#include "fuzz_target.h"

#include <stdio.h>
#include <string.h>

static FILE *null_output;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    null_output = fopen("/dev/null", "w");
    FUZZ_CHECK(null_output != NULL, "cannot open /dev/null");
    return 0;
}

#define CHECK_STRING(c, field)                                                                     \
    FUZZ_CHECK(memchr((c)->field, '\0', sizeof(c)->field) != NULL, "%s is not terminated", #field)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static svc_config config; /* 10 KB: not on the fuzzer's stack */
    char err[512];
    config_defaults(&config);
    err[0] = '\0';
    if (!config_load_file(&config, fuzz_scratch_write(data, size), err, sizeof err)) {
        FUZZ_CHECK(err[0] != '\0', "refused without a message");
        return 0;
    }
    err[0] = '\0';
    if (!config_finish(&config, err, sizeof err)) {
        FUZZ_CHECK(err[0] != '\0', "config_finish refused without a message");
        return 0;
    }
    CHECK_STRING(&config, broker);
    CHECK_STRING(&config, client_id);
    CHECK_STRING(&config, node_id);
    CHECK_STRING(&config, topic_prefix);
    CHECK_STRING(&config, model_path);
    CHECK_STRING(&config, fleet_group);
    CHECK_STRING(&config, ha_prefix);
    FUZZ_CHECK(config.limits.max_payload_bytes > 0 && config.limits.queue_depth >= 0,
               "limits out of range");
    config_print(&config, null_output);
    return 0;
}
