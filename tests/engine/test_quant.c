/* test_quant.c - unit tests of the scalar reference kernels (the tensor_types.h table): fp16/bf16
 * conversions, quantize/dequantize round trips with named per-type error bounds, vec_dot against
 * double references and hand-checkable blocks, golden dequantization against ggml's own
 * to_float output (reference/synthetic-k256-*.dequant.json), and byte equality of our encoders
 * with llama-quantize's files (synthetic K-quant and derived stories260K models).
 * Model-based parts skip loudly when the shared models are absent.
 */
#include "format/gguf.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "kernels/tensor_types.h"
#include "test_util.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const uint32_t all_types[] = {
    TENSOR_TYPE_F32,  TENSOR_TYPE_F16,  TENSOR_TYPE_BF16, TENSOR_TYPE_Q4_0, TENSOR_TYPE_Q4_1,
    TENSOR_TYPE_Q5_0, TENSOR_TYPE_Q5_1, TENSOR_TYPE_Q8_0, TENSOR_TYPE_Q8_1, TENSOR_TYPE_Q2_K,
    TENSOR_TYPE_Q3_K, TENSOR_TYPE_Q4_K, TENSOR_TYPE_Q5_K, TENSOR_TYPE_Q6_K, TENSOR_TYPE_Q8_K,
};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* ---- deterministic data ------------------------------------------------------------------- */

typedef struct prng {
    uint64_t state;
} prng;

static uint64_t prng_next(prng *r) { /* splitmix64 */
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double prng_uniform(prng *r) { /* (0, 1) */
    return ((double)(prng_next(r) >> 11) + 0.5) / 9007199254740992.0;
}

static double prng_gauss(prng *r) {
    const double u1 = prng_uniform(r);
    const double u2 = prng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Gaussian weights with a slowly varying per-row offset and a few 4-sigma outliers: enough
 * variety to exercise signed absmax, mins and clamps without being adversarial. */
static void fill_data(float *x, int64_t n, uint64_t seed) {
    prng r = {seed};
    const double offset = 0.3 * prng_gauss(&r);
    for (int64_t i = 0; i < n; i++) {
        double v = prng_gauss(&r) + offset;
        if (prng_next(&r) % 97 == 0) {
            v *= 4.0;
        }
        x[i] = (float)v;
    }
}

static void *xmalloc(size_t size) {
    void *p = malloc(size > 0 ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    return p;
}

/* Q8_1 has no to_float in ggml (activation-only); decode it here for the tests. */
static void q8_1_decode(const void *src, float *dst, int64_t n) {
    const block_q8_1 *b = src;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK8_1; j++) {
            dst[i * QK8_1 + j] = (float)b[i].qs[j] * d;
        }
    }
}

static void decode(uint32_t type, const void *src, float *dst, int64_t n) {
    const tensor_type_traits *t = tensor_type_get(type);
    if (t->to_float != NULL) {
        t->to_float(src, dst, n);
    } else {
        q8_1_decode(src, dst, n);
    }
}

/* ---- 1. fp16 / bf16 conversions ----------------------------------------------------------- */

static void test_fp16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = fp16_to_fp32((fp16_t)h);
        const fp16_t back = fp32_to_fp16(f);
        const bool is_nan = (h & 0x7C00u) == 0x7C00u && (h & 0x03FFu) != 0;
        if (is_nan) {
            /* payloads may be quietened; the result must still be a NaN of the same sign */
            bad += !(isnan(f) && (back & 0x7C00u) == 0x7C00u && (back & 0x03FFu) != 0 &&
                     (back & 0x8000u) == (h & 0x8000u));
        } else {
            bad += back != h;
        }
    }
    CHECK_MSG(bad == 0, "%d half values do not round-trip", bad);

    /* float -> half rounding: nearest, ties to even, overflow to inf, gradual underflow */
    static const struct {
        float f;
        uint16_t h;
    } cases[] = {
        {1.0f, 0x3C00},
        {-2.0f, 0xC000},
        {0.1f, 0x2E66},
        {65504.0f, 0x7BFF},
        {65519.0f, 0x7BFF}, /* below the midpoint to 65536 */
        {65520.0f, 0x7C00}, /* the midpoint: ties to even = inf */
        {1e10f, 0x7C00},
        {1.0f + 0x1p-11f, 0x3C00},     /* tie between 0x3C00 and 0x3C01: to even */
        {1.0f + 3 * 0x1p-11f, 0x3C02}, /* tie between 0x3C01 and 0x3C02: to even */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3C01},
        {0x1p-14f, 0x0400},   /* smallest normal */
        {0x1p-24f, 0x0001},   /* smallest subnormal */
        {0x1p-25f, 0x0000},   /* tie between 0 and 0x0001: to even */
        {0x1.8p-24f, 0x0002}, /* tie between 0x0001 and 0x0002: to even */
        {0x1.000002p-25f, 0x0001},
        {-0.0f, 0x8000},
        {(float)INFINITY, 0x7C00},
        {-(float)INFINITY, 0xFC00},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const fp16_t h = fp32_to_fp16(cases[i].f);
        CHECK_MSG(h == cases[i].h, "fp32_to_fp16(%a) = 0x%04x, want 0x%04x", (double)cases[i].f,
                  (unsigned)h, (unsigned)cases[i].h);
    }
    CHECK(fp16_to_fp32(0x3C00) == 1.0f);
    CHECK(fp16_to_fp32(0x0001) == 0x1p-24f);
    CHECK(fp16_to_fp32(0x7BFF) == 65504.0f);
    CHECK(isinf(fp16_to_fp32(0xFC00)) && fp16_to_fp32(0xFC00) < 0.0f);
    const fp16_t h_nan = fp32_to_fp16((float)NAN);
    CHECK((h_nan & 0x7C00u) == 0x7C00u && (h_nan & 0x03FFu) != 0);

    /* bf16: every non-NaN value round-trips; rounding is nearest-even on the dropped 16 bits */
    bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = bf16_to_fp32((bf16_t)h);
        const bf16_t back = fp32_to_bf16(f);
        if (isnan(f)) {
            bad += !isnan(bf16_to_fp32(back));
        } else {
            bad += back != h;
        }
    }
    CHECK_MSG(bad == 0, "%d bf16 values do not round-trip", bad);
    CHECK(fp32_to_bf16(1.0f) == 0x3F80);
    CHECK(fp32_to_bf16(1.0f + 0x1p-8f) == 0x3F80);     /* tie: to even */
    CHECK(fp32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3F82); /* tie: to even */
    CHECK(fp32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3F81);
    CHECK(isnan(bf16_to_fp32(fp32_to_bf16((float)NAN))));
}

