/* thread_pool.c - persistent worker threads for data-parallel kernels (see thread_pool.h).
 * A job is published by bumping an atomic generation counter; workers spin on it briefly and
 * then sleep on a condition variable, so a pool idle between tokens costs no CPU. Completion is
 * an atomic countdown the caller spins on, then sleeps on. Workers block asynchronous signals,
 * so handlers (SIGINT, SIGTERM) run in the application's own threads. Nothing is allocated after
 * thread_pool_create.
 */
#include "thread_pool.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Upper bound on n_threads: far above any board this targets, low enough that a garbage value
 * cannot ask for a huge allocation. */
#define THREAD_POOL_MAX_THREADS 1024
/* Polls of the generation / countdown before going to sleep: long enough (some tens to hundreds
 * of microseconds) to catch the next matmul of the same token, short enough not to burn a core
 * while the application waits for input. Every THREAD_POOL_YIELD_EVERY-th poll yields the CPU
 * instead of pausing, so with more threads than cores a spinner hands its core to the thread it
 * is waiting for rather than holding it for a whole time slice. */
#define THREAD_POOL_SPIN 20000
#define THREAD_POOL_YIELD_EVERY 64
#define CACHE_LINE_BYTES 64

typedef struct worker {
    struct thread_pool *pool;
    int index; /* 1 .. n_threads - 1; the caller is thread 0 */
    pthread_t thread;
} worker;

struct thread_pool {
    int n_threads;
    int n_workers;   /* workers actually started (n_threads - 1 once creation succeeded) */
    worker *workers; /* (n_threads - 1) */

    /* Written by the caller before the generation bump (release) and read by workers after
     * they observe it (acquire); not touched again until every worker has counted down. */
    thread_pool_fn fn;
    void *arg;

    char pad0[CACHE_LINE_BYTES];
    atomic_uint generation; /* bumped once per job */
    atomic_bool stop;
    char pad1[CACHE_LINE_BYTES];
    atomic_int pending; /* workers still running the current job */
    char pad2[CACHE_LINE_BYTES];

    /* The sleeping paths: a worker sleeps on start_cond until the generation moves, the
     * caller on done_cond until pending reaches 0. Changes that a sleeper waits for are made or
     * signalled under mutex, so no wake-up is lost. */
    pthread_mutex_t mutex;
    pthread_cond_t start_cond;
    pthread_cond_t done_cond;
};

/* (YIELD is ARMv6K and later: not for plain ARMv6, Raspberry Pi OS's baseline for the Pi 1 and
 * Zero, whose assembler refuses it) */
static inline void cpu_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && (__ARM_ARCH >= 7 || defined(__ARM_ARCH_6K__) || \
                                                    defined(__ARM_ARCH_6KZ__)))
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static inline void spin_wait(int iteration) {
    if (iteration % THREAD_POOL_YIELD_EVERY == THREAD_POOL_YIELD_EVERY - 1) {
        sched_yield();
    } else {
        cpu_pause();
    }
}

/* Wait until the generation differs from seen or the pool stops; returns the new generation. */
static unsigned wait_for_job(struct thread_pool *pool, unsigned seen) {
    for (int i = 0; i < THREAD_POOL_SPIN; i++) {
        unsigned g = atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&pool->stop, memory_order_acquire)) {
            return g;
        }
        spin_wait(i);
    }
    pthread_mutex_lock(&pool->mutex);
    unsigned g;
    while ((g = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
           !atomic_load_explicit(&pool->stop, memory_order_acquire)) {
        pthread_cond_wait(&pool->start_cond, &pool->mutex);
    }
    pthread_mutex_unlock(&pool->mutex);
    return g;
}

static void *worker_main(void *opaque) {
    worker *w = opaque;
    struct thread_pool *pool = w->pool;
    unsigned seen = 0; /* the generation at creation */
    for (;;) {
        seen = wait_for_job(pool, seen);
        if (atomic_load_explicit(&pool->stop, memory_order_acquire)) {
            break;
        }
        pool->fn(pool->arg, w->index, pool->n_threads);
        if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) == 1) {
            /* the last one out wakes the caller if it went to sleep */
            pthread_mutex_lock(&pool->mutex);
            pthread_cond_signal(&pool->done_cond);
            pthread_mutex_unlock(&pool->mutex);
        }
    }
    return NULL;
}

