/* test_thread_pool.c - unit tests of the persistent thread pool: every thread index runs exactly
 * once per job, long runs of back-to-back jobs, jobs after the workers went to sleep, pools of 1
 * to 8 threads, create/free without a job, bad sizes, and thread_pool_range() coverage.
 */
#include "model/thread_pool.h"
#include "test_util.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_THREADS 8

typedef struct count_job {
    atomic_int calls[MAX_THREADS]; /* calls per thread index in this job */
    atomic_int bad_n_threads;      /* calls whose n_threads argument was wrong */
    atomic_int bad_index;
    int expected_n_threads;
} count_job;

static void count_job_init(count_job *job, int expected_n_threads) {
    memset(job, 0, sizeof *job);
    for (int i = 0; i < MAX_THREADS; i++) {
        atomic_init(&job->calls[i], 0);
    }
    atomic_init(&job->bad_n_threads, 0);
    atomic_init(&job->bad_index, 0);
    job->expected_n_threads = expected_n_threads;
}

static void count_fn(void *arg, int thread_index, int n_threads) {
    count_job *job = arg;
    if (n_threads != job->expected_n_threads) {
        atomic_fetch_add(&job->bad_n_threads, 1);
    }
    if (thread_index < 0 || thread_index >= MAX_THREADS || thread_index >= n_threads) {
        atomic_fetch_add(&job->bad_index, 1);
        return;
    }
    atomic_fetch_add(&job->calls[thread_index], 1);
}

/* Each thread marks its range of items; plain writes, since ranges must not overlap (an
 * overlap shows as a count of 2 and, under ThreadSanitizer, as a race). */
typedef struct mark_job {
    uint8_t *marks; /* (n) */
    int64_t n;
} mark_job;

static void mark_fn(void *arg, int thread_index, int n_threads) {
    mark_job *job = arg;
    int64_t begin, end;
    thread_pool_range(job->n, thread_index, n_threads, &begin, &end);
    for (int64_t i = begin; i < end; i++) {
        job->marks[i]++;
    }
}

/* Each thread sums its range of values into its own slot. */
typedef struct sum_job {
    const int64_t *values; /* (n) */
    int64_t n;
    int64_t partial[MAX_THREADS];
} sum_job;

static void sum_fn(void *arg, int thread_index, int n_threads) {
    sum_job *job = arg;
    int64_t begin, end;
    thread_pool_range(job->n, thread_index, n_threads, &begin, &end);
    int64_t acc = 0;
    for (int64_t i = begin; i < end; i++) {
        acc += job->values[i];
    }
    job->partial[thread_index] = acc;
}

/* A pool of n threads: one CHECK that it was created; NULL if not. */
static thread_pool *new_pool(int n_threads) {
    thread_pool *pool = NULL;
    CHECK(thread_pool_create(n_threads, &pool) == EDGELM_OK);
    return pool;
}