/* ---- 2. the table -------------------------------------------------------------------------- */

static void test_table(void) {
    static const struct {
        uint32_t type;
        const char *name;
        int64_t block;
        size_t bytes;
        uint32_t vec_dot_type;
    } want[] = {
        {TENSOR_TYPE_F32, "f32", 1, 4, TENSOR_TYPE_F32},
        {TENSOR_TYPE_F16, "f16", 1, 2, TENSOR_TYPE_F16},
        {TENSOR_TYPE_BF16, "bf16", 1, 2, TENSOR_TYPE_BF16},
        {TENSOR_TYPE_Q4_0, "q4_0", 32, 18, TENSOR_TYPE_Q8_0},
        {TENSOR_TYPE_Q4_1, "q4_1", 32, 20, TENSOR_TYPE_Q8_1},
        {TENSOR_TYPE_Q5_0, "q5_0", 32, 22, TENSOR_TYPE_Q8_0},
        {TENSOR_TYPE_Q5_1, "q5_1", 32, 24, TENSOR_TYPE_Q8_1},
        {TENSOR_TYPE_Q8_0, "q8_0", 32, 34, TENSOR_TYPE_Q8_0},
        {TENSOR_TYPE_Q8_1, "q8_1", 32, 36, TENSOR_TYPE_Q8_1},
        {TENSOR_TYPE_Q2_K, "q2_K", 256, 84, TENSOR_TYPE_Q8_K},
        {TENSOR_TYPE_Q3_K, "q3_K", 256, 110, TENSOR_TYPE_Q8_K},
        {TENSOR_TYPE_Q4_K, "q4_K", 256, 144, TENSOR_TYPE_Q8_K},
        {TENSOR_TYPE_Q5_K, "q5_K", 256, 176, TENSOR_TYPE_Q8_K},
        {TENSOR_TYPE_Q6_K, "q6_K", 256, 210, TENSOR_TYPE_Q8_K},
        {TENSOR_TYPE_Q8_K, "q8_K", 256, 292, TENSOR_TYPE_Q8_K},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const tensor_type_traits *t = tensor_type_get(want[i].type);
        CHECK_MSG(t != NULL, "type %u missing", want[i].type);
        if (t == NULL) {
            continue;
        }
        CHECK_MSG(strcmp(t->name, want[i].name) == 0, "type %u named %s", want[i].type, t->name);
        CHECK(t->block_size == want[i].block);
        CHECK(t->type_size == want[i].bytes);
        CHECK(t->vec_dot_type == want[i].vec_dot_type);
        CHECK(t->from_float != NULL);
        const bool activation_only =
            want[i].type == TENSOR_TYPE_Q8_1 || want[i].type == TENSOR_TYPE_Q8_K;
        CHECK_MSG((t->vec_dot == NULL) == activation_only, "%s vec_dot", t->name);
        CHECK_MSG((t->to_float == NULL) == (want[i].type == TENSOR_TYPE_Q8_1), "%s to_float",
                  t->name);
        CHECK(t->is_quantized == (want[i].block > 1));
        CHECK(tensor_row_size(want[i].type, 4 * want[i].block) == 4 * want[i].bytes);
    }
    CHECK(tensor_type_get(4) == NULL); /* Q4_2, removed from the format */
    CHECK(tensor_type_get(TENSOR_TYPE_COUNT) == NULL);
    CHECK(tensor_type_get(0xFFFFFFFFu) == NULL);
    CHECK(tensor_row_size(TENSOR_TYPE_Q4_K, 255) == 0);
    CHECK(tensor_row_size(TENSOR_TYPE_Q4_0, -32) == 0);
    CHECK(tensor_row_size(99, 32) == 0);
}

/* ---- 3. round trips ------------------------------------------------------------------------ */

/* Largest allowed relative RMS error sqrt(sum (x - q(x))^2 / sum x^2) of quantize+dequantize on
 * fill_data()'s data (Gaussian, 1% of values x4). Each bound is ~1.25x the worst this reference
 * achieves over the sizes tested (printed as "round trip ... worst"); the spread between types
 * is the usual bits-per-weight curve. Floats: half the relative spacing over sqrt(3).
 * For comparison, ggml's test-quantize-fns uses one loose absolute bound (0.002 on sqrt(SSE)/n
 * for cos data; 0.0075 for 2-bit, 0.004 for 3-bit). The exactness of the encoders is checked
 * separately, byte for byte, against llama-quantize's files (test_golden_encode). */
