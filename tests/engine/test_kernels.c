/* test_kernels.c - every SIMD kernel level this CPU can run against the scalar reference
 * (kernels.h vs quant_ref.h), on random data and edge sizes, with named tolerances per type.
 *
 * Usage: test_kernels               run the tests (every supported level)
 *        test_kernels --require L   exit 0 if this CPU/build runs level L, else 77 (skip); ctest
 *                                   uses it to run test_forward once per level
 *        test_kernels --bench [ROWS [TOKENS [COLS]]]  per-level throughput of the main matrix
 *        kernels
 *                                   over ROWS rows of 2048 (256: in cache; 65536: from memory)
 *                                   and TOKENS tokens (1: decode, GB/s; 32: a prefill chunk)
 */
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "kernels/quant_ref.h"
#include "kernels/tensor_types.h"
#include "test_util.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* K-quant dots may sum in another float order than the reference: |isa - ref| must stay within
 * this fraction of sum |x_i y_i| (plus a tiny absolute floor for all-zero rows). */
#define KQUANT_DOT_REL_TOL 1e-5
#define KQUANT_DOT_ABS_TOL 1e-30

/* Q4_0 and Q8_0 dots: exact integer block sums, then per block acc += (float)sumi * (dx * dy),
 * which the reference (q4_0_vec_dot_fma) fuses and levels without FMA (SSE2, ARMv7 NEON) round
 * twice. Each of the nb terms of either side carries at most two roundings (dx * dy, then the
 * product or the fused add) and the running sum one per block, so each side is within
 * (nb + 1) * u * sum |x_i y_i| of the exact dot (u = FLT_EPSILON / 2; sum |x_i y_i| over the
 * dequantized values bounds every |term| and partial sum): the two differ by at most
 * (nb + 1) * FLT_EPSILON * sum |x_i y_i|. Levels with FMA are bit-identical to the reference. */
static double q0_dot_tolerance(int64_t n_blocks, double abs_terms) {
    return (double)(n_blocks + 1) * (double)FLT_EPSILON * abs_terms + KQUANT_DOT_ABS_TOL;
}

