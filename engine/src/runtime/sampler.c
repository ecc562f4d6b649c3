/* sampler.c - pick the next token from logits: greedy argmax, or llama.cpp's common chain
 * (repetition penalty -> top-k -> top-p -> min-p -> temperature -> softmax -> seeded draw).
 * Not thread-safe (one per session). Sampling allocates nothing (scratch sized at create, in one
 * block with the sampler) and never sorts the vocabulary: top-k is a k-heap filled in one pass;
 * without top-k, top-p is a banded first cut plus quickselect on mass. NaN logits count as -inf.
 * Deterministic for a given seed, history and logits.
 */
#include "sampler.h"

#include "base/random.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The repetition-penalty history is a ring of at most this many tokens; repeat_last_n is
 * clamped to it, and a negative repeat_last_n (llama.cpp's "whole context") means all of it. */
#define SAMPLER_HISTORY_CAP 4096
/* Survivors of the cuts are put in canonical order (logit descending, id ascending) before the
 * draw when there are at most this many; a flatter distribution keeps its selection order
 * (still deterministic) so the draw never costs O(V log V). */
#define SAMPLER_SORT_MAX 4096

typedef struct candidate {
    float logit; /* NaN already turned into -inf; penalized */
    float w;     /* unnormalized weight exp((logit - max) / t), t = 1 or the temperature */
    int32_t id;
} candidate;

struct sampler {
    int32_t n_vocab;
    candidate *cand;        /* (n_vocab) working set */
    uint8_t *penalized;     /* (n_vocab) 1 for the tokens of the penalty window during a call */
    int32_t *penalty_ids;   /* (SAMPLER_HISTORY_CAP) the distinct tokens of the window */
    int32_t *history;       /* (SAMPLER_HISTORY_CAP) ring of accepted tokens */
    int32_t history_window; /* ring length in use: clamped repeat_last_n, 0 = penalty off */
    int32_t history_len;    /* tokens held, <= history_window */
    int32_t history_head;   /* next slot to write */
    edgelm_sampler_params params;
    uint64_t rng[4]; /* xoshiro256** state (base/random.h) */
};

/* ---- random numbers ------------------------------------------------------------------------ */

/* Uniform in [0, 1) with 53 random bits. */
static double xoshiro_uniform(uint64_t s[4]) { return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53; }

/* ---- candidate order, selection, heaps ----------------------------------------------------- */

/* The total order every cut uses: higher logit first, lower id first among equal logits (so
 * ties resolve as llama.cpp's greedy does). Candidates never hold NaN. */
static int cand_before(const candidate *a, const candidate *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static void cand_swap(candidate *a, candidate *b) {
    candidate t = *a;
    *a = *b;
    *b = t;
}

/* Partition c[lo, hi) around a pseudo-random pivot: afterwards c[lo, m) come before c[m] and
 * c(m, hi) after it in cand_before order; returns m. The pivot generator restarts on every
 * sampler_sample call, so what survives depends only on that call's candidates. */
static size_t partition(candidate *c, size_t lo, size_t hi, uint64_t *pivot_state) {
    size_t p = lo + (size_t)(splitmix64_next(pivot_state) % (uint64_t)(hi - lo));
    cand_swap(&c[p], &c[hi - 1]);
    const candidate pivot = c[hi - 1];
    size_t store = lo;
    for (size_t i = lo; i < hi - 1; i++) {
        if (cand_before(&c[i], &pivot)) {
            cand_swap(&c[i], &c[store]);
            store++;
        }
    }
    cand_swap(&c[store], &c[hi - 1]);
    return store;
}

/* Smallest prefix (in cand_before order) of c[0, n) whose weight reaches target: moves it to
 * c[0, count) in no particular order and returns count (>= 1). Quickselect on mass, O(n)
 * expected: each round either keeps the whole "before" side and continues after the pivot, or
 * drops the pivot and everything after it. */
static size_t select_mass(candidate *c, size_t n, double target, uint64_t *pivot_state) {
    size_t lo = 0, hi = n;
    double kept = 0.0; /* weight of c[0, lo), all of which is in the prefix */
    while (lo < hi) {
        size_t m = partition(c, lo, hi, pivot_state);
        double before = 0.0;
        for (size_t i = lo; i < m; i++) {
            before += (double)c[i].w;
        }
        if (kept + before >= target) {
            hi = m;
        } else if (kept + before + (double)c[m].w >= target) {
            lo = m + 1;
            break;
        } else {
            kept += before + (double)c[m].w;
            lo = m + 1;
        }
    }
    return lo > 0 ? lo : 1;
}

/* The heaps here keep the worst candidate (last in cand_before order) at the root: the k-heap
 * of the best k seen so far, whose root is the bar a newcomer must beat, and heapsort. */
static void sift_down(candidate *c, size_t root, size_t n) {
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n) {
            return;
        }
        if (child + 1 < n && cand_before(&c[child], &c[child + 1])) {
            child++; /* the worse child */
        }
        if (!cand_before(&c[root], &c[child])) {
            return;
        }
        cand_swap(&c[root], &c[child]);
        root = child;
    }
}

