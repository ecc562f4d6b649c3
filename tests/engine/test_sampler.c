/* test_sampler.c - unit tests of the sampler: greedy and its ties, top-k 1 = greedy, seed
 * determinism, drawn frequencies against the exact distribution (per-token 5 sigma and
 * chi-square) for plain softmax and for the full chain checked against a naive full-sort
 * reference, top-p / min-p cuts, the repetition penalty, NaN logits, odd parameters and a
 * 151936-token vocabulary.
 */
#include "runtime/sampler.h"
#include "test_util.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------------------------- */

static uint64_t test_rng_state = 0x1234567887654321ull;

static uint64_t test_rand(void) {
    uint64_t x = test_rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    test_rng_state = x;
    return x;
}

/* Uniform in [lo, hi). */
static float rand_range(float lo, float hi) {
    double u = (double)(test_rand() >> 11) * 0x1.0p-53;
    return lo + (float)(u * (double)(hi - lo));
}

static edgelm_sampler_params plain_params(float temperature, uint64_t seed) {
    edgelm_sampler_params p = edgelm_sampler_params_default();
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.seed = seed;
    return p;
}

/* The default chain made greedy (temperature 0). */
static edgelm_sampler_params greedy_params(void) {
    edgelm_sampler_params p = edgelm_sampler_params_default();
    p.temperature = 0.0f;
    return p;
}

/* A sampler over n ids: one CHECK that it was created; NULL if not. */
static sampler *new_sampler(int32_t n) {
    sampler *s = sampler_create(n);
    CHECK(s != NULL);
    return s;
}

/* A sampler over n ids configured with p: one CHECK that it was created; NULL if not. */
static sampler *new_configured_sampler(int32_t n, const edgelm_sampler_params *p) {
    sampler *s = new_sampler(n);
    if (s != NULL) {
        sampler_configure(s, p);
    }
    return s;
}

static int32_t naive_argmax(const float *logits, int32_t n) {
    int32_t best = -1;
    for (int32_t i = 0; i < n; i++) {
        if (isnan(logits[i])) {
            continue;
        }
        if (best < 0 || logits[i] > logits[best]) {
            best = i;
        }
    }
    return best;
}

typedef struct ref_item {
    float logit;
    int32_t id;
} ref_item;

static int ref_cmp(const void *a, const void *b) {
    const ref_item *x = a, *y = b;
    if (x->logit != y->logit) {
        return x->logit > y->logit ? -1 : 1;
    }
    return x->id < y->id ? -1 : (x->id > y->id);
}

/* The textbook chain with a full sort (what the sampler must equal): probabilities per token
 * id into prob (n entries). Logits must be finite; history holds n_hist accepted tokens. */