/* ---- data ------------------------------------------------------------------------------------ */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static float rng_uniform(void) { /* [-1, 1) */
    return (float)((double)(rng_next() >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

/* A few distributions, so that blocks with outliers, ties of |max| and zeros show up. */
static void random_floats(float *x, int64_t n, int kind) {
    for (int64_t i = 0; i < n; i++) {
        switch (kind) {
        case 0:
            x[i] = rng_uniform();
            break;
        case 1: /* heavy tail */
            x[i] = rng_uniform() * rng_uniform() * rng_uniform() * 40.0f;
            break;
        case 2: /* exact halves after scaling: x * (127 / amax) = k + 0.5 when amax = 127 */
            x[i] = (float)((int)(rng_next() % 253) - 126) + 0.5f;
            break;
        default: /* few distinct values: +-max ties and zeros */
            x[i] = (float)((int)(rng_next() % 5) - 2) * 0.75f;
            break;
        }
    }
    if (kind == 2 && n > 0) {
        x[0] = 127.0f;
    }
}

static fp16_t random_scale(float magnitude) { return fp32_to_fp16(rng_uniform() * magnitude); }

/* Where each quantized block keeps its fp16 scale d and, in the types that have one, its fp16
 * min (m or dmin), with the magnitude of the random values they get. */
typedef struct block_scales {
    uint32_t type;
    size_t d_offset;
    float d_magnitude;
    size_t min_offset;
    float min_magnitude; /* 0: no min */
} block_scales;

static const block_scales quant_scales[] = {
    {TENSOR_TYPE_Q4_0, offsetof(block_q4_0, d), 0.1f, 0, 0.0f},
    {TENSOR_TYPE_Q4_1, offsetof(block_q4_1, d), 0.1f, offsetof(block_q4_1, m), 1.0f},
    {TENSOR_TYPE_Q5_0, offsetof(block_q5_0, d), 0.05f, 0, 0.0f},
    {TENSOR_TYPE_Q5_1, offsetof(block_q5_1, d), 0.05f, offsetof(block_q5_1, m), 1.0f},
    {TENSOR_TYPE_Q8_0, offsetof(block_q8_0, d), 0.01f, 0, 0.0f},
    {TENSOR_TYPE_Q2_K, offsetof(block_q2_K, d), 0.1f, offsetof(block_q2_K, dmin), 0.1f},
    {TENSOR_TYPE_Q3_K, offsetof(block_q3_K, d), 0.1f, 0, 0.0f},
    {TENSOR_TYPE_Q4_K, offsetof(block_q4_K, d), 0.1f, offsetof(block_q4_K, dmin), 0.1f},
    {TENSOR_TYPE_Q5_K, offsetof(block_q5_K, d), 0.1f, offsetof(block_q5_K, dmin), 0.1f},
    {TENSOR_TYPE_Q6_K, offsetof(block_q6_K, d), 0.1f, 0, 0.0f},
};

static void set_random_scale(uint8_t *block, size_t offset, float magnitude) {
    const fp16_t v = random_scale(magnitude);
    memcpy(block + offset, &v, sizeof v);
}

/* Random blocks of `type`: random bytes everywhere, then sane finite fp16 scales, and Q8_0
 * codes kept in -127..127 (no quantizer ever writes -128; ggml's kernels assume the same). */
static void random_weights(uint32_t type, void *dst, int64_t n) {
    const tensor_type_traits *t = tensor_type_get_ref(type);
    const int64_t nb = n / t->block_size;
    uint8_t *bytes = dst;
    for (size_t i = 0; i < (size_t)nb * t->type_size; i++) {
        bytes[i] = (uint8_t)rng_next();
    }
    const block_scales *scales = NULL;
    for (size_t k = 0; k < sizeof quant_scales / sizeof quant_scales[0]; k++) {
        if (quant_scales[k].type == type) {
            scales = &quant_scales[k];
        }
    }
    for (int64_t i = 0; i < nb; i++) {
        uint8_t *block = bytes + (size_t)i * t->type_size;
        if (type == TENSOR_TYPE_F32) {
            ((float *)dst)[i] = rng_uniform();
        } else if (type == TENSOR_TYPE_F16) {
            ((fp16_t *)dst)[i] = random_scale(2.0f);
        } else if (type == TENSOR_TYPE_BF16) {
            ((bf16_t *)dst)[i] = fp32_to_bf16(rng_uniform() * 2.0f);
        } else if (scales != NULL) {
            set_random_scale(block, scales->d_offset, scales->d_magnitude);
            if (scales->min_magnitude > 0.0f) {
                set_random_scale(block, scales->min_offset, scales->min_magnitude);
            }
        }
        if (type == TENSOR_TYPE_Q8_0) {
            block_q8_0 *b = &((block_q8_0 *)dst)[i];
            for (int j = 0; j < QK8_0; j++) {
                if (b->qs[j] == -128) {
                    b->qs[j] = -127;
                }
            }
        }
    }
}

/* Activation values in float of a vec_dot_type row (Q8_1 has no to_float). */
static void activations_to_float(uint32_t type, const void *src, float *dst, int64_t n) {
    if (type == TENSOR_TYPE_Q8_1) {
        const block_q8_1 *b = src;
        for (int64_t i = 0; i < n; i++) {
            dst[i] = fp16_to_fp32(b[i / QK8_1].d) * (float)b[i / QK8_1].qs[i % QK8_1];
        }
        return;
    }
    tensor_type_get_ref(type)->to_float(src, dst, n);
}

/* ---- checks ---------------------------------------------------------------------------------- */

static const uint32_t all_types[] = {
    TENSOR_TYPE_F32,  TENSOR_TYPE_F16,  TENSOR_TYPE_BF16, TENSOR_TYPE_Q4_0, TENSOR_TYPE_Q4_1,
    TENSOR_TYPE_Q5_0, TENSOR_TYPE_Q5_1, TENSOR_TYPE_Q8_0, TENSOR_TYPE_Q8_1, TENSOR_TYPE_Q2_K,
    TENSOR_TYPE_Q3_K, TENSOR_TYPE_Q4_K, TENSOR_TYPE_Q5_K, TENSOR_TYPE_Q6_K, TENSOR_TYPE_Q8_K,
};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

static bool is_kquant(uint32_t type) {
    return type == TENSOR_TYPE_Q2_K || type == TENSOR_TYPE_Q3_K || type == TENSOR_TYPE_Q4_K ||
           type == TENSOR_TYPE_Q5_K || type == TENSOR_TYPE_Q6_K;
}

/* Q4_0 and Q8_0: compared with q0_dot_tolerance */
static bool is_q0(uint32_t type) { return type == TENSOR_TYPE_Q4_0 || type == TENSOR_TYPE_Q8_0; }

/* Block counts: 1, odd, and large rows (TinyLlama's widest row is 5632 = 22 K-blocks). */
static const int64_t block_counts[] = {1, 2, 3, 7, 22, 65, 176};

static bool same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

static void check_table_complete(const kernel_table *kt) {
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const tensor_type_traits *ref = tensor_type_get_ref(all_types[ti]);
        CHECK_MSG((kt->vec_dot[all_types[ti]] == NULL) == (ref->vec_dot == NULL), "%s: %s vec_dot",
                  kt->name, ref->name);
        CHECK_MSG((kt->from_float[all_types[ti]] == NULL) == (ref->from_float == NULL),
                  "%s: %s from_float", kt->name, ref->name);
        CHECK_MSG((kt->to_float[all_types[ti]] == NULL) == (ref->to_float == NULL),
                  "%s: %s to_float", kt->name, ref->name);
    }
    CHECK(kt->fp16_to_fp32_row != NULL && kt->fp32_to_fp16_row != NULL &&
          kt->f16_scale_row != NULL && kt->f16_mad_row != NULL && kt->f16_dot != NULL);
}

static void check_activation_quantizers(const kernel_table *kt) {
    static const uint32_t act_types[] = {TENSOR_TYPE_Q8_0, TENSOR_TYPE_Q8_1, TENSOR_TYPE_Q8_K,
                                         TENSOR_TYPE_F16};
    for (size_t a = 0; a < sizeof act_types / sizeof act_types[0]; a++) {
        const uint32_t type = act_types[a];
        const tensor_type_traits *ref = tensor_type_get_ref(type);
        for (size_t c = 0; c < sizeof block_counts / sizeof block_counts[0]; c++) {
            for (int kind = 0; kind < 4; kind++) {
                const int64_t n = block_counts[c] * ref->block_size;
                const size_t bytes = (size_t)(n / ref->block_size) * ref->type_size;
                float *x = malloc((size_t)n * sizeof(float));
                uint8_t *want = malloc(bytes);
                uint8_t *got = malloc(bytes);
                CHECK(x != NULL && want != NULL && got != NULL);
                if (x == NULL || want == NULL || got == NULL) {
                    free(x), free(want), free(got);
                    return;
                }
                random_floats(x, n, kind);
                if (kind == 3 && n >= 2 * ref->block_size) {
                    memset(x + ref->block_size, 0, (size_t)ref->block_size * sizeof(float));
                }
                memset(want, 0xA5, bytes);
                memset(got, 0x5A, bytes);
                ref->from_float(x, want, n);
                kt->from_float[type](x, got, n);
                CHECK_MSG(memcmp(want, got, bytes) == 0,
                          "%s: %s from_float differs (n=%lld kind %d)", kt->name, ref->name,
                          (long long)n, kind);
                free(x);
                free(want);
                free(got);
            }
        }
    }
}

/* The dots of type against the reference (and to_float), over rows of every block count and the
 * four distributions; false if out of memory (no further checks). */
static bool check_dots_of(const kernel_table *kt, uint32_t type) {
    const tensor_type_traits *ref = tensor_type_get_ref(type);
    const tensor_type_traits *act = tensor_type_get_ref(ref->vec_dot_type);
    const int64_t unit = ref->block_size > act->block_size ? ref->block_size : act->block_size;
    for (size_t c = 0; c < sizeof block_counts / sizeof block_counts[0]; c++) {
        for (int rep = 0; rep < 4; rep++) {
            int64_t n = block_counts[c] * (unit == 1 ? 32 : unit);
            if (unit == 1) {
                n += rep * 13 + (int64_t)c; /* float rows: any length, odd tails */
            }
            void *x = malloc(tensor_row_size(type, n));
            void *y = malloc(tensor_row_size(ref->vec_dot_type, n));
            float *xf = malloc((size_t)n * sizeof(float));
            float *yf = malloc((size_t)n * sizeof(float));
            CHECK(x != NULL && y != NULL && xf != NULL && yf != NULL);
            if (x == NULL || y == NULL || xf == NULL || yf == NULL) {
                free(x), free(y), free(xf), free(yf);
                return false;
            }
            random_weights(type, x, n);
            random_floats(yf, n, rep);
            act->from_float(yf, y, n);
            float want = 0.0f, got = 0.0f;
            ref->vec_dot(n, &want, x, y);
            kt->vec_dot[type](n, &got, x, y);
            /* a level with an order of its own equals the scalar function of that order */
            if (kt->vec_dot_spec[type] != NULL) {
                float spec = 0.0f;
                kt->vec_dot_spec[type](n, &spec, x, y);
                CHECK_MSG(same_bits(got, spec), "%s: %s dot n=%lld: %.9g vs its order's %.9g",
                          kt->name, ref->name, (long long)n, (double)got, (double)spec);
            }
            /* Q5_K: every level runs ggml's x86 order (q5_K_vec_dot_x86), bit for bit */
            if ((is_kquant(type) && type != TENSOR_TYPE_Q5_K) || is_q0(type)) {
                ref->to_float(x, xf, n);
                activations_to_float(ref->vec_dot_type, y, yf, n);
                double abs_terms = 0.0;
                for (int64_t i = 0; i < n; i++) {
                    abs_terms += fabs((double)xf[i] * (double)yf[i]);
                }
                const double err = fabs((double)got - (double)want);
                const double tol = is_q0(type)
                                       ? q0_dot_tolerance(n / QK8_0, abs_terms)
                                       : KQUANT_DOT_REL_TOL * abs_terms + KQUANT_DOT_ABS_TOL;
                CHECK_MSG(
                    err <= tol, "%s: %s dot n=%lld: %.9g vs ref %.9g (err %.3g, sum|terms| %.3g)",
                    kt->name, ref->name, (long long)n, (double)got, (double)want, err, abs_terms);
            } else {
                CHECK_MSG(same_bits(got, want), "%s: %s dot n=%lld: %.9g vs ref %.9g", kt->name,
                          ref->name, (long long)n, (double)got, (double)want);
            }
            if (kt->to_float[type] != NULL) {
                float *a = malloc((size_t)n * sizeof(float));
                float *b = malloc((size_t)n * sizeof(float));
                CHECK(a != NULL && b != NULL);
                if (a != NULL && b != NULL) {
                    ref->to_float(x, a, n);
                    kt->to_float[type](x, b, n);
                    CHECK_MSG(memcmp(a, b, (size_t)n * sizeof(float)) == 0,
                              "%s: %s to_float differs", kt->name, ref->name);
                }
                free(a);
                free(b);
            }
            free(x);
            free(y);
            free(xf);
            free(yf);
        }
    }
    return true;
}

static void check_dots(const kernel_table *kt) {
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const bool has_dot = tensor_type_get_ref(all_types[ti])->vec_dot != NULL;
        if (has_dot && !check_dots_of(kt, all_types[ti])) {
            return;
        }
    }
}

/* Every gemm (gemv) equals its own table's vec_dot bit for bit, for each (row, token), over row
 * and token counts around the kernels' register blocking (4 and 8 tokens, 8 and 16 rows) and their
 * group sizes (32 tokens, 16 K-quant super-blocks, 16 and 128 Q4_0/Q8_0 blocks), and writes
 * nothing outside its output rows. A gemv is only called with one token. */
static void check_gemm(const kernel_table *kt, uint32_t type, tensor_gemm_fn gemm,
                       tensor_vec_dot_fn vec_dot, const char *what, bool one_token) {
    /* the 32-weight types also cross KC_Q0_SPAN (128 blocks) and reach TinyLlama's n_ff */
    static const int64_t gemm_blocks[] = {1, 3, 16, 17, 22, 64, 65, 129, 176};
    static const int64_t gemm_rows[] = {1, 3, 5, 8, 16, 17, 33};
    static const int64_t gemm_tokens[] = {1, 2, 3, 4, 5, 7, 8, 9, 32, 33, 37};
    const tensor_type_traits *ref = tensor_type_get_ref(type);
    const tensor_type_traits *act = tensor_type_get_ref(ref->vec_dot_type);
    const size_t n_block_counts = ref->block_size == QK_K ? 7 : 9;
    for (size_t bi = 0; bi < n_block_counts; bi++) {
        const int64_t n = gemm_blocks[bi] * ref->block_size;
        const size_t w_stride = tensor_row_size(type, n);
        const size_t x_stride = tensor_row_size(ref->vec_dot_type, n);
        const int64_t max_rows = 33, max_tokens = 37, out_stride = max_rows + 3;
        uint8_t *w = malloc(w_stride * (size_t)max_rows);
        uint8_t *x = malloc(x_stride * (size_t)max_tokens);
        float *xf = malloc((size_t)n * sizeof(float));
        float *out = malloc((size_t)(out_stride * max_tokens) * sizeof(float));
        float *want = malloc((size_t)(max_rows * max_tokens) * sizeof(float));
        CHECK(w != NULL && x != NULL && xf != NULL && out != NULL && want != NULL);
        if (w == NULL || x == NULL || xf == NULL || out == NULL || want == NULL) {
            free(w), free(x), free(xf), free(out), free(want);
            return;
        }
        for (int64_t r = 0; r < max_rows; r++) {
            random_weights(type, w + (size_t)r * w_stride, n);
        }
        for (int64_t t = 0; t < max_tokens; t++) {
            random_floats(xf, n, (int)(t % 4));
            act->from_float(xf, x + (size_t)t * x_stride, n);
            for (int64_t r = 0; r < max_rows; r++) {
                vec_dot(n, &want[t * max_rows + r], w + (size_t)r * w_stride,
                        x + (size_t)t * x_stride);
            }
        }
        for (size_t ri = 0; ri < sizeof gemm_rows / sizeof gemm_rows[0]; ri++) {
            for (size_t ki = 0; ki < (one_token ? 1 : sizeof gemm_tokens / sizeof gemm_tokens[0]);
                 ki++) {
                const int64_t n_rows = gemm_rows[ri], n_tokens = gemm_tokens[ki];
                for (int64_t i = 0; i < out_stride * max_tokens; i++) {
                    out[i] = -12345.0f; /* sentinel */
                }
                gemm(n, n_rows, n_tokens, w, w_stride, x, x_stride, out, out_stride);
                int bad = 0;
                for (int64_t t = 0; t < max_tokens; t++) {
                    for (int64_t r = 0; r < out_stride; r++) {
                        const float got = out[t * out_stride + r];
                        const float expect =
                            t < n_tokens && r < n_rows ? want[t * max_rows + r] : -12345.0f;
                        if (!same_bits(got, expect) && bad++ == 0) {
                            CHECK_MSG(false,
                                      "%s: %s n=%lld rows=%lld tokens=%lld: out[t=%lld, "
                                      "r=%lld] = %.9g, vec_dot %.9g",
                                      kt->name, what, (long long)n, (long long)n_rows,
                                      (long long)n_tokens, (long long)t, (long long)r, (double)got,
                                      (double)expect);
                        }
                    }
                }
            }
        }
        free(w);
        free(x);
        free(xf);
        free(out);
        free(want);
    }
}

static void check_gemms(const kernel_table *kt) {
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t type = all_types[ti];
        char what[48];
        if (kt->gemm[type] != NULL) {
            snprintf(what, sizeof what, "%s gemm", tensor_type_get_ref(type)->name);
            check_gemm(kt, type, kt->gemm[type], kt->vec_dot[type], what, false);
        }
        if (kt->gemv[type] != NULL && kt->gemv[type] != kt->gemm[type]) {
            snprintf(what, sizeof what, "%s gemv", tensor_type_get_ref(type)->name);
            check_gemm(kt, type, kt->gemv[type], kt->vec_dot[type], what, true);
        }
    }
}

