/* kernels_avx512.c - AVX-512 F/BW/VL kernels (compiled with those flags plus AVX2/FMA/F16C, which
 * every AVX-512 CPU has; kernels.c registers them only when CPUID/XGETBV report all of it). The
 * VNNI variants carry target("avx512vnni") and are registered only when CPUID reports VNNI.
 *
 * The table starts from the AVX2 one; this file replaces what gains from 64-byte vectors: the
 * K-quant dots of the common decode types (one 512-bit step covers 64 weights), the F16 dot in
 * its native 16-lane order (bit-identical to f16_vec_dot_x86) and the fp16 rows.
 */
#include "kernels.h"
#include "quant_ref.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#if defined(__clang__)
#define VNNI_TARGET __attribute__((target("avx512vnni,avx512bw,avx512vl,avx512f")))
#else
#define VNNI_TARGET __attribute__((target("avx512vnni")))
#endif

/* ---- helpers --------------------------------------------------------------------------------- */

/* One half to float with F16C (exact, equal to fp16_to_fp32 for every input). */
static inline float h2f(fp16_t h) { return _cvtsh_ss(h); }

static inline float hsum_float_4(__m128 r) {
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* Fixed-order reduction of 16 float lanes: halves 16 -> 8 -> 4, then (l0+l2) + (l1+l3) (the
 * order of _mm512_reduce_add_ps as f16_vec_dot_x86 spells it out). */
static inline float reduce_16(__m512 v) {
    const __m256 h8 =
        _mm256_add_ps(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)),
                      _mm512_castps512_ps256(v));
    const __m128 h4 = _mm_add_ps(_mm256_extractf128_ps(h8, 1), _mm256_castps256_ps128(h8));
    const __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
    return _mm_cvtss_f32(_mm_add_ss(h2, _mm_movehdup_ps(h2)));
}

/* F16C's conversion with NaNs made canonical as fp32_to_fp16 makes them (sign | 0x7E00). */
static inline __m256i cvt_ps_ph16(__m512 v) {
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    const __m512 canon = _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u)),
        _mm512_set1_epi32(0x7FC00000)));
    return _mm512_cvtps_ph(_mm512_mask_blend_ps(nan, v, canon), _MM_FROUND_TO_NEAREST_INT);
}

/* ---- fp16 rows and the F16 dot ----------------------------------------------------------------
 */

static void fp16_to_fp32_row_avx512(const fp16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))));
    }
    for (; i < n; i++) {
        y[i] = fp16_to_fp32(x[i]);
    }
}

static void fp32_to_fp16_row_avx512(const float *x, fp16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_si256((__m256i *)(y + i), cvt_ps_ph16(_mm512_loadu_ps(x + i)));
    }
    for (; i < n; i++) {
        y[i] = fp32_to_fp16(x[i]);
    }
}

static void f16_scale_row_avx512(fp16_t *y, float s, int64_t n) {
    const __m512 vs = _mm512_set1_ps(s);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(y + i)));
        _mm256_storeu_si256((__m256i *)(y + i), cvt_ps_ph16(_mm512_mul_ps(v, vs)));
    }
    for (; i < n; i++) {
        y[i] = fp32_to_fp16(fp16_to_fp32(y[i]) * s);
    }
}

static void f16_mad_row_avx512(fp16_t *y, const fp16_t *x, float s, int64_t n) {
    const __m512 vs = _mm512_set1_ps(s);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 vx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i)));
        const __m512 vy = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(y + i)));
        _mm256_storeu_si256((__m256i *)(y + i), cvt_ps_ph16(_mm512_fmadd_ps(vx, vs, vy)));
    }
    for (; i < n; i++) {
        y[i] = fp32_to_fp16(fmaf(fp16_to_fp32(x[i]), s, fp16_to_fp32(y[i])));
    }
}

static void f16_to_float_avx512(const void *src, float *dst, int64_t n) {
    fp16_to_fp32_row_avx512(src, dst, n);
}