static void reference_probs(const float *logits, int32_t n, const edgelm_sampler_params *p,
                            const int32_t *history, int32_t n_hist, double *prob) {
    ref_item *items = malloc((size_t)n * sizeof(*items));
    for (int32_t i = 0; i < n; i++) {
        items[i].logit = logits[i];
        items[i].id = i;
    }
    if (p->repeat_penalty != 1.0f && p->repeat_last_n != 0) {
        int32_t from = n_hist > p->repeat_last_n ? n_hist - p->repeat_last_n : 0;
        for (int32_t t = 0; t < n; t++) {
            int seen = 0;
            for (int32_t h = from; h < n_hist; h++) {
                seen |= history[h] == t;
            }
            if (seen) {
                float l = items[t].logit;
                items[t].logit = l > 0.0f ? l / p->repeat_penalty : l * p->repeat_penalty;
            }
        }
    }
    qsort(items, (size_t)n, sizeof(*items), ref_cmp);
    for (int32_t i = 0; i < n; i++) {
        prob[i] = 0.0;
    }
    size_t m = (size_t)n;
    if (p->top_k > 0 && (size_t)p->top_k < m) {
        m = (size_t)p->top_k;
    }
    const float max_logit = items[0].logit;
    if (p->top_p < 1.0f) {
        double total = 0.0;
        for (size_t i = 0; i < m; i++) {
            total += exp((double)(items[i].logit - max_logit));
        }
        double cum = 0.0;
        for (size_t i = 0; i < m; i++) {
            cum += exp((double)(items[i].logit - max_logit)) / total;
            if (cum >= (double)p->top_p) {
                m = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0.0f) {
        const float min_logit = max_logit + logf(p->min_p);
        size_t keep = 1;
        while (keep < m && items[keep].logit >= min_logit) {
            keep++;
        }
        m = keep;
    }
    double total = 0.0;
    for (size_t i = 0; i < m; i++) {
        total += exp((double)(items[i].logit - max_logit) / (double)p->temperature);
    }
    for (size_t i = 0; i < m; i++) {
        prob[items[i].id] =
            exp((double)(items[i].logit - max_logit) / (double)p->temperature) / total;
    }
    free(items);
}

/* Draw n_draws tokens and compare their counts with prob: every token within 5 sigma of its
 * expectation (plus one count of slack), none drawn with probability 0, and Pearson's
 * chi-square over the tokens expected at least 5 times below df + 6 sqrt(2 df). */
static void check_distribution(sampler *s, const float *logits, int32_t n, const double *prob,
                               int n_draws, const char *what) {
    long *counts = calloc((size_t)n, sizeof(*counts));
    CHECK(counts != NULL);
    if (counts == NULL) {
        return;
    }
    int out_of_range = 0;
    for (int d = 0; d < n_draws; d++) {
        int32_t t = sampler_sample(s, logits);
        if (t < 0 || t >= n) {
            out_of_range++;
        } else {
            counts[t]++;
        }
    }
    CHECK_MSG(out_of_range == 0, "%s: %d draws out of range", what, out_of_range);
    int bad_sigma = 0, drawn_impossible = 0, df = -1;
    double chi2 = 0.0, worst_z = 0.0;
    for (int32_t t = 0; t < n; t++) {
        const double expected = prob[t] * n_draws;
        if (prob[t] == 0.0) {
            drawn_impossible += counts[t] != 0;
            continue;
        }
        const double sigma = sqrt(expected * (1.0 - prob[t]));
        const double dev = fabs((double)counts[t] - expected);
        if (dev > 5.0 * sigma + 1.0) {
            bad_sigma++;
            fprintf(stderr, "%s: token %d drawn %ld times, expected %.1f (sigma %.1f)\n", what,
                    (int)t, counts[t], expected, sigma);
        }
        if (sigma > 0.0 && dev / sigma > worst_z) {
            worst_z = dev / sigma;
        }
        if (expected >= 5.0) {
            chi2 += ((double)counts[t] - expected) * ((double)counts[t] - expected) / expected;
            df++;
        }
    }
    CHECK_MSG(drawn_impossible == 0, "%s: %d tokens of probability 0 drawn", what,
              drawn_impossible);
    CHECK_MSG(bad_sigma == 0, "%s: %d tokens beyond 5 sigma", what, bad_sigma);
    if (df > 0) {
        const double limit = df + 6.0 * sqrt(2.0 * df);
        CHECK_MSG(chi2 < limit, "%s: chi-square %.1f, df %d, limit %.1f", what, chi2, df, limit);
        fprintf(stderr, "  %s: %d draws, chi-square %.1f (df %d), worst |z| %.2f\n", what, n_draws,
                chi2, df, worst_z);
    }
    free(counts);
}

/* The set of tokens drawn in n_draws draws as a bit mask over the first 64 ids. */
static uint64_t drawn_set(sampler *s, const float *logits, int n_draws) {
    uint64_t set = 0;
    for (int d = 0; d < n_draws; d++) {
        int32_t t = sampler_sample(s, logits);
        if (t >= 0 && t < 64) {
            set |= UINT64_C(1) << t;
        } else {
            set |= UINT64_C(1) << 63; /* marks garbage */
        }
    }
    return set;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_defaults(void) {
    edgelm_sampler_params p = edgelm_sampler_params_default();
    CHECK(p.temperature == 0.8f);
    CHECK(p.top_k == 40);
    CHECK(p.top_p == 0.95f);
    CHECK(p.min_p == 0.05f);
    CHECK(p.repeat_penalty == 1.0f);
    CHECK(p.repeat_last_n == 64);
    CHECK(p.seed == 0);
    CHECK(sampler_create(0) == NULL);
    CHECK(sampler_create(-7) == NULL);
    sampler_free(NULL);
    CHECK(sampler_sample(NULL, NULL) == -1);
}

static void test_greedy(void) {
    enum { V = 1000 };
    float logits[V];
    edgelm_sampler_params p = greedy_params();
    sampler *s = new_configured_sampler(V, &p);
    if (s == NULL) {
        return;
    }
    int wrong = 0;
    for (int rep = 0; rep < 50; rep++) {
        for (int i = 0; i < V; i++) {
            logits[i] = rand_range(-10.0f, 10.0f);
        }
        wrong += sampler_sample(s, logits) != naive_argmax(logits, V);
    }
    CHECK_MSG(wrong == 0, "greedy disagreed with argmax %d of 50 times", wrong);

    /* ties go to the lowest id */
    for (int i = 0; i < V; i++) {
        logits[i] = (float)(i % 7);
    }
    CHECK(sampler_sample(s, logits) == 6);
    logits[500] = 100.0f;
    logits[17] = 100.0f;
    logits[900] = 100.0f;
    CHECK(sampler_sample(s, logits) == 17);
    for (int i = 0; i < V; i++) {
        logits[i] = 0.0f;
    }
    CHECK(sampler_sample(s, logits) == 0);

    /* a negative temperature is greedy as well */
    p.temperature = -1.0f;
    sampler_configure(s, &p);
    logits[333] = 1.0f;
    CHECK(sampler_sample(s, logits) == 333);
    sampler_free(s);
}

static void test_top_k1_is_greedy(void) {
    enum { V = 300 };
    float logits[V];
    static const float temps[] = {0.05f, 0.5f, 0.8f, 1.0f, 3.0f, 100.0f};
    sampler *g = sampler_create(V), *s = sampler_create(V);
    CHECK(g != NULL && s != NULL);
    if (g == NULL || s == NULL) {
        goto done;
    }
    edgelm_sampler_params gp = greedy_params();
    sampler_configure(g, &gp);
    int wrong = 0;
    for (size_t ti = 0; ti < sizeof(temps) / sizeof(temps[0]); ti++) {
        edgelm_sampler_params p = edgelm_sampler_params_default();
        p.temperature = temps[ti];
        p.top_k = 1;
        p.seed = 1000 + ti;
        sampler_configure(s, &p);
        for (int rep = 0; rep < 100; rep++) {
            for (int i = 0; i < V; i++) {
                /* coarse values so the maximum is often tied */
                logits[i] = (float)(int)rand_range(0.0f, 20.0f);
            }
            wrong += sampler_sample(s, logits) != sampler_sample(g, logits);
        }
    }
    CHECK_MSG(wrong == 0, "top_k 1 differed from greedy %d times", wrong);
done:
    sampler_free(g);
    sampler_free(s);
}

/* top_p 0 keeps only the most probable token (llama.cpp's meaning), with and without top-k (the
 * sorted and the banded cut). */
static void test_top_p0_is_greedy(void) {
    enum { V = 3000 };
    static float logits[V];
    static const int32_t top_ks[] = {0, 40};
    sampler *g = sampler_create(V), *s = sampler_create(V);
    CHECK(g != NULL && s != NULL);
    if (g == NULL || s == NULL) {
        goto done;
    }
    edgelm_sampler_params gp = greedy_params();
    sampler_configure(g, &gp);
    int wrong = 0;
    for (size_t ki = 0; ki < sizeof(top_ks) / sizeof(top_ks[0]); ki++) {
        edgelm_sampler_params p = edgelm_sampler_params_default();
        p.temperature = 1.5f;
        p.top_k = top_ks[ki];
        p.top_p = 0.0f;
        p.min_p = 0.0f;
        p.seed = 77 + ki;
        sampler_configure(s, &p);
        for (int rep = 0; rep < 100; rep++) {
            for (int i = 0; i < V; i++) {
                logits[i] = rand_range(-2.0f, 2.0f);
            }
            wrong += sampler_sample(s, logits) != sampler_sample(g, logits);
        }
    }
    CHECK_MSG(wrong == 0, "top_p 0 differed from greedy %d times", wrong);
done:
    sampler_free(g);
    sampler_free(s);
}

static void test_seed_determinism(void) {
    enum { V = 500, N = 200 };
    float logits[V];
    for (int i = 0; i < V; i++) {
        logits[i] = rand_range(-3.0f, 3.0f);
    }
    int32_t a[N], b[N], c[N];
    sampler *s = sampler_create(V);
    sampler *s2 = sampler_create(V);
    CHECK(s != NULL && s2 != NULL);
    if (s == NULL || s2 == NULL) {
        goto done;
    }
    edgelm_sampler_params p = edgelm_sampler_params_default();
    p.temperature = 1.0f;
    p.seed = 42;
    sampler_configure(s, &p);
    for (int i = 0; i < N; i++) {
        a[i] = sampler_sample(s, logits);
        sampler_accept(s, a[i]);
    }
    /* reconfiguring resets the generator; a second sampler agrees */
    sampler_configure(s, &p);
    sampler_configure(s2, &p);
    int same_b = 1, same_s2 = 1;
    for (int i = 0; i < N; i++) {
        b[i] = sampler_sample(s, logits);
        sampler_accept(s, b[i]);
        int32_t t2 = sampler_sample(s2, logits);
        sampler_accept(s2, t2);
        same_b &= b[i] == a[i];
        same_s2 &= t2 == a[i];
    }
    CHECK_MSG(same_b, "same seed after reconfigure gave a different sequence");
    CHECK_MSG(same_s2, "same seed on another sampler gave a different sequence");
    p.seed = 43;
    sampler_configure(s, &p);
    int n_diff = 0;
    for (int i = 0; i < N; i++) {
        c[i] = sampler_sample(s, logits);
        n_diff += c[i] != a[i];
    }
    CHECK_MSG(n_diff > N / 4, "seeds 42 and 43 differ in only %d of %d draws", n_diff, N);
    /* seed 0 is an ordinary seed: deterministic too */
    p.seed = 0;
    sampler_configure(s, &p);
    int32_t first = sampler_sample(s, logits);
    sampler_configure(s, &p);
    CHECK(sampler_sample(s, logits) == first);
done:
    sampler_free(s);
    sampler_free(s2);
}

static void test_plain_distribution(void) {
    enum { V = 10 };
    const float logits[V] = {1.0f, 2.0f, 0.5f, -1.0f, 3.0f, 2.9f, 0.0f, -3.0f, 1.5f, 2.2f};
    double prob[V];
    sampler *s = new_sampler(V);
    if (s == NULL) {
        return;
    }
    static const float temps[] = {1.0f, 0.5f, 2.0f};
    for (size_t ti = 0; ti < sizeof(temps) / sizeof(temps[0]); ti++) {
        edgelm_sampler_params p = plain_params(temps[ti], 7 + ti);
        sampler_configure(s, &p);
        /* exact softmax(logits / t) */
        double total = 0.0;
        for (int i = 0; i < V; i++) {
            prob[i] = exp((double)logits[i] / (double)temps[ti]);
            total += prob[i];
        }
        for (int i = 0; i < V; i++) {
            prob[i] /= total;
        }
        char what[64];
        snprintf(what, sizeof(what), "softmax, temperature %.1f", (double)temps[ti]);
        check_distribution(s, logits, V, prob, 200000, what);
    }
    sampler_free(s);
}

/* The full chain against the naive full-sort reference, through both code paths (top-k on:
 * sorted survivors; top-k off: quickselect on mass and the min-p first cut). */
static void test_chain_distribution(void) {
    enum { V = 64 };
    float logits[V];
    double prob[V];
    for (int i = 0; i < V; i++) {
        logits[i] = rand_range(-4.0f, 4.0f);
    }
    sampler *s = new_sampler(V);
    if (s == NULL) {
        return;
    }
    struct {
        int32_t top_k;
        float top_p, min_p, temperature;
    } cases[] = {
        {20, 0.9f, 0.05f, 0.7f}, {0, 0.8f, 0.02f, 1.0f}, {0, 0.9f, 0.0f, 1.3f},
        {0, 1.0f, 0.1f, 0.6f},   {10, 1.0f, 0.0f, 1.0f}, {0, 0.5f, 0.3f, 1.0f},
    };
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
        edgelm_sampler_params p = plain_params(cases[ci].temperature, 99 + ci);
        p.top_k = cases[ci].top_k;
        p.top_p = cases[ci].top_p;
        p.min_p = cases[ci].min_p;
        sampler_configure(s, &p);
        reference_probs(logits, V, &p, NULL, 0, prob);
        char what[96];
        snprintf(what, sizeof(what), "chain k=%d p=%.2f min_p=%.2f t=%.1f", (int)p.top_k,
                 (double)p.top_p, (double)p.min_p, (double)p.temperature);
        check_distribution(s, logits, V, prob, 100000, what);
    }
    sampler_free(s);
}

/* A flat distribution whose top-p survivors are too many to sort (selection-order draw). */
static void test_flat_top_p(void) {
    enum { V = 5000 };
    float *logits = malloc(V * sizeof(*logits));
    double *prob = malloc(V * sizeof(*prob));
    sampler *s = sampler_create(V);
    CHECK(logits != NULL && prob != NULL && s != NULL);
    if (logits != NULL && prob != NULL && s != NULL) {
        for (int i = 0; i < V; i++) {
            logits[i] = rand_range(-0.5f, 0.5f);
        }
        edgelm_sampler_params p = plain_params(1.0f, 5);
        p.top_p = 0.95f;
        sampler_configure(s, &p);
        reference_probs(logits, V, &p, NULL, 0, prob);
        int kept = 0;
        for (int i = 0; i < V; i++) {
            kept += prob[i] > 0.0;
        }
        CHECK(kept > 4096);
        check_distribution(s, logits, V, prob, 40000, "flat top-p 0.95 over 5000");
    }
    sampler_free(s);
    free(prob);
    free(logits);
}

/* A cut of the chain and the set of ids it must leave drawable (a bit mask). */
typedef struct cut_case {
    int32_t top_k;
    float top_p, min_p;
    uint64_t set;
} cut_case;

/* For each cut: 3000 draws at temperature 1 (seed seed0 + i) give exactly the expected set. One
 * CHECK for the sampler, one per cut. */
static void check_cuts(const float *logits, int32_t n, const cut_case *cases, size_t n_cases,
                       uint64_t seed0) {
    sampler *s = new_sampler(n);
    if (s == NULL) {
        return;
    }
    for (size_t ci = 0; ci < n_cases; ci++) {
        edgelm_sampler_params p = plain_params(1.0f, seed0 + ci);
        p.top_k = cases[ci].top_k;
        p.top_p = cases[ci].top_p;
        p.min_p = cases[ci].min_p;
        sampler_configure(s, &p);
        uint64_t set = drawn_set(s, logits, 3000);
        CHECK_MSG(set == cases[ci].set,
                  "top_k %d top_p %.2f min_p %.2f: drew set 0x%llx, expected 0x%llx", (int)p.top_k,
                  (double)p.top_p, (double)p.min_p, (unsigned long long)set,
                  (unsigned long long)cases[ci].set);
    }
    sampler_free(s);
}

static void test_top_p_prefix(void) {
    enum { V = 4 };
    /* probabilities 0.5, 0.3, 0.15, 0.05 on ids 3, 0, 2, 1 */
    const float logits[V] = {logf(0.3f), logf(0.05f), logf(0.15f), logf(0.5f)};
    static const cut_case cases[] = {
        {0, 0.75f, 0.0f, (1u << 3) | (1u << 0)},
        {0, 0.85f, 0.0f, (1u << 3) | (1u << 0) | (1u << 2)},
        {0, 0.97f, 0.0f, 0xf},
        {0, 0.45f, 0.0f, 1u << 3},
        {0, 0.0f, 0.0f, 1u << 3},
        {3, 0.75f, 0.0f, (1u << 3) | (1u << 0)},
        {40, 0.85f, 0.0f, (1u << 3) | (1u << 0) | (1u << 2)},
    };
    check_cuts(logits, V, cases, sizeof cases / sizeof cases[0], 11);
}

static void test_min_p(void) {
    enum { V = 5 };
    /* probabilities 0.4, 0.3, 0.2, 0.1 on ids 0..3; id 4 impossible */
    const float logits[V] = {logf(0.4f), logf(0.3f), logf(0.2f), logf(0.1f), -INFINITY};
    static const cut_case cases[] = {
        {0, 1.0f, 0.3f, 0x7},   /* threshold 0.12 */
        {0, 1.0f, 0.6f, 0x3},   /* threshold 0.24 */
        {0, 1.0f, 0.2f, 0xf},   /* threshold 0.08 */
        {0, 1.0f, 1.0f, 0x1},   /* only the maximum */
        {0, 1.0f, 5.0f, 0x1},   /* silly value: still the maximum */
        {40, 1.0f, 0.3f, 0x7},  /* same through the top-k (sorted) path */
        {40, 0.95f, 0.6f, 0x3}, /* top-k, top-p and min-p together */
        {0, 0.65f, 0.3f, 0x3},  /* top-p cuts harder than min-p */
        {0, 0.95f, 0.6f, 0x3},  /* min-p cuts harder than top-p */
    };
    check_cuts(logits, V, cases, sizeof cases / sizeof cases[0], 21);
}

static void test_repetition_penalty(void) {
    enum { V = 8 };
    float logits[V] = {2.0f, 1.9f, 1.6f, -5.0f, -5.0f, -5.0f, -5.0f, -5.0f};
    edgelm_sampler_params p = greedy_params();
    p.repeat_penalty = 1.2f;
    p.repeat_last_n = 4;
    sampler *s = new_configured_sampler(V, &p);
    if (s == NULL) {
        return;
    }
    CHECK(sampler_sample(s, logits) == 0);
    sampler_accept(s, 0); /* 2.0 / 1.2 = 1.67 < 1.9 */
    CHECK(sampler_sample(s, logits) == 1);
    sampler_accept(s, 0);
    sampler_accept(s, 0); /* each distinct token once: still 1.67, not 1.16 */
    logits[1] = 1.5f;
    CHECK(sampler_sample(s, logits) == 0);
    CHECK(logits[0] == 2.0f); /* the caller's logits are untouched */
    /* out of the window of 4 again */
    for (int i = 0; i < 4; i++) {
        sampler_accept(s, 7);
    }
    logits[1] = 1.9f;
    CHECK(sampler_sample(s, logits) == 0);
    /* invalid ids are ignored */
    sampler_accept(s, -1);
    sampler_accept(s, V);
    CHECK(sampler_sample(s, logits) == 0);

    /* negative logits are multiplied: -1.0 * 1.2 = -1.2 < -1.1 */
    float neg[V] = {-1.0f, -1.1f, -9.0f, -9.0f, -9.0f, -9.0f, -9.0f, -9.0f};
    sampler_configure(s, &p); /* clears the history */
    CHECK(sampler_sample(s, neg) == 0);
    sampler_accept(s, 0);
    CHECK(sampler_sample(s, neg) == 1);

    /* a sampled (non-greedy) chain applies it too, matching the reference */
    edgelm_sampler_params q = plain_params(1.0f, 3);
    q.repeat_penalty = 1.5f;
    q.repeat_last_n = 3;
    q.top_k = 6;
    q.min_p = 0.01f;
    sampler_configure(s, &q);
    const int32_t history[5] = {1, 0, 2, 2, 6};
    for (int i = 0; i < 5; i++) {
        sampler_accept(s, history[i]);
    }
    double prob[V];
    reference_probs(logits, V, &q, history, 5, prob);
    CHECK(prob[2] > 0.0); /* sanity: the reference penalized only 2 and 6 */
    check_distribution(s, logits, V, prob, 100000, "penalty 1.5 over last 3");
    /* repeat_last_n larger than the cap or negative: no crash, still penalizes */
    q.temperature = 0.0f;
    q.repeat_last_n = 1000000;
    sampler_configure(s, &q);
    sampler_accept(s, 0);
    CHECK(sampler_sample(s, logits) == 1);
    q.repeat_last_n = -1;
    sampler_configure(s, &q);
    sampler_accept(s, 0);
    CHECK(sampler_sample(s, logits) == 1);
    sampler_free(s);
}

static void test_nan_logits(void) {
    enum { V = 100 };
    float logits[V];
    for (int i = 0; i < V; i++) {
        logits[i] = (i % 3 == 0) ? NAN : rand_range(-1.0f, 1.0f);
    }
    const edgelm_sampler_params p = greedy_params();
    sampler *s = new_configured_sampler(V, &p);
    if (s == NULL) {
        return;
    }
    CHECK(sampler_sample(s, logits) == naive_argmax(logits, V));
    int nan_picked = 0;
    edgelm_sampler_params configs[3] = {plain_params(1.0f, 1), edgelm_sampler_params_default(),
                                        plain_params(5.0f, 2)};
    configs[1].top_k = 0; /* unsorted path */
    for (int c = 0; c < 3; c++) {
        sampler_configure(s, &configs[c]);
        for (int d = 0; d < 5000; d++) {
            int32_t t = sampler_sample(s, logits);
            nan_picked += t < 0 || t >= V || isnan(logits[t]);
        }
    }
    CHECK_MSG(nan_picked == 0, "%d draws picked a NaN logit", nan_picked);

    /* every logit NaN or -inf: any valid id, no crash */
    for (int i = 0; i < V; i++) {
        logits[i] = (i % 2) ? NAN : -INFINITY;
    }
    for (int c = 0; c < 3; c++) {
        sampler_configure(s, &configs[c]);
        int32_t t = sampler_sample(s, logits);
        CHECK(t >= 0 && t < V);
    }
    /* +inf wins outright */
    logits[42] = INFINITY;
    for (int c = 0; c < 3; c++) {
        sampler_configure(s, &configs[c]);
        CHECK(sampler_sample(s, logits) == 42);
    }
    sampler_free(s);
}

static void test_odd_params(void) {
    enum { V = 50 };
    float logits[V], copy[V];
    for (int i = 0; i < V; i++) {
        logits[i] = rand_range(-2.0f, 2.0f);
    }
    memcpy(copy, logits, sizeof(copy));
    sampler *s = new_sampler(V);
    if (s == NULL) {
        return;
    }
    edgelm_sampler_params odd[12];
    for (int i = 0; i < 12; i++) {
        odd[i] = edgelm_sampler_params_default();
        odd[i].repeat_penalty = 1.1f;
    }
    odd[0].top_k = 1000;
    odd[1].top_k = -5;
    odd[2].top_p = 7.0f;
    odd[3].top_p = -1.0f;
    odd[4].min_p = -0.5f;
    odd[5].min_p = 3.0f;
    odd[6].temperature = INFINITY;
    odd[7].temperature = NAN;
    odd[8].top_p = NAN;
    odd[8].min_p = NAN;
    odd[9].repeat_penalty = 0.0f;
    odd[10].repeat_penalty = -2.0f;
    odd[10].repeat_last_n = -100;
    odd[11].repeat_penalty = NAN;
    odd[11].temperature = 1e-30f;
    int bad = 0;
    for (int i = 0; i < 12; i++) {
        sampler_configure(s, &odd[i]);
        for (int d = 0; d < 200; d++) {
            int32_t t = sampler_sample(s, logits);
            bad += t < 0 || t >= V;
            sampler_accept(s, t);
        }
    }
    CHECK_MSG(bad == 0, "%d draws out of range with odd parameters", bad);
    CHECK(memcmp(copy, logits, sizeof(copy)) == 0);
    sampler_configure(s, NULL); /* defaults */
    int32_t t = sampler_sample(s, logits);
    CHECK(t >= 0 && t < V);
    sampler_free(s);
}

/* Qwen2-sized vocabulary: results agree with the full-sort reference's support, and the cost
 * per token is reported. */
static void test_large_vocab(void) {
    enum { V = 151936, N = 200 };
    float *logits = malloc(V * sizeof(*logits));
    double *prob = malloc(V * sizeof(*prob));
    sampler *s = sampler_create(V);
    CHECK(logits != NULL && prob != NULL && s != NULL);
    if (logits == NULL || prob == NULL || s == NULL) {
        goto done;
    }
    /* a peaked head over a long flat tail, as real logits look */
    for (int i = 0; i < V; i++) {
        logits[i] = rand_range(-8.0f, 2.0f);
    }
    for (int i = 0; i < 30; i++) {
        logits[test_rand() % V] = rand_range(8.0f, 14.0f);
    }
    edgelm_sampler_params cases[4] = {edgelm_sampler_params_default(),
                                      edgelm_sampler_params_default(), plain_params(1.0f, 9),
                                      edgelm_sampler_params_default()};
    cases[1].top_k = 0;     /* top-p 0.95 + min-p 0.05 without top-k */
    cases[2].top_p = 0.95f; /* top-p alone over the whole vocabulary */
    cases[3].temperature = 0.0f;
    const char *names[4] = {"defaults", "no top-k", "top-p only", "greedy"};
    for (int c = 0; c < 4; c++) {
        sampler_configure(s, &cases[c]);
        if (cases[c].temperature > 0.0f) {
            reference_probs(logits, V, &cases[c], NULL, 0, prob);
        }
        int outside = 0;
        double t0 = test_now_ms();
        for (int d = 0; d < N; d++) {
            int32_t t = sampler_sample(s, logits);
            if (cases[c].temperature > 0.0f) {
                outside += t < 0 || t >= V || prob[t] == 0.0;
            } else {
                outside += t != naive_argmax(logits, V);
            }
        }
        double ms = test_now_ms() - t0;
        CHECK_MSG(outside == 0, "%s: %d of %d draws outside the reference support", names[c],
                  outside, N);
        fprintf(stderr, "  V=%d %s: %.3f ms per token\n", V, names[c], ms / N);
    }
done:
    sampler_free(s);
    free(prob);
    free(logits);
}

int main(void) {
    test_defaults();
    test_greedy();
    test_top_k1_is_greedy();
    test_top_p0_is_greedy();
    test_seed_determinism();
    test_plain_distribution();
    test_chain_distribution();
    test_flat_top_p();
    test_top_p_prefix();
    test_min_p();
    test_repetition_penalty();
    test_nan_logits();
    test_odd_params();
    test_large_vocab();
    return test_finish("test_sampler", 0);
}