static void convert_row(const kernel_table *kt, bool to_fp32, const void *src, void *dst,
                        int64_t n) {
    if (to_fp32) {
        kt->fp16_to_fp32_row(src, dst, n);
    } else {
        kt->fp32_to_fp16_row(src, dst, n);
    }
}

/* The table's fp16 -> fp32 (to_fp32) or fp32 -> fp16 row conversion of src (n elements) into got
 * against want, the reference's output; then of 0..39 elements from src + from, which must equal
 * want there and leave the element after them zero. */
static void check_row_conversion(const kernel_table *kt, bool to_fp32, const void *src,
                                 const void *want, void *got, int64_t n, int64_t from) {
    const char *what = to_fp32 ? "fp16_to_fp32_row" : "fp32_to_fp16_row";
    const size_t in_size = to_fp32 ? sizeof(fp16_t) : sizeof(float);
    const size_t out_size = to_fp32 ? sizeof(float) : sizeof(fp16_t);
    convert_row(kt, to_fp32, src, got, n);
    CHECK_MSG(memcmp(want, got, (size_t)n * out_size) == 0, "%s: %s", kt->name, what);
    const uint8_t *src_from = (const uint8_t *)src + (size_t)from * in_size;
    const uint8_t *want_from = (const uint8_t *)want + (size_t)from * out_size;
    for (int64_t len = 0; len < 40; len++) {
        memset(got, 0, (size_t)(len + 1) * out_size);
        convert_row(kt, to_fp32, src_from, got, len);
        const bool after_zero =
            to_fp32 ? ((const float *)got)[len] == 0.0f : ((const fp16_t *)got)[len] == 0;
        CHECK_MSG(memcmp(want_from, got, (size_t)len * out_size) == 0 && after_zero,
                  "%s: %s len %lld", kt->name, what, (long long)len);
    }
}

