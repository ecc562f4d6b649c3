/* session.c - the public session API: create/free, eval, sampling, cancel, prompt state
 * (save/restore, prefix reuse), and the generate loop with context shift, stop strings,
 * UTF-8-whole streaming and timings.
 *
 * A session owns a forward_state (KV cache, scratch, thread pool), a sampler and the list of
 * tokens its cache holds (tokens[i] is at position i; n_exact of them, from the start, have the
 * K/V a fresh evaluation would give - a context shift keeps only its kept start exact). It is
 * used by one thread at a time. Cancellation is an atomic flag checked between chunks/tokens.
 * JSON output runs the sampler first and consults the grammar only to refuse (then resample on
 * masked logits) or to force the closing tokens when the budget runs short.
 */
#include "model/forward.h"
#include "model/model.h"
#include "model/state_file.h"
#include "sampler.h"
#include "json/json_closing.h"
#include "json/json_grammar.h"
#include "json/json_mask.h"
#include "json/json_schema.h"
#include "json/json_vocab.h"

#include "base/error_text.h"

#include <math.h>

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
    int32_t n_exact;        /* leading tokens[] whose K/V equal a fresh evaluation */
    void *scratch;          /* one block holding tokens and piece */
    int32_t *tokens;        /* (n_ctx) the token at each cache position */
    json_vocab *json_vocab; /* token bytes for the JSON grammar, built at the first JSON request */
    float *json_logits;     /* (n_vocab) masked copy of the logits */
    bool have_logits;
    atomic_bool cancel;
    edgelm_timings timings;
    char *piece; /* token text scratch, piece_size bytes */
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
        if (model->hp.n_ctx_cap > 0 && n_ctx > (uint32_t)model->hp.n_ctx_cap) {
            n_ctx = (uint32_t)model->hp.n_ctx_cap; /* see the check in edgelm_session_create */
        }
    }
    return n_ctx;
}

uint32_t edgelm_model_effective_ctx(const edgelm_model *model, uint32_t requested) {
    return effective_ctx(model, requested);
}

uint64_t edgelm_model_session_bytes(const edgelm_model *model, uint32_t n_ctx) {
    return forward_state_bytes(model, effective_ctx(model, n_ctx));
}