static void sift_up(candidate *c, size_t i) {
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_before(&c[parent], &c[i])) {
            return;
        }
        cand_swap(&c[parent], &c[i]);
        i = parent;
    }
}

/* Offer x to the heap c[0, *size) that keeps the best k. */
static void heap_offer(candidate *c, size_t *size, size_t k, candidate x) {
    if (*size < k) {
        c[*size] = x;
        sift_up(c, *size);
        (*size)++;
    } else if (cand_before(&x, &c[0])) {
        c[0] = x;
        sift_down(c, 0, k);
    }
}

/* Sort into cand_before order (best first): in place, no recursion, no allocation (the C
 * library's qsort may allocate). */
static void sort_candidates(candidate *c, size_t n) {
    if (n < 2) {
        return;
    }
    for (size_t i = n / 2; i-- > 0;) {
        sift_down(c, i, n);
    }
    for (size_t end = n - 1; end > 0; end--) {
        cand_swap(&c[0], &c[end]);
        sift_down(c, 0, end);
    }
}

static size_t best_index(const candidate *c, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++) {
        if (cand_before(&c[i], &c[best])) {
            best = i;
        }
    }
    return best;
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

/* seed is used as given: 0 is an ordinary seed, not "random". Callers wanting variety pass a
 * seed of their own (time, /dev/urandom). */
edgelm_sampler_params edgelm_sampler_params_default(void) {
    edgelm_sampler_params p;
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.seed = 0;
    return p;
}

sampler *sampler_create(int32_t n_vocab) {
    /* One allocation: the struct, then cand (n_vocab), penalty_ids and history (each
     * SAMPLER_HISTORY_CAP), then penalized (n_vocab); each array starts aligned for its type
     * because everything before it is a multiple of that alignment. */
    static_assert(_Alignof(sampler) % _Alignof(candidate) == 0, "cand follows the struct");
    static_assert(sizeof(candidate) % _Alignof(int32_t) == 0, "penalty_ids follows cand");
    const size_t fixed = sizeof(sampler) + 2 * (size_t)SAMPLER_HISTORY_CAP * sizeof(int32_t);
    const size_t per_token = sizeof(candidate) + sizeof(uint8_t);
    if (n_vocab <= 0 || (size_t)n_vocab > (SIZE_MAX - fixed) / per_token) {
        return NULL;
    }
    sampler *s = calloc(1, fixed + (size_t)n_vocab * per_token);
    if (s == NULL) {
        return NULL;
    }
    s->n_vocab = n_vocab;
    s->cand = (candidate *)(s + 1);
    s->penalty_ids = (int32_t *)(s->cand + n_vocab);
    s->history = s->penalty_ids + SAMPLER_HISTORY_CAP;
    s->penalized = (uint8_t *)(s->history + SAMPLER_HISTORY_CAP);
    edgelm_sampler_params defaults = edgelm_sampler_params_default();
    sampler_configure(s, &defaults);
    return s;
}

