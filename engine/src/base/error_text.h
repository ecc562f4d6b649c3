/* error_text.h - the "<where>: <why>" messages the readers write for the caller (a GGUF offset,
 * a schema offset, a model path): one place that cuts them to the caller's buffer. No engine
 * knowledge: the bottom layer.
 */
#ifndef EDGELM_ERROR_TEXT_H
#define EDGELM_ERROR_TEXT_H

#include <stdarg.h>
#include <stddef.h>

/* Write "<where>: " and then fmt's text into err[0..err_size), cut to fit and NUL-terminated;
 * nothing when err is NULL or err_size is 0. */
void error_text_vformat(char *err, size_t err_size, const char *where, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* Where a function that reports into (err, *err_size) writes: err, or scratch (scratch_size
 * bytes, *err_size updated) when the caller passed none (NULL or size 0), so later writes need no
 * checks. The text starts empty. */
char *error_text_target(char *err, size_t *err_size, char *scratch, size_t scratch_size);

#endif /* EDGELM_ERROR_TEXT_H */
