/* results.h - which request ids edgelmd has seen, so a QoS 1 redelivery never runs twice.
 * An id is claimed when its request is admitted (queued), marked running by the worker and
 * finished with its final message (result or error JSON), which is kept in a bounded LRU so a
 * redelivery of a finished id is answered again with the same message. Live (queued/running)
 * ids are never evicted. Thread-safe (one mutex); linear scans: capacity is a few hundred.
 */
#ifndef EDGELMD_RESULTS_H
#define EDGELMD_RESULTS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum result_state {
    RESULT_NEW = 0, /* not seen (now claimed as queued) */
    RESULT_QUEUED,
    RESULT_RUNNING,
    RESULT_DONE,
} result_state;

typedef struct results results;

/* Keeps up to done_capacity finished results plus up to live_capacity queued/running ids. */
results *results_create(size_t done_capacity, size_t live_capacity);
void results_free(results *r);
/* Claim id for a new request. Returns RESULT_NEW when it was free (now QUEUED); otherwise the
 * state it is in, and for RESULT_DONE a malloc'd copy of the final message in *message. */
result_state results_claim(results *r, const char *id, char **message);
void results_set_running(results *r, const char *id);
/* Record the final message (copied) for id. */
void results_finish(results *r, const char *id, const char *message);
/* Forget a claim (the request was refused with `busy`, so a retry may run). */
void results_forget(results *r, const char *id);

#endif