static void test_create_args(void) {
    int sentinel = 0;
    thread_pool *pool = (thread_pool *)(void *)&sentinel; /* must be overwritten with NULL */
    CHECK(thread_pool_create(0, &pool) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(pool == NULL);
    CHECK(thread_pool_create(-3, &pool) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(pool == NULL);
    CHECK(thread_pool_create(1000000, &pool) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(thread_pool_create(2, NULL) == EDGELM_ERR_INVALID_ARGUMENT);
    thread_pool_free(NULL);
    CHECK(thread_pool_size(NULL) == 1);

    /* free without ever running a job, for every size */
    for (int n = 1; n <= MAX_THREADS; n++) {
        CHECK(thread_pool_create(n, &pool) == EDGELM_OK);
        CHECK(pool != NULL);
        CHECK(thread_pool_size(pool) == n);
        thread_pool_free(pool);
    }
}

static void test_each_index_once(void) {
    for (int n = 1; n <= MAX_THREADS; n++) {
        thread_pool *pool = new_pool(n);
        if (pool == NULL) {
            continue;
        }
        int bad_jobs = 0;
        for (int rep = 0; rep < 200; rep++) {
            count_job job;
            count_job_init(&job, n);
            thread_pool_run(pool, count_fn, &job);
            int ok = atomic_load(&job.bad_n_threads) == 0 && atomic_load(&job.bad_index) == 0;
            for (int i = 0; i < MAX_THREADS; i++) {
                ok = ok && atomic_load(&job.calls[i]) == (i < n ? 1 : 0);
            }
            bad_jobs += !ok;
        }
        CHECK_MSG(bad_jobs == 0, "n_threads %d: %d of 200 jobs ran an index other than once", n,
                  bad_jobs);
        thread_pool_free(pool);
    }
}

/* body(pool, n_threads, scratch) on a fresh pool of every size 1..MAX_THREADS, all sizes sharing
 * scratch_bytes of scratch memory: one CHECK for the scratch, one per pool (a pool that could not
 * be made is skipped). */
static void on_every_pool_size(void (*body)(thread_pool *pool, int n_threads, void *scratch),
                               size_t scratch_bytes) {
    void *scratch = malloc(scratch_bytes);
    CHECK(scratch != NULL);
    if (scratch == NULL) {
        return;
    }
    for (int n_threads = 1; n_threads <= MAX_THREADS; n_threads++) {
        thread_pool *pool = new_pool(n_threads);
        if (pool != NULL) {
            body(pool, n_threads, scratch);
            thread_pool_free(pool);
        }
    }
    free(scratch);
}

#define MARKS_MAX_N 1000003

/* Every size of mark_job on one pool: each item marked exactly once. scratch: MARKS_MAX_N marks. */
static void marks_on_pool(thread_pool *pool, int n_threads, void *scratch) {
    static const int64_t sizes[] = {0, 1, 2, 3, 5, 7, 8, 9, 63, 1000, MARKS_MAX_N};
    uint8_t *marks = scratch;
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        mark_job job = {marks, sizes[s]};
        memset(marks, 0, MARKS_MAX_N);
        thread_pool_run(pool, mark_fn, &job);
        int64_t wrong = 0;
        for (int64_t i = 0; i < MARKS_MAX_N; i++) {
            wrong += marks[i] != (i < sizes[s] ? 1 : 0);
        }
        CHECK_MSG(wrong == 0, "n_threads %d, n %lld: %lld items not marked exactly once", n_threads,
                  (long long)sizes[s], (long long)wrong);
    }
}

static void test_marks(void) { on_every_pool_size(marks_on_pool, MARKS_MAX_N); }

enum { N_VALUES = 4099, N_JOBS = 10000 };

/* N_JOBS sum_jobs back to back on one pool, each over new values. scratch: N_VALUES values. */
static void many_jobs_on_pool(thread_pool *pool, int n_threads, void *scratch) {
    int64_t *values = scratch;
    double t0 = test_now_ms();
    int wrong_jobs = 0;
    sum_job job;
    memset(&job, 0, sizeof(job));
    job.values = values;
    job.n = N_VALUES;
    for (int j = 0; j < N_JOBS; j++) {
        int64_t expected = 0;
        for (int64_t i = 0; i < N_VALUES; i++) {
            values[i] = (int64_t)j * 131 + i * 7 - 5000;
            expected += values[i];
        }
        for (int i = 0; i < MAX_THREADS; i++) {
            job.partial[i] = -1; /* a slot no thread wrote stays visibly wrong */
        }
        thread_pool_run(pool, sum_fn, &job);
        int64_t got = 0;
        for (int i = 0; i < n_threads; i++) {
            got += job.partial[i];
        }
        wrong_jobs += got != expected;
    }
    double ms = test_now_ms() - t0;
    CHECK_MSG(wrong_jobs == 0, "n_threads %d: %d of %d jobs summed wrongly", n_threads, wrong_jobs,
              N_JOBS);
    fprintf(stderr, "  %d threads: %d jobs in %.1f ms (%.2f us/job incl. refill)\n", n_threads,
            N_JOBS, ms, ms * 1e3 / N_JOBS);
}

static void test_many_jobs(void) {
    on_every_pool_size(many_jobs_on_pool, N_VALUES * sizeof(int64_t));
}

/* Let the workers fall asleep on the condition variable between jobs, then wake them. */
static void test_jobs_after_sleep(void) {
    thread_pool *pool = new_pool(4);
    if (pool == NULL) {
        return;
    }
    for (int rep = 0; rep < 5; rep++) {
        struct timespec pause_ts = {0, 30 * 1000 * 1000};
        nanosleep(&pause_ts, NULL);
        count_job job;
        count_job_init(&job, 4);
        thread_pool_run(pool, count_fn, &job);
        for (int i = 0; i < 4; i++) {
            CHECK(atomic_load(&job.calls[i]) == 1);
        }
        CHECK(atomic_load(&job.bad_n_threads) == 0);
    }
    thread_pool_free(pool);

    /* a NULL pool runs the job inline as a single thread */
    count_job job;
    count_job_init(&job, 1);
    thread_pool_run(NULL, count_fn, &job);
    CHECK(atomic_load(&job.calls[0]) == 1);
    CHECK(atomic_load(&job.bad_n_threads) == 0);
}

static void test_ranges(void) {
    static const int64_t sizes[] = {
        0,  1,  2,  3,  4,  5,   6,    7,     8,       9,
        10, 15, 16, 17, 31, 100, 1023, 65537, 1000003, INT64_C(10000000019)};
    int bad = 0;
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        const int64_t n = sizes[s];
        for (int nt = 1; nt <= 17; nt++) {
            int64_t expect_begin = 0;
            int64_t min_len = INT64_MAX, max_len = 0, prev_len = INT64_MAX;
            for (int t = 0; t < nt; t++) {
                int64_t b = -1, e = -1;
                thread_pool_range(n, t, nt, &b, &e);
                int64_t len = e - b;
                /* contiguous, in order, no gap and no overlap; longer ranges first */
                if (b != expect_begin || len < 0 || len > prev_len) {
                    bad++;
                }
                expect_begin = e;
                prev_len = len;
                min_len = len < min_len ? len : min_len;
                max_len = len > max_len ? len : max_len;
            }
            if (expect_begin != n || max_len - min_len > 1) {
                bad++;
                fprintf(stderr, "range n=%lld nt=%d ends at %lld, lengths %lld..%lld\n",
                        (long long)n, nt, (long long)expect_begin, (long long)min_len,
                        (long long)max_len);
            }
        }
    }
    CHECK_MSG(bad == 0, "%d bad range splits", bad);

    /* out-of-range arguments give empty ranges, never garbage */
    int64_t b = -1, e = -1;
    thread_pool_range(-5, 0, 4, &b, &e);
    CHECK(b == 0 && e == 0);
    thread_pool_range(10, 4, 4, &b, &e);
    CHECK(b == e);
    thread_pool_range(10, 0, 0, &b, &e);
    CHECK(b == e);
}

int main(void) {
    test_create_args();
    test_ranges();
    test_each_index_once();
    test_marks();
    test_jobs_after_sleep();
    test_many_jobs();
    return test_finish("test_thread_pool", 0);
}