/* Stop and join the workers started so far, then release everything. */
static void pool_destroy(struct thread_pool *pool) {
    pthread_mutex_lock(&pool->mutex);
    atomic_store_explicit(&pool->stop, true, memory_order_release);
    pthread_cond_broadcast(&pool->start_cond);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 0; i < pool->n_workers; i++) {
        pthread_join(pool->workers[i].thread, NULL);
    }
    pthread_cond_destroy(&pool->done_cond);
    pthread_cond_destroy(&pool->start_cond);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->workers);
    free(pool);
}

edgelm_status thread_pool_create(int n_threads, thread_pool **out) {
    if (out == NULL) {
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    *out = NULL;
    if (n_threads < 1 || n_threads > THREAD_POOL_MAX_THREADS) {
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    struct thread_pool *pool = calloc(1, sizeof(*pool));
    if (pool == NULL) {
        return EDGELM_ERR_OUT_OF_MEMORY;
    }
    pool->n_threads = n_threads;
    atomic_init(&pool->generation, 0u);
    atomic_init(&pool->stop, false);
    atomic_init(&pool->pending, 0);
    if (n_threads > 1) {
        pool->workers = calloc((size_t)(n_threads - 1), sizeof(*pool->workers));
        if (pool->workers == NULL) {
            free(pool);
            return EDGELM_ERR_OUT_OF_MEMORY;
        }
    }
    if (pthread_mutex_init(&pool->mutex, NULL) != 0) {
        free(pool->workers);
        free(pool);
        return EDGELM_ERR_THREAD;
    }
    if (pthread_cond_init(&pool->start_cond, NULL) != 0) {
        pthread_mutex_destroy(&pool->mutex);
        free(pool->workers);
        free(pool);
        return EDGELM_ERR_THREAD;
    }
    if (pthread_cond_init(&pool->done_cond, NULL) != 0) {
        pthread_cond_destroy(&pool->start_cond);
        pthread_mutex_destroy(&pool->mutex);
        free(pool->workers);
        free(pool);
        return EDGELM_ERR_THREAD;
    }

    /* Workers inherit the creator's signal mask: block the asynchronous signals while starting
     * them. Faults stay deliverable, so a crash in a kernel still reaches the handlers of the
     * sanitizers and debuggers rather than killing the process silently. */
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGTRAP);
    sigdelset(&all, SIGABRT);
    int masked = pthread_sigmask(SIG_SETMASK, &all, &old) == 0;
    edgelm_status status = EDGELM_OK;
    for (int i = 0; i < n_threads - 1; i++) {
        worker *w = &pool->workers[i];
        w->pool = pool;
        w->index = i + 1;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            status = EDGELM_ERR_THREAD;
            break;
        }
        pool->n_workers++;
    }
    if (masked) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (status != EDGELM_OK) {
        pool_destroy(pool); /* joins the workers already started */
        return status;
    }
    *out = pool;
    return EDGELM_OK;
}

void thread_pool_free(thread_pool *pool) {
    if (pool != NULL) {
        pool_destroy(pool);
    }
}

int thread_pool_size(const thread_pool *pool) { return pool != NULL ? pool->n_threads : 1; }

void thread_pool_run(thread_pool *pool, thread_pool_fn fn, void *arg) {
    if (fn == NULL) {
        return;
    }
    if (pool == NULL || pool->n_workers == 0) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->pending, pool->n_workers, memory_order_relaxed);
    /* The bump is made under the mutex so a worker between its last check and its cond_wait
     * cannot miss it; the broadcast costs no system call when nobody sleeps. */
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add_explicit(&pool->generation, 1u, memory_order_release);
    pthread_cond_broadcast(&pool->start_cond);
    pthread_mutex_unlock(&pool->mutex);

    fn(arg, 0, pool->n_threads);

    for (int i = 0; i < THREAD_POOL_SPIN; i++) {
        if (atomic_load_explicit(&pool->pending, memory_order_acquire) == 0) {
            return;
        }
        spin_wait(i);
    }
    pthread_mutex_lock(&pool->mutex);
    while (atomic_load_explicit(&pool->pending, memory_order_acquire) != 0) {
        pthread_cond_wait(&pool->done_cond, &pool->mutex);
    }
    pthread_mutex_unlock(&pool->mutex);
}

void thread_pool_range(int64_t n, int thread_index, int n_threads, int64_t *begin, int64_t *end) {
    if (n <= 0 || n_threads < 1 || thread_index < 0 || thread_index >= n_threads) {
        *begin = n > 0 ? n : 0;
        *end = *begin;
        return;
    }
    const int64_t base = n / n_threads;
    const int64_t extra = n % n_threads; /* the first `extra` threads take one more */
    const int64_t i = thread_index;
    *begin = i * base + (i < extra ? i : extra);
    *end = *begin + base + (i < extra ? 1 : 0);
}
