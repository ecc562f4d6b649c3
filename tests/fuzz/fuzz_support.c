/* fuzz_support.c - see fuzz_support.h. Holds the one piece of process state the targets share:
 * the scratch file's path (created once, removed at exit).
 */
#include "fuzz_support.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef EDGELM_FUZZ_DATA_DIR
#define EDGELM_FUZZ_DATA_DIR "tests/fuzz/data"
#endif

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s:%d: fuzz check failed: %s: ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

const char *fuzz_data_path(const char *name, char *buf, size_t buf_size) {
    const char *dir = getenv("EDGELM_FUZZ_DATA");
    if (dir == NULL || dir[0] == '\0') {
        dir = EDGELM_FUZZ_DATA_DIR;
    }
    snprintf(buf, buf_size, "%s/%s", dir, name);
    return buf;
}

static char scratch_path[1024];

static void remove_scratch(void) {
    if (scratch_path[0] != '\0') {
        unlink(scratch_path);
    }
}

const char *fuzz_scratch_write(const uint8_t *data, size_t size) {
    if (scratch_path[0] == '\0') {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch_path, sizeof scratch_path, "%s/edgelm-fuzz-XXXXXX",
                 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
        int fd = mkstemp(scratch_path);
        FUZZ_CHECK(fd >= 0, "mkstemp %s failed", scratch_path);
        close(fd);
        atexit(remove_scratch);
    }
    int fd = open(scratch_path, O_WRONLY | O_TRUNC);
    FUZZ_CHECK(fd >= 0, "cannot open %s", scratch_path);
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        FUZZ_CHECK(n > 0, "write to %s failed", scratch_path);
        done += (size_t)n;
    }
    FUZZ_CHECK(close(fd) == 0, "close of %s failed", scratch_path);
    return scratch_path;
}

bool fuzz_utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            lo = c == 0xE0 ? 0xA0 : 0x80; /* no overlongs */
            hi = c == 0xED ? 0x9F : 0xBF; /* no surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF; /* at most U+10FFFF */
        } else {
            return false;
        }
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) {
            return false;
        }
        for (size_t k = 2; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
        }
        i += len;
    }
    return true;
}