void sampler_free(sampler *s) { free(s); }

/* A penalty of 1 (or one that is not a positive finite number) and a window of 0 are "off". */
static int penalty_active(const edgelm_sampler_params *p) {
    return p->repeat_penalty != 1.0f && p->repeat_penalty > 0.0f && isfinite(p->repeat_penalty) &&
           p->repeat_last_n != 0;
}

void sampler_configure(sampler *s, const edgelm_sampler_params *params) {
    if (s == NULL) {
        return;
    }
    s->params = params != NULL ? *params : edgelm_sampler_params_default();
    /* An infinite temperature would turn (-inf - max) / t into NaN; the largest finite one
     * already makes the distribution uniform. */
    if (s->params.temperature > FLT_MAX) {
        s->params.temperature = FLT_MAX;
    }
    int32_t window = 0;
    if (penalty_active(&s->params)) {
        window = s->params.repeat_last_n;
        if (window < 0 || window > SAMPLER_HISTORY_CAP) {
            window = SAMPLER_HISTORY_CAP;
        }
    }
    s->history_window = window;
    s->history_len = 0;
    s->history_head = 0;
    xoshiro_seed(s->rng, s->params.seed);
}

void sampler_accept(sampler *s, int32_t token) {
    if (s == NULL || s->history_window == 0 || token < 0 || token >= s->n_vocab) {
        return;
    }
    s->history[s->history_head] = token;
    s->history_head = (s->history_head + 1) % s->history_window;
    if (s->history_len < s->history_window) {
        s->history_len++;
    }
}

/* ---- sampling ------------------------------------------------------------------------------ */

/* Mark the distinct tokens of the penalty window; returns how many. */
static int32_t mark_penalized(sampler *s) {
    int32_t n = 0;
    for (int32_t i = 0; i < s->history_len; i++) {
        const int32_t t = s->history[i];
        if (!s->penalized[t]) {
            s->penalized[t] = 1;
            s->penalty_ids[n++] = t;
        }
    }
    return n;
}

static void clear_penalized(sampler *s, int32_t n_penalized) {
    for (int32_t i = 0; i < n_penalized; i++) {
        s->penalized[s->penalty_ids[i]] = 0;
    }
}

static float sanitize(float l) { return isnan(l) ? -INFINITY : l; }

/* llama.cpp's repetition penalty: positive logits divided, the others multiplied, so a
 * penalty above 1 always lowers the token. Applied once per distinct token of the window. */
static float penalize(float l, float penalty) { return l > 0.0f ? l / penalty : l * penalty; }

/* Greedy: the first token in cand_before order. Tokens of the penalty window are skipped in the
 * scan and compared with their penalized logits afterwards. */
static int32_t pick_greedy(const sampler *s, const float *logits, int32_t n_penalized) {
    const int32_t n = s->n_vocab;
    const uint8_t *skip = n_penalized > 0 ? s->penalized : NULL;
    int32_t best_id = -1;
    float best = -INFINITY;
    for (int32_t i = 0; i < n; i++) {
        /* strictly greater keeps the lowest id among ties; NaN never compares greater */
        if (logits[i] > best && (skip == NULL || !skip[i])) {
            best = logits[i];
            best_id = i;
        }
    }
    for (int32_t j = 0; j < n_penalized; j++) {
        const int32_t t = s->penalty_ids[j];
        const float l = penalize(sanitize(logits[t]), s->params.repeat_penalty);
        if (l > best || (best_id >= 0 && l == best && t < best_id)) {
            best = l;
            best_id = t;
        }
    }
    /* nothing above -inf: every token ties, and the lowest id comes first */
    return best_id >= 0 ? best_id : 0;
}

/* The k best tokens (0 < k < n_vocab) into s->cand[0, k) as a heap, in one pass over the
 * logits: after the first k, a token costs one comparison against the heap's worst. */
