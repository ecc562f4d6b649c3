/* results.c - the id registry and LRU of finished results (see results.h). */
#include "results.h"

#include "protocol.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char id[PROTOCOL_ID_MAX + 1];
    result_state state;   /* RESULT_NEW = free slot */
    uint64_t fingerprint; /* of the request that claimed the id */
    char *message;        /* DONE only */
    uint64_t used;        /* LRU clock */
} entry;

struct results {
    pthread_mutex_t lock;
    entry *entries;
    size_t n_entries;
    size_t done_capacity;
    uint64_t clock;
};

results *results_create(size_t done_capacity, size_t live_capacity) {
    results *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return NULL;
    }
    r->n_entries = done_capacity + live_capacity + 1;
    r->entries = calloc(r->n_entries, sizeof *r->entries);
    if (r->entries == NULL) {
        free(r);
        return NULL;
    }
    r->done_capacity = done_capacity;
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

void results_free(results *r) {
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->n_entries; i++) {
        free(r->entries[i].message);
    }
    free(r->entries);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static entry *find(results *r, const char *id) {
    for (size_t i = 0; i < r->n_entries; i++) {
        if (r->entries[i].state != RESULT_NEW && strcmp(r->entries[i].id, id) == 0) {
            return &r->entries[i];
        }
    }
    return NULL;
}

/* A free slot, evicting the least recently used finished result when the finished ones are at
 * capacity (or, defensively, when no slot is free at all). */
static entry *free_slot(results *r) {
    entry *oldest = NULL, *empty = NULL;
    size_t n_done = 0;
    for (size_t i = 0; i < r->n_entries; i++) {
        entry *e = &r->entries[i];
        if (e->state == RESULT_DONE) {
            n_done++;
            if (oldest == NULL || e->used < oldest->used) {
                oldest = e;
            }
        } else if (e->state == RESULT_NEW && empty == NULL) {
            empty = e;
        }
    }
    if (oldest != NULL && (n_done >= r->done_capacity || empty == NULL)) {
        free(oldest->message);
        oldest->message = NULL;
        oldest->state = RESULT_NEW;
        return oldest;
    }
    return empty;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t fnv1a_field(uint64_t h, const void *data, size_t len) {
    uint64_t n = len;
    h = fnv1a(h, &n, sizeof n);
    return data != NULL ? fnv1a(h, data, len) : h;
}

uint64_t results_fingerprint(const void *payload, size_t payload_len, const char *reply_topic,
                             const void *correlation, size_t correlation_len) {
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv1a_field(h, payload, payload_len);
    h = fnv1a_field(h, reply_topic, reply_topic != NULL ? strlen(reply_topic) : 0);
    return fnv1a_field(h, correlation, correlation != NULL ? correlation_len : 0);
}

result_state results_claim(results *r, const char *id, uint64_t fingerprint, char **message) {
    *message = NULL;
    pthread_mutex_lock(&r->lock);
    entry *e = find(r, id);
    result_state st = RESULT_NEW;
    if (e != NULL && e->fingerprint != fingerprint) {
        if (e->state != RESULT_DONE) {
            pthread_mutex_unlock(&r->lock);
            return RESULT_CONFLICT;
        }
        /* the id is reused for a different request: the old answer is not its answer */
        free(e->message);
        e->message = NULL;
        e->state = RESULT_QUEUED;
        e->fingerprint = fingerprint;
        e->used = ++r->clock;
    } else if (e != NULL) {
        st = e->state;
        e->used = ++r->clock;
        if (st == RESULT_DONE && e->message != NULL) {
            *message = strdup(e->message);
        }
    } else {
        e = free_slot(r);
        if (e != NULL) {
            snprintf(e->id, sizeof e->id, "%s", id);
            e->state = RESULT_QUEUED;
            e->fingerprint = fingerprint;
            e->used = ++r->clock;
        }
        /* no slot: cannot happen while live ids <= live_capacity; run it unregistered */
    }
    pthread_mutex_unlock(&r->lock);
    return st;
}

void results_set_running(results *r, const char *id) {
    pthread_mutex_lock(&r->lock);
    entry *e = find(r, id);
    if (e != NULL) {
        e->state = RESULT_RUNNING;
    }
    pthread_mutex_unlock(&r->lock);
}

void results_finish(results *r, const char *id, const char *message) {
    pthread_mutex_lock(&r->lock);
    entry *e = find(r, id);
    if (e != NULL) {
        free(e->message);
        e->message = message != NULL ? strdup(message) : NULL;
        e->state = RESULT_DONE;
        e->used = ++r->clock;
    }
    pthread_mutex_unlock(&r->lock);
}

void results_forget(results *r, const char *id) {
    pthread_mutex_lock(&r->lock);
    entry *e = find(r, id);
    if (e != NULL) {
        free(e->message);
        e->message = NULL;
        e->state = RESULT_NEW;
    }
    pthread_mutex_unlock(&r->lock);
}