static void f16_from_float_avx512(const float *src, void *dst, int64_t n) {
    fp32_to_fp16_row_avx512(src, dst, n);
}

/* ggml_vec_dot_f16 as built for AVX-512: 4 accumulators of 16 lanes; see f16_vec_dot_x86. */
static void f16_vec_dot_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    const fp16_t *x = vx;
    const fp16_t *y = vy;
    const int64_t np = n & ~(int64_t)63;
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    for (int64_t i = 0; i < np; i += 64) {
        for (int j = 0; j < 4; j++) {
            const __m512 a = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i + 16 * j)));
            const __m512 b = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(y + i + 16 * j)));
            acc[j] = _mm512_fmadd_ps(a, b, acc[j]);
        }
    }
    const __m512 v = _mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3]));
    double sum = (double)reduce_16(v);
    for (int64_t i = np; i < n; i++) {
        sum += (double)(fp16_to_fp32(x[i]) * fp16_to_fp32(y[i]));
    }
    *s = (float)sum;
}

/* ---- K-quants -------------------------------------------------------------------------------- */

/* Q4_K/Q5_K 6-bit scales and mins as 8 bytes each (layout in quant_ref.h, k4_scale_min). */
static inline void k4_scales_mins(const uint8_t packed[12], uint64_t *scales, uint64_t *mins) {
    uint32_t w[3];
    memcpy(w, packed, sizeof w);
    const uint32_t sc_lo = w[0] & 0x3f3f3f3fu;
    const uint32_t sc_hi = (w[2] & 0x0f0f0f0fu) | ((w[0] >> 2) & 0x30303030u);
    const uint32_t mn_lo = w[1] & 0x3f3f3f3fu;
    const uint32_t mn_hi = ((w[2] >> 4) & 0x0f0f0f0fu) | ((w[1] >> 2) & 0x30303030u);
    *scales = (uint64_t)sc_lo | ((uint64_t)sc_hi << 32);
    *mins = (uint64_t)mn_lo | ((uint64_t)mn_hi << 32);
}

/* sum over the 8 sub-blocks of mins[j] * (bsums[2j] + bsums[2j+1]), as 4 int32 lanes. */
static inline __m128i k4_min_terms(const int16_t bsums[16], uint64_t mins) {
    const __m128i b0 = _mm_loadu_si128((const __m128i *)bsums);
    const __m128i b1 = _mm_loadu_si128((const __m128i *)(bsums + 8));
    const __m128i m16 = _mm_cvtepu8_epi16(_mm_set_epi64x(0, (long long)mins));
    return _mm_madd_epi16(_mm_hadd_epi16(b0, b1), m16);
}

/* Index vectors for _mm512_permutexvar_epi16: 32 lanes, 16 of scale a then 16 of scale b
 * (sub-blocks 2c, 2c+1), or 4 x 8 lanes of scales g..g+3 (16-weight groups). */
static inline __m512i idx_halves(int a) {
    return _mm512_inserti64x4(_mm512_set1_epi16((short)a), _mm256_set1_epi16((short)(a + 1)), 1);
}

static inline __m512i idx_quarters(int g) {
    return _mm512_inserti64x4(
        _mm512_castsi256_si512(
            _mm256_set_m128i(_mm_set1_epi16((short)(g + 1)), _mm_set1_epi16((short)g))),
        _mm256_set_m128i(_mm_set1_epi16((short)(g + 3)), _mm_set1_epi16((short)(g + 2))), 1);
}

/* 32 packed bytes of 4-bit codes -> 64 codes: low nibbles (weights 0..31) in the low half,
 * high nibbles (32..63) in the high half, as Q4_K/Q5_K chunks are laid out. */
static inline __m512i unpack_chunk64(const uint8_t *qs) {
    const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qs));
    return _mm512_and_si512(_mm512_mask_srli_epi16(q, (__mmask32)0xFFFF0000u, q, 4),
                            _mm512_set1_epi8(0x0F));
}

