/* session.c - the public session API: create/free, eval, sampling, cancel, and the generate loop
 * with UTF-8-whole streaming and timings.
 *
 * A session owns a forward_state (KV cache, scratch, thread pool) and a sampler; it is used by
 * one thread at a time. Cancellation is an atomic flag checked between tokens.
 */
#include "forward.h"
#include "model.h"
#include "sampler.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct edgelm_session {
    const edgelm_model *model;
    forward_state fs;
    sampler *sampler;
    uint32_t n_ctx;
    int32_t n_threads;
    int32_t n_past;
    bool have_logits;
    atomic_bool cancel;
    edgelm_timings timings;
    char *piece;          /* token text scratch, piece_size bytes */
    size_t piece_size;
    char errmsg[256];
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static edgelm_status session_fail(edgelm_session *s, edgelm_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static edgelm_status session_fail(edgelm_session *s, edgelm_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    return st;
}

edgelm_session_params edgelm_session_params_default(void) {
    edgelm_session_params p = {.n_ctx = 0, .n_threads = 0};
    return p;
}

static uint32_t effective_ctx(const edgelm_model *model, uint32_t requested) {
    uint32_t n_ctx = requested;
    if (n_ctx == 0) {
        n_ctx = (uint32_t)model->hp.n_ctx_train;
        if (n_ctx > EDGELM_DEFAULT_MAX_CTX) {
            n_ctx = EDGELM_DEFAULT_MAX_CTX;
        }
    }
    return n_ctx;
}

uint64_t edgelm_model_session_bytes(const edgelm_model *model, uint32_t n_ctx) {
    return forward_state_bytes(model, effective_ctx(model, n_ctx));
}

edgelm_status edgelm_session_create(const edgelm_model *model, const edgelm_session_params *params,
                                    edgelm_session **out, char *err, size_t err_size) {
    edgelm_session_params defaults = edgelm_session_params_default();
    char local_err[8];
    if (err == NULL || err_size == 0) {
        err = local_err;
        err_size = sizeof local_err;
    }
    err[0] = '\0';
    if (model == NULL || out == NULL) {
        snprintf(err, err_size, "edgelm_session_create: NULL argument");
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    *out = NULL;
    if (params == NULL) {
        params = &defaults;
    }
    uint32_t n_ctx = effective_ctx(model, params->n_ctx);
    if (n_ctx < 8 || n_ctx > (1u << 24)) {
        snprintf(err, err_size, "context size %u is out of range (8..%u)", n_ctx, 1u << 24);
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    int32_t n_threads = params->n_threads;
    if (n_threads <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = cpus > 0 ? (int32_t)(cpus > 256 ? 256 : cpus) : 1;
    }
    if (n_threads > 256) {
        snprintf(err, err_size, "thread count %d is out of range (1..256)", (int)n_threads);
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    edgelm_session *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, err_size, "out of memory");
        return EDGELM_ERR_OUT_OF_MEMORY;
    }
    s->model = model;
    s->n_ctx = n_ctx;
    s->n_threads = n_threads;
    atomic_init(&s->cancel, false);
    edgelm_status st = forward_init(&s->fs, model, n_ctx, n_threads);
    if (st != EDGELM_OK) {
        snprintf(err, err_size, "cannot set up a session of %u tokens (%llu bytes): %s", n_ctx,
                 (unsigned long long)forward_state_bytes(model, n_ctx), edgelm_strerror(st));
        free(s);
        return st;
    }
    /* the longest token text bounds the piece scratch */
    size_t longest = 16;
    for (int32_t t = 0; t < model->hp.n_vocab; t++) {
        int32_t n = tokenizer_token_to_piece(model->tok, t, NULL, 0);
        if (n > 0 && (size_t)n > longest) {
            longest = (size_t)n;
        }
    }
    s->piece_size = longest + 16; /* + room for a held-back partial UTF-8 character */
    s->piece = malloc(s->piece_size);
    s->sampler = sampler_create(model->hp.n_vocab);
    if (s->piece == NULL || s->sampler == NULL) {
        snprintf(err, err_size, "out of memory");
        edgelm_session_free(s);
        return EDGELM_ERR_OUT_OF_MEMORY;
    }
    edgelm_sampler_params sp = edgelm_sampler_params_default();
    sampler_configure(s->sampler, &sp);
    *out = s;
    return EDGELM_OK;
}

void edgelm_session_free(edgelm_session *session) {
    if (session == NULL) {
        return;
    }
    forward_free(&session->fs);
    sampler_free(session->sampler);
    free(session->piece);
    free(session);
}

const char *edgelm_session_errmsg(const edgelm_session *session) {
    return session ? session->errmsg : "no session";
}
uint32_t edgelm_session_n_ctx(const edgelm_session *session) { return session->n_ctx; }
int32_t edgelm_session_n_threads(const edgelm_session *session) { return session->n_threads; }
int32_t edgelm_session_n_past(const edgelm_session *session) { return session->n_past; }

void edgelm_session_reset(edgelm_session *session) {
    session->n_past = 0;
    session->fs.cache.n_used = 0;
    session->have_logits = false;
}

void edgelm_session_cancel(edgelm_session *session) {
    if (session != NULL) {
        atomic_store(&session->cancel, true);
    }
}

/* Evaluate without clearing the cancel flag (generate clears it once at its start). */
static edgelm_status eval_tokens(edgelm_session *s, const int32_t *tokens, int32_t n) {
    if (n < 0 || (n > 0 && tokens == NULL)) {
        return session_fail(s, EDGELM_ERR_INVALID_ARGUMENT, "eval: bad token array");
    }
    if ((int64_t)s->n_past + n > (int64_t)s->n_ctx) {
        return session_fail(s, EDGELM_ERR_CONTEXT_FULL,
                            "%d tokens do not fit: %d of %u context positions are used", (int)n,
                            (int)s->n_past, s->n_ctx);
    }
    for (int32_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= s->model->hp.n_vocab) {
            return session_fail(s, EDGELM_ERR_BAD_TOKEN, "token %d at index %d is outside 0..%d",
                                (int)tokens[i], (int)i, (int)s->model->hp.n_vocab - 1);
        }
    }
    for (int32_t i = 0; i < n; i++) {
        if (atomic_load_explicit(&s->cancel, memory_order_relaxed)) {
            return session_fail(s, EDGELM_ERR_CANCELLED, "cancelled after %d of %d tokens",
                                (int)i, (int)n);
        }
        forward_token(&s->fs, tokens[i], s->n_past, i == n - 1);
        s->n_past++;
    }
    if (n > 0) {
        s->have_logits = true;
    }
    return EDGELM_OK;
}

edgelm_status edgelm_session_eval(edgelm_session *session, const int32_t *tokens, int32_t n) {
    atomic_store(&session->cancel, false);
    return eval_tokens(session, tokens, n);
}

const float *edgelm_session_logits(const edgelm_session *session) {
    return session->have_logits ? session->fs.logits : NULL;
}

edgelm_status edgelm_session_set_sampler(edgelm_session *session,
                                         const edgelm_sampler_params *params) {
    if (params == NULL) {
        return session_fail(session, EDGELM_ERR_INVALID_ARGUMENT, "sampler: NULL parameters");
    }
    if (!(params->temperature >= 0.0f) || !(params->top_p > 0.0f && params->top_p <= 1.0f) ||
        !(params->min_p >= 0.0f && params->min_p <= 1.0f) || params->top_k < 0 ||
        !(params->repeat_penalty > 0.0f) || params->repeat_last_n < 0) {
        return session_fail(session, EDGELM_ERR_INVALID_ARGUMENT,
                            "sampler: need temperature >= 0, 0 < top_p <= 1, 0 <= min_p <= 1, "
                            "top_k >= 0, repeat_penalty > 0, repeat_last_n >= 0");
    }
    sampler_configure(session->sampler, params);
    return EDGELM_OK;
}

int32_t edgelm_session_sample(edgelm_session *session) {
    if (!session->have_logits) {
        return -1;
    }
    int32_t token = sampler_sample(session->sampler, session->fs.logits);
    sampler_accept(session->sampler, token);
    return token;
}

edgelm_generate_params edgelm_generate_params_default(void) {
    edgelm_generate_params p;
    memset(&p, 0, sizeof p);
    p.prompt = "";
    p.prompt_len = (size_t)-1;
    p.n_predict = 128;
    p.parse_special = true;
    p.context_shift = true;
    p.sampling = edgelm_sampler_params_default();
    return p;
}

/* Length of the longest prefix of buf[0..n) that does not end inside a UTF-8 character. Invalid
 * bytes count as complete (they are passed through rather than held forever). */
static size_t utf8_complete_prefix(const char *buf, size_t n) {
    size_t back = 0;
    /* look at most 3 bytes back for the lead byte of an unfinished character */
    while (back < 3 && back < n && ((unsigned char)buf[n - 1 - back] & 0xC0) == 0x80) {
        back++;
    }
    if (back == n) {
        return n; /* only continuation bytes: invalid, pass through */
    }
    unsigned char lead = (unsigned char)buf[n - 1 - back];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (lead >= 0xF8 || lead < 0xC0) {
        need = 1;
    }
    return back + 1 < need ? n - 1 - back : n;
}

edgelm_status edgelm_generate(edgelm_session *s, const edgelm_generate_params *params,
                              edgelm_token_callback callback, void *user_data,
                              edgelm_finish_reason *finish) {
    edgelm_finish_reason reason = EDGELM_FINISH_LENGTH;
    if (finish != NULL) {
        *finish = reason;
    }
    if (s == NULL || params == NULL || params->prompt == NULL) {
        return s ? session_fail(s, EDGELM_ERR_INVALID_ARGUMENT, "generate: NULL argument")
                 : EDGELM_ERR_INVALID_ARGUMENT;
    }
    edgelm_status st = edgelm_session_set_sampler(s, &params->sampling);
    if (st != EDGELM_OK) {
        return st;
    }
    atomic_store(&s->cancel, false);
    memset(&s->timings, 0, sizeof s->timings);
    const double t_start = now_ms();
    const edgelm_model *m = s->model;
    size_t len = params->prompt_len == (size_t)-1 ? strlen(params->prompt) : params->prompt_len;

    /* tokenize into a buffer sized by a first counting pass */
    const bool add_bos = tokenizer_add_bos(m->tok);
    int32_t n_prompt = tokenizer_encode(m->tok, params->prompt, len, add_bos,
                                        params->parse_special, NULL, 0);
    if (n_prompt < 0) {
        return session_fail(s, (edgelm_status)-n_prompt, "cannot tokenize the prompt");
    }
    if (n_prompt == 0) {
        return session_fail(s, EDGELM_ERR_INVALID_ARGUMENT,
                            "the prompt is empty and the model has no BOS token to start from");
    }
    if ((uint32_t)n_prompt >= s->n_ctx) {
        return session_fail(s, EDGELM_ERR_CONTEXT_FULL,
                            "the prompt has %d tokens; the context holds %u (leave room to "
                            "generate)",
                            (int)n_prompt, s->n_ctx);
    }
    int32_t *prompt = malloc((size_t)n_prompt * sizeof *prompt);
    if (prompt == NULL) {
        return session_fail(s, EDGELM_ERR_OUT_OF_MEMORY, "out of memory");
    }
    tokenizer_encode(m->tok, params->prompt, len, add_bos, params->parse_special, prompt,
                     n_prompt);
    edgelm_session_reset(s);
    for (int32_t i = 0; i < n_prompt; i++) {
        sampler_accept(s->sampler, prompt[i]);
    }
    st = eval_tokens(s, prompt, n_prompt);
    free(prompt);
    s->timings.n_prompt_tokens = n_prompt;
    const double t_prefilled = now_ms();
    s->timings.prompt_ms = t_prefilled - t_start;
    if (st != EDGELM_OK) {
        if (st == EDGELM_ERR_CANCELLED && finish != NULL) {
            *finish = EDGELM_FINISH_CANCELLED;
        }
        return st;
    }

    size_t pending = 0; /* bytes of an unfinished UTF-8 character held back in s->piece */
    double t_first = 0.0;
    int32_t n_generated = 0;
    for (;;) {
        if (params->n_predict >= 0 && n_generated >= params->n_predict) {
            reason = EDGELM_FINISH_LENGTH;
            break;
        }
        if (atomic_load(&s->cancel)) {
            reason = EDGELM_FINISH_CANCELLED;
            break;
        }
        const double t_sample = now_ms();
        int32_t token = sampler_sample(s->sampler, s->fs.logits);
        sampler_accept(s->sampler, token);
        s->timings.sample_ms += now_ms() - t_sample;
        if (tokenizer_is_eog(m->tok, token)) {
            reason = EDGELM_FINISH_EOG;
            break;
        }
        n_generated++;
        int32_t n = tokenizer_token_to_piece(m->tok, token, s->piece + pending,
                                             s->piece_size - pending);
        if (n < 0 || (size_t)n > s->piece_size - pending) {
            n = 0;
        }
        size_t total = pending + (size_t)n;
        size_t ready = utf8_complete_prefix(s->piece, total);
        if (n_generated == 1) {
            t_first = now_ms();
            s->timings.ttft_ms = t_first - t_start;
        }
        bool keep_going = callback == NULL || callback(user_data, token, s->piece, ready);
        memmove(s->piece, s->piece + ready, total - ready);
        pending = total - ready;
        s->timings.n_generated_tokens = n_generated;
        if (!keep_going) {
            reason = EDGELM_FINISH_CALLBACK;
            break;
        }
        if (params->n_predict >= 0 && n_generated >= params->n_predict) {
            reason = EDGELM_FINISH_LENGTH;
            break; /* the last token needs no evaluation */
        }
        if ((uint32_t)s->n_past >= s->n_ctx) {
            reason = EDGELM_FINISH_CONTEXT_FULL;
            break;
        }
        st = eval_tokens(s, &token, 1);
        if (st == EDGELM_ERR_CANCELLED) {
            reason = EDGELM_FINISH_CANCELLED;
            st = EDGELM_OK;
            break;
        }
        if (st != EDGELM_OK) {
            break;
        }
    }
    if (pending > 0 && callback != NULL && reason != EDGELM_FINISH_CALLBACK) {
        callback(user_data, -1, s->piece, pending); /* flush an incomplete tail as is */
    }
    s->timings.n_generated_tokens = n_generated;
    if (n_generated > 0) {
        s->timings.decode_ms = now_ms() - t_first;
    }
    if (finish != NULL) {
        *finish = reason;
    }
    return st;
}

void edgelm_session_timings(const edgelm_session *session, edgelm_timings *out) {
    *out = session->timings;
}
