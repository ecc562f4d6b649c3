/* crash_report.h - what edgelmd leaves behind when it dies of a fatal signal: one line naming the
 * signal and the faulting address, and the call stack (glibc's backtrace), on stderr, which
 * systemd puts in the journal. Then the signal is raised again with its default action, so the
 * process still dies of it (systemd's Restart=on-failure, core dumps and exit statuses are as
 * without the handler). Not installed in sanitizer builds, whose own reports are better.
 */
#ifndef EDGELMD_CRASH_REPORT_H
#define EDGELMD_CRASH_REPORT_H

#include <stdbool.h>

/* Install the handlers for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT (on an alternate stack,
 * so a stack overflow is reported too). Call once, early in main. false if sigaction failed. */
bool crash_report_install(void);

#endif
