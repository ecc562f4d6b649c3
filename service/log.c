/* log.c - leveled stderr logging for edgelmd (see log.h). One process-wide atomic level; the
 * timestamp is UTC wall time with milliseconds. Messages above the level cost one atomic load.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static atomic_int g_level = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(log_level level) { atomic_store(&g_level, (int)level); }

log_level log_get_level(void) { return (log_level)atomic_load(&g_level); }

bool log_level_parse(const char *name, log_level *out) {
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (log_level)i;
            return true;
        }
    }
    return false;
}

const char *log_level_name(log_level level) {
    return (int)level >= 0 && (int)level < 4 ? level_names[level] : "?";
}

void log_msg(log_level level, const char *fmt, ...) {
    if ((int)level > atomic_load(&g_level)) {
        return;
    }
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03dZ edgelmd[%s]: %s\n", stamp, (int)(ts.tv_nsec / 1000000),
            log_level_name(level), text);
}
