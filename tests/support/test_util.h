/* test_util.h - tiny shared helpers for the ctest binaries: checks that count failures, model
 * lookup through EDGELM_MODELS (skip loudly with exit code 77 when absent), whole-file reads and
 * writes, golden JSON loading (cJSON, a test-only dependency; the engine itself has none), the
 * fixtures under tests/data, a temporary directory, models made by edgelm-gen, a clock and a
 * scan that tells JSON strings from structure. No engine headers here (the engine-facing helpers
 * are header-only: model_fixtures.h, spm_vocab.h, json_walk.h).
 */
#ifndef EDGELM_TEST_UTIL_H
#define EDGELM_TEST_UTIL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
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
/* test_temp_dir()/name into buf; returns buf. */
const char *test_temp_path(const char *name, char *buf, size_t buf_size);
/* Write n bytes to path (created or truncated); false on any error. */
bool test_write_file(const char *path, const void *data, size_t n);
/* Entries of dir other than . and .. whose name contains `containing` (NULL: every entry); -1 when
 * dir cannot be read. */
int test_count_files(const char *dir, const char *containing);
/* The source tree ($EDGELM_SOURCE_DIR, set by ctest; else ".." for a build directory inside it). */
const char *test_source_dir(void);
/* The build tree holding edgelm and edgelm-gen ($EDGELM_BUILD_DIR; else "."). */
const char *test_build_dir(void);
/* <source>/tests/data/relative into buf; returns buf. */
const char *test_data_path(const char *relative, char *buf, size_t buf_size);
/* Parse the JSON fixture tests/data/relative: one CHECK that it loaded; NULL if not. */
cJSON *test_load_fixture(const char *relative);
/* obj's member key when it is a string (its text), else NULL. */
const char *test_json_string(const cJSON *obj, const char *key);
/* obj's member key when it is a number (its value), else NaN. */
double test_json_number(const cJSON *obj, const char *key);
/* `edgelm-gen PATH ARGS --quiet` with PATH = test_temp_dir()/name (into path): one CHECK that it
 * succeeded; false if not. */
bool test_gen_model_file(const char *name, const char *args, char *path, size_t path_size);
/* Make the malloc'd *buf (*cap bytes; NULL and 0 at first) hold at least need bytes, growing it
 * to twice need; false (buffer unchanged) when out of memory. */
bool test_reserve(char **buf, size_t *cap, size_t need);
/* Where a byte-by-byte scan of JSON text is: inside a string or not, and after a backslash. */
typedef struct test_json_scan {
    bool in_string, escape;
} test_json_scan;
/* Feed the next byte c of the text: true when it belongs to a string (its quotes included), so
 * that the structure is in the bytes for which it returns false. */
bool test_json_scan_string(test_json_scan *scan, char c);
/* A monotonic clock in milliseconds, for the timings the tests print. */
double test_now_ms(void);
/* Print the summary and return the process exit code (0 pass, 1 fail; 77 if skipped_all). */
int test_finish(const char *name, int skipped_parts);

#endif