static double round_trip_tolerance(uint32_t type) {
    switch (type) {
    case TENSOR_TYPE_F32: return 0.0;
    case TENSOR_TYPE_F16: return 3.5e-4;  /* measured 2.8e-4; 2^-11 / sqrt(3) = 2.8e-4 */
    case TENSOR_TYPE_BF16: return 2.8e-3; /* measured 2.27e-3; 2^-8 / sqrt(3) = 2.26e-3 */
    case TENSOR_TYPE_Q8_0: return 0.0080; /* measured 0.0064 */
    case TENSOR_TYPE_Q8_1: return 0.0080; /* measured 0.0065 */
    case TENSOR_TYPE_Q8_K: return 0.0140; /* measured 0.0113 (one scale per 256: outliers) */
    case TENSOR_TYPE_Q6_K: return 0.024;  /* measured 0.0194 */
    case TENSOR_TYPE_Q5_1: return 0.070;  /* measured 0.058 */
    case TENSOR_TYPE_Q5_0: return 0.065;  /* measured 0.052 */
    case TENSOR_TYPE_Q5_K: return 0.050;  /* measured 0.039 */
    case TENSOR_TYPE_Q4_1: return 0.120;  /* measured 0.097 */
    case TENSOR_TYPE_Q4_0: return 0.125;  /* measured 0.101 */
    case TENSOR_TYPE_Q4_K: return 0.100;  /* measured 0.080 */
    case TENSOR_TYPE_Q3_K: return 0.210;  /* measured 0.167 */
    case TENSOR_TYPE_Q2_K: return 0.400;  /* measured 0.322 */
    default: return 0.0;
    }
}

static void test_round_trip(void) {
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t type = all_types[ti];
        const tensor_type_traits *t = tensor_type_get(type);
        const int64_t bs = t->block_size;
        const int64_t sizes[] = {bs == 1 ? 37 : bs, bs * 3, bs == 1 ? 4096 : bs * 64};
        double worst = 0.0;
        for (size_t si = 0; si < 3; si++) {
            const int64_t n = sizes[si];
            float *x = xmalloc((size_t)n * sizeof(float));
            float *y = xmalloc((size_t)n * sizeof(float));
            void *q = xmalloc(tensor_row_size(type, n));
            fill_data(x, n, 1000 + 17 * ti + si);
            t->from_float(x, q, n);
            decode(type, q, y, n);
            double err2 = 0.0, ref2 = 0.0;
            int non_finite = 0;
            for (int64_t i = 0; i < n; i++) {
                non_finite += !isfinite(y[i]);
                const double diff = (double)x[i] - (double)y[i];
                err2 += diff * diff;
                ref2 += (double)x[i] * (double)x[i];
            }
            const double rel = sqrt(err2 / ref2);
            worst = rel > worst ? rel : worst;
            CHECK_MSG(non_finite == 0, "%s n=%lld: %d non-finite values", t->name, (long long)n,
                      non_finite);
            CHECK_MSG(rel <= round_trip_tolerance(type),
                      "%s n=%lld: relative rms error %.5f > %.5f", t->name, (long long)n, rel,
                      round_trip_tolerance(type));

            /* deterministic: same input, same bytes */
            void *q2 = xmalloc(tensor_row_size(type, n));
            t->from_float(x, q2, n);
            CHECK_MSG(memcmp(q, q2, tensor_row_size(type, n)) == 0, "%s encoder not deterministic",
                      t->name);
            free(q2);
            free(x);
            free(y);
            free(q);
        }
        fprintf(stderr, "  round trip %-5s worst relative rms error %.5f (bound %.5f)\n", t->name,
                worst, round_trip_tolerance(type));
    }

    /* all-zero input encodes to zeros, decodes to zeros, no NaN from 0/0 */
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t type = all_types[ti];
        const tensor_type_traits *t = tensor_type_get(type);
        const int64_t n = 512;
        float x[512] = {0}, y[512];
        uint8_t q[2048];
        t->from_float(x, q, n);
        decode(type, q, y, n);
        int bad = 0;
        for (int64_t i = 0; i < n; i++) {
            bad += y[i] != 0.0f;
        }
        CHECK_MSG(bad == 0, "%s: zeros decode to %d non-zeros", t->name, bad);
    }

    /* Q8_1's s field is fp16(d * sum(q)) */
    {
        float x[64];
        block_q8_1 b[2];
        fill_data(x, 64, 7);
        tensor_type_get(TENSOR_TYPE_Q8_1)->from_float(x, b, 64);
        for (int i = 0; i < 2; i++) {
            int sum = 0;
            for (int j = 0; j < QK8_1; j++) {
                sum += b[i].qs[j];
            }
            CHECK(b[i].s == fp32_to_fp16((float)sum * fp16_to_fp32(b[i].d)));
        }
    }
}

/* Activation quantizers on hand-made data: amax 127 gives d = 1 so codes are the rounded values;
 * Q8_0/Q8_1 round half away from zero (roundf), Q8_K rounds half to even with d = max / -127. */
static void test_activation_codes(void) {
    float x[QK_K];
    memset(x, 0, sizeof x);
    const float head[] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, 3.5f, -126.6f};
    memcpy(x, head, sizeof head);

    block_q8_0 a[QK_K / QK8_0];
    tensor_type_get(TENSOR_TYPE_Q8_0)->from_float(x, a, QK_K);
    const int8_t want0[] = {127, 3, -3, 1, -1, 2, 4, -127};
    CHECK(a[0].d == 0x3C00);
    for (int j = 0; j < 8; j++) {
        CHECK_MSG(a[0].qs[j] == want0[j], "q8_0 code %d = %d, want %d", j, a[0].qs[j], want0[j]);
    }
    CHECK(a[1].d == 0 && a[1].qs[0] == 0);

    block_q8_K k;
    tensor_type_get(TENSOR_TYPE_Q8_K)->from_float(x, &k, QK_K);
    const int8_t wantk[] = {-127, -2, 2, 0, 0, -2, -4, 127};
    CHECK(k.d == -1.0f);
    for (int j = 0; j < 8; j++) {
        CHECK_MSG(k.qs[j] == wantk[j], "q8_K code %d = %d, want %d", j, k.qs[j], wantk[j]);
    }
    CHECK(k.bsums[0] == -127 - 2 + 2 - 2 - 4 + 127);
    CHECK(k.bsums[1] == 0);
}