static void gather_top_k(sampler *s, const float *logits, size_t k, int32_t n_penalized) {
    candidate *c = s->cand;
    const size_t n = (size_t)s->n_vocab;
    const uint8_t *skip = n_penalized > 0 ? s->penalized : NULL;
    size_t size = 0, i = 0;
    for (; i < n && size < k; i++) {
        if (skip == NULL || !skip[i]) {
            candidate x = {sanitize(logits[i]), 0.0f, (int32_t)i};
            heap_offer(c, &size, k, x);
        }
    }
    if (size == k) {
        float bar = c[0].logit;
        for (; i < n; i++) {
            /* ids rise through the scan, so an equal logit loses to the root; NaN never wins */
            if (logits[i] > bar && (skip == NULL || !skip[i])) {
                c[0].logit = logits[i];
                c[0].id = (int32_t)i;
                sift_down(c, 0, k);
                bar = c[0].logit;
            }
        }
    }
    for (int32_t j = 0; j < n_penalized; j++) {
        const int32_t t = s->penalty_ids[j];
        candidate x = {penalize(sanitize(logits[t]), s->params.repeat_penalty), 0.0f, t};
        heap_offer(c, &size, k, x);
    }
}

/* Every token into s->cand, indexed by id, NaN as -inf, the window penalized. */
static void gather_all(sampler *s, const float *logits, int32_t n_penalized) {
    candidate *c = s->cand;
    const size_t n = (size_t)s->n_vocab;
    for (size_t i = 0; i < n; i++) {
        c[i].logit = sanitize(logits[i]);
        c[i].w = 0.0f;
        c[i].id = (int32_t)i;
    }
    for (int32_t j = 0; j < n_penalized; j++) {
        float *l = &c[s->penalty_ids[j]].logit;
        *l = penalize(*l, s->params.repeat_penalty);
    }
}

/* Keep the candidates at or above max_logit + log(min_p) (llama.cpp's min-p: p >= min_p *
 * p_max), in their order. The maximum always stays. */
static size_t cut_min_p(candidate *c, size_t n, float max_logit, float min_p) {
    const float min_logit = max_logit + logf(min_p < 1.0f ? min_p : 1.0f);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i].logit >= min_logit) {
            c[kept++] = c[i];
        }
    }
    return kept;
}

/* Top-p and min-p each keep a prefix of the same order, and min-p's threshold is a logit
 * relative to the max, which top-p's renormalization leaves alone; so min-p may cut first,
 * provided top-p's mass is still measured against every candidate. min_p 0 = off. */

/* llama.cpp's top-p (smallest prefix whose probability reaches top_p, at least one token) on
 * candidates already in order. */
static size_t cut_top_p_sorted(candidate *c, size_t n, float max_logit, float top_p, float min_p) {
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        c[i].w = expf(c[i].logit - max_logit);
        total += (double)c[i].w;
    }
    if (min_p > 0.0f) {
        n = cut_min_p(c, n, max_logit, min_p);
    }
    const double target = (double)(top_p > 0.0f ? top_p : 0.0f) * total;
    double cum = 0.0;
    for (size_t i = 0; i < n; i++) {
        cum += (double)c[i].w;
        if (cum >= target) {
            return i + 1;
        }
    }
    return n;
}

/* Bands of the first cut below, read off the float bits of a weight w = exp(logit - max) in
 * [0, 1]: 1 - w's bits, shifted, give four bands per halving of w (exponent plus two mantissa
 * bits), monotone in w, so equal logits share a band and every band boundary is a logit
 * threshold. Weights below about 2^-16 (logits 11 below the max) share the last band. */
#define TOP_P_BANDS 64

static uint32_t top_p_band(float w) {
    uint32_t bits;
    memcpy(&bits, &w, sizeof(bits));
    const uint32_t band = (0x3f800000u - bits) >> 21; /* bits <= those of 1.0f */
    return band < TOP_P_BANDS - 1 ? band : TOP_P_BANDS - 1;
}

/* The same on unordered candidates, without sorting them: one pass sums each band's weight,
 * so the bands needed to reach top_p are known; a second keeps only those (and min-p's
 * survivors), which hold the whole prefix; quickselect on mass then finds the exact prefix
 * among what is left, for real logits a few dozen to a few hundred tokens. */
