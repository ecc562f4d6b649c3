/* results.h - which request ids edgelmd has seen, so a QoS 1 redelivery never runs twice.
 * An id is claimed when its request is admitted (queued), marked running by the worker and
 * finished with its final message (result or error JSON), which is kept in a bounded LRU so a
 * redelivery of a finished id is answered again with the same message. Live (queued/running)
 * ids are never evicted. Thread-safe (one mutex); linear scans: capacity is a few hundred.
 *
 * A redelivery is the same request again: same id, same payload bytes, same reply topic and
 * correlation data. Each claim carries a fingerprint of those (results_fingerprint), so an id
 * that a client reuses for a different request (a Node-RED template or a Home Assistant script
 * with a fixed "id") is not mistaken for one: after the first finished it is a new request,
 * while the first is still queued or running it is a conflict (answered `busy`).
 */
#ifndef EDGELMD_RESULTS_H
#define EDGELMD_RESULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum result_state {
    RESULT_NEW = 0, /* not seen (now claimed as queued) */
    RESULT_QUEUED,
    RESULT_RUNNING,
    RESULT_DONE,
    RESULT_CONFLICT, /* queued or running with another fingerprint: a different request */
} result_state;

typedef struct results results;

/* Keeps up to done_capacity finished results plus up to live_capacity queued/running ids. */
results *results_create(size_t done_capacity, size_t live_capacity);
void results_free(results *r);
/* 64-bit FNV-1a over the payload, the reply topic and the correlation data (which may be NULL),
 * each field length-prefixed so no two different triples hash the same input bytes. */
uint64_t results_fingerprint(const void *payload, size_t payload_len, const char *reply_topic,
                             const void *correlation, size_t correlation_len);
/* Claim id for a request with this fingerprint. Returns RESULT_NEW when the id was free or held
 * a finished request with another fingerprint (now QUEUED, the old answer forgotten);
 * RESULT_QUEUED / RESULT_RUNNING / RESULT_DONE for a redelivery (same fingerprint), with a
 * malloc'd copy of the final message in *message for RESULT_DONE; RESULT_CONFLICT when the id
 * is queued or running with another fingerprint (nothing changes). */
result_state results_claim(results *r, const char *id, uint64_t fingerprint, char **message);
void results_set_running(results *r, const char *id);
/* Record the final message (copied) for id. */
void results_finish(results *r, const char *id, const char *message);
/* Forget a claim (the request was refused with `busy`, so a retry may run). */
void results_forget(results *r, const char *id);

#endif
