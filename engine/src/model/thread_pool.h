/* thread_pool.h - a persistent pool of worker threads for data-parallel kernels.
 *
 * Workers are created once and wait between jobs; thread_pool_run() hands every thread
 * (the caller is thread 0) the same function with its index and returns when all have finished.
 * Nothing is allocated per job. Not reentrant: one job at a time, from one caller thread.
 */
#ifndef EDGELM_THREAD_POOL_H
#define EDGELM_THREAD_POOL_H

#include "edgelm.h"

typedef struct thread_pool thread_pool;

/* fn(arg, thread_index, n_threads), thread_index in [0, n_threads). */
typedef void (*thread_pool_fn)(void *arg, int thread_index, int n_threads);

/* n_threads >= 1 counts the calling thread, so n_threads - 1 workers are started. */
edgelm_status thread_pool_create(int n_threads, thread_pool **out);
void thread_pool_free(thread_pool *pool);
int thread_pool_size(const thread_pool *pool);
void thread_pool_run(thread_pool *pool, thread_pool_fn fn, void *arg);

/* Split n items into n_threads contiguous ranges; this thread gets [*begin, *end). */
void thread_pool_range(int64_t n, int thread_index, int n_threads, int64_t *begin, int64_t *end);

#endif /* EDGELM_THREAD_POOL_H */