static size_t cut_top_p_unsorted(candidate *c, size_t n, float max_logit, float top_p, float min_p,
                                 uint64_t *pivot_state) {
    /* four interleaved sets of sums, so runs of tokens in one band do not chain their adds */
    double band4[4][TOP_P_BANDS] = {{0}};
    for (size_t i = 0; i < n; i++) {
        c[i].w = expf(c[i].logit - max_logit);
        band4[i & 3][top_p_band(c[i].w)] += (double)c[i].w;
    }
    double total = 0.0;
    double band[TOP_P_BANDS];
    for (int b = 0; b < TOP_P_BANDS; b++) {
        band[b] = band4[0][b] + band4[1][b] + band4[2][b] + band4[3][b];
        total += band[b];
    }
    const double target = (double)(top_p > 0.0f ? top_p : 0.0f) * total;
    uint32_t last_band = TOP_P_BANDS - 1;
    double cum = 0.0;
    for (uint32_t b = 0; b < TOP_P_BANDS; b++) {
        cum += band[b];
        if (cum >= target) {
            last_band = b;
            break;
        }
    }
    const float min_logit =
        min_p > 0.0f ? max_logit + logf(min_p < 1.0f ? min_p : 1.0f) : -INFINITY;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (top_p_band(c[i].w) <= last_band && c[i].logit >= min_logit) {
            c[kept++] = c[i];
        }
    }
    return select_mass(c, kept, target, pivot_state);
}

int32_t sampler_sample(sampler *s, const float *logits) {
    if (s == NULL || logits == NULL) {
        return -1;
    }
    const edgelm_sampler_params *p = &s->params;
    candidate *c = s->cand;
    size_t n = (size_t)s->n_vocab;
    uint64_t pivot_state = 0x5eed5eed5eed5eedull; /* see partition() */
    const int32_t n_penalized = s->history_len > 0 ? mark_penalized(s) : 0;

    if (!(p->temperature > 0.0f)) {
        const int32_t id = pick_greedy(s, logits, n_penalized);
        clear_penalized(s, n_penalized);
        return id;
    }

    int sorted = 0;
    if (p->top_k > 0 && (size_t)p->top_k < n) {
        n = (size_t)p->top_k;
        gather_top_k(s, logits, n, n_penalized);
        sort_candidates(c, n);
        sorted = 1;
    } else {
        gather_all(s, logits, n_penalized);
    }
    clear_penalized(s, n_penalized);

    const size_t best = sorted ? 0 : best_index(c, n);
    const float max_logit = c[best].logit;
    if (n == 1 || isinf(max_logit)) {
        /* one candidate; or +inf, which takes all the probability (the first such token); or
         * nothing above -inf, where every token ties */
        return c[best].id;
    }

    const int use_min_p = p->min_p > 0.0f;
    if (p->top_p < 1.0f) {
        n = sorted ? cut_top_p_sorted(c, n, max_logit, p->top_p, use_min_p ? p->min_p : 0.0f)
                   : cut_top_p_unsorted(c, n, max_logit, p->top_p, use_min_p ? p->min_p : 0.0f,
                                        &pivot_state);
    } else if (use_min_p) {
        n = cut_min_p(c, n, max_logit, p->min_p);
    }
    if (!sorted && n <= SAMPLER_SORT_MAX) {
        sort_candidates(c, n);
    }

    /* temperature, softmax and the draw; the maximum survived every cut */
    const float t = p->temperature;
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        c[i].w = expf((c[i].logit - max_logit) / t);
        total += (double)c[i].w;
    }
    const double u = xoshiro_uniform(s->rng) * total;
    double cum = 0.0;
    size_t last_positive = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i].w > 0.0f) {
            cum += (double)c[i].w;
            last_positive = i;
            if (u < cum) {
                return c[i].id;
            }
        }
    }
    return c[last_positive].id; /* rounding left u at the very top */
}
