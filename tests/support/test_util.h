/* test_util.h - tiny shared helpers for the ctest binaries: checks that count failures, model
 * lookup through EDGELM_MODELS (skip loudly with exit code 77 when absent), whole-file reads and
 * golden JSON loading (cJSON, a test-only dependency; the engine itself has none).
 */
#ifndef EDGELM_TEST_UTIL_H
#define EDGELM_TEST_UTIL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>

#define TEST_SKIP_CODE 77

extern int test_failures;
extern int test_checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* Directory of the shared models: $EDGELM_MODELS, else the build's default (../shared/models).
 * NULL if it does not exist. */
const char *test_models_dir(void);
/* Full path of a file under the models dir into buf; false (and a loud SKIP line on stderr
 * naming what is missing) when the file is absent. */
int test_model_path(const char *relative, char *buf, size_t buf_size);
/* Print "SKIPPED: why" loudly and exit 77. */
void test_skip(const char *why);
/* Read a whole file; caller frees. NULL on error. */
unsigned char *test_read_file(const char *path, size_t *size);
/* Parse a JSON file with cJSON; NULL on error (message on stderr). */
cJSON *test_load_json(const char *path);
/* A fresh temporary directory for this test (under $TMPDIR or /tmp); caller need not clean. */
const char *test_temp_dir(void);
/* Print the summary and return the process exit code (0 pass, 1 fail; 77 if skipped_all). */
int test_finish(const char *name, int skipped_parts);

#endif