static void check_fp16_rows(const kernel_table *kt) {
    enum { N = 65536 + 13 };
    fp16_t *h = malloc(N * sizeof(fp16_t));
    fp16_t *h2 = malloc(N * sizeof(fp16_t));
    fp16_t *h3 = malloc(N * sizeof(fp16_t));
    float *f = malloc(N * sizeof(float));
    float *f2 = malloc(N * sizeof(float));
    CHECK(h != NULL && h2 != NULL && h3 != NULL && f != NULL && f2 != NULL);
    if (h == NULL || h2 == NULL || h3 == NULL || f == NULL || f2 == NULL) {
        goto done;
    }
    /* every half (NaNs and infinities included) to float, at several tail offsets */
    for (int i = 0; i < N; i++) {
        h[i] = (fp16_t)i;
    }
    fp16_to_fp32_row_ref(h, f, N);
    check_row_conversion(kt, true, h, f, f2, N, 1000);
    /* random float bit patterns (NaN, denormals, overflow) and rounding ties to half */
    for (int i = 0; i < N; i++) {
        const uint32_t bits = (uint32_t)rng_next();
        f[i] = i % 3 == 0 ? fp32_from_bits(bits) : rng_uniform() * (float)(1 << (i % 20));
        if (i % 7 == 0) { /* exactly halfway between two halves */
            f[i] = fp32_from_bits((fp32_to_bits(fp16_to_fp32((fp16_t)(i & 0x7bff))) + 0x1000u));
        }
    }
    fp32_to_fp16_row_ref(f, h, N);
    check_row_conversion(kt, false, f, h, h2, N, 77);
    /* scale and mad on finite halves */
    for (int i = 0; i < N; i++) {
        h[i] = random_scale(4.0f);
        h3[i] = random_scale(1.0f);
    }
    for (int64_t len = 1; len < N; len = len * 3 + 1) {
        const float sc = rng_uniform() * 1.5f;
        memcpy(h2, h, (size_t)len * sizeof(fp16_t));
        fp16_t *want = malloc((size_t)len * sizeof(fp16_t));
        CHECK(want != NULL);
        if (want == NULL) {
            break;
        }
        memcpy(want, h, (size_t)len * sizeof(fp16_t));
        f16_scale_row_ref(want, sc, len);
        kt->f16_scale_row(h2, sc, len);
        CHECK_MSG(memcmp(want, h2, (size_t)len * sizeof(fp16_t)) == 0, "%s: f16_scale_row %lld",
                  kt->name, (long long)len);
        f16_mad_row_ref(want, h3, sc, len);
        kt->f16_mad_row(h2, h3, sc, len);
        CHECK_MSG(memcmp(want, h2, (size_t)len * sizeof(fp16_t)) == 0, "%s: f16_mad_row %lld",
                  kt->name, (long long)len);
        free(want);
    }
    /* the f16 dot helper is the F16 vec_dot */
    CHECK(kt->f16_dot == kt->vec_dot[TENSOR_TYPE_F16]);
done:
    free(h);
    free(h2);
    free(h3);
    free(f);
    free(f2);
}