edgelm_status edgelm_session_create(const edgelm_model *model, const edgelm_session_params *params,
                                    edgelm_session **out, char *err, size_t err_size) {
    char local_err[8];
    err = error_text_target(err, &err_size, local_err, sizeof local_err);
    if (model == NULL || out == NULL) {
        snprintf(err, err_size, "edgelm_session_create: NULL argument");
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    *out = NULL;
    if (model->vocab_only) {
        snprintf(err, err_size,
                 "%s: the model was loaded for its vocabulary only (vocab_only): it cannot "
                 "evaluate",
                 model->path);
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    const edgelm_session_params p = params != NULL ? *params : edgelm_session_params_default();
    uint32_t n_ctx = effective_ctx(model, p.n_ctx);
    if (n_ctx < 8 || n_ctx > (1u << 24)) {
        snprintf(err, err_size, "context size %u is out of range (8..%u)", n_ctx, 1u << 24);
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    if (model->hp.n_ctx_cap > 0 && n_ctx > (uint32_t)model->hp.n_ctx_cap) {
        /* within the window, sliding-window and full attention (llama.cpp's phi3) agree */
        snprintf(err, err_size,
                 "context size %u exceeds the model's sliding attention window of %d tokens "
                 "(%s.attention.sliding_window); sliding-window attention is not supported",
                 n_ctx, (int)model->hp.n_ctx_cap, model->arch->name);
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    int32_t n_threads = p.n_threads;
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
    /* one block: tokens (n_ctx), then piece */
    s->scratch = malloc((size_t)n_ctx * sizeof *s->tokens + s->piece_size);
    s->sampler = sampler_create(model->hp.n_vocab);
    if (s->scratch != NULL) {
        s->tokens = s->scratch;
        s->piece = (char *)(s->tokens + n_ctx);
    }
    if (s->scratch == NULL || s->sampler == NULL) {
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
    free(session->scratch);
    json_vocab_free(session->json_vocab);
    free(session->json_logits);
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
    session->n_exact = 0;
    session->fs.cache.n_used = 0;
    session->have_logits = false;
}

/* Forget every position from n on (n <= n_past). */
static void truncate_cache(edgelm_session *s, int32_t n) {
    s->n_past = n;
    s->fs.cache.n_used = n;
    if (s->n_exact > n) {
        s->n_exact = n;
    }
    s->have_logits = false;
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
    /* one chunk at a time, so a cancel lands within FORWARD_CHUNK tokens */
    const bool exact = s->n_exact == s->n_past;
    for (int32_t i = 0; i < n; i += FORWARD_CHUNK) {
        if (atomic_load_explicit(&s->cancel, memory_order_relaxed)) {
            return session_fail(s, EDGELM_ERR_CANCELLED, "cancelled after %d of %d tokens", (int)i,
                                (int)n);
        }
        const int32_t len = n - i < FORWARD_CHUNK ? n - i : FORWARD_CHUNK;
        s->have_logits = false;
        forward_batch(&s->fs, tokens + i, len, s->n_past, i + len == n);
        s->timings.n_forward_passes++;
        memcpy(s->tokens + s->n_past, tokens + i, (size_t)len * sizeof *tokens);
        s->n_past += len;
        if (exact) {
            s->n_exact = s->n_past;
        }
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
    if (!(params->temperature >= 0.0f) || !(params->top_p >= 0.0f && params->top_p <= 1.0f) ||
        !(params->min_p >= 0.0f && params->min_p <= 1.0f) || params->top_k < 0 ||
        !(params->repeat_penalty > 0.0f) || params->repeat_last_n < 0) {
        return session_fail(session, EDGELM_ERR_INVALID_ARGUMENT,
                            "sampler: need temperature >= 0, 0 <= top_p <= 1, 0 <= min_p <= 1, "
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

/* ---- context shift ------------------------------------------------------------------------- */

/* Make room at n_ctx the way llama.cpp's examples do: keep positions [0, n_keep), drop the
 * oldest half of the rest, slide the newer half down and re-encode its keys at their new
 * positions (RoPE rotations compose: turning by the angles of -n_discard moves p to
 * p - n_discard; angles from forward_rope_angles). False when nothing can be dropped. */
static bool context_shift(edgelm_session *s, int32_t n_keep) {
    const int32_t n_left = s->n_past - n_keep;
    const int32_t n_discard = n_left / 2;
    if (n_keep < 0 || n_discard <= 0) {
        return false;
    }
    const int32_t n_moved = s->n_past - n_keep - n_discard;
    kv_cache_move(&s->fs.cache, n_keep, n_keep + n_discard, n_moved);
    forward_rotate_keys(&s->fs, n_keep, n_keep + n_moved, -n_discard);
    memmove(s->tokens + n_keep, s->tokens + n_keep + n_discard,
            (size_t)n_moved * sizeof *s->tokens);
    /* the moved rows were computed while the dropped tokens were visible */
    const int32_t exact = s->n_exact < n_keep ? s->n_exact : n_keep;
    truncate_cache(s, s->n_past - n_discard);
    s->n_exact = exact;
    s->have_logits = false;
    s->timings.n_context_shifts++;
    return true;
}

/* ---- stop strings -------------------------------------------------------------------------- */

/* Offset of the first occurrence of needle (n bytes) in hay (len bytes), or SIZE_MAX. */
static size_t find_bytes(const char *hay, size_t len, const char *needle, size_t n) {
    for (size_t i = 0; n <= len && i + n <= len; i++) {
        if (hay[i] == needle[0] && memcmp(hay + i, needle, n) == 0) {
            return i;
        }
    }
    return SIZE_MAX;
}

/* Bytes at the end of text (len) that could still grow into a stop string: the longest suffix
 * that is a proper prefix of one of them. */
static size_t stop_hold_back(const edgelm_generate_params *p, const char *text, size_t len) {
    size_t hold = 0;
    for (int32_t k = 0; k < p->n_stop; k++) {
        const size_t n = strlen(p->stop[k]);
        for (size_t m = (n - 1 < len ? n - 1 : len); m > hold; m--) {
            if (memcmp(text + len - m, p->stop[k], m) == 0) {
                hold = m;
                break;
            }
        }
    }
    return hold;
}

/* ---- generate ------------------------------------------------------------------------------ */

static edgelm_status check_generate_params(edgelm_session *s, const edgelm_generate_params *p,
                                           size_t *max_stop) {
    *max_stop = 0;
    if (p->n_stop < 0 || (p->n_stop > 0 && p->stop == NULL)) {
        return session_fail(s, EDGELM_ERR_INVALID_ARGUMENT, "generate: bad stop list");
    }
    for (int32_t k = 0; k < p->n_stop; k++) {
        if (p->stop[k] == NULL || p->stop[k][0] == '\0') {
            return session_fail(s, EDGELM_ERR_INVALID_ARGUMENT,
                                "generate: stop string %d is NULL or empty", (int)k);
        }
        const size_t n = strlen(p->stop[k]);
        if (n > 65536) {
            return session_fail(s, EDGELM_ERR_INVALID_ARGUMENT,
                                "generate: stop string %d is longer than 65536 bytes", (int)k);
        }
        *max_stop = n > *max_stop ? n : *max_stop;
    }
    if (p->n_keep < -1) {
        return session_fail(s, EDGELM_ERR_INVALID_ARGUMENT, "generate: n_keep %d < -1",
                            (int)p->n_keep);
    }
    if (p->n_predict < -1) {
        return session_fail(s, EDGELM_ERR_INVALID_ARGUMENT, "generate: n_predict %d < -1",
                            (int)p->n_predict);
    }
    if (p->format != EDGELM_FORMAT_TEXT && p->format != EDGELM_FORMAT_JSON &&
        p->format != EDGELM_FORMAT_JSON_SCHEMA) {
        return session_fail(s, EDGELM_ERR_INVALID_ARGUMENT, "generate: unknown output format %d",
                            (int)p->format);
    }
    if (p->format == EDGELM_FORMAT_JSON_SCHEMA && p->json_schema == NULL) {
        return session_fail(s, EDGELM_ERR_INVALID_ARGUMENT,
                            "generate: format JSON_SCHEMA without a schema");
    }
    return EDGELM_OK;
}

/* The grammar of a JSON request (NULL for text): the session's token bytes (built once), the
 * request's compiled schema (*schema, NULL for plain JSON) and a fresh parse state. */
static edgelm_status grammar_begin(edgelm_session *s, const edgelm_generate_params *p,
                                   json_schema **schema, json_state **state) {
    *schema = NULL;
    *state = NULL;
    if (p->format == EDGELM_FORMAT_TEXT) {
        return EDGELM_OK;
    }
    edgelm_status st = EDGELM_OK;
    if (s->json_vocab == NULL) {
        st = json_vocab_create(s->model->tok, &s->json_vocab);
        if (st != EDGELM_OK) {
            return session_fail(s, st, "JSON output: cannot index the vocabulary: %s",
                                edgelm_strerror(st));
        }
    }
    if (s->json_logits == NULL) {
        s->json_logits = malloc((size_t)s->model->hp.n_vocab * sizeof(float));
        if (s->json_logits == NULL) {
            return session_fail(s, EDGELM_ERR_OUT_OF_MEMORY, "out of memory");
        }
    }
    if (p->format == EDGELM_FORMAT_JSON_SCHEMA) {
        char err[sizeof s->errmsg - 16];
        err[0] = '\0';
        st = json_schema_compile(p->json_schema, strlen(p->json_schema), schema, err, sizeof err);
        if (st != EDGELM_OK) {
            return session_fail(s, st, "schema: %s", err[0] ? err : edgelm_strerror(st));
        }
    }
    st = json_state_create(s->json_vocab, *schema, state);
    if (st != EDGELM_OK) {
        json_schema_free(*schema);
        *schema = NULL;
        return session_fail(s, st, "JSON output: %s", edgelm_strerror(st));
    }
    return EDGELM_OK;
}

/* Tokens in the shortest complete value from the grammar's current (initial) state: the forced
 * closing sequence, counted by walking it; the state is reset afterwards. -1 when the closing
 * cannot be walked (a vocabulary without the needed token). */
static int64_t json_min_tokens(json_state *g) {
    int64_t n = 0;
    char first;
    while (json_state_closing(g, &first, 1) > 0) {
        const int32_t token = json_state_closing_token(g);
        if (token < 0 || n >= (1 << 20) || !json_state_accept(g, token)) {
            n = -1;
            break;
        }
        n++;
    }
    json_state_reset(g);
    return n;
}

/* Pick the next token of a JSON value with `left` tokens of budget (this one included): the
 * sampler's choice when the grammar allows it, else its choice among the allowed tokens; and
 * when that choice could leave the value too long to close within the budget, the token that
 * closes it fastest. -1 when no token can continue the value. */
static int32_t sample_json(edgelm_session *s, json_state *g, int64_t left) {
    const int32_t n_vocab = s->model->hp.n_vocab;
    int32_t token = sampler_sample(s->sampler, s->fs.logits);
    if (!json_state_allows(g, token)) {
        memcpy(s->json_logits, s->fs.logits, (size_t)n_vocab * sizeof(float));
        json_state_mask(g, s->json_logits, n_vocab);
        token = sampler_sample(s->sampler, s->json_logits);
    }
    if (token < 0 || token >= n_vocab || !json_state_allows(g, token) ||
        (int64_t)json_state_closing_after(g, token) > left - 1) {
        token = json_state_closing_token(g);
    }
    return token;
}

/* Length of the common prefix of a[0..na) and b[0..nb). */
static int32_t common_prefix(const int32_t *a, int32_t na, const int32_t *b, int32_t nb) {
    int32_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) {
        i++;
    }
    return i;
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
    size_t max_stop = 0;
    edgelm_status st = check_generate_params(s, params, &max_stop);
    if (st != EDGELM_OK) {
        return st;
    }
    st = edgelm_session_set_sampler(s, &params->sampling);
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
    int32_t n_prompt =
        tokenizer_encode(m->tok, params->prompt, len, add_bos, params->parse_special, NULL, 0);
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
    /* held: generated text not yet delivered because it may be the start of a stop string */
    const size_t held_size = max_stop + s->piece_size;
    json_schema *schema = NULL;
    json_state *grammar = NULL;
    st = grammar_begin(s, params, &schema, &grammar);
    if (st != EDGELM_OK) {
        return st;
    }
    if (grammar != NULL && params->n_predict >= 0) {
        /* refuse up front rather than return a value cut off by the budget */
        const int64_t need = json_min_tokens(grammar);
        if (need > params->n_predict) {
            const char *what = schema != NULL ? "this JSON schema" : "JSON output";
            json_state_free(grammar);
            json_schema_free(schema);
            return session_fail(s, EDGELM_ERR_INVALID_ARGUMENT,
                                "n_predict %d is too small for %s: its shortest valid value takes "
                                "%lld tokens",
                                (int)params->n_predict, what, (long long)need);
        }
    }
    int32_t *prompt = malloc((size_t)n_prompt * sizeof *prompt);
    char *held = malloc(held_size);
    if (prompt == NULL || held == NULL) {
        free(prompt);
        free(held);
        json_state_free(grammar);
        json_schema_free(schema);
        return session_fail(s, EDGELM_ERR_OUT_OF_MEMORY, "out of memory");
    }
    tokenizer_encode(m->tok, params->prompt, len, add_bos, params->parse_special, prompt, n_prompt);

    /* Prefix reuse: keep what the cache shares with the prompt (exact rows only), and always
     * evaluate at least the last prompt token so there are logits to sample from. */
    int32_t n_cached = 0;
    if (params->reuse_prefix) {
        n_cached = common_prefix(s->tokens, s->n_exact, prompt, n_prompt);
        if (n_cached == n_prompt) {
            n_cached--;
        }
        if (!kv_cache_can_continue(&s->fs.cache, n_cached)) {
            n_cached = 0; /* a sliding-window layer's ring no longer holds its window */
        }
    }
    truncate_cache(s, n_cached);
    for (int32_t i = 0; i < n_prompt; i++) {
        sampler_accept(s->sampler, prompt[i]);
    }
    st = eval_tokens(s, prompt + n_cached, n_prompt - n_cached);
    s->timings.n_prompt_tokens = n_prompt;
    s->timings.n_cached_tokens = n_cached;
    const double t_prefilled = now_ms();
    s->timings.prompt_ms = t_prefilled - t_start;
    /* tokens kept by a context shift: BOS (when the prompt starts with it) plus n_keep */
    const bool bos_first = add_bos && prompt[0] == tokenizer_bos(m->tok);
    int32_t n_keep = n_prompt;
    if (params->n_keep >= 0 && params->n_keep < n_prompt) {
        n_keep = params->n_keep + (bos_first ? 1 : 0);
        n_keep = n_keep > n_prompt ? n_prompt : n_keep;
    }
    free(prompt);
    if (st != EDGELM_OK) {
        free(held);
        json_state_free(grammar);
        json_schema_free(schema);
        if (st == EDGELM_ERR_CANCELLED && finish != NULL) {
            *finish = EDGELM_FINISH_CANCELLED;
        }
        return st;
    }

    size_t pending = 0;  /* bytes of an unfinished UTF-8 character held back in s->piece */
    size_t held_len = 0; /* complete text held back in held (stop strings) */
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
        int32_t token;
        if (grammar != NULL) {
            /* budget: n_predict, and the context when it cannot shift */
            int64_t left = params->n_predict >= 0 ? params->n_predict - n_generated : INT64_MAX;
            if (params->n_predict < 0 || !params->context_shift) {
                const int64_t room = (int64_t)s->n_ctx - s->n_past + 1;
                left = room < left ? room : left;
            }
            token = sample_json(s, grammar, left);
            if (token < 0) {
                s->timings.sample_ms += now_ms() - t_sample;
                st = session_fail(s, EDGELM_ERR_INVALID_ARGUMENT,
                                  "JSON output: no token of this vocabulary can continue the "
                                  "value");
                break;
            }
            json_state_accept(grammar, token);
        } else {
            token = sampler_sample(s->sampler, s->fs.logits);
        }
        sampler_accept(s->sampler, token);
        s->timings.sample_ms += now_ms() - t_sample;
        if (tokenizer_is_eog(m->tok, token)) {
            reason = EDGELM_FINISH_EOG;
            break;
        }
        n_generated++;
        int32_t n =
            tokenizer_token_to_piece(m->tok, token, s->piece + pending, s->piece_size - pending);
        if (n < 0 || (size_t)n > s->piece_size - pending) {
            n = 0;
        }
        size_t total = pending + (size_t)n;
        size_t ready = utf8_complete_prefix(s->piece, total);
        if (n_generated == 1) {
            t_first = now_ms();
            s->timings.ttft_ms = t_first - t_start;
        }
        const char *out = s->piece;
        size_t out_len = ready;
        bool stopped = false;
        if (params->n_stop > 0) {
            memcpy(held + held_len, s->piece, ready);
            held_len += ready;
            size_t cut = SIZE_MAX;
            for (int32_t k = 0; k < params->n_stop; k++) {
                size_t at = find_bytes(held, held_len, params->stop[k], strlen(params->stop[k]));
                cut = at < cut ? at : cut;
            }
            stopped = cut != SIZE_MAX;
            out = held;
            out_len = stopped ? cut : held_len - stop_hold_back(params, held, held_len);
        }
        bool keep_going = callback == NULL || callback(user_data, token, out, out_len);
        if (params->n_stop > 0) {
            memmove(held, held + out_len, held_len - out_len);
            held_len -= out_len;
        }
        memmove(s->piece, s->piece + ready, total - ready);
        pending = total - ready;
        s->timings.n_generated_tokens = n_generated;
        if (stopped) {
            reason = EDGELM_FINISH_STOP_STRING;
            break;
        }
        if (grammar != NULL && json_state_complete(grammar)) {
            reason = EDGELM_FINISH_GRAMMAR;
            break;
        }
        if (!keep_going) {
            reason = EDGELM_FINISH_CALLBACK;
            break;
        }
        if (params->n_predict >= 0 && n_generated >= params->n_predict) {
            reason = EDGELM_FINISH_LENGTH;
            break; /* the last token needs no evaluation */
        }
        /* n_predict -1 means "until the context is full", so it never shifts */
        if ((uint32_t)s->n_past >= s->n_ctx &&
            (!params->context_shift || params->n_predict < 0 || !context_shift(s, n_keep))) {
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
    if (reason != EDGELM_FINISH_CALLBACK && reason != EDGELM_FINISH_STOP_STRING &&
        callback != NULL && held_len + pending > 0) {
        /* flush text held for a stop string that never came, and an incomplete tail as is */
        memcpy(held + held_len, s->piece, pending);
        callback(user_data, -1, held, held_len + pending);
    }
    free(held);
    json_state_free(grammar);
    json_schema_free(schema);
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

/* ---- prompt state -------------------------------------------------------------------------- */

static state_layout session_layout(const edgelm_session *s) {
    state_layout layout = {s->model->fingerprint, s->model->hp.n_vocab, s->n_ctx};
    return layout;
}

const int32_t *edgelm_session_tokens(const edgelm_session *session) { return session->tokens; }

size_t edgelm_session_state_size(const edgelm_session *session) {
    const kv_cache *c = &session->fs.cache;
    uint64_t bytes = state_bytes(c, session->n_past);
    return bytes > SIZE_MAX ? 0 : (size_t)bytes;
}

edgelm_status edgelm_session_state_save(const edgelm_session *session, void *buf, size_t size,
                                        size_t *written) {
    if (session == NULL) {
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    edgelm_session *s = (edgelm_session *)(uintptr_t)session; /* for the error message only */
    state_layout layout = session_layout(s);
    state_contents in = {&s->fs.cache, s->tokens, s->n_past, s->n_exact};
    char err[256];
    edgelm_status st = state_save_mem(&layout, &in, buf, size, written, err, sizeof err);
    if (st != EDGELM_OK) {
        return session_fail(s, st, "%s", err);
    }
    return EDGELM_OK;
}

edgelm_status edgelm_session_state_save_file(const edgelm_session *session, const char *path) {
    if (session == NULL) {
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    edgelm_session *s = (edgelm_session *)(uintptr_t)session; /* for the error message only */
    state_layout layout = session_layout(s);
    state_contents in = {&s->fs.cache, s->tokens, s->n_past, s->n_exact};
    char err[sizeof s->errmsg];
    edgelm_status st = state_save_file(&layout, &in, path, err, sizeof err);
    if (st != EDGELM_OK) {
        return session_fail(s, st, "%s", err);
    }
    return EDGELM_OK;
}

static edgelm_status finish_load(edgelm_session *s, edgelm_status st, const state_contents *got,
                                 const char *err) {
    if (st != EDGELM_OK) {
        edgelm_session_reset(s);
        return session_fail(s, st, "%s", err);
    }
    s->n_past = got->n_tokens;
    s->n_exact = got->n_exact;
    s->fs.cache.n_used = got->n_tokens;
    s->have_logits = false;
    return EDGELM_OK;
}

/* Both loaders: empty the session, then read a saved state into its cache and token list, from
 * the file at path (from_file) or from buf[0..size). */
static edgelm_status load_state(edgelm_session *session, bool from_file, const char *path,
                                const void *buf, size_t size) {
    if (session == NULL) {
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    edgelm_session_reset(session);
    state_layout layout = session_layout(session);
    state_contents got = {&session->fs.cache, session->tokens, 0, 0};
    char err[sizeof session->errmsg];
    edgelm_status st = from_file ? state_load_file(&layout, &got, path, err, sizeof err)
                                 : state_load_mem(&layout, &got, buf, size, err, sizeof err);
    return finish_load(session, st, &got, err);
}

edgelm_status edgelm_session_state_load(edgelm_session *session, const void *buf, size_t size) {
    return load_state(session, false, NULL, buf, size);
}

edgelm_status edgelm_session_state_load_file(edgelm_session *session, const char *path) {
    return load_state(session, true, path, NULL, 0);
}