/* ---- 4. dot products ----------------------------------------------------------------------- */

/* Bound on |vec_dot(q(x), q8(y)) - sum q(x)_i y_i| / (|q(x)| |y|), i.e. the part of the error
 * due to quantizing the activations (the weights' own error is excluded by using their
 * dequantized values). For Q8 activations the per-element error is about amax/127/sqrt(12),
 * ~0.6% of the rms; summed over n independent terms that is ~0.006 / sqrt(n) normalized.
 * The bounds below are ~5 sigma at the smallest n tested (one block). */
static double dot_tolerance(uint32_t vec_dot_type, int64_t n) {
    const double per_elem = vec_dot_type == TENSOR_TYPE_F32    ? 1e-7
                            : vec_dot_type == TENSOR_TYPE_F16  ? 3e-4
                            : vec_dot_type == TENSOR_TYPE_BF16 ? 2.5e-3
                                                               : 8e-3;
    return 5.0 * per_elem / sqrt((double)n) + 1e-6;
}

static double q8_1_min_slack(uint32_t type, const void *xq, const void *yq, int64_t n) {
    if (tensor_type_get(type)->vec_dot_type != TENSOR_TYPE_Q8_1) {
        return 0.0;
    }
    const size_t type_size = tensor_type_get(type)->type_size;
    const block_q8_1 *y = yq;
    double slack = 0.0;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        /* Q4_1 and Q5_1 blocks both start with fp16 d, fp16 m */
        fp16_t m;
        memcpy(&m, (const uint8_t *)xq + (size_t)i * type_size + sizeof(fp16_t), sizeof m);
        slack += fabs((double)fp16_to_fp32(m) * (double)fp16_to_fp32(y[i].s)) * 0x1p-10;
    }
    return slack;
}

static void test_vec_dot(void) {
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t type = all_types[ti];
        const tensor_type_traits *t = tensor_type_get(type);
        if (t->vec_dot == NULL) {
            continue;
        }
        const tensor_type_traits *vt = tensor_type_get(t->vec_dot_type);
        const int64_t bs = t->block_size == 1 ? 32 : t->block_size;
        const int64_t sizes[] = {bs, bs * 4, bs * 48};
        double worst_true = 0.0, worst_consistency = 0.0;
        for (size_t si = 0; si < 3; si++) {
            for (int trial = 0; trial < 8; trial++) {
                const int64_t n = sizes[si];
                float *x = xmalloc((size_t)n * sizeof(float));
                float *xd = xmalloc((size_t)n * sizeof(float));
                float *y = xmalloc((size_t)n * sizeof(float));
                float *yd = xmalloc((size_t)n * sizeof(float));
                void *xq = xmalloc(tensor_row_size(type, n));
                void *yq = xmalloc(tensor_row_size(t->vec_dot_type, n));
                const uint64_t seed = 5000 + 1000 * ti + 100 * si + (uint64_t)trial;
                fill_data(x, n, seed);
                fill_data(y, n, seed ^ 0xABCDEFull);
                t->from_float(x, xq, n);
                decode(type, xq, xd, n);
                vt->from_float(y, yq, n);
                decode(t->vec_dot_type, yq, yd, n);

                float s = 0.0f;
                t->vec_dot(n, &s, xq, yq);
                double dot_true = 0.0, dot_q = 0.0, abs_q = 0.0, nx = 0.0, ny = 0.0;
                for (int64_t i = 0; i < n; i++) {
                    dot_true += (double)xd[i] * (double)y[i];
                    dot_q += (double)xd[i] * (double)yd[i];
                    abs_q += fabs((double)xd[i] * (double)yd[i]);
                    nx += (double)xd[i] * (double)xd[i];
                    ny += (double)y[i] * (double)y[i];
                }
                /* against the true activations: bounded by the activation quantization */
                const double norm = sqrt(nx * ny);
                const double err_true = fabs((double)s - dot_true) / norm;
                CHECK_MSG(err_true <= dot_tolerance(t->vec_dot_type, n),
                          "%s n=%lld: |vec_dot - dot| / norms = %.3g > %.3g", t->name, (long long)n,
                          err_true, dot_tolerance(t->vec_dot_type, n));
                /* against the dequantized activations: only float rounding may differ (the
                 * integer sums are exact; the float scaling and accumulation are not). With
                 * Q8_1 the min term uses y.s = fp16(d * sum(q)) with the unrounded d, while
                 * the decoded y uses fp16(d): two roundings of 2^-11 relative each, so allow
                 * |m| |s| 2^-10 per block on top. */
                const double allowed = 2e-6 * abs_q + q8_1_min_slack(type, xq, yq, n);
                const double err_q = fabs((double)s - dot_q);
                CHECK_MSG(err_q <= allowed, "%s n=%lld: vec_dot %.9g vs dequantized dot %.9g",
                          t->name, (long long)n, (double)s, dot_q);
                worst_true = err_true > worst_true ? err_true : worst_true;
                worst_consistency =
                    err_q / allowed > worst_consistency ? err_q / allowed : worst_consistency;
                free(x);
                free(xd);
                free(y);
                free(yd);
                free(xq);
                free(yq);
            }
        }
        fprintf(stderr,
                "  vec_dot %-5s x %-5s worst error vs true dot %.2e (normalized), vs dequantized "
                "dot %.2f of its bound\n",
                t->name, vt->name, worst_true, worst_consistency);
    }
}

/* Hand-built blocks whose dot product is an exact small number, so a wrong scale, a wrong
 * min term or a mis-read bit fails loudly. Every x value is the same within a block, every
 * y = 0.5, so dot = n * x * 0.5. */
