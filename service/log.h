/* log.h - leveled log lines on stderr for edgelmd ("2025-01-31T12:00:00.123Z edgelmd[info]: ...").
 * The level is an atomic so SIGHUP reloads and any thread may log; each line is written with one
 * fprintf so lines from different threads never interleave. Not a file/syslog logger.
 */
#ifndef EDGELMD_LOG_H
#define EDGELMD_LOG_H

#include <stdbool.h>

typedef enum log_level {
    LOG_ERROR = 0,
    LOG_WARN = 1,
    LOG_INFO = 2,
    LOG_DEBUG = 3,
} log_level;

void log_set_level(log_level level);
log_level log_get_level(void);
/* "error", "warn", "info", "debug" -> level; false for anything else. */
bool log_level_parse(const char *name, log_level *out);
const char *log_level_name(log_level level);

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void log_msg(log_level level, const char *fmt, ...);

#endif