/* One body for the plain and the VNNI variant: MADD_ACC(acc, p, s) = acc + madd(p, s). */
#define Q4_K_DOT_BODY(MADD_ACC)                                                                    \
    const block_q4_K *x = vx;                                                                      \
    const block_q8_K *y = vy;                                                                      \
    __m512 acc = _mm512_setzero_ps();                                                              \
    __m128 acc_m = _mm_setzero_ps();                                                               \
    const __m512i idx[4] = {idx_halves(0), idx_halves(2), idx_halves(4), idx_halves(6)};           \
    for (int64_t i = 0; i < n / QK_K; i++) {                                                       \
        const float d = y[i].d * h2f(x[i].d);                                                      \
        const float dmin = y[i].d * h2f(x[i].dmin);                                                \
        uint64_t sc, mn;                                                                           \
        k4_scales_mins(x[i].scales, &sc, &mn);                                                     \
        acc_m =                                                                                    \
            _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(k4_min_terms(y[i].bsums, mn)), acc_m); \
        const __m512i sc16 =                                                                       \
            _mm512_zextsi128_si512(_mm_cvtepu8_epi16(_mm_set_epi64x(0, (long long)sc)));           \
        __m512i sum0 = _mm512_setzero_si512();                                                     \
        __m512i sum1 = _mm512_setzero_si512();                                                     \
        for (int c = 0; c < QK_K / 64; c += 2) {                                                   \
            const __m512i q0 = unpack_chunk64(x[i].qs + 32 * c);                                   \
            const __m512i q1 = unpack_chunk64(x[i].qs + 32 * c + 32);                              \
            const __m512i p0 =                                                                     \
                _mm512_maddubs_epi16(q0, _mm512_loadu_si512((const void *)(y[i].qs + 64 * c)));    \
            const __m512i p1 = _mm512_maddubs_epi16(                                               \
                q1, _mm512_loadu_si512((const void *)(y[i].qs + 64 * c + 64)));                    \
            sum0 = MADD_ACC(sum0, p0, _mm512_permutexvar_epi16(idx[c], sc16));                     \
            sum1 = MADD_ACC(sum1, p1, _mm512_permutexvar_epi16(idx[c + 1], sc16));                 \
        }                                                                                          \
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(_mm512_add_epi32(sum0, sum1)), \
                              acc);                                                                \
    }                                                                                              \
    *s = _mm512_reduce_add_ps(acc) - hsum_float_4(acc_m);

#define MADD_ACC_PLAIN(acc, p, sc) _mm512_add_epi32((acc), _mm512_madd_epi16((p), (sc)))
#define MADD_ACC_VNNI(acc, p, sc) _mm512_dpwssd_epi32((acc), (p), (sc))

static void q4_K_vec_dot_avx512(int64_t n, float *s, const void *vx,
                                const void *vy){Q4_K_DOT_BODY(MADD_ACC_PLAIN)}

VNNI_TARGET
    static void q4_K_vec_dot_avx512_vnni(int64_t n, float *s, const void *vx, const void *vy) {
    Q4_K_DOT_BODY(MADD_ACC_VNNI)
}

/* Q6_K: per half of 128 weights, ql holds 64 contiguous bytes (low nibbles of weights 0..63,
 * high nibbles of 64..127) and qh 32 bytes of 2-bit pairs (see q6_K_unpack in quant_k.c). */