static void check_hand_dot(uint32_t type, const void *xq, int64_t n, float x_value) {
    const tensor_type_traits *t = tensor_type_get(type);
    float xd[QK_K * 2];
    t->to_float(xq, xd, n);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        bad += xd[i] != x_value;
    }
    CHECK_MSG(bad == 0, "%s hand block: %d values differ from %g (first %g)", t->name, bad,
              (double)x_value, (double)xd[0]);

    /* y = 0.5 everywhere, built by hand in the vec_dot type too */
    uint8_t yq[QK_K * 4];
    memset(yq, 0, sizeof yq);
    switch (t->vec_dot_type) {
    case TENSOR_TYPE_Q8_0: {
        block_q8_0 *b = (block_q8_0 *)yq;
        for (int64_t i = 0; i < n / QK8_0; i++) {
            b[i].d = fp32_to_fp16(0.25f);
            memset(b[i].qs, 2, sizeof b[i].qs);
        }
        break;
    }
    case TENSOR_TYPE_Q8_1: {
        block_q8_1 *b = (block_q8_1 *)yq;
        for (int64_t i = 0; i < n / QK8_1; i++) {
            b[i].d = fp32_to_fp16(0.25f);
            b[i].s = fp32_to_fp16(0.25f * 64.0f);
            memset(b[i].qs, 2, sizeof b[i].qs);
        }
        break;
    }
    case TENSOR_TYPE_Q8_K: {
        block_q8_K *b = (block_q8_K *)yq;
        for (int64_t i = 0; i < n / QK_K; i++) {
            b[i].d = 0.25f;
            memset(b[i].qs, 2, sizeof b[i].qs);
            for (int j = 0; j < QK_K / 16; j++) {
                b[i].bsums[j] = 32;
            }
        }
        break;
    }
    case TENSOR_TYPE_F16: {
        fp16_t *h = (fp16_t *)yq;
        for (int64_t i = 0; i < n; i++) {
            h[i] = 0x3800; /* 0.5 */
        }
        break;
    }
    case TENSOR_TYPE_BF16: {
        bf16_t *h = (bf16_t *)yq;
        for (int64_t i = 0; i < n; i++) {
            h[i] = 0x3F00; /* 0.5 */
        }
        break;
    }
    default: {
        float *f = (float *)yq;
        for (int64_t i = 0; i < n; i++) {
            f[i] = 0.5f;
        }
        break;
    }
    }
    float s = 0.0f;
    t->vec_dot(n, &s, xq, yq);
    const float want = (float)n * x_value * 0.5f;
    CHECK_MSG(s == want, "%s hand vec_dot = %.9g, want %.9g", t->name, (double)s, (double)want);
}

/* check_hand_dot on two copies of one hand-built block. */
static void check_hand_block(uint32_t type, const void *block, float x_value) {
    const tensor_type_traits *t = tensor_type_get(type);
    _Alignas(16) uint8_t two[2 * sizeof(block_q6_K)];
    memcpy(two, block, t->type_size);
    memcpy(two + t->type_size, block, t->type_size);
    check_hand_dot(type, two, 2 * t->block_size, x_value);
}

/* The 12 scale bytes of a Q4_K/Q5_K block whose 6-bit scales are all 33 and mins all 17 (both
 * above 15, so the packed top bits matter): bytes 0-3 33 | (33 >> 4) << 6 = 161; bytes 4-7
 * 17 | (17 >> 4) << 6 = 81; bytes 8-11 (33 & 15) | (17 & 15) << 4 = 17. */
static void set_k_scales_33_17(uint8_t *scales) {
    memset(scales, 161, 4);
    memset(scales + 4, 81, 4);
    memset(scales + 8, 17, 4);
}

