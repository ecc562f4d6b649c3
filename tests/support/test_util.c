/* test_util.c - see test_util.h. */
#include "test_util.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int test_failures = 0;
int test_checks = 0;

const char *test_models_dir(void) {
    const char *dir = getenv("EDGELM_MODELS");
    if (dir == NULL || dir[0] == '\0') {
        dir = getenv("EDGELM_MODELS_DEFAULT");
    }
    if (dir == NULL || dir[0] == '\0') {
        dir = "../shared/models";
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return NULL;
    }
    return dir;
}

int test_model_path(const char *relative, char *buf, size_t buf_size) {
    const char *dir = test_models_dir();
    if (dir == NULL) {
        fprintf(stderr, "*** SKIPPED: models directory not found (set EDGELM_MODELS); needs %s\n",
                relative);
        return 0;
    }
    int n = snprintf(buf, buf_size, "%s/%s", dir, relative);
    if (n < 0 || (size_t)n >= buf_size) {
        return 0;
    }
    if (access(buf, R_OK) != 0) {
        fprintf(stderr, "*** SKIPPED: model file %s is absent\n", buf);
        return 0;
    }
    return 1;
}

void test_skip(const char *why) {
    fprintf(stderr, "*** SKIPPED: %s\n", why);
    exit(TEST_SKIP_CODE);
}

unsigned char *test_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    unsigned char *data = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            unsigned char *grown = realloc(data, cap + 1);
            if (grown == NULL) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = grown;
        }
        size_t got = fread(data + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            break;
        }
    }
    fclose(f);
    data[len] = 0;
    *size = len;
    return data;
}

cJSON *test_load_json(const char *path) {
    size_t size = 0;
    unsigned char *data = test_read_file(path, &size);
    if (data == NULL) {
        fprintf(stderr, "cannot read %s\n", path);
        return NULL;
    }
    cJSON *json = cJSON_ParseWithLength((const char *)data, size);
    if (json == NULL) {
        fprintf(stderr, "%s: invalid JSON\n", path);
    }
    free(data);
    return json;
}

static char temp_dir[512];

/* Tests leave nothing behind in /tmp unless EDGELM_KEEP_TEST_FILES is set. */
static void remove_temp_dir(void) {
    const char *keep = getenv("EDGELM_KEEP_TEST_FILES");
    if (temp_dir[0] != '\0' && (keep == NULL || keep[0] == '\0')) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", temp_dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "warning: could not remove %s\n", temp_dir);
        }
    }
}

const char *test_temp_dir(void) {
    char *dir = temp_dir;
    if (dir[0] != '\0') {
        return dir;
    }
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    snprintf(temp_dir, sizeof temp_dir, "%s/edgelm-test-XXXXXX", base);
    if (mkdtemp(temp_dir) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    atexit(remove_temp_dir);
    return dir;
}

const char *test_temp_path(const char *name, char *buf, size_t buf_size) {
    snprintf(buf, buf_size, "%s/%s", test_temp_dir(), name);
    return buf;
}

bool test_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        return false;
    }
    bool ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

int test_count_files(const char *dir, const char *containing) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        return -1;
    }
    int n = 0;
    for (const struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            (containing == NULL || strstr(e->d_name, containing) != NULL)) {
            n++;
        }
    }
    closedir(d);
    return n;
}

const char *test_source_dir(void) {
    const char *dir = getenv("EDGELM_SOURCE_DIR");
    return dir != NULL && dir[0] != '\0' ? dir : "..";
}

const char *test_build_dir(void) {
    const char *dir = getenv("EDGELM_BUILD_DIR");
    return dir != NULL && dir[0] != '\0' ? dir : ".";
}

const char *test_data_path(const char *relative, char *buf, size_t buf_size) {
    snprintf(buf, buf_size, "%s/tests/data/%s", test_source_dir(), relative);
    return buf;
}

cJSON *test_load_fixture(const char *relative) {
    char path[1024];
    cJSON *doc = test_load_json(test_data_path(relative, path, sizeof path));
    CHECK_MSG(doc != NULL, "fixture %s", path);
    return doc;
}

const char *test_json_string(const cJSON *obj, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

double test_json_number(const cJSON *obj, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(item) ? item->valuedouble : (double)NAN;
}

bool test_reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) {
        return true;
    }
    char *grown = realloc(*buf, need * 2);
    if (grown == NULL) {
        return false;
    }
    *buf = grown;
    *cap = need * 2;
    return true;
}

bool test_json_scan_string(test_json_scan *scan, char c) {
    if (scan->in_string) {
        if (scan->escape) {
            scan->escape = false;
        } else if (c == '\\') {
            scan->escape = true;
        } else if (c == '"') {
            scan->in_string = false;
        }
        return true;
    }
    scan->in_string = c == '"';
    return scan->in_string;
}

bool test_gen_model_file(const char *name, const char *args, char *path, size_t path_size) {
    test_temp_path(name, path, path_size);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s/edgelm-gen' '%s' %s --quiet", test_build_dir(), path, args);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s failed (%d)", cmd, rc);
    return rc == 0;
}

double test_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int test_finish(const char *name, int skipped_parts) {
    if (test_failures > 0) {
        fprintf(stderr, "%s: FAILED %d of %d checks\n", name, test_failures, test_checks);
        return 1;
    }
    if (skipped_parts > 0 && test_checks == 0) {
        fprintf(stderr, "%s: SKIPPED (nothing could run)\n", name);
        return TEST_SKIP_CODE;
    }
    fprintf(stderr, "%s: %d checks passed%s\n", name, test_checks,
            skipped_parts > 0 ? " (some parts SKIPPED, see above)" : "");
    return 0;
}
