/* fuzz_replay_main.c - replays fuzz corpora without libFuzzer: main() calls LLVMFuzzerInitialize
 * once, then LLVMFuzzerTestOneInput on every regular file of each directory argument (in name
 * order, so a failure is reproducible) and on each file argument. Linked with one fuzz target into
 * fuzz_<surface>_replay, which ctest runs over tests/fuzz/corpus/<surface> in every build (the
 * sanitizer build included). Exit 0 when every input ran; a crashing input aborts (its name is
 * printed first); 1 when an argument cannot be read or a directory holds no input.
 */
#include "fuzz_target.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Read a whole file; caller frees. NULL on error (message on stderr). A zero-byte file gives a
 * 1-byte allocation and *size 0. */
static uint8_t *read_whole_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return NULL;
    }
    size_t cap = 4096, used = 0;
    uint8_t *buf = malloc(cap);
    while (buf != NULL) {
        used += fread(buf + used, 1, cap - used, f);
        if (used < cap) {
            break;
        }
        uint8_t *bigger = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
        if (bigger == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    if (buf == NULL || ferror(f)) {
        fprintf(stderr, "%s: read failed\n", path);
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = used;
    return buf;
}

static int run_one(const char *path) {
    size_t size = 0;
    uint8_t *data = read_whole_file(path, &size);
    if (data == NULL) {
        return 1;
    }
    /* the name first, so that a crash report below says which input it was */
    fprintf(stderr, "replay %s (%zu bytes)\n", path, size);
    /* a copy of exactly size bytes, so ASan sees any read past the end of the input */
    uint8_t *exact = malloc(size > 0 ? size : 1);
    if (exact == NULL) {
        free(data);
        return 1;
    }
    memcpy(exact, data, size);
    free(data);
    LLVMFuzzerTestOneInput(exact, size);
    free(exact);
    return 0;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of dir (hidden files skipped) in name order; *n_run counts them. */
static int run_directory(const char *dir, size_t *n_run) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        perror(dir);
        return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int status = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        if (n == cap) {
            size_t new_cap = cap ? cap * 2 : 64;
            char **grown = realloc(names, new_cap * sizeof *grown);
            if (grown == NULL) {
                status = 1;
                break;
            }
            names = grown;
            cap = new_cap;
        }
        size_t len = strlen(dir) + 1 + strlen(e->d_name) + 1;
        names[n] = malloc(len);
        if (names[n] == NULL) {
            status = 1;
            break;
        }
        snprintf(names[n], len, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n > 0) {
        qsort(names, n, sizeof *names, compare_names);
    }
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (status == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
            status = run_one(names[i]);
            (*n_run)++;
        }
        free(names[i]);
    }
    free(names);
    return status;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 1;
    }
    LLVMFuzzerInitialize(&argc, &argv);
    size_t n_run = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        int status;
        if (S_ISDIR(st.st_mode)) {
            size_t before = n_run;
            status = run_directory(argv[i], &n_run);
            if (status == 0 && n_run == before) {
                fprintf(stderr, "%s: no input files\n", argv[i]);
                status = 1;
            }
        } else {
            status = run_one(argv[i]);
            n_run++;
        }
        if (status != 0) {
            return status;
        }
    }
    printf("%s: replayed %zu inputs, no failure\n", argv[0], n_run);
    return 0;
}