static void test_hand_blocks(void) {
    /* Q4_0: d = 0.5, code 11 -> (11 - 8) * 0.5 = 1.5 */
    block_q4_0 q4_0 = {.d = fp32_to_fp16(0.5f)};
    memset(q4_0.qs, 0xBB, sizeof q4_0.qs);
    check_hand_block(TENSOR_TYPE_Q4_0, &q4_0, 1.5f);
    /* Q4_1: d = 0.5, m = -1, code 5 -> 1.5 (the min goes through y.s) */
    block_q4_1 q4_1 = {.d = fp32_to_fp16(0.5f), .m = fp32_to_fp16(-1.0f)};
    memset(q4_1.qs, 0x55, sizeof q4_1.qs);
    check_hand_block(TENSOR_TYPE_Q4_1, &q4_1, 1.5f);
    /* Q5_0: code 3 | 16 (every qh bit set) = 19 -> (19 - 16) * 0.5 = 1.5 */
    block_q5_0 q5_0 = {.d = fp32_to_fp16(0.5f)};
    memset(q5_0.qh, 0xFF, sizeof q5_0.qh);
    memset(q5_0.qs, 0x33, sizeof q5_0.qs);
    check_hand_block(TENSOR_TYPE_Q5_0, &q5_0, 1.5f);
    /* Q5_1: code 5 | 16 = 21 -> 0.5 * 21 - 1 = 9.5 */
    block_q5_1 q5_1 = {.d = fp32_to_fp16(0.5f), .m = fp32_to_fp16(-1.0f)};
    memset(q5_1.qh, 0xFF, sizeof q5_1.qh);
    memset(q5_1.qs, 0x55, sizeof q5_1.qs);
    check_hand_block(TENSOR_TYPE_Q5_1, &q5_1, 9.5f);
    /* Q8_0: code 3 * 0.5 = 1.5 */
    block_q8_0 q8_0 = {.d = fp32_to_fp16(0.5f)};
    memset(q8_0.qs, 3, sizeof q8_0.qs);
    check_hand_block(TENSOR_TYPE_Q8_0, &q8_0, 1.5f);
    /* Q2_K: d = 0.5, dmin = 0.25, scale 3, min 2, code 2 -> 0.5 * 3 * 2 - 0.25 * 2 = 2.5 */
    block_q2_K q2_k = {.d = fp32_to_fp16(0.5f), .dmin = fp32_to_fp16(0.25f)};
    memset(q2_k.scales, 0x23, sizeof q2_k.scales);
    memset(q2_k.qs, 0xAA, sizeof q2_k.qs); /* code 2 in every bit pair */
    check_hand_block(TENSOR_TYPE_Q2_K, &q2_k, 2.5f);
    /* Q3_K: d = 0.5, stored scale 35 (value 3), code 2 with the high bit set -> 0.5 * 3 * 2 = 3;
     * 35 = 0b100011: low nibble 3 in bytes 0-7 (both halves), top bits 2 in every pair of
     * bytes 8-11. Then with the high bit clear: code 2 - 4 = -2 -> -3. */
    block_q3_K q3_k = {.d = fp32_to_fp16(0.5f)};
    memset(q3_k.scales, 0x33, 8);
    memset(q3_k.scales + 8, 0xAA, 4);
    memset(q3_k.hmask, 0xFF, sizeof q3_k.hmask);
    memset(q3_k.qs, 0xAA, sizeof q3_k.qs);
    check_hand_block(TENSOR_TYPE_Q3_K, &q3_k, 3.0f);
    memset(q3_k.hmask, 0, sizeof q3_k.hmask);
    check_hand_block(TENSOR_TYPE_Q3_K, &q3_k, -3.0f);
    /* Q4_K: d = 0.5, dmin = 0.25, scale 33, min 17, code 7 -> 0.5 * 33 * 7 - 0.25 * 17 = 111.25 */
    block_q4_K q4_k = {.d = fp32_to_fp16(0.5f), .dmin = fp32_to_fp16(0.25f)};
    set_k_scales_33_17(q4_k.scales);
    memset(q4_k.qs, 0x77, sizeof q4_k.qs);
    check_hand_block(TENSOR_TYPE_Q4_K, &q4_k, 111.25f);
    /* Q5_K: as Q4_K with the 5th bit set: code 23 -> 0.5 * 33 * 23 - 4.25 = 375.25 */
    block_q5_K q5_k = {.d = fp32_to_fp16(0.5f), .dmin = fp32_to_fp16(0.25f)};
    set_k_scales_33_17(q5_k.scales);
    memset(q5_k.qh, 0xFF, sizeof q5_k.qh);
    memset(q5_k.qs, 0x77, sizeof q5_k.qs);
    check_hand_block(TENSOR_TYPE_Q5_K, &q5_k, 375.25f);
    /* Q6_K: d = 0.5, scale -3, code 37 = 0b10_0101 (low nibble 5, top bits 2) -> value 5,
     * x = 0.5 * -3 * 5 = -7.5 */
    block_q6_K q6_k = {.d = fp32_to_fp16(0.5f)};
    memset(q6_k.scales, 0xFD, sizeof q6_k.scales); /* int8 -3 */
    memset(q6_k.ql, 0x55, sizeof q6_k.ql);
    memset(q6_k.qh, 0xAA, sizeof q6_k.qh);
    check_hand_block(TENSOR_TYPE_Q6_K, &q6_k, -7.5f);
    /* float types: x = 1.5 */
    {
        float f[64];
        fp16_t h[64];
        bf16_t g[64];
        for (int i = 0; i < 64; i++) {
            f[i] = 1.5f;
            h[i] = 0x3E00;
            g[i] = 0x3FC0;
        }
        check_hand_dot(TENSOR_TYPE_F32, f, 64, 1.5f);
        check_hand_dot(TENSOR_TYPE_F16, h, 64, 1.5f);
        check_hand_dot(TENSOR_TYPE_BF16, g, 64, 1.5f);
    }

    /* Layout of the legacy nibbles: weight j in the low nibble of qs[j], weight j + 16 in the
     * high nibble; Q5_0's bit 4 of weight j in bit j of qh (little-endian). */
    {
        block_q4_0 b;
        b.d = fp32_to_fp16(1.0f);
        for (int j = 0; j < 16; j++) {
            b.qs[j] = (uint8_t)(j | ((15 - j) << 4));
        }
        float y[32];
        tensor_type_get(TENSOR_TYPE_Q4_0)->to_float(&b, y, 32);
        int bad = 0;
        for (int j = 0; j < 16; j++) {
            bad += y[j] != (float)(j - 8) || y[j + 16] != (float)(7 - j);
        }
        CHECK_MSG(bad == 0, "q4_0 nibble layout: %d wrong", bad);

        block_q5_0 c;
        c.d = fp32_to_fp16(1.0f);
        memset(c.qs, 0, sizeof c.qs);
        const uint32_t qh = 0x80010002u; /* weights 1, 16 and 31 have bit 4 set */
        c.qh[0] = (uint8_t)qh;
        c.qh[1] = (uint8_t)(qh >> 8);
        c.qh[2] = (uint8_t)(qh >> 16);
        c.qh[3] = (uint8_t)(qh >> 24);
        tensor_type_get(TENSOR_TYPE_Q5_0)->to_float(&c, y, 32);
        bad = 0;
        for (int j = 0; j < 32; j++) {
            const bool high = j == 1 || j == 16 || j == 31;
            bad += y[j] != (high ? 0.0f : -16.0f);
        }
        CHECK_MSG(bad == 0, "q5_0 qh layout: %d wrong", bad);
    }
}

/* ---- 5. golden files ----------------------------------------------------------------------- */