/* The process-wide selection: tensor_type_get() hands out the selected table's functions. */
static void check_selection(void) {
    const kernel_table *kt = kernels_get();
    CHECK(strcmp(kt->name, edgelm_kernels_name()) == 0);
    CHECK(kernels_level_supported(kt->level));
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const tensor_type_traits *t = tensor_type_get(all_types[ti]);
        const tensor_type_traits *r = tensor_type_get_ref(all_types[ti]);
        CHECK(t != NULL && r != NULL && t != r);
        if (t == NULL || r == NULL) {
            continue;
        }
        CHECK(t->vec_dot == kt->vec_dot[all_types[ti]]);
        CHECK(t->from_float == kt->from_float[all_types[ti]]);
        CHECK(strcmp(t->name, r->name) == 0 && t->type_size == r->type_size &&
              t->vec_dot_type == r->vec_dot_type);
    }
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        CHECK(tensor_matrix_gemm(all_types[ti]) == kt->gemm[all_types[ti]]);
        CHECK(tensor_matrix_gemv(all_types[ti]) == kt->gemv[all_types[ti]]);
    }
    CHECK(tensor_matrix_gemm(4) == NULL && tensor_matrix_gemv(TENSOR_TYPE_COUNT) == NULL);
    CHECK(tensor_type_get(4) == NULL && tensor_type_get(TENSOR_TYPE_COUNT) == NULL);
    CHECK(kernels_level_from_name("avx2") == KERNEL_LEVEL_AVX2);
    CHECK(kernels_level_from_name("AVX2") == KERNEL_LEVEL_COUNT);
    CHECK(kernels_level_from_name("") == KERNEL_LEVEL_COUNT);
    CHECK(kernels_level_supported(KERNEL_LEVEL_REF));
    const char *forced = getenv("EDGELM_KERNELS");
    char msg[256] = "";
    const edgelm_status st = kernels_init(msg, sizeof msg);
    if (forced == NULL || forced[0] == '\0') {
        CHECK(st == EDGELM_OK);
    } else if (kernels_level_from_name(forced) == KERNEL_LEVEL_COUNT ||
               !kernels_level_supported(kernels_level_from_name(forced))) {
        CHECK_MSG(st == EDGELM_ERR_INVALID_ARGUMENT && strstr(msg, forced) != NULL, "msg: %s", msg);
    } else {
        CHECK(st == EDGELM_OK && strcmp(kt->name, forced) == 0);
    }
}

