/* crash_report.c - fatal-signal report for edgelmd (see crash_report.h).
 * The handler uses only async-signal-safe calls (write, sigaction, raise) plus glibc's
 * backtrace_symbols_fd, which writes straight to the descriptor without malloc; backtrace itself
 * may load libgcc on its first call, so it is called once at install time, outside any handler.
 */
/* sigaltstack and SA_ONSTACK are XSI, beyond the project's _POSIX_C_SOURCE */
#define _XOPEN_SOURCE 700
#include "crash_report.h"

#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#if defined(__GLIBC__)
#include <execinfo.h>
#define CRASH_HAVE_BACKTRACE 1
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CRASH_UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CRASH_UNDER_SANITIZER 1
#endif
#endif

#if defined(CRASH_UNDER_SANITIZER)

bool crash_report_install(void) { return true; }

#else

#define CRASH_MAX_FRAMES 48
#define CRASH_ALT_STACK_BYTES (64 * 1024)

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
static unsigned char alt_stack[CRASH_ALT_STACK_BYTES];

static void write_text(const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0) {
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

/* value as hex, "0x..." (snprintf is not async-signal-safe) */
static void write_hex(uintptr_t value) {
    char buf[2 + 2 * sizeof value + 1];
    size_t i = sizeof buf - 1;
    buf[i] = '\0';
    do {
        buf[--i] = "0123456789abcdef"[value & 15u];
        value >>= 4;
    } while (value != 0 && i > 2);
    buf[--i] = 'x';
    buf[--i] = '0';
    write_text(buf + i);
}

static const char *signal_name(int sig) {
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV (invalid memory access)";
    case SIGBUS:
        return "SIGBUS (bus error)";
    case SIGILL:
        return "SIGILL (illegal instruction: built for another CPU?)";
    case SIGFPE:
        return "SIGFPE (arithmetic exception)";
    case SIGABRT:
        return "SIGABRT (abort)";
    default:
        return "fatal signal";
    }
}

static void on_fatal_signal(int sig, siginfo_t *info, void *context) {
    (void)context;
    write_text("edgelmd: crashed: ");
    write_text(signal_name(sig));
    if (sig != SIGABRT && info != NULL && info->si_code > 0) { /* raised by a fault, not kill */
        write_text(" at address ");
        write_hex((uintptr_t)info->si_addr);
    }
    write_text("; call stack (addr2line -f -e edgelmd OFFSET names the functions):\n");
#if defined(CRASH_HAVE_BACKTRACE)
    void *frames[CRASH_MAX_FRAMES];
    int n = backtrace(frames, CRASH_MAX_FRAMES);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
#endif
    /* die of the signal itself, as without this handler */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    raise(sig);
}

bool crash_report_install(void) {
#if defined(CRASH_HAVE_BACKTRACE)
    void *warm[1];
    (void)backtrace(warm, 1); /* loads libgcc now, not inside the handler */
#endif
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_sp = alt_stack;
    ss.ss_size = sizeof alt_stack;
    bool ok = sigaltstack(&ss, NULL) == 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fatal_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++) {
        ok = sigaction(fatal_signals[i], &sa, NULL) == 0 && ok;
    }
    return ok;
}

#endif