static int compare_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Names in dir that start with prefix and end with suffix, sorted; caller frees. */
static int list_files(const char *dir, const char *prefix, const char *suffix, char ***out) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (d == NULL) {
        return 0;
    }
    int n = 0, cap = 0;
    char **names = NULL;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const size_t len = strlen(e->d_name);
        if (len < strlen(prefix) + strlen(suffix) ||
            strncmp(e->d_name, prefix, strlen(prefix)) != 0 ||
            strcmp(e->d_name + len - strlen(suffix), suffix) != 0) {
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(names, (size_t)cap * sizeof *names);
            if (grown == NULL) {
                abort();
            }
            names = grown;
        }
        names[n] = xmalloc(len + 1);
        memcpy(names[n], e->d_name, len + 1);
        n++;
    }
    closedir(d);
    if (n > 0) {
        qsort(names, (size_t)n, sizeof *names, compare_names);
    }
    *out = names;
    return n;
}

typedef struct loaded_gguf {
    unsigned char *bytes;
    gguf_file file;
    bool ok;
} loaded_gguf;

static bool load_gguf(const char *relative, loaded_gguf *g) {
    memset(g, 0, sizeof *g);
    char path[1024];
    if (!test_model_path(relative, path, sizeof path)) {
        return false;
    }
    size_t size = 0;
    g->bytes = test_read_file(path, &size);
    CHECK_MSG(g->bytes != NULL, "cannot read %s", path);
    if (g->bytes == NULL) {
        return false;
    }
    char err[256] = "";
    const edgelm_status st = gguf_parse(g->bytes, size, &g->file, err, sizeof err);
    CHECK_MSG(st == EDGELM_OK, "%s: gguf_parse: %s", path, err);
    if (st != EDGELM_OK) {
        free(g->bytes);
        g->bytes = NULL;
        return false;
    }
    g->ok = true;
    return true;
}

static void unload_gguf(loaded_gguf *g) {
    if (g->ok) {
        gguf_free(&g->file);
    }
    free(g->bytes);
    memset(g, 0, sizeof *g);
}

static bool near_rel(double got, double want, double scale) {
    return fabs(got - want) <= 1e-6 * fabs(want) + 1e-12 * scale;
}

/* Dequantize every tensor of the model named in one dequant.json and compare with ggml's
 * figures. Returns false when the model file is absent (skip). */
static bool golden_dequant_file(const char *json_path) {
    cJSON *root = test_load_json(json_path);
    CHECK_MSG(root != NULL, "cannot load %s", json_path);
    if (root == NULL) {
        return true;
    }
    const char *model = test_json_string(root, "model");
    const cJSON *tensors = cJSON_GetObjectItemCaseSensitive(root, "tensors");
    CHECK(model != NULL && cJSON_IsArray(tensors));
    if (model == NULL || !cJSON_IsArray(tensors)) {
        cJSON_Delete(root);
        return true;
    }
    loaded_gguf g;
    if (!load_gguf(model, &g)) {
        cJSON_Delete(root);
        return false;
    }
    int n_tensors = 0, n_values = 0;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, tensors) {
        const char *name = test_json_string(entry, "name");
        const char *type = test_json_string(entry, "type");
        const cJSON *ne = cJSON_GetObjectItemCaseSensitive(entry, "ne");
        const double count = test_json_number(entry, "n");
        const cJSON *first16 = cJSON_GetObjectItemCaseSensitive(entry, "first16");
        const cJSON *at_index = cJSON_GetObjectItemCaseSensitive(entry, "at_index");
        if (name == NULL || type == NULL || !cJSON_IsArray(ne) || isnan(count) ||
            !cJSON_IsArray(first16) || !cJSON_IsObject(at_index)) {
            CHECK_MSG(false, "%s: malformed entry", json_path);
            continue;
        }
        const gguf_tensor *tensor = gguf_find_tensor(&g.file, name);
        CHECK_MSG(tensor != NULL, "%s: tensor %s absent", model, name);
        if (tensor == NULL) {
            continue;
        }
        const tensor_type_traits *t = tensor_type_get(tensor->type);
        CHECK_MSG(t != NULL && strcmp(t->name, type) == 0, "%s: type %s, want %s", name,
                  t != NULL ? t->name : "?", type);
        CHECK_MSG((double)tensor->n_elements == count, "%s: n", name);
        int dim = 0;
        const cJSON *d;
        cJSON_ArrayForEach(d, ne) {
            CHECK_MSG(dim < GGUF_MAX_DIMS && (double)tensor->ne[dim] == d->valuedouble,
                      "%s: ne[%d]", name, dim);
            dim++;
        }
        if (t == NULL || t->to_float == NULL) {
            continue;
        }
        const int64_t n = (int64_t)tensor->n_elements;
        float *y = xmalloc((size_t)n * sizeof(float));
        t->to_float(tensor->data, y, n);
        double sum = 0.0, sum_abs = 0.0, sum_sq = 0.0;
        for (int64_t i = 0; i < n; i++) {
            sum += (double)y[i];
            sum_abs += fabs((double)y[i]);
            sum_sq += (double)y[i] * (double)y[i];
        }
        const double want_sum = test_json_number(entry, "sum");
        const double want_abs = test_json_number(entry, "sum_abs");
        const double want_sq = test_json_number(entry, "sum_sq");
        CHECK_MSG(near_rel(sum, want_sum, sum_abs), "%s %s: sum %.9g, want %.9g", model, name, sum,
                  want_sum);
        CHECK_MSG(near_rel(sum_abs, want_abs, sum_abs), "%s %s: sum_abs %.9g, want %.9g", model,
                  name, sum_abs, want_abs);
        CHECK_MSG(near_rel(sum_sq, want_sq, sum_sq), "%s %s: sum_sq %.9g, want %.9g", model, name,
                  sum_sq, want_sq);
        /* the JSON prints 9 significant digits, which round-trips a float exactly */
        int i = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, first16) {
            CHECK_MSG(i < n && y[i] == (float)v->valuedouble, "%s %s: [%d] = %.9g, want %.9g",
                      model, name, i, i < n ? (double)y[i] : 0.0, v->valuedouble);
            i++;
            n_values++;
        }
        cJSON_ArrayForEach(v, at_index) {
            const long long idx = strtoll(v->string, NULL, 10);
            CHECK_MSG(idx >= 0 && idx < n && y[idx] == (float)v->valuedouble,
                      "%s %s: [%lld] = %.9g, want %.9g", model, name, idx,
                      idx >= 0 && idx < n ? (double)y[idx] : 0.0, v->valuedouble);
            n_values++;
        }
        free(y);
        n_tensors++;
    }
    fprintf(stderr, "  golden dequant %s: %d tensors, %d values\n", model, n_tensors, n_values);
    unload_gguf(&g);
    cJSON_Delete(root);
    return true;
}