/* ---- benchmark (--bench) --------------------------------------------------------------------- */

/* Decode: one token against rows of n_cols weights, 2048 unless given (the gemv where a level has
 * one, else a loop of
 * vec_dot), in GB/s of weights; rows 256 keeps ~0.3 MB of Q4_K rows in cache (the kernel itself),
 * 65536 streams ~75 MB from memory (closer to a real decode). Prefill (tokens > 1): that many
 * tokens at once through the gemm (else vec_dot loops), in G multiply-adds per second. Levels run
 * interleaved, best of 12 passes each, so that a busy machine disturbs them alike. */
static void bench(int rows, int n_tokens, int64_t n_cols) {
    static const uint32_t types[] = {
        TENSOR_TYPE_Q4_K, TENSOR_TYPE_Q6_K, TENSOR_TYPE_Q5_K, TENSOR_TYPE_Q3_K, TENSOR_TYPE_Q2_K,
        TENSOR_TYPE_Q4_0, TENSOR_TYPE_Q8_0, TENSOR_TYPE_Q4_1, TENSOR_TYPE_Q5_0, TENSOR_TYPE_F16};
    const int64_t n = n_cols;
    kernel_table tables[KERNEL_LEVEL_COUNT];
    bool have[KERNEL_LEVEL_COUNT];
    printf("%-5s", "");
    for (int level = 0; level < KERNEL_LEVEL_COUNT; level++) {
        have[level] = kernels_build_table((kernel_level)level, &tables[level]);
        if (have[level]) {
            printf(" %8s", tables[level].name);
        }
    }
    if (n_tokens > 1) {
        printf("   (G multiply-adds/s, %d rows of %lld x %d tokens)\n", rows, (long long)n,
               n_tokens);
    } else {
        printf("   (GB/s of weights, %d rows of %lld)\n", rows, (long long)n);
    }
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const tensor_type_traits *ref = tensor_type_get_ref(types[ti]);
        if (n % ref->block_size != 0) { /* K-quants on rows of 576 or 640 */
            continue;
        }
        const size_t row_bytes = tensor_row_size(types[ti], n);
        const size_t y_bytes = tensor_row_size(ref->vec_dot_type, n);
        uint8_t *x = malloc(row_bytes * (size_t)rows);
        uint8_t *y = malloc(y_bytes * (size_t)n_tokens);
        float *yf = malloc((size_t)n * sizeof(float));
        float *out = malloc((size_t)rows * (size_t)n_tokens * sizeof(float));
        if (x == NULL || y == NULL || yf == NULL || out == NULL) {
            free(x), free(y), free(yf), free(out);
            return;
        }
        random_weights(types[ti], x, n * rows); /* also faults every page in */
        for (int t = 0; t < n_tokens; t++) {
            random_floats(yf, n, 0);
            tensor_type_get_ref(ref->vec_dot_type)->from_float(yf, y + (size_t)t * y_bytes, n);
        }
        double best[KERNEL_LEVEL_COUNT];
        float sink = 0.0f;
        for (int level = 0; level < KERNEL_LEVEL_COUNT; level++) {
            best[level] = 1e30;
        }
        for (int pass = 0; pass < 12; pass++) {
            for (int level = 0; level < KERNEL_LEVEL_COUNT; level++) {
                if (!have[level] || (level == KERNEL_LEVEL_REF && pass >= 2)) {
                    continue;
                }
                const kernel_table *kt = &tables[level];
                const tensor_gemm_fn mm = n_tokens == 1 ? kt->gemv[types[ti]] : kt->gemm[types[ti]];
                const double t0 = test_now_ms() / 1e3;
                if (mm != NULL) {
                    mm(n, rows, n_tokens, x, row_bytes, y, y_bytes, out, rows);
                } else {
                    for (int r = 0; r < rows; r++) {
                        for (int t = 0; t < n_tokens; t++) {
                            kt->vec_dot[types[ti]](n, &out[t * rows + r], x + (size_t)r * row_bytes,
                                                   y + (size_t)t * y_bytes);
                        }
                    }
                }
                const double dt = test_now_ms() / 1e3 - t0;
                sink += out[rows - 1];
                best[level] = dt < best[level] ? dt : best[level];
            }
        }
        printf("%-5s", ref->name);
        for (int level = 0; level < KERNEL_LEVEL_COUNT; level++) {
            if (have[level]) {
                printf(" %8.2f", n_tokens > 1 ? (double)n * rows * n_tokens / best[level] / 1e9
                                              : (double)row_bytes * rows / best[level] / 1e9);
            }
        }
        printf("%s\n", sink == 12345.0f ? " !" : "");
        free(x);
        free(y);
        free(yf);
        free(out);
    }
}