#define Q6_K_DOT_BODY(MADD_ACC)                                                                    \
    const block_q6_K *x = vx;                                                                      \
    const block_q8_K *y = vy;                                                                      \
    const __m512i m4 = _mm512_set1_epi8(0x0F);                                                     \
    const __m512i m30 = _mm512_set1_epi8(0x30);                                                    \
    const __mmask32 upper = (__mmask32)0xFFFF0000u;                                                \
    const __m512i idx[4] = {idx_quarters(0), idx_quarters(4), idx_quarters(8), idx_quarters(12)};  \
    __m512 acc = _mm512_setzero_ps();                                                              \
    for (int64_t i = 0; i < n / QK_K; i++) {                                                       \
        const float d = y[i].d * h2f(x[i].d);                                                      \
        const __m256i sc256 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales)); \
        const __m512i sc16 = _mm512_zextsi256_si512(sc256);                                        \
        /* codes are stored as value + 32: subtract 32 * scale * sum(q8) per group */              \
        const __m256i off = _mm256_slli_epi32(                                                     \
            _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[i].bsums), sc256), 5);         \
        __m512i sum0 = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(off));      \
        __m512i sum1 = _mm512_setzero_si512();                                                     \
        for (int h = 0; h < QK_K / 128; h++) {                                                     \
            const __m512i ql = _mm512_loadu_si512((const void *)(x[i].ql + 64 * h));               \
            const __m512i qh =                                                                     \
                _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h)));   \
            /* weights 0..63: bit pairs 0-1 (low half) and 2-3 (high half) of qh to bits 4-5 */    \
            const __m512i h01 = _mm512_mask_slli_epi16(_mm512_slli_epi16(qh, 4), upper, qh, 2);    \
            /* weights 64..127: bit pairs 4-5 (low half) and 6-7 (high half) */                    \
            const __m512i h23 = _mm512_mask_srli_epi16(qh, upper, qh, 2);                          \
            const __m512i c01 =                                                                    \
                _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(h01, m30));             \
            const __m512i c23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),    \
                                                _mm512_and_si512(h23, m30));                       \
            const int8_t *q8 = y[i].qs + 128 * h;                                                  \
            const __m512i p0 = _mm512_maddubs_epi16(c01, _mm512_loadu_si512((const void *)q8));    \
            const __m512i p1 =                                                                     \
                _mm512_maddubs_epi16(c23, _mm512_loadu_si512((const void *)(q8 + 64)));            \
            sum0 = MADD_ACC(sum0, p0, _mm512_permutexvar_epi16(idx[2 * h], sc16));                 \
            sum1 = MADD_ACC(sum1, p1, _mm512_permutexvar_epi16(idx[2 * h + 1], sc16));             \
        }                                                                                          \
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(_mm512_add_epi32(sum0, sum1)), \
                              acc);                                                                \
    }                                                                                              \
    *s = _mm512_reduce_add_ps(acc);

static void q6_K_vec_dot_avx512(int64_t n, float *s, const void *vx,
                                const void *vy){Q6_K_DOT_BODY(MADD_ACC_PLAIN)}

VNNI_TARGET
    static void q6_K_vec_dot_avx512_vnni(int64_t n, float *s, const void *vx, const void *vy) {
    Q6_K_DOT_BODY(MADD_ACC_VNNI)
}

/* ---- registration ---------------------------------------------------------------------------- */

void kernels_fill_avx512(kernel_table *t, bool has_vnni) {
    t->fp16_to_fp32_row = fp16_to_fp32_row_avx512;
    t->fp32_to_fp16_row = fp32_to_fp16_row_avx512;
    t->f16_scale_row = f16_scale_row_avx512;
    t->f16_mad_row = f16_mad_row_avx512;
    t->to_float[TENSOR_TYPE_F16] = f16_to_float_avx512;
    t->from_float[TENSOR_TYPE_F16] = f16_from_float_avx512;
    t->vec_dot[TENSOR_TYPE_F16] = f16_vec_dot_avx512;

    t->vec_dot[TENSOR_TYPE_Q4_K] = has_vnni ? q4_K_vec_dot_avx512_vnni : q4_K_vec_dot_avx512;
    t->vec_dot[TENSOR_TYPE_Q6_K] = has_vnni ? q6_K_vec_dot_avx512_vnni : q6_K_vec_dot_avx512;
}
