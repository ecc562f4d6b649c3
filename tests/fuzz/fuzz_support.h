/* fuzz_support.h - small helpers shared by the fuzz targets (not by the engine): fatal checks that
 * abort (so libFuzzer and the replay driver both report the input), the path of a fixed input in
 * <build>/tests/fuzz/data, a per-process scratch file for APIs that take a path, and a strict
 * UTF-8 check.
 */
#ifndef EDGELM_FUZZ_SUPPORT_H
#define EDGELM_FUZZ_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Abort with file:line and the message when cond is false: a broken invariant, not bad input. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                                     \
        }                                                                                          \
    } while (0)

_Noreturn void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* $EDGELM_FUZZ_DATA/name, else <build>/tests/fuzz/data/name, into buf; returns buf. */
const char *fuzz_data_path(const char *name, char *buf, size_t buf_size);

/* A file of this process under $TMPDIR (or /tmp), created on first use and removed at exit;
 * fuzz_scratch_write replaces its contents with size bytes and returns its path (aborts on I/O
 * errors: they are the machine's, not the input's). */
const char *fuzz_scratch_write(const uint8_t *data, size_t size);

/* True when n bytes at s are well-formed UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF), by RFC 3629's table. */
bool fuzz_utf8_valid(const uint8_t *s, size_t n);

/* A little-endian uint32 at p (4 readable bytes). */
static inline uint32_t fuzz_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif /* EDGELM_FUZZ_SUPPORT_H */