static void check_level(const kernel_table *kt) {
    const int failures_before = test_failures;
    check_table_complete(kt);
    check_activation_quantizers(kt);
    check_dots(kt);
    check_gemms(kt);
    check_fp16_rows(kt);
    printf("level %-6s %s\n", kt->name, test_failures == failures_before ? "ok" : "FAILED");
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "--require") == 0) {
        const kernel_level level = kernels_level_from_name(argc >= 3 ? argv[2] : "");
        if (level == KERNEL_LEVEL_COUNT) {
            fprintf(stderr, "test_kernels: unknown kernel level '%s'\n", argc >= 3 ? argv[2] : "");
            return 2;
        }
        if (!kernels_level_supported(level)) {
            printf("SKIPPED: this CPU or build cannot run kernel level %s\n", argv[2]);
            return TEST_SKIP_CODE;
        }
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "--bench") == 0) {
        const int64_t n_cols = argc >= 5 ? atoi(argv[4]) : 2048;
        if (n_cols < 32 || n_cols % 32 != 0) {
            fprintf(stderr, "test_kernels --bench ROWS TOKENS COLS: COLS a multiple of 32\n");
            return 2;
        }
        bench(argc >= 3 ? atoi(argv[2]) : 256, argc >= 4 ? atoi(argv[3]) : 1, n_cols);
        return 0;
    }
    check_selection();
    for (int level = 0; level < KERNEL_LEVEL_COUNT; level++) {
        kernel_table kt;
        if (!kernels_build_table((kernel_level)level, &kt)) {
            printf("level %-6s not supported here: skipped\n",
                   kernels_level_name((kernel_level)level));
            continue;
        }
        check_level(&kt);
#if defined(__x86_64__) || defined(__i386__)
        if (level == KERNEL_LEVEL_AVX512) {
            /* the AVX-512 table a CPU without VNNI gets (this one selects the VNNI variants) */
            kernels_build_table(KERNEL_LEVEL_AVX2, &kt);
            kernels_fill_avx512(&kt, false);
            kt.f16_dot = kt.vec_dot[TENSOR_TYPE_F16];
            kt.name = "avx512 (no VNNI)";
            check_level(&kt);
        }
#endif
    }
    return test_finish("test_kernels", 0);
}
