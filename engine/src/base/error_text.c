/* error_text.c - see error_text.h. */
#include "error_text.h"

#include <stdio.h>

void error_text_vformat(char *err, size_t err_size, const char *where, const char *fmt,
                        va_list ap) {
    if (err == NULL || err_size == 0) {
        return;
    }
    int n = snprintf(err, err_size, "%s: ", where);
    if (n >= 0 && (size_t)n < err_size) {
        vsnprintf(err + n, err_size - (size_t)n, fmt, ap);
    }
}

char *error_text_target(char *err, size_t *err_size, char *scratch, size_t scratch_size) {
    if (err == NULL || *err_size == 0) {
        err = scratch;
        *err_size = scratch_size;
    }
    err[0] = '\0';
    return err;
}