static int test_golden_dequant(void) {
    const char *dir = test_models_dir();
    if (dir == NULL) {
        fprintf(stderr, "*** SKIPPED: golden dequant (models directory not found)\n");
        return 1;
    }
    char ref_dir[1024];
    snprintf(ref_dir, sizeof ref_dir, "%s/reference", dir);
    char **names = NULL;
    const int n = list_files(ref_dir, "synthetic-k256-", ".dequant.json", &names);
    if (n == 0) {
        fprintf(stderr, "*** SKIPPED: golden dequant (no %s/synthetic-k256-*.dequant.json)\n",
                ref_dir);
        return 1;
    }
    int skipped = 0;
    for (int i = 0; i < n; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", ref_dir, names[i]);
        if (!golden_dequant_file(path)) {
            skipped++;
        }
        free(names[i]);
    }
    free(names);
    return skipped;
}

/* Re-encode the F32 source of each llama-quantize output with our from_float and compare the
 * bytes tensor by tensor: llama-quantize without an importance matrix runs exactly ggml's
 * quantize_row_*_ref (and fp32 -> fp16 for F16), so the bytes must be identical. */
static bool golden_encode(const char *source_rel, const char *quantized_rel) {
    loaded_gguf src, dst;
    if (!load_gguf(source_rel, &src)) {
        return false;
    }
    if (!load_gguf(quantized_rel, &dst)) {
        unload_gguf(&src);
        return false;
    }
    int n_compared = 0, n_same = 0;
    for (uint64_t i = 0; i < dst.file.n_tensors; i++) {
        const gguf_tensor *q = &dst.file.tensors[i];
        if (q->type == TENSOR_TYPE_F32) {
            continue;
        }
        const gguf_tensor *f = gguf_find_tensor(&src.file, q->name_z);
        CHECK_MSG(f != NULL && f->type == TENSOR_TYPE_F32 && f->n_elements == q->n_elements,
                  "%s: no matching F32 tensor %s in %s", quantized_rel, q->name_z, source_rel);
        const tensor_type_traits *t = tensor_type_get(q->type);
        CHECK_MSG(t != NULL, "%s: %s has unknown type %u", quantized_rel, q->name_z, q->type);
        if (f == NULL || t == NULL || f->type != TENSOR_TYPE_F32 ||
            f->n_elements != q->n_elements) {
            continue;
        }
        const size_t bytes = tensor_row_size(q->type, (int64_t)q->n_elements);
        CHECK(bytes == q->n_bytes);
        uint8_t *mine = xmalloc(bytes);
        /* encoding row by row equals encoding the whole tensor (blocks never straddle rows) */
        t->from_float((const float *)f->data, mine, (int64_t)q->n_elements);
        size_t n_blocks = bytes / t->type_size, n_diff = 0, first_diff = 0;
        for (size_t b = 0; b < n_blocks; b++) {
            if (memcmp(mine + b * t->type_size, (const uint8_t *)q->data + b * t->type_size,
                       t->type_size) != 0) {
                if (n_diff == 0) {
                    first_diff = b;
                }
                n_diff++;
            }
        }
        CHECK_MSG(n_diff == 0,
                  "%s %s (%s): %zu of %zu blocks differ from llama-quantize (first %zu)",
                  quantized_rel, q->name_z, t->name, n_diff, n_blocks, first_diff);
        n_compared++;
        n_same += n_diff == 0;
        free(mine);
    }
    fprintf(stderr, "  golden encode %s: %d of %d tensors byte-identical\n", quantized_rel, n_same,
            n_compared);
    unload_gguf(&dst);
    unload_gguf(&src);
    return true;
}

/* Each file "<prefix><type>.gguf" that llama-quantize made from source, for the listed types. */
static int golden_encode_types(const char *source, const char *prefix, const char *const *types,
                               size_t n_types) {
    int skipped = 0;
    for (size_t i = 0; i < n_types; i++) {
        char quantized[128];
        snprintf(quantized, sizeof quantized, "%s%s.gguf", prefix, types[i]);
        if (!golden_encode(source, quantized)) {
            skipped++;
        }
    }
    return skipped;
}

static int test_golden_encode(void) {
    static const char *const k256_types[] = {"Q2_K", "Q3_K", "Q4_K", "Q4_K_M", "Q5_K", "Q6_K"};
    static const char *const stories_types[] = {"Q8_0", "Q4_0"};
    int skipped =
        golden_encode_types("synthetic/synthetic-k256-F32.gguf", "synthetic/synthetic-k256-",
                            k256_types, sizeof k256_types / sizeof k256_types[0]);
    skipped += golden_encode_types("stories260K.gguf", "derived/stories260K-", stories_types,
                                   sizeof stories_types / sizeof stories_types[0]);
    return skipped;
}

int main(void) {
    int skipped_parts = 0;
    test_fp16();
    test_table();
    test_round_trip();
    test_activation_codes();
    test_vec_dot();
    test_hand_blocks();
    skipped_parts += test_golden_dequant();
    skipped_parts += test_golden_encode();
    return test_finish("test_quant", skipped_parts);
}
