/* request_queue.c - the bounded FIFO of svc_job pointers (see request_queue.h): a ring buffer
 * under one mutex with one condition variable for the single consumer (the worker).
 */
#include "request_queue.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct request_queue {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    svc_job **ring;
    size_t capacity; /* >= 1 slot is always allocated; capacity 0 means every push fails */
    size_t head, count;
    bool closed;
};

void job_free(svc_job *job) {
    if (job == NULL) {
        return;
    }
    protocol_request_free(&job->req);
    free(job->prompt_text);
    free(job->correlation);
    free(job);
}

request_queue *request_queue_create(size_t capacity) {
    request_queue *q = calloc(1, sizeof *q);
    if (q == NULL) {
        return NULL;
    }
    q->ring = calloc(capacity > 0 ? capacity : 1, sizeof *q->ring);
    if (q->ring == NULL) {
        free(q);
        return NULL;
    }
    q->capacity = capacity;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->nonempty, NULL);
    return q;
}

void request_queue_free(request_queue *q) {
    if (q == NULL) {
        return;
    }
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->nonempty);
    free(q->ring);
    free(q);
}

bool request_queue_push(request_queue *q, svc_job *job) {
    pthread_mutex_lock(&q->lock);
    bool ok = !q->closed && q->count < q->capacity;
    if (ok) {
        q->ring[(q->head + q->count) % q->capacity] = job;
        q->count++;
        pthread_cond_signal(&q->nonempty);
    }
    pthread_mutex_unlock(&q->lock);
    return ok;
}

/* Remove ring position i (0 = oldest) keeping the order of the rest. Caller holds the lock. */
static svc_job *remove_at(request_queue *q, size_t i) {
    svc_job *job = q->ring[(q->head + i) % q->capacity];
    for (size_t k = i; k + 1 < q->count; k++) {
        q->ring[(q->head + k) % q->capacity] = q->ring[(q->head + k + 1) % q->capacity];
    }
    q->count--;
    return job;
}

svc_job *request_queue_pop(request_queue *q) {
    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && !q->closed) {
        pthread_cond_wait(&q->nonempty, &q->lock);
    }
    svc_job *job = NULL;
    if (!q->closed && q->count > 0) {
        job = q->ring[q->head];
        q->head = (q->head + 1) % q->capacity;
        q->count--;
    }
    pthread_mutex_unlock(&q->lock);
    return job;
}

svc_job *request_queue_remove(request_queue *q, const char *id) {
    pthread_mutex_lock(&q->lock);
    svc_job *job = NULL;
    for (size_t i = 0; i < q->count && job == NULL; i++) {
        if (strcmp(q->ring[(q->head + i) % q->capacity]->req.id, id) == 0) {
            job = remove_at(q, i);
        }
    }
    pthread_mutex_unlock(&q->lock);
    return job;
}

svc_job *request_queue_take_expired(request_queue *q, double now_ms) {
    pthread_mutex_lock(&q->lock);
    svc_job *job = NULL;
    for (size_t i = 0; i < q->count && job == NULL; i++) {
        const svc_job *j = q->ring[(q->head + i) % q->capacity];
        if (j->deadline_at_ms > 0 && j->deadline_at_ms <= now_ms) {
            job = remove_at(q, i);
        }
    }
    pthread_mutex_unlock(&q->lock);
    return job;
}

svc_job *request_queue_take_any(request_queue *q) {
    pthread_mutex_lock(&q->lock);
    svc_job *job = q->count > 0 ? remove_at(q, 0) : NULL;
    pthread_mutex_unlock(&q->lock);
    return job;
}

size_t request_queue_depth(request_queue *q) {
    pthread_mutex_lock(&q->lock);
    size_t n = q->count;
    pthread_mutex_unlock(&q->lock);
    return n;
}

void request_queue_close(request_queue *q) {
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
}
