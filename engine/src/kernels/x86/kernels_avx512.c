/* kernels_avx512.c - AVX-512 F/BW/VL kernels (compiled with those flags plus AVX2/FMA/F16C, which
 * every AVX-512 CPU has; kernels.c registers them only when CPUID/XGETBV report all of it). The
 * VNNI variants carry target("avx512vnni") and are registered only when CPUID reports VNNI.
 *
 * The table starts from the AVX2 one; this file replaces what gains from 64-byte vectors: the
 * K-quant dots of the common decode types (one 512-bit step covers 64 weights), the F16 dot in
 * its native 16-lane order (bit-identical to f16_vec_dot_x86), the fp16 rows and, with VNNI, the
 * Q4_0/Q8_0 matrix kernels (bit-identical to the reference and to the AVX2 level's) and the Q4_K
 * ones, one row per vector lane in an order of their own (q4_K_vec_dot_fma).
 */
#include "kernels/kernel_table.h"
#include "kernels/kernels_common.h"
#include "kernels/quant_ref.h"

#include <immintrin.h>
#include <math.h>
#include <stddef.h>
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
    fp16_to_fp32_row_ref(x + i, y + i, n - i);
}

static void fp32_to_fp16_row_avx512(const float *x, fp16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_si256((__m256i *)(y + i), cvt_ps_ph16(_mm512_loadu_ps(x + i)));
    }
    fp32_to_fp16_row_ref(x + i, y + i, n - i);
}

static void f16_scale_row_avx512(fp16_t *y, float s, int64_t n) {
    const __m512 vs = _mm512_set1_ps(s);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(y + i)));
        _mm256_storeu_si256((__m256i *)(y + i), cvt_ps_ph16(_mm512_mul_ps(v, vs)));
    }
    f16_scale_row_ref(y + i, s, n - i);
}

static void f16_mad_row_avx512(fp16_t *y, const fp16_t *x, float s, int64_t n) {
    const __m512 vs = _mm512_set1_ps(s);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 vx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i)));
        const __m512 vy = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(y + i)));
        _mm256_storeu_si256((__m256i *)(y + i), cvt_ps_ph16(_mm512_fmadd_ps(vx, vs, vy)));
    }
    f16_mad_row_ref(y + i, x + i, s, n - i);
}

KC_DEFINE_F16_CONVERSIONS(avx512)

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

/* MADD_ACC(acc, p, s) = acc + madd(p, s). CPUs with VNNI take the row-per-lane Q4_K kernels at
 * the end of this file instead. */
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

static void q4_K_vec_dot_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    Q4_K_DOT_BODY(MADD_ACC_PLAIN)
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

static void q6_K_vec_dot_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    Q6_K_DOT_BODY(MADD_ACC_PLAIN)
}

/* ---- K-quant matrix x matrix (batched prefill) -----------------------------------------------
 *
 * A weight row is decoded once, KC_GEMM_BLOCKS super-blocks at a time, into the exact registers the
 * vec_dot above builds (codes, per-lane scales, mins, d), then dotted with every token of the
 * chunk. Per (row, token) the float operations (each fmadd into the 16-lane accumulator, the mins
 * accumulator and the final reductions) happen in the vec_dot's order on the same integer sums,
 * so every result is bit-identical to it; only the decoding is shared. The per-token
 * accumulators live in memory between super-block groups, so n and n_tokens are unbounded. The
 * group sizes and the next-row prefetch are kernels_common.h's, as for the other ISAs' gemms. */

typedef struct q4_K_decoded {
    __m512i q[4];  /* the 256 codes as unpack_chunk64 spreads them, 64 per vector */
    __m512i sc[4]; /* for chunk c, each 16-bit lane's sub-block scale (idx_halves) */
    __m512i mins;  /* the 8 sub-block mins, 16-bit, repeated in each 128-bit lane */
    float d, dmin;
} q4_K_decoded;

static inline void q4_K_decode(const block_q4_K *x, q4_K_decoded *u) {
    uint64_t sc, mn;
    k4_scales_mins(x->scales, &sc, &mn);
    const __m512i sc16 =
        _mm512_zextsi128_si512(_mm_cvtepu8_epi16(_mm_set_epi64x(0, (long long)sc)));
    for (int c = 0; c < 4; c++) {
        u->q[c] = unpack_chunk64(x->qs + 32 * c);
        u->sc[c] = _mm512_permutexvar_epi16(idx_halves(2 * c), sc16);
    }
    u->mins = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(_mm_set_epi64x(0, (long long)mn)));
    u->d = h2f(x->d);
    u->dmin = h2f(x->dmin);
}

/* What every row reuses of a token group's activations, super-block j, token t: the bsums added
 * in pairs (one 16-bit sum per 32-weight sub-block, as k4_min_terms forms them) and the scale.
 * Tokens are padded to a multiple of 4 with copies of the last one. */
typedef struct q8_K_shared {
    __m128i pair_sums[KC_GEMM_BLOCKS][KC_GEMM_TOKENS];
    float d[KC_GEMM_BLOCKS][KC_GEMM_TOKENS];
} q8_K_shared;

static inline void q8_K_share(const uint8_t *x0, size_t x_stride, int64_t nt, int64_t b0,
                              int64_t nbc, q8_K_shared *sh) {
    for (int64_t t = 0; t < ((nt + 3) & ~3); t++) {
        const int64_t src = t < nt ? t : nt - 1;
        const block_q8_K *y = (const block_q8_K *)(x0 + (size_t)src * x_stride) + b0;
        for (int64_t j = 0; j < nbc; j++) {
            sh->pair_sums[j][t] =
                _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)y[j].bsums),
                               _mm_loadu_si128((const __m128i *)(y[j].bsums + 8)));
            sh->d[j][t] = y[j].d;
        }
    }
}

#define Q4_K_LOAD_DECODED(j)                                                                       \
    const __m512i uq0 = u[j].q[0], uq1 = u[j].q[1], uq2 = u[j].q[2], uq3 = u[j].q[3];              \
    const __m512i us0 = u[j].sc[0], us1 = u[j].sc[1], us2 = u[j].sc[2], us3 = u[j].sc[3]

/* One (token, super-block) step: yd the token's scale, q8 its codes. The vec_dot's sum0 takes
 * chunks 0 and 2, sum1 chunks 1 and 3, then adds them; integer sums are exact, so one chain gives
 * the same lanes, and the float steps (d, the fmadd) follow Q4_K_DOT_BODY. */
#define Q4_K_GEMM_STEP(MADD_ACC, yd, q8, ud, a)                                                    \
    do {                                                                                           \
        const float d_ = (yd) * (ud);                                                              \
        const __m512i *q8_ = (const __m512i *)(q8);                                                \
        __m512i s_ = _mm512_madd_epi16(_mm512_maddubs_epi16(uq0, _mm512_loadu_si512(q8_)), us0);   \
        s_ = MADD_ACC(s_, _mm512_maddubs_epi16(uq1, _mm512_loadu_si512(q8_ + 1)), us1);            \
        s_ = MADD_ACC(s_, _mm512_maddubs_epi16(uq2, _mm512_loadu_si512(q8_ + 2)), us2);            \
        s_ = MADD_ACC(s_, _mm512_maddubs_epi16(uq3, _mm512_loadu_si512(q8_ + 3)), us3);            \
        (a) = _mm512_fmadd_ps(_mm512_set1_ps(d_), _mm512_cvtepi32_ps(s_), (a));                    \
    } while (0)

/* Tokens go four at a time with their accumulators in registers, so each decoded super-block is
 * loaded once per four tokens. The four tokens' mins terms share one 512-bit vector, token t in
 * 128-bit lane t, each lane doing exactly the vec_dot's 4-lane mins arithmetic. Accumulators live
 * in memory between super-block groups, so n and n_tokens are unbounded. */
#define Q4_K_GEMM_BODY(MADD_ACC)                                                                   \
    q4_K_decoded u[KC_GEMM_BLOCKS];                                                                \
    q8_K_shared sh;                                                                                \
    __m512 acc[KC_GEMM_TOKENS];                                                                    \
    __m512 acc_m[KC_GEMM_TOKENS / 4];                                                              \
    const __m512i spread4 = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);      \
    const int64_t nb = n / QK_K;                                                                   \
    for (int64_t r = 0; r < n_rows; r++) {                                                         \
        const block_q4_K *xr = (const block_q4_K *)((const uint8_t *)w + (size_t)r * w_stride);    \
        if (r + 1 < n_rows) {                                                                      \
            kc_prefetch_row((const uint8_t *)xr + w_stride, w_stride);                             \
        }                                                                                          \
        for (int64_t t0 = 0; t0 < n_tokens; t0 += KC_GEMM_TOKENS) {                                \
            const int64_t nt = n_tokens - t0 < KC_GEMM_TOKENS ? n_tokens - t0 : KC_GEMM_TOKENS;    \
            const int64_t nt4 = (nt + 3) & ~(int64_t)3;                                            \
            const uint8_t *x0 = (const uint8_t *)x + (size_t)t0 * x_stride;                        \
            for (int64_t t = 0; t < nt4; t++) {                                                    \
                acc[t] = _mm512_setzero_ps();                                                      \
                acc_m[t / 4] = _mm512_setzero_ps();                                                \
            }                                                                                      \
            for (int64_t b0 = 0; b0 < nb; b0 += KC_GEMM_BLOCKS) {                                  \
                const int64_t nbc = nb - b0 < KC_GEMM_BLOCKS ? nb - b0 : KC_GEMM_BLOCKS;           \
                for (int64_t j = 0; j < nbc; j++) {                                                \
                    q4_K_decode(&xr[b0 + j], &u[j]);                                               \
                }                                                                                  \
                if (r == 0 || nb > KC_GEMM_BLOCKS || n_tokens > KC_GEMM_TOKENS) {                  \
                    q8_K_share(x0, x_stride, nt, b0, nbc, &sh);                                    \
                }                                                                                  \
                for (int64_t t = 0; t < nt4; t += 4) {                                             \
                    const uint8_t *y0 = x0 + (size_t)(t < nt ? t : nt - 1) * x_stride;             \
                    const uint8_t *y1 = x0 + (size_t)(t + 1 < nt ? t + 1 : nt - 1) * x_stride;     \
                    const uint8_t *y2 = x0 + (size_t)(t + 2 < nt ? t + 2 : nt - 1) * x_stride;     \
                    const uint8_t *y3 = x0 + (size_t)(t + 3 < nt ? t + 3 : nt - 1) * x_stride;     \
                    __m512 a0 = acc[t], a1 = acc[t + 1], a2 = acc[t + 2], a3 = acc[t + 3];         \
                    __m512 am = acc_m[t / 4];                                                      \
                    for (int64_t j = 0; j < nbc; j++) {                                            \
                        Q4_K_LOAD_DECODED(j);                                                      \
                        const __m512 dmin4 = _mm512_mul_ps(                                        \
                            _mm512_permutexvar_ps(                                                 \
                                spread4, _mm512_castps128_ps512(_mm_loadu_ps(&sh.d[j][t]))),       \
                            _mm512_set1_ps(u[j].dmin));                                            \
                        const __m512i mins4 = _mm512_madd_epi16(                                   \
                            _mm512_loadu_si512((const void *)&sh.pair_sums[j][t]), u[j].mins);     \
                        am = _mm512_fmadd_ps(dmin4, _mm512_cvtepi32_ps(mins4), am);                \
                        const size_t o = (size_t)(b0 + j) * sizeof(block_q8_K);                    \
                        const size_t oq = o + offsetof(block_q8_K, qs);                            \
                        Q4_K_GEMM_STEP(MADD_ACC, sh.d[j][t], y0 + oq, u[j].d, a0);                 \
                        Q4_K_GEMM_STEP(MADD_ACC, sh.d[j][t + 1], y1 + oq, u[j].d, a1);             \
                        Q4_K_GEMM_STEP(MADD_ACC, sh.d[j][t + 2], y2 + oq, u[j].d, a2);             \
                        Q4_K_GEMM_STEP(MADD_ACC, sh.d[j][t + 3], y3 + oq, u[j].d, a3);             \
                    }                                                                              \
                    acc[t] = a0, acc[t + 1] = a1, acc[t + 2] = a2, acc[t + 3] = a3;                \
                    acc_m[t / 4] = am;                                                             \
                }                                                                                  \
            }                                                                                      \
            for (int64_t t = 0; t < nt; t++) {                                                     \
                float m[16];                                                                       \
                _mm512_storeu_ps(m, acc_m[t / 4]);                                                 \
                out[(t0 + t) * out_stride + r] =                                                   \
                    _mm512_reduce_add_ps(acc[t]) - hsum_float_4(_mm_loadu_ps(m + 4 * (t % 4)));    \
            }                                                                                      \
        }                                                                                          \
    }

static void q4_K_gemm_avx512(int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
                             size_t w_stride, const void *x, size_t x_stride, float *out,
                             int64_t out_stride) {
    Q4_K_GEMM_BODY(MADD_ACC_PLAIN)
}

typedef struct q6_K_decoded {
    __m512i c[4];  /* codes 0..63 as Q6_K_DOT_BODY builds them: c01, c23 of half 0, then half 1 */
    __m512i sc[4]; /* per 16-bit lane, the scale of its 16-weight group (idx_quarters) */
    __m256i sc256; /* the 16 group scales, 16-bit, for the -32 offset */
    float d;
} q6_K_decoded;

static inline void q6_K_decode(const block_q6_K *x, q6_K_decoded *u) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i m30 = _mm512_set1_epi8(0x30);
    const __mmask32 upper = (__mmask32)0xFFFF0000u;
    u->sc256 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
    const __m512i sc16 = _mm512_zextsi256_si512(u->sc256);
    for (int h = 0; h < QK_K / 128; h++) {
        const __m512i ql = _mm512_loadu_si512((const void *)(x->ql + 64 * h));
        const __m512i qh =
            _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->qh + 32 * h)));
        const __m512i h01 = _mm512_mask_slli_epi16(_mm512_slli_epi16(qh, 4), upper, qh, 2);
        const __m512i h23 = _mm512_mask_srli_epi16(qh, upper, qh, 2);
        u->c[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(h01, m30));
        u->c[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                          _mm512_and_si512(h23, m30));
        u->sc[2 * h] = _mm512_permutexvar_epi16(idx_quarters(8 * h), sc16);
        u->sc[2 * h + 1] = _mm512_permutexvar_epi16(idx_quarters(8 * h + 4), sc16);
    }
    u->d = h2f(x->d);
}

/* One (token, super-block) step, in Q6_K_DOT_BODY's float order (see Q4_K_GEMM_STEP). */
#define Q6_K_GEMM_STEP(MADD_ACC, y, u, a)                                                          \
    do {                                                                                           \
        const float d_ = (y)->d * (u)->d;                                                          \
        const __m256i off_ = _mm256_slli_epi32(                                                    \
            _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(y)->bsums), (u)->sc256), 5);    \
        const __m512i *q8_ = (const __m512i *)(y)->qs;                                             \
        __m512i s0_ = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(off_));      \
        __m512i s1_ = MADD_ACC(_mm512_setzero_si512(),                                             \
                               _mm512_maddubs_epi16(uc1, _mm512_loadu_si512(q8_ + 1)), us1);       \
        s0_ = MADD_ACC(s0_, _mm512_maddubs_epi16(uc0, _mm512_loadu_si512(q8_)), us0);              \
        s0_ = MADD_ACC(s0_, _mm512_maddubs_epi16(uc2, _mm512_loadu_si512(q8_ + 2)), us2);          \
        s1_ = MADD_ACC(s1_, _mm512_maddubs_epi16(uc3, _mm512_loadu_si512(q8_ + 3)), us3);          \
        (a) = _mm512_fmadd_ps(_mm512_set1_ps(d_), _mm512_cvtepi32_ps(_mm512_add_epi32(s0_, s1_)),  \
                              (a));                                                                \
    } while (0)

#define Q6_K_LOAD_DECODED(j)                                                                       \
    const __m512i uc0 = u[j].c[0], uc1 = u[j].c[1], uc2 = u[j].c[2], uc3 = u[j].c[3];              \
    const __m512i us0 = u[j].sc[0], us1 = u[j].sc[1], us2 = u[j].sc[2], us3 = u[j].sc[3]

#define Q6_K_GEMM_BODY(MADD_ACC)                                                                   \
    q6_K_decoded u[KC_GEMM_BLOCKS];                                                                \
    __m512 acc[KC_GEMM_TOKENS];                                                                    \
    const int64_t nb = n / QK_K;                                                                   \
    for (int64_t r = 0; r < n_rows; r++) {                                                         \
        const block_q6_K *xr = (const block_q6_K *)((const uint8_t *)w + (size_t)r * w_stride);    \
        if (r + 1 < n_rows) {                                                                      \
            kc_prefetch_row((const uint8_t *)xr + w_stride, w_stride);                             \
        }                                                                                          \
        for (int64_t t0 = 0; t0 < n_tokens; t0 += KC_GEMM_TOKENS) {                                \
            const int64_t nt = n_tokens - t0 < KC_GEMM_TOKENS ? n_tokens - t0 : KC_GEMM_TOKENS;    \
            const uint8_t *x0 = (const uint8_t *)x + (size_t)t0 * x_stride;                        \
            for (int64_t t = 0; t < nt; t++) {                                                     \
                acc[t] = _mm512_setzero_ps();                                                      \
            }                                                                                      \
            for (int64_t b0 = 0; b0 < nb; b0 += KC_GEMM_BLOCKS) {                                  \
                const int64_t nbc = nb - b0 < KC_GEMM_BLOCKS ? nb - b0 : KC_GEMM_BLOCKS;           \
                for (int64_t j = 0; j < nbc; j++) {                                                \
                    q6_K_decode(&xr[b0 + j], &u[j]);                                               \
                }                                                                                  \
                int64_t t = 0;                                                                     \
                for (; t + 4 <= nt; t += 4) {                                                      \
                    const block_q8_K *y0 = (const block_q8_K *)(x0 + (size_t)t * x_stride) + b0;   \
                    const block_q8_K *y1 = (const block_q8_K *)((const uint8_t *)y0 + x_stride);   \
                    const block_q8_K *y2 = (const block_q8_K *)((const uint8_t *)y1 + x_stride);   \
                    const block_q8_K *y3 = (const block_q8_K *)((const uint8_t *)y2 + x_stride);   \
                    __m512 a0 = acc[t], a1 = acc[t + 1], a2 = acc[t + 2], a3 = acc[t + 3];         \
                    for (int64_t j = 0; j < nbc; j++) {                                            \
                        Q6_K_LOAD_DECODED(j);                                                      \
                        Q6_K_GEMM_STEP(MADD_ACC, &y0[j], &u[j], a0);                               \
                        Q6_K_GEMM_STEP(MADD_ACC, &y1[j], &u[j], a1);                               \
                        Q6_K_GEMM_STEP(MADD_ACC, &y2[j], &u[j], a2);                               \
                        Q6_K_GEMM_STEP(MADD_ACC, &y3[j], &u[j], a3);                               \
                    }                                                                              \
                    acc[t] = a0, acc[t + 1] = a1, acc[t + 2] = a2, acc[t + 3] = a3;                \
                }                                                                                  \
                for (; t < nt; t++) {                                                              \
                    const block_q8_K *y0 = (const block_q8_K *)(x0 + (size_t)t * x_stride) + b0;   \
                    __m512 a0 = acc[t];                                                            \
                    for (int64_t j = 0; j < nbc; j++) {                                            \
                        Q6_K_LOAD_DECODED(j);                                                      \
                        Q6_K_GEMM_STEP(MADD_ACC, &y0[j], &u[j], a0);                               \
                    }                                                                              \
                    acc[t] = a0;                                                                   \
                }                                                                                  \
            }                                                                                      \
            for (int64_t t = 0; t < nt; t++) {                                                     \
                out[(t0 + t) * out_stride + r] = _mm512_reduce_add_ps(acc[t]);                     \
            }                                                                                      \
        }                                                                                          \
    }

static void q6_K_gemm_avx512(int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
                             size_t w_stride, const void *x, size_t x_stride, float *out,
                             int64_t out_stride) {
    Q6_K_GEMM_BODY(MADD_ACC_PLAIN)
}

/* ---- Q4_0 and Q8_0: matrix kernels, one row per 32-bit lane (VNNI) ---------------------------
 *
 * The scheme and the float order are kernels_common.h's (kc_q0_tokens): sixteen rows per group,
 * vector w[g] holding in lane r the four unsigned codes 4g..4g+3 of row r's block, so that one
 * vpdpbusd with the token's codes 4g..4g+3 broadcast adds four products to every row's block sum.
 * A pass decodes Q0_CHUNK blocks of a row group once and runs every token of the call over them
 * (eight at a time, their accumulators in registers; a lone token left over goes straight from
 * the freshly decoded registers). Calls with one token (decode) take q0_gemv_vnni below. Only the
 * CPUs with VNNI get these (kernels_fill_avx512); the others keep the AVX2 level's kernels, which
 * compute the same bits. */

#define Q0_ROWS 16  /* rows per group: one per 32-bit lane */
#define Q0_CHUNK 16 /* blocks decoded per pass: 16 x 576 bytes, in L1 with the tokens' codes */

typedef struct q0_decoded {
    __m512i w[8]; /* group g: lane r = row r's codes 4g..4g+3, unsigned (code + offset) */
    __m512 d;     /* lane r = row r's block scale */
} q0_decoded;

/* Sixteen 16-byte rows (p[r] + off) as four vectors c[j] whose lane r holds dword j of row r: four
 * rows per 128-bit lane (rows i, i + 4, i + 8, i + 12 in lanes 0..3 of a[i]), then a 4 x 4 dword
 * transpose inside each 128-bit lane puts row 4k + i at dword 4k + i. */
static inline void q0_load_transposed(const uint8_t *const p[Q0_ROWS], size_t off, __m512i c[4]) {
    __m512i a[4];
    for (int i = 0; i < 4; i++) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p[i] + off)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[i + 4] + off)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[i + 8] + off)), 2);
        a[i] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p[i + 12] + off)), 3);
    }
    const __m512i t0 = _mm512_unpacklo_epi32(a[0], a[1]);
    const __m512i t1 = _mm512_unpackhi_epi32(a[0], a[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(a[2], a[3]);
    const __m512i t3 = _mm512_unpackhi_epi32(a[2], a[3]);
    c[0] = _mm512_unpacklo_epi64(t0, t2);
    c[1] = _mm512_unpackhi_epi64(t0, t2);
    c[2] = _mm512_unpacklo_epi64(t1, t3);
    c[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* The fp16 scales at p[r] + off as 16 floats. */
static inline __m512 q0_row_scales(const uint8_t *const p[Q0_ROWS], size_t off) {
    __m128i lo = _mm_setzero_si128(), hi = _mm_setzero_si128();
#define Q0_SCALE(v, r, k) v = _mm_insert_epi16(v, kc_load_u16(p[r] + off), k)
    Q0_SCALE(lo, 0, 0), Q0_SCALE(lo, 1, 1), Q0_SCALE(lo, 2, 2), Q0_SCALE(lo, 3, 3);
    Q0_SCALE(lo, 4, 4), Q0_SCALE(lo, 5, 5), Q0_SCALE(lo, 6, 6), Q0_SCALE(lo, 7, 7);
    Q0_SCALE(hi, 8, 0), Q0_SCALE(hi, 9, 1), Q0_SCALE(hi, 10, 2), Q0_SCALE(hi, 11, 3);
    Q0_SCALE(hi, 12, 4), Q0_SCALE(hi, 13, 5), Q0_SCALE(hi, 14, 6), Q0_SCALE(hi, 15, 7);
#undef Q0_SCALE
    return _mm512_cvtph_ps(_mm256_set_m128i(hi, lo));
}

/* Block at byte offset off of the 16 rows p[]: Q4_0 keeps the stored nibbles (q + 8), low
 * nibbles of dword j = codes 4j..4j+3, high nibbles = codes 16 + 4j..; Q8_0 flips the sign bit
 * (q + 128). */
static inline void q4_0_decode16(const uint8_t *const p[Q0_ROWS], size_t off, q0_decoded *u) {
    __m512i c[4];
    q0_load_transposed(p, off + offsetof(block_q4_0, qs), c);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    for (int j = 0; j < 4; j++) {
        u->w[j] = _mm512_and_si512(c[j], m4);
        u->w[j + 4] = _mm512_and_si512(_mm512_srli_epi32(c[j], 4), m4);
    }
    u->d = q0_row_scales(p, off);
}

static inline void q8_0_decode16(const uint8_t *const p[Q0_ROWS], size_t off, q0_decoded *u) {
    const __m512i sign = _mm512_set1_epi8((char)0x80);
    q0_load_transposed(p, off + offsetof(block_q8_0, qs), u->w);
    q0_load_transposed(p, off + offsetof(block_q8_0, qs) + 16, u->w + 4);
    for (int g = 0; g < 8; g++) {
        u->w[g] = _mm512_xor_si512(u->w[g], sign);
    }
    u->d = q0_row_scales(p, off);
}

/* Each row's block sum with one token: bias + sum over g of w[g] . (codes 4g..4g+3 of qy); two
 * chains when few tokens run at once (the latency of eight dependent vpdpbusd). */
VNNI_TARGET static inline __attribute__((always_inline)) __m512i
q0_block_sums(const q0_decoded *u, const int8_t *qy, int32_t bias, bool two_chains) {
    __m512i s = _mm512_set1_epi32(bias);
    if (two_chains) {
        __m512i s2 = _mm512_setzero_si512();
        for (int g = 0; g < 4; g++) {
            s = _mm512_dpbusd_epi32(s, u->w[g], _mm512_set1_epi32(kc_load_i32(qy + 4 * g)));
            s2 = _mm512_dpbusd_epi32(s2, u->w[g + 4],
                                     _mm512_set1_epi32(kc_load_i32(qy + 4 * g + 16)));
        }
        return _mm512_add_epi32(s, s2);
    }
    for (int g = 0; g < 8; g++) {
        s = _mm512_dpbusd_epi32(s, u->w[g], _mm512_set1_epi32(kc_load_i32(qy + 4 * g)));
    }
    return s;
}

/* acc = fma((float)sumi, dx * dy, acc): the traits' float step, one row per lane. */
static inline __m512 q0_step(__m512 acc, __m512i sumi, __m512 dx, float dy) {
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_mul_ps(dx, _mm512_set1_ps(dy)), acc);
}

/* NT tokens (t .. t + NT - 1 of the call) over the decoded blocks u[0..n_blocks), which are the
 * row's blocks b .. b + n_blocks - 1 and entries j0.. of the token side ts. */
VNNI_TARGET static inline __attribute__((always_inline)) void
q0_tokens_pass(const q0_decoded *u, int64_t n_blocks, const kc_q0_tokens *ts, int64_t j0,
               const uint8_t *x, size_t x_stride, int64_t t, int64_t b, __m512 *acc, const int NT) {
    __m512 a[8];
    const int8_t *qy[8];
    for (int k = 0; k < NT; k++) {
        a[k] = acc[k];
        qy[k] = kc_q8_0_codes(x, x_stride, t + k, b);
    }
    for (int64_t j = 0; j < n_blocks; j++) {
        for (int k = 0; k < NT; k++) {
            const __m512i s = q0_block_sums(&u[j], qy[k] + j * sizeof(block_q8_0),
                                            ts->bias[t + k][j0 + j], NT < 4);
            a[k] = q0_step(a[k], s, u[j].d, ts->d[t + k][j0 + j]);
        }
    }
    for (int k = 0; k < NT; k++) {
        acc[k] = a[k];
    }
}

/* The whole matrix kernel; q8 selects Q8_0 (else Q4_0). */
VNNI_TARGET static inline __attribute__((always_inline)) void
q0_gemm_vnni(const bool q8, int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
             size_t w_stride, const void *x, size_t x_stride, float *out, int64_t out_stride) {
    const size_t block_bytes = q8 ? sizeof(block_q8_0) : sizeof(block_q4_0);
    const int64_t nb = n / QK8_0;
    kc_q0_tokens ts;
    q0_decoded u[Q0_CHUNK];
    __m512 acc[KC_Q0_TOKENS];
    for (int64_t t0 = 0; t0 < n_tokens; t0 += KC_Q0_TOKENS) {
        const int64_t nt = n_tokens - t0 < KC_Q0_TOKENS ? n_tokens - t0 : KC_Q0_TOKENS;
        const uint8_t *xt = (const uint8_t *)x + (size_t)t0 * x_stride;
        for (int64_t b0 = 0; b0 < nb; b0 += KC_Q0_SPAN) {
            const int64_t nbs = nb - b0 < KC_Q0_SPAN ? nb - b0 : KC_Q0_SPAN;
            kc_q0_tokens_fill(&ts, xt, x_stride, nt, b0, nbs, q8 ? 128 : 8);
            for (int64_t r0 = 0; r0 < n_rows; r0 += Q0_ROWS) {
                const int64_t nr = n_rows - r0 < Q0_ROWS ? n_rows - r0 : Q0_ROWS;
                const __mmask16 live = (__mmask16)((1u << nr) - 1);
                const uint8_t *p[Q0_ROWS]; /* rows past the end repeat the last one */
                for (int r = 0; r < Q0_ROWS; r++) {
                    p[r] = (const uint8_t *)w + (size_t)(r0 + (r < nr ? r : nr - 1)) * w_stride;
                }
                /* the next group's blocks of this span, prefetched a share per block */
                const int64_t nr_next = n_rows - r0 - nr < Q0_ROWS ? n_rows - r0 - nr : Q0_ROWS;
                const uint8_t *next = p[0] + Q0_ROWS * w_stride;
                const size_t span_off = (size_t)b0 * block_bytes;
                const size_t span_bytes = (size_t)nbs * block_bytes;
                for (int64_t t = 0; t < nt; t++) {
                    acc[t] = b0 == 0
                                 ? _mm512_setzero_ps()
                                 : _mm512_maskz_loadu_ps(live, out + (t0 + t) * out_stride + r0);
                }
                for (int64_t c0 = 0; c0 < nbs; c0 += Q0_CHUNK) {
                    const int64_t ncb = nbs - c0 < Q0_CHUNK ? nbs - c0 : Q0_CHUNK;
                    const int64_t b = b0 + c0;
                    if (nt == 1) {
                        for (int64_t j = 0; j < ncb; j++) {
                            kc_prefetch_share(next, w_stride, nr_next, span_off, span_bytes, c0 + j,
                                              nbs);
                            if (q8) {
                                q8_0_decode16(p, (size_t)(b + j) * block_bytes, &u[0]);
                            } else {
                                q4_0_decode16(p, (size_t)(b + j) * block_bytes, &u[0]);
                            }
                            q0_tokens_pass(u, 1, &ts, c0 + j, xt, x_stride, 0, b + j, acc, 1);
                        }
                        continue;
                    }
                    for (int64_t j = 0; j < ncb; j++) {
                        kc_prefetch_share(next, w_stride, nr_next, span_off, span_bytes, c0 + j,
                                          nbs);
                        if (q8) {
                            q8_0_decode16(p, (size_t)(b + j) * block_bytes, &u[j]);
                        } else {
                            q4_0_decode16(p, (size_t)(b + j) * block_bytes, &u[j]);
                        }
                    }
                    int64_t t = 0;
                    for (; t + 8 <= nt; t += 8) {
                        q0_tokens_pass(u, ncb, &ts, c0, xt, x_stride, t, b, acc + t, 8);
                    }
                    for (; t + 4 <= nt; t += 4) {
                        q0_tokens_pass(u, ncb, &ts, c0, xt, x_stride, t, b, acc + t, 4);
                    }
                    for (; t < nt; t++) {
                        q0_tokens_pass(u, ncb, &ts, c0, xt, x_stride, t, b, acc + t, 1);
                    }
                }
                for (int64_t t = 0; t < nt; t++) {
                    _mm512_mask_storeu_ps(out + (t0 + t) * out_stride + r0, live, acc[t]);
                }
            }
        }
    }
}

/* One token (decode): memory-bound, and this machine class reads memory at full speed only as
 * one sequential stream; sixteen rows read block by block, as the gemm above does, are sixteen
 * interleaved streams at half the speed. So here each row of a group is read whole (per span of
 * Q0_GEMV_SPAN blocks), one after the other: its block sums come from vpdpbusd on two blocks at a
 * time, reduced sixteen blocks at once to one vector (lane = block), and wait in s[row] with the
 * scales dx[block][row]; a 16 x 16 transpose then gives each block's sums with one row per lane,
 * and the float chain runs exactly as in the gemm, so the two give the same bits. */

/* Sixteen dwords of each of the 16 vectors r[i] transposed: r[j] lane i = old r[i] lane j. */
static inline void transpose_16x16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    /* u[4i + c], 128-bit lane L: rows 4i..4i+3 of column 4L + c */
    for (int i = 0; i < 4; i++) {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int c = 0; c < 4; c++) {
        const __m512i v0 = _mm512_shuffle_i32x4(u[c], u[4 + c], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512i v1 = _mm512_shuffle_i32x4(u[c], u[4 + c], _MM_SHUFFLE(3, 2, 3, 2));
        const __m512i w0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512i w1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(3, 2, 3, 2));
        r[c] = _mm512_shuffle_i32x4(v0, w0, _MM_SHUFFLE(2, 0, 2, 0));
        r[4 + c] = _mm512_shuffle_i32x4(v0, w0, _MM_SHUFFLE(3, 1, 3, 1));
        r[8 + c] = _mm512_shuffle_i32x4(v1, w1, _MM_SHUFFLE(2, 0, 2, 0));
        r[12 + c] = _mm512_shuffle_i32x4(v1, w1, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

/* Block sums, lane = block: v[i] holds blocks 2i and 2i + 1 in lanes 0..7 and 8..15 (Q8_0),
 * or blocks 4i..4i+3 in lanes 4k..4k+3 (Q4_0); the partial sums of each block are added. */
static inline __m512i reduce_q8_0_tile(const __m512i v[8]) {
    __m512i p[4], q[2];
    for (int k = 0; k < 4; k++) {
        p[k] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * k], v[2 * k + 1]),
                                _mm512_unpackhi_epi32(v[2 * k], v[2 * k + 1]));
    }
    /* q[m], 128-bit lane L: the sums of lanes 4L..4L+3 of v[4m..4m+3] */
    for (int m = 0; m < 2; m++) {
        q[m] = _mm512_add_epi32(_mm512_unpacklo_epi64(p[2 * m], p[2 * m + 1]),
                                _mm512_unpackhi_epi64(p[2 * m], p[2 * m + 1]));
    }
    /* 128-bit lanes of the sum: blocks 0 2 4 6 | 1 3 5 7 | 8 10 12 14 | 9 11 13 15 */
    const __m512i s = _mm512_add_epi32(_mm512_shuffle_i32x4(q[0], q[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                       _mm512_shuffle_i32x4(q[0], q[1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_permutexvar_epi32(
        _mm512_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15), s);
}

static inline __m512i reduce_q4_0_tile(const __m512i v[4]) {
    const __m512i p0 =
        _mm512_add_epi32(_mm512_unpacklo_epi32(v[0], v[1]), _mm512_unpackhi_epi32(v[0], v[1]));
    const __m512i p1 =
        _mm512_add_epi32(_mm512_unpacklo_epi32(v[2], v[3]), _mm512_unpackhi_epi32(v[2], v[3]));
    /* 128-bit lane L, dword i: block 4i + L */
    const __m512i q =
        _mm512_add_epi32(_mm512_unpacklo_epi64(p0, p1), _mm512_unpackhi_epi64(p0, p1));
    return _mm512_permutexvar_epi32(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), q);
}

/* The exact sums (without the bias) of 16 consecutive blocks of a row with the token (yv: its
 * codes as q0_gemv_token lays them out), lane = block. Q8_0 pairs two blocks per vector (codes
 * + 128 against the token's two blocks); Q4_0 takes four blocks' 16 packed bytes per vector, low
 * nibbles against the token's codes 0..15 of the four blocks, high nibbles against 16..31. Only
 * the first n_vectors of them are computed (a constant at each call; the others' lanes are 0). */
VNNI_TARGET static inline __attribute__((always_inline)) __m512i
q0_tile_sums_part(const bool q8, const uint8_t *blocks, const __m512i *yv, const int n_vectors) {
    if (q8) {
        __m512i v[8];
        for (int i = 0; i < 8; i++) {
            if (i >= n_vectors) {
                v[i] = _mm512_setzero_si512();
                continue;
            }
            const uint8_t *b = blocks + 2 * i * sizeof(block_q8_0) + offsetof(block_q8_0, qs);
            const __m512i c = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)b)),
                _mm256_loadu_si256((const __m256i *)(b + sizeof(block_q8_0))), 1);
            v[i] = _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                       _mm512_xor_si512(c, _mm512_set1_epi8((char)0x80)), yv[i]);
        }
        return reduce_q8_0_tile(v);
    }
    __m512i v[4];
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    for (int i = 0; i < 4; i++) {
        if (i >= n_vectors) {
            v[i] = _mm512_setzero_si512();
            continue;
        }
        const uint8_t *b = blocks + 4 * i * sizeof(block_q4_0) + offsetof(block_q4_0, qs);
        __m512i c = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)b));
        c = _mm512_inserti32x4(c, _mm_loadu_si128((const __m128i *)(b + sizeof(block_q4_0))), 1);
        c = _mm512_inserti32x4(c, _mm_loadu_si128((const __m128i *)(b + 2 * sizeof(block_q4_0))),
                               2);
        c = _mm512_inserti32x4(c, _mm_loadu_si128((const __m128i *)(b + 3 * sizeof(block_q4_0))),
                               3);
        const __m512i lo =
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(c, m4), yv[2 * i]);
        v[i] =
            _mm512_dpbusd_epi32(lo, _mm512_and_si512(_mm512_srli_epi16(c, 4), m4), yv[2 * i + 1]);
    }
    return reduce_q4_0_tile(v);
}

/* The sums of the tile's first n_real blocks (the rest 0 or unused): a row's last tile is often
 * mostly past its end (rows of 576 or 640 weights: 18 or 20 blocks), so up to 8 blocks take
 * half the vectors. */
VNNI_TARGET static inline __attribute__((always_inline)) __m512i
q0_tile_sums(const bool q8, const uint8_t *blocks, const __m512i *yv, int64_t n_real) {
    if (n_real <= 8) {
        return q0_tile_sums_part(q8, blocks, yv, q8 ? 4 : 2);
    }
    return q0_tile_sums_part(q8, blocks, yv, q8 ? 8 : 4);
}

/* The fp16 scales of 16 consecutive blocks as floats (lane = block), picked out of whole-vector
 * loads of the tile with word permutes (a gather costs a third of the kernel): block j's scale
 * is word 9j of a Q4_0 tile (18-byte blocks), 17j of a Q8_0 one. Nothing is read past the tile
 * (288 or 544 bytes). */
static const int16_t q0_scale_words[6][32] = {
    /* Q8_0: blocks 4i..4i+3 from the 128 bytes at 128i: word 4i + 17k */
    {0, 17, 34, 51},
    {0, 0, 0, 0, 4, 21, 38, 55},
    {0, 0, 0, 0, 0, 0, 0, 0, 8, 25, 42, 59},
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 29, 46, 63},
    /* Q4_0: blocks 0..7 from bytes 0..127, 8..14 from 128..255 (block 15: word 7 at 256) */
    {0, 9, 18, 27, 36, 45, 54, 63},
    {0, 0, 0, 0, 0, 0, 0, 0, 8, 17, 26, 35, 44, 53, 62, 0},
};

static inline __m512 q0_tile_scales(bool q8, const uint8_t *blocks) {
    __m512i h;
    if (q8) {
        h = _mm512_setzero_si512();
        for (int i = 0; i < 4; i++) {
            const __m512i sel = _mm512_permutex2var_epi16(
                _mm512_loadu_si512((const void *)(blocks + 128 * i)),
                _mm512_loadu_si512((const void *)q0_scale_words[i]),
                _mm512_loadu_si512((const void *)(blocks + 128 * i + 64)));
            h = _mm512_mask_mov_epi16(h, (__mmask32)(0xFu << (4 * i)), sel);
        }
    } else {
        h = _mm512_permutex2var_epi16(_mm512_loadu_si512((const void *)blocks),
                                      _mm512_loadu_si512((const void *)q0_scale_words[4]),
                                      _mm512_loadu_si512((const void *)(blocks + 64)));
        h = _mm512_mask_mov_epi16(
            h, (__mmask32)0x7F00u,
            _mm512_permutex2var_epi16(_mm512_loadu_si512((const void *)(blocks + 128)),
                                      _mm512_loadu_si512((const void *)q0_scale_words[5]),
                                      _mm512_loadu_si512((const void *)(blocks + 192))));
        const __m512i last =
            _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(blocks + 256)));
        h = _mm512_mask_mov_epi16(h, (__mmask32)0x8000u,
                                  _mm512_permutexvar_epi16(_mm512_set1_epi16(7), last));
    }
    return _mm512_cvtph_ps(_mm512_castsi512_si256(h));
}

/* The token's codes of span blocks 0..n16 (zero past nbs) as q0_tile_sums reads them: Q8_0 two
 * blocks per vector; Q4_0 per four blocks the codes 0..15 of each, then 16..31 of each. */
static inline void q0_gemv_token(bool q8, const block_q8_0 *y, int64_t nbs, int64_t n16,
                                 __m512i *yv) {
    for (int64_t b = 0; b < n16; b += 4) {
        __m128i h[4][2]; /* block b + k: codes 0..15, 16..31 */
        for (int k = 0; k < 4; k++) {
            const bool real = b + k < nbs;
            h[k][0] = real ? _mm_loadu_si128((const __m128i *)y[b + k].qs) : _mm_setzero_si128();
            h[k][1] =
                real ? _mm_loadu_si128((const __m128i *)(y[b + k].qs + 16)) : _mm_setzero_si128();
        }
        for (int half = 0; half < 2; half++) {
            /* Q8_0: vector b/2 + half = blocks b + 2 half and b + 2 half + 1, whole;
             * Q4_0: vector b/2 + half = part `half` of blocks b..b+3 */
            __m512i v = _mm512_castsi128_si512(q8 ? h[2 * half][0] : h[0][half]);
            v = _mm512_inserti32x4(v, q8 ? h[2 * half][1] : h[1][half], 1);
            v = _mm512_inserti32x4(v, q8 ? h[2 * half + 1][0] : h[2][half], 2);
            yv[b / 2 + half] = _mm512_inserti32x4(v, q8 ? h[2 * half + 1][1] : h[3][half], 3);
        }
    }
}

/* Q5_0 in the one-token kernel: a block is d (fp16), qh (32 high bits, code j's in bit j), then
 * the 16 bytes of low nibbles laid out as Q4_0's (byte j: code j low, code j + 16 high), 22
 * bytes. Its weights 0..31 go through vpdpbusd as Q4_0's 0..15 do (the -16 in the bias), the
 * high bit set from qh with a byte mask. */
VNNI_TARGET static inline __attribute__((always_inline)) __m512i
q5_0_tile_sums(const uint8_t *blocks, const __m512i *yv) {
    __m512i v[4];
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i bit4 = _mm512_set1_epi8(0x10);
    for (int i = 0; i < 4; i++) {
        const uint8_t *b = blocks + 4 * i * sizeof(block_q5_0);
        const size_t bb = sizeof(block_q5_0);
        /* the lane index of inserti32x4 must be a literal (an unoptimized build does not fold) */
        __m512i c = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(b + 6)));
        c = _mm512_inserti32x4(c, _mm_loadu_si128((const __m128i *)(b + bb + 6)), 1);
        c = _mm512_inserti32x4(c, _mm_loadu_si128((const __m128i *)(b + 2 * bb + 6)), 2);
        c = _mm512_inserti32x4(c, _mm_loadu_si128((const __m128i *)(b + 3 * bb + 6)), 3);
        uint64_t high_lo = 0, high_hi = 0; /* byte 16 L + j: code j (+ 16) of block 4i + L */
        for (int k = 0; k < 4; k++) {
            const uint8_t *block = b + k * bb;
            uint32_t qh;
            memcpy(&qh, block + 2, sizeof qh);
            high_lo |= (uint64_t)(qh & 0xFFFFu) << (16 * k);
            high_hi |= (uint64_t)(qh >> 16) << (16 * k);
        }
        __m512i lo = _mm512_and_si512(c, m4);
        __m512i hi = _mm512_and_si512(_mm512_srli_epi16(c, 4), m4);
        lo = _mm512_mask_mov_epi8(lo, (__mmask64)high_lo, _mm512_or_si512(lo, bit4));
        hi = _mm512_mask_mov_epi8(hi, (__mmask64)high_hi, _mm512_or_si512(hi, bit4));
        v[i] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, yv[2 * i]), hi,
                                   yv[2 * i + 1]);
    }
    return reduce_q4_0_tile(v);
}

/* The fp16 scales of 16 Q5_0 blocks (word 11 j of the tile) as floats, lane = block, from three
 * pairs of loads and word permutes; the last load stops at the tile's end (352 bytes). */
static const int16_t q5_0_scale_words[3][32] = {
    {0, 11, 22, 33, 44, 55},
    {0, 0, 0, 0, 0, 0, 2, 13, 24, 35, 46, 57},
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 15, 26, 37},
};

static inline __m512 q5_0_tile_scales(const uint8_t *blocks) {
    __m512i h = _mm512_setzero_si512();
    static const __mmask32 lanes[3] = {0x003Fu, 0x0FC0u, 0xF000u};
    for (int i = 0; i < 3; i++) {
        const uint8_t *p = blocks + 128 * i;
        const __m512i second = i < 2 ? _mm512_loadu_si512((const void *)(p + 64))
                                     : _mm512_maskz_loadu_epi16(0xFFFFu, p + 64);
        const __m512i sel = _mm512_permutex2var_epi16(
            _mm512_loadu_si512((const void *)p),
            _mm512_loadu_si512((const void *)q5_0_scale_words[i]), second);
        h = _mm512_mask_mov_epi16(h, lanes[i], sel);
    }
    return _mm512_cvtph_ps(_mm512_castsi512_si256(h));
}

#define Q0_GEMV_AHEAD 8192 /* bytes of the row prefetched ahead of the blocks being read */
/* Blocks of a row read in one go (8192 weights): rows up to that long are one memory stream from
 * end to end; longer ones are read in spans of it, their token side prepared per span. */
#define Q0_GEMV_SPAN 256

/* q8: Q8_0, q5: Q5_0, neither: Q4_0. Q4_0 and Q8_0 step as the gemm (fma); Q5_0 as its row
 * dot, q5_0_vec_dot_avx2 (the reference's order): sum += (dx * dy) * sumi, two roundings. */
VNNI_TARGET static inline __attribute__((always_inline)) void
q0_gemv_vnni(const bool q8, const bool q5, int64_t n, int64_t n_rows, const void *w,
             size_t w_stride, const void *x, float *out) {
    const size_t bb = q8 ? sizeof(block_q8_0) : q5 ? sizeof(block_q5_0) : sizeof(block_q4_0);
    const int64_t nb = n / QK8_0;
    const block_q8_0 *y = x;
    __m512i yv[Q0_GEMV_SPAN / 2];          /* the token's codes (q0_gemv_token) */
    int32_t bias[Q0_GEMV_SPAN];            /* -offset * each block's code sum */
    float dy[Q0_GEMV_SPAN];                /* each block's scale */
    int32_t sums[Q0_ROWS][Q0_GEMV_SPAN];   /* row r, block b: exact block sum (no bias) */
    float dx[Q0_ROWS][Q0_GEMV_SPAN];       /* row r, block b: scale */
    uint8_t tail[16 * sizeof(block_q8_0)]; /* a row's last, partial tile, zero-padded */
    for (int64_t b0 = 0; b0 < nb; b0 += Q0_GEMV_SPAN) {
        const int64_t nbs = nb - b0 < Q0_GEMV_SPAN ? nb - b0 : Q0_GEMV_SPAN;
        const int64_t n16 = (nbs + 15) & ~(int64_t)15; /* blocks past nbs count as zeros */
        q0_gemv_token(q8, y + b0, nbs, n16, yv);
        for (int64_t b = 0; b < nbs; b++) {
            int s = 0;
            for (int j = 0; j < QK8_0; j++) {
                s += y[b0 + b].qs[j];
            }
            bias[b] = -(q8 ? 128 : q5 ? 16 : 8) * s;
            dy[b] = h2f(y[b0 + b].d);
        }
        for (int64_t r0 = 0; r0 < n_rows; r0 += Q0_ROWS) {
            const int64_t nr = n_rows - r0 < Q0_ROWS ? n_rows - r0 : Q0_ROWS;
            for (int64_t r = 0; r < Q0_ROWS; r++) {
                const int64_t row_index = r0 + (r < nr ? r : nr - 1);
                const uint8_t *row =
                    (const uint8_t *)w + (size_t)row_index * w_stride + (size_t)b0 * bb;
                /* bytes of this call's rows after this one */
                const size_t after = (size_t)(n_rows - 1 - row_index) * w_stride;
                for (int64_t b = 0; b < n16; b += 16) {
                    const uint8_t *blocks = row + (size_t)b * bb;
                    for (size_t ahead = 0; ahead < 16 * bb; ahead += 64) {
                        __builtin_prefetch(blocks + Q0_GEMV_AHEAD + ahead, 0, 3);
                    }
                    /* A partial tile reads its missing blocks from the rows after this one:
                     * their sums are zero (the token's codes there are) and neither they nor
                     * their scales are used (j < nj below). Only near the call's last row,
                     * with nothing after it, is the tile copied out and zero-padded: copying
                     * every row's tail cost a third of the time on short rows. */
                    if (b + 16 > nbs && after < (size_t)(b + 16 - nbs) * bb) {
                        memset(tail, 0, sizeof tail);
                        memcpy(tail, blocks, (size_t)(nbs - b) * bb);
                        blocks = tail;
                    }
                    _mm512_storeu_si512((void *)&sums[r][b],
                                        q5 ? q5_0_tile_sums(blocks, yv + b / 2)
                                           : q0_tile_sums(q8, blocks, yv + b / 2, nbs - b));
                    _mm512_storeu_ps(&dx[r][b],
                                     q5 ? q5_0_tile_scales(blocks) : q0_tile_scales(q8, blocks));
                }
            }
            const __mmask16 live = (__mmask16)((1u << nr) - 1);
            __m512 acc = b0 == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(live, out + r0);
            for (int64_t b = 0; b < nbs; b += 16) {
                __m512i t[16], d[16];
                for (int r = 0; r < Q0_ROWS; r++) {
                    t[r] = _mm512_loadu_si512((const void *)&sums[r][b]);
                    d[r] = _mm512_castps_si512(_mm512_loadu_ps(&dx[r][b]));
                }
                transpose_16x16(t);
                transpose_16x16(d);
                const int64_t nj = nbs - b < 16 ? nbs - b : 16;
                for (int64_t j = 0; j < nj; j++) {
                    const __m512i s = _mm512_add_epi32(t[j], _mm512_set1_epi32(bias[b + j]));
                    if (q5) {
                        const __m512 dxy =
                            _mm512_mul_ps(_mm512_castsi512_ps(d[j]), _mm512_set1_ps(dy[b + j]));
                        acc = _mm512_add_ps(acc, _mm512_mul_ps(dxy, _mm512_cvtepi32_ps(s)));
                    } else {
                        acc = q0_step(acc, s, _mm512_castsi512_ps(d[j]), dy[b + j]);
                    }
                }
            }
            _mm512_mask_storeu_ps(out + r0, live, acc);
        }
    }
}

/* Q4_0 (q8 false) or Q8_0 weights times Q8_0 activations: the matrix kernel, or for one token
 * the row-sequential one; rows shorter than a block are all zero. */
VNNI_TARGET static void q0_matmul_avx512_vnni(bool q8, int64_t n, int64_t n_rows, int64_t n_tokens,
                                              const void *w, size_t w_stride, const void *x,
                                              size_t x_stride, float *out, int64_t out_stride) {
    if (n < QK8_0) {
        kc_zero_out(out, out_stride, n_rows, n_tokens);
        return;
    }
    if (n_tokens == 1) {
        q0_gemv_vnni(q8, false, n, n_rows, w, w_stride, x, out);
    } else {
        q0_gemm_vnni(q8, n, n_rows, n_tokens, w, w_stride, x, x_stride, out, out_stride);
    }
}

VNNI_TARGET static void q4_0_gemm_avx512_vnni(int64_t n, int64_t n_rows, int64_t n_tokens,
                                              const void *w, size_t w_stride, const void *x,
                                              size_t x_stride, float *out, int64_t out_stride) {
    q0_matmul_avx512_vnni(false, n, n_rows, n_tokens, w, w_stride, x, x_stride, out, out_stride);
}

VNNI_TARGET static void q8_0_gemm_avx512_vnni(int64_t n, int64_t n_rows, int64_t n_tokens,
                                              const void *w, size_t w_stride, const void *x,
                                              size_t x_stride, float *out, int64_t out_stride) {
    q0_matmul_avx512_vnni(true, n, n_rows, n_tokens, w, w_stride, x, x_stride, out, out_stride);
}

/* Q5_0 times one token; the gemm stays AVX2's (both equal q5_0_vec_dot_avx2 bit for bit). */
VNNI_TARGET static void q5_0_gemv_avx512_vnni(int64_t n, int64_t n_rows, int64_t n_tokens,
                                              const void *w, size_t w_stride, const void *x,
                                              size_t x_stride, float *out, int64_t out_stride) {
    (void)n_tokens; /* always 1 (a gemv) */
    (void)x_stride;
    if (n < QK8_0) {
        kc_zero_out(out, out_stride, n_rows, 1);
        return;
    }
    q0_gemv_vnni(false, true, n, n_rows, w, w_stride, x, out);
}

/* The row dots are the matrix kernels on one row and one token. */
static void q4_0_vec_dot_avx512_vnni(int64_t n, float *s, const void *x, const void *y) {
    q4_0_gemm_avx512_vnni(n, 1, 1, x, 0, y, 0, s, 1);
}

static void q8_0_vec_dot_avx512_vnni(int64_t n, float *s, const void *x, const void *y) {
    q8_0_gemm_avx512_vnni(n, 1, 1, x, 0, y, 0, s, 1);
}

/* ---- Q4_K: matrix kernel, one row per 32-bit lane (VNNI) --------------------------------------
 *
 * The order is q4_K_vec_dot_fma's (quant_k.c): per super-block an exact integer sum of the scaled
 * sub-block dots and one of the mins times the token's sub-block sums, then two fused
 * multiply-adds. As for Q4_0 (above), sixteen rows go one per 32-bit lane: vector w[s][g] holds in
 * lane r the four codes 4g..4g+3 of sub-block s of row r, so one vpdpbusd with the token's four
 * codes broadcast adds four products to every row's sub-block dot; vpmulld by the rows' 6-bit
 * scales folds the eight dots into the super-block sum. The mins take four vpdpwssd per token and
 * super-block: word pairs of mins (rows) against word pairs of the token's sub-block sums. A pass
 * decodes Q4K_CHUNK super-blocks of a row group (scales, mins and d, dmin included, all vector
 * code) and runs every token of the call over them, eight at a time. The row dot below computes
 * the same sums horizontally, so decode (one token, rows read whole) gives the same bits. */

#define Q4K_CHUNK 2   /* super-blocks decoded per pass: 2 x 5 KiB, in L1 with the tokens' codes */
#define Q4K_TOKENS 32 /* tokens whose super-block sums and scales are prepared at once */
#define Q4K_SPAN 16   /* super-blocks (4096 weights) of them prepared at once */

typedef struct q4_K_decoded16 {
    __m512i w[8][8];  /* sub-block s, group g: lane r = row r's codes 32s + 4g.. (0..15 each) */
    __m512i scale[8]; /* sub-block s: lane r = row r's 6-bit scale */
    __m512i mins[4];  /* pair p: lane r = row r's mins 2p (low word) and 2p + 1 (high word) */
    __m512 d, dmin;   /* lane r = row r's super-scales */
} q4_K_decoded16;

/* What every row group reuses of a token's super-block: its scale and the sums of its 32-code
 * sub-blocks as eight words (dword p = sub-blocks 2p, 2p + 1, as the mins pair up). */
typedef struct q4_K_tokens {
    float d[Q4K_TOKENS][Q4K_SPAN];
    int32_t pair_sums[Q4K_TOKENS][Q4K_SPAN][4];
} q4_K_tokens;

static inline void q4_K_tokens_fill(q4_K_tokens *ts, const uint8_t *x, size_t x_stride,
                                    int64_t n_tokens, int64_t b0, int64_t n_blocks) {
    for (int64_t t = 0; t < n_tokens; t++) {
        const block_q8_K *y = (const block_q8_K *)(x + (size_t)t * x_stride) + b0;
        for (int64_t b = 0; b < n_blocks; b++) {
            const __m128i sums = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)y[b].bsums),
                                                _mm_loadu_si128((const __m128i *)(y[b].bsums + 8)));
            _mm_storeu_si128((__m128i *)ts->pair_sums[t][b], sums);
            ts->d[t][b] = y[b].d;
        }
    }
}

/* Super-block at byte offset off of the 16 rows p[]. The first 16 bytes of a block, transposed,
 * give per lane d | dmin << 16 and the three dwords of packed scales, which k4_scales_mins's
 * dword arithmetic unpacks in every lane at once. */
static inline void q4_K_decode16(const uint8_t *const p[Q0_ROWS], size_t off, q4_K_decoded16 *u) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    for (int c = 0; c < 4; c++) {
        __m512i lo[4], hi[4]; /* bytes 0..15 and 16..31 of chunk c: codes of sub-blocks 2c, 2c+1 */
        q0_load_transposed(p, off + offsetof(block_q4_K, qs) + 32 * (size_t)c, lo);
        q0_load_transposed(p, off + offsetof(block_q4_K, qs) + 32 * (size_t)c + 16, hi);
        for (int g = 0; g < 4; g++) {
            u->w[2 * c][g] = _mm512_and_si512(lo[g], m4);
            u->w[2 * c][g + 4] = _mm512_and_si512(hi[g], m4);
            u->w[2 * c + 1][g] = _mm512_and_si512(_mm512_srli_epi32(lo[g], 4), m4);
            u->w[2 * c + 1][g + 4] = _mm512_and_si512(_mm512_srli_epi32(hi[g], 4), m4);
        }
    }
    __m512i h[4];
    q0_load_transposed(p, off, h);
    const __m512i m6 = _mm512_set1_epi32(0x3f3f3f3f), lo4 = _mm512_set1_epi32(0x0f0f0f0f);
    const __m512i top2 = _mm512_set1_epi32(0x30303030);
    const __m512i sc_lo = _mm512_and_si512(h[1], m6);
    const __m512i sc_hi = _mm512_or_si512(_mm512_and_si512(h[3], lo4),
                                          _mm512_and_si512(_mm512_srli_epi32(h[1], 2), top2));
    const __m512i mn_lo = _mm512_and_si512(h[2], m6);
    const __m512i mn_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(h[3], 4), lo4),
                                          _mm512_and_si512(_mm512_srli_epi32(h[2], 2), top2));
    const __m512i byte0 = _mm512_set1_epi32(0xff), byte2 = _mm512_set1_epi32(0xff0000);
    for (int k = 0; k < 4; k++) {
        u->scale[k] = _mm512_and_si512(_mm512_srli_epi32(sc_lo, 8 * k), byte0);
        u->scale[k + 4] = _mm512_and_si512(_mm512_srli_epi32(sc_hi, 8 * k), byte0);
    }
    /* mins 2p, 2p + 1 are bytes 2p', 2p' + 1 of mn_lo (p < 2) or mn_hi: to words 0 and 1 */
    for (int k = 0; k < 2; k++) {
        const __m512i v = k == 0 ? mn_lo : mn_hi;
        u->mins[2 * k] = _mm512_or_si512(_mm512_and_si512(v, byte0),
                                         _mm512_and_si512(_mm512_slli_epi32(v, 8), byte2));
        u->mins[2 * k + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(v, 16), byte0),
                                             _mm512_and_si512(_mm512_srli_epi32(v, 8), byte2));
    }
    u->d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h[0]));
    u->dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(h[0], 16)));
}

/* NT tokens (t .. t + NT - 1 of the call) over the decoded super-blocks u[0..n_blocks), which
 * are the row group's super-blocks b.. and entries j0.. of the token side ts. */
VNNI_TARGET static inline __attribute__((always_inline)) void
q4_K_tokens_pass(const q4_K_decoded16 *u, int64_t n_blocks, const q4_K_tokens *ts, int64_t j0,
                 const uint8_t *x, size_t x_stride, int64_t t, int64_t b, __m512 *acc,
                 const int NT) {
    __m512 a[8];
    const int8_t *qy[8];
    for (int k = 0; k < NT; k++) {
        a[k] = acc[k];
        qy[k] = ((const block_q8_K *)(x + (size_t)(t + k) * x_stride) + b)->qs;
    }
    for (int64_t j = 0; j < n_blocks; j++) {
        __m512i isum[8], summ[8];
        for (int k = 0; k < NT; k++) {
            isum[k] = _mm512_setzero_si512();
            summ[k] = _mm512_setzero_si512();
        }
        for (int s = 0; s < 8; s++) {
            __m512i dot[8];
            for (int k = 0; k < NT; k++) {
                dot[k] = _mm512_setzero_si512();
            }
            for (int g = 0; g < 8; g++) {
                const __m512i wv = u[j].w[s][g];
                for (int k = 0; k < NT; k++) {
                    const int8_t *q = qy[k] + j * (int64_t)sizeof(block_q8_K) + 32 * s + 4 * g;
                    dot[k] = _mm512_dpbusd_epi32(dot[k], wv, _mm512_set1_epi32(kc_load_i32(q)));
                }
            }
            for (int k = 0; k < NT; k++) {
                isum[k] = _mm512_add_epi32(isum[k], _mm512_mullo_epi32(dot[k], u[j].scale[s]));
            }
        }
        for (int k = 0; k < NT; k++) {
            const int32_t *ps = ts->pair_sums[t + k][j0 + j];
            for (int p = 0; p < 4; p++) {
                summ[k] = _mm512_dpwssd_epi32(summ[k], u[j].mins[p], _mm512_set1_epi32(ps[p]));
            }
            const __m512 dy = _mm512_set1_ps(ts->d[t + k][j0 + j]);
            a[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[k]), _mm512_mul_ps(u[j].d, dy), a[k]);
            a[k] =
                _mm512_fnmadd_ps(_mm512_cvtepi32_ps(summ[k]), _mm512_mul_ps(u[j].dmin, dy), a[k]);
        }
    }
    for (int k = 0; k < NT; k++) {
        acc[k] = a[k];
    }
}

/* ---- Q6_K: matrix kernel, one row per 32-bit lane (VNNI) --------------------------------------
 *
 * The Q4_K scheme (above) for Q6_K, in q6_K_vec_dot_fma's order: per super-block the exact
 * integer sum of scale_s * (codes_s . q8_s) over the sixteen 16-weight sub-blocks, codes taken as
 * stored (0..63, unsigned for vpdpbusd) and the -32 folded in as -32 * sum of scale_s * (the q8
 * sum of sub-block s), which four word pairs per lane and vpdpwssd give per token; then one fused
 * multiply-add. */

typedef struct q6_K_decoded16 {
    __m512i w[16][4];  /* sub-block s, group g: lane r = row r's codes 16s + 4g.. (0..63 each) */
    __m512i scale[16]; /* sub-block s: lane r = row r's int8 scale, sign-extended */
    __m512i pairs[8];  /* lane r = row r's scales (4j, 4j + 2) (pairs[2j]) or (4j + 1, 4j + 3)
                        * (pairs[2j + 1]) as words */
    __m512 d;
} q6_K_decoded16;

/* A token's super-block: its scale and its sixteen sub-block sums paired as the scales are. */
typedef struct q6_K_tokens {
    float d[Q4K_TOKENS][Q4K_SPAN];
    int32_t pair_sums[Q4K_TOKENS][Q4K_SPAN][8];
} q6_K_tokens;

static inline void q6_K_tokens_fill(q6_K_tokens *ts, const uint8_t *x, size_t x_stride,
                                    int64_t n_tokens, int64_t b0, int64_t n_blocks) {
    for (int64_t t = 0; t < n_tokens; t++) {
        const block_q8_K *y = (const block_q8_K *)(x + (size_t)t * x_stride) + b0;
        for (int64_t b = 0; b < n_blocks; b++) {
            for (int j = 0; j < 4; j++) {
                const int16_t *s = y[b].bsums + 4 * j;
                ts->pair_sums[t][b][2 * j] =
                    (int32_t)((uint16_t)s[0] | ((uint32_t)(uint16_t)s[2] << 16));
                ts->pair_sums[t][b][2 * j + 1] =
                    (int32_t)((uint16_t)s[1] | ((uint32_t)(uint16_t)s[3] << 16));
            }
            ts->d[t][b] = y[b].d;
        }
    }
}

/* Super-block at byte offset off of the 16 rows p[] (layout: q6_K_unpack in quant_k.c). In half
 * h, for l in 0..31, ql[64h + l] holds the low nibbles of weights l (low) and l + 64 (high),
 * ql[64h + 32 + l] those of l + 32 and l + 96, and qh[32h + l] their top two bits in pairs. */
static inline void q6_K_decode16(const uint8_t *const p[Q0_ROWS], size_t off, q6_K_decoded16 *u) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    for (int h = 0; h < 2; h++) {
        __m512i a[8], b[8], hb[8]; /* group g: bytes 4g..4g+3 of ql[64h..], ql[64h+32..], qh */
        const size_t ql = off + offsetof(block_q6_K, ql) + 64 * (size_t)h;
        const size_t qh = off + offsetof(block_q6_K, qh) + 32 * (size_t)h;
        q0_load_transposed(p, ql, a), q0_load_transposed(p, ql + 16, a + 4);
        q0_load_transposed(p, ql + 32, b), q0_load_transposed(p, ql + 48, b + 4);
        q0_load_transposed(p, qh, hb), q0_load_transposed(p, qh + 16, hb + 4);
        for (int g = 0; g < 8; g++) {
            /* quarter q of the half (weights 128h + 32q..) is sub-blocks 8h + 2q, 8h + 2q + 1 */
            const int s0 = 8 * h + g / 4, gi = g % 4;
            u->w[s0][gi] = _mm512_or_si512(_mm512_and_si512(a[g], m4),
                                           _mm512_and_si512(_mm512_slli_epi32(hb[g], 4), m30));
            u->w[s0 + 2][gi] = _mm512_or_si512(_mm512_and_si512(b[g], m4),
                                               _mm512_and_si512(_mm512_slli_epi32(hb[g], 2), m30));
            u->w[s0 + 4][gi] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(a[g], 4), m4),
                                               _mm512_and_si512(hb[g], m30));
            u->w[s0 + 6][gi] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(b[g], 4), m4),
                                               _mm512_and_si512(_mm512_srli_epi32(hb[g], 2), m30));
        }
    }
    __m512i sc[4]; /* lane r: scales 4j..4j+3 of row r */
    q0_load_transposed(p, off + offsetof(block_q6_K, scales), sc);
    for (int j = 0; j < 4; j++) {
        for (int k = 0; k < 4; k++) {
            u->scale[4 * j + k] = _mm512_srai_epi32(_mm512_slli_epi32(sc[j], 24 - 8 * k), 24);
        }
        u->pairs[2 * j] = _mm512_srai_epi16(_mm512_slli_epi16(sc[j], 8), 8);
        u->pairs[2 * j + 1] = _mm512_srai_epi16(sc[j], 8);
    }
    u->d = q0_row_scales(p, off + offsetof(block_q6_K, d));
}

/* q4_K_tokens_pass for Q6_K. */
VNNI_TARGET static inline __attribute__((always_inline)) void
q6_K_tokens_pass(const q6_K_decoded16 *u, int64_t n_blocks, const q6_K_tokens *ts, int64_t j0,
                 const uint8_t *x, size_t x_stride, int64_t t, int64_t b, __m512 *acc,
                 const int NT) {
    __m512 a[8];
    const int8_t *qy[8];
    for (int k = 0; k < NT; k++) {
        a[k] = acc[k];
        qy[k] = ((const block_q8_K *)(x + (size_t)(t + k) * x_stride) + b)->qs;
    }
    for (int64_t j = 0; j < n_blocks; j++) {
        __m512i isum[8];
        for (int k = 0; k < NT; k++) {
            isum[k] = _mm512_setzero_si512();
        }
        for (int s = 0; s < 16; s++) {
            __m512i dot[8];
            for (int k = 0; k < NT; k++) {
                dot[k] = _mm512_setzero_si512();
            }
            for (int g = 0; g < 4; g++) {
                const __m512i wv = u[j].w[s][g];
                for (int k = 0; k < NT; k++) {
                    const int8_t *q = qy[k] + j * (int64_t)sizeof(block_q8_K) + 16 * s + 4 * g;
                    dot[k] = _mm512_dpbusd_epi32(dot[k], wv, _mm512_set1_epi32(kc_load_i32(q)));
                }
            }
            for (int k = 0; k < NT; k++) {
                isum[k] = _mm512_add_epi32(isum[k], _mm512_mullo_epi32(dot[k], u[j].scale[s]));
            }
        }
        for (int k = 0; k < NT; k++) {
            const int32_t *ps = ts->pair_sums[t + k][j0 + j];
            __m512i off = _mm512_setzero_si512();
            for (int p = 0; p < 8; p++) {
                off = _mm512_dpwssd_epi32(off, u[j].pairs[p], _mm512_set1_epi32(ps[p]));
            }
            isum[k] = _mm512_sub_epi32(isum[k], _mm512_slli_epi32(off, 5));
            const __m512 dy = _mm512_set1_ps(ts->d[t + k][j0 + j]);
            a[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[k]), _mm512_mul_ps(u[j].d, dy), a[k]);
        }
    }
    for (int k = 0; k < NT; k++) {
        acc[k] = a[k];
    }
}

/* The whole Q4_K (q6 false) or Q6_K matrix kernel. */
VNNI_TARGET static inline __attribute__((always_inline)) void
k_gemm_vnni(const bool q6, int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
            size_t w_stride, const void *x, size_t x_stride, float *out, int64_t out_stride) {
    const size_t block_bytes = q6 ? sizeof(block_q6_K) : sizeof(block_q4_K);
    const int64_t nb = n / QK_K;
    if (nb == 0) {
        kc_zero_out(out, out_stride, n_rows, n_tokens);
        return;
    }
    union {
        q4_K_tokens q4;
        q6_K_tokens q6;
    } ts;
    union {
        q4_K_decoded16 q4[Q4K_CHUNK];
        q6_K_decoded16 q6[Q4K_CHUNK];
    } u;
    __m512 acc[Q4K_TOKENS];
    for (int64_t t0 = 0; t0 < n_tokens; t0 += Q4K_TOKENS) {
        const int64_t nt = n_tokens - t0 < Q4K_TOKENS ? n_tokens - t0 : Q4K_TOKENS;
        const uint8_t *xt = (const uint8_t *)x + (size_t)t0 * x_stride;
        for (int64_t b0 = 0; b0 < nb; b0 += Q4K_SPAN) {
            const int64_t nbs = nb - b0 < Q4K_SPAN ? nb - b0 : Q4K_SPAN;
            if (q6) {
                q6_K_tokens_fill(&ts.q6, xt, x_stride, nt, b0, nbs);
            } else {
                q4_K_tokens_fill(&ts.q4, xt, x_stride, nt, b0, nbs);
            }
            for (int64_t r0 = 0; r0 < n_rows; r0 += Q0_ROWS) {
                const int64_t nr = n_rows - r0 < Q0_ROWS ? n_rows - r0 : Q0_ROWS;
                const __mmask16 live = (__mmask16)((1u << nr) - 1);
                const uint8_t *p[Q0_ROWS]; /* rows past the end repeat the last one */
                for (int r = 0; r < Q0_ROWS; r++) {
                    p[r] = (const uint8_t *)w + (size_t)(r0 + (r < nr ? r : nr - 1)) * w_stride;
                }
                const int64_t nr_next = n_rows - r0 - nr < Q0_ROWS ? n_rows - r0 - nr : Q0_ROWS;
                const uint8_t *next = p[0] + Q0_ROWS * w_stride;
                const size_t span_off = (size_t)b0 * block_bytes;
                const size_t span_bytes = (size_t)nbs * block_bytes;
                for (int64_t t = 0; t < nt; t++) {
                    acc[t] = b0 == 0
                                 ? _mm512_setzero_ps()
                                 : _mm512_maskz_loadu_ps(live, out + (t0 + t) * out_stride + r0);
                }
                for (int64_t c0 = 0; c0 < nbs; c0 += Q4K_CHUNK) {
                    const int64_t ncb = nbs - c0 < Q4K_CHUNK ? nbs - c0 : Q4K_CHUNK;
                    const int64_t b = b0 + c0;
                    for (int64_t j = 0; j < ncb; j++) {
                        kc_prefetch_share(next, w_stride, nr_next, span_off, span_bytes, c0 + j,
                                          nbs);
                        if (q6) {
                            q6_K_decode16(p, (size_t)(b + j) * block_bytes, &u.q6[j]);
                        } else {
                            q4_K_decode16(p, (size_t)(b + j) * block_bytes, &u.q4[j]);
                        }
                    }
#define K_PASS(NT)                                                                                 \
    do {                                                                                           \
        if (q6) {                                                                                  \
            q6_K_tokens_pass(u.q6, ncb, &ts.q6, c0, xt, x_stride, t, b, acc + t, NT);              \
        } else {                                                                                   \
            q4_K_tokens_pass(u.q4, ncb, &ts.q4, c0, xt, x_stride, t, b, acc + t, NT);              \
        }                                                                                          \
    } while (0)
                    int64_t t = 0;
                    for (; t + 8 <= nt; t += 8) {
                        K_PASS(8);
                    }
                    for (; t + 4 <= nt; t += 4) {
                        K_PASS(4);
                    }
                    for (; t < nt; t++) {
                        K_PASS(1);
                    }
#undef K_PASS
                }
                for (int64_t t = 0; t < nt; t++) {
                    _mm512_mask_storeu_ps(out + (t0 + t) * out_stride + r0, live, acc[t]);
                }
            }
        }
    }
}

VNNI_TARGET static void q4_K_gemm_avx512_vnni(int64_t n, int64_t n_rows, int64_t n_tokens,
                                              const void *w, size_t w_stride, const void *x,
                                              size_t x_stride, float *out, int64_t out_stride) {
    k_gemm_vnni(false, n, n_rows, n_tokens, w, w_stride, x, x_stride, out, out_stride);
}

VNNI_TARGET static void q6_K_gemm_avx512_vnni(int64_t n, int64_t n_rows, int64_t n_tokens,
                                              const void *w, size_t w_stride, const void *x,
                                              size_t x_stride, float *out, int64_t out_stride) {
    k_gemm_vnni(true, n, n_rows, n_tokens, w, w_stride, x, x_stride, out, out_stride);
}

/* One row (decode reads rows whole, one after the other): the same two integer sums per
 * super-block, formed across the vector and reduced, then the same two scalar fused steps. A
 * chunk's vpdpbusd sums (four products of a 4-bit code and a q8 code: |sum| <= 7680) fit in 16
 * bits, so two chunks pack into one vector of words and one vpdpwssd applies their scales. */
VNNI_TARGET static void q4_K_vec_dot_avx512_vnni(int64_t n, float *s, const void *vx,
                                                 const void *vy) {
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    /* _mm512_packs_epi32(chunk a, chunk b), 128-bit lane L: words 0..3 = dwords 4L..4L+3 of a,
     * words 4..7 those of b; dwords 0..7 of chunk c are sub-block 2c, 8..15 sub-block 2c + 1 */
    static const int16_t scale_words[2][32] = {
        {0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 2, 2,
         1, 1, 1, 1, 3, 3, 3, 3, 1, 1, 1, 1, 3, 3, 3, 3},
        {4, 4, 4, 4, 6, 6, 6, 6, 4, 4, 4, 4, 6, 6, 6, 6,
         5, 5, 5, 5, 7, 7, 7, 7, 5, 5, 5, 5, 7, 7, 7, 7},
    };
    const __m512i idx0 = _mm512_loadu_si512((const void *)scale_words[0]);
    const __m512i idx1 = _mm512_loadu_si512((const void *)scale_words[1]);
    float acc = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint64_t sc, mn;
        k4_scales_mins(x[i].scales, &sc, &mn);
        const __m512i sc16 =
            _mm512_zextsi128_si512(_mm_cvtepu8_epi16(_mm_set_epi64x(0, (long long)sc)));
        __m512i p[4];
        for (int c = 0; c < QK_K / 64; c++) {
            p[c] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), unpack_chunk64(x[i].qs + 32 * c),
                                       _mm512_loadu_si512((const void *)(y[i].qs + 64 * c)));
        }
        __m512i sum = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_packs_epi32(p[0], p[1]),
                                          _mm512_permutexvar_epi16(idx0, sc16));
        sum = _mm512_dpwssd_epi32(sum, _mm512_packs_epi32(p[2], p[3]),
                                  _mm512_permutexvar_epi16(idx1, sc16));
        __m128i m = k4_min_terms(y[i].bsums, mn);
        m = _mm_add_epi32(m, _mm_unpackhi_epi64(m, m));
        m = _mm_add_epi32(m, _mm_shuffle_epi32(m, 1));
        const int32_t isum = _mm512_reduce_add_epi32(sum);
        const int32_t summ = _mm_cvtsi128_si32(m);
        acc = fmaf((float)isum, h2f(x[i].d) * y[i].d, acc);
        acc = fmaf(-(float)summ, h2f(x[i].dmin) * y[i].d, acc);
    }
    *s = acc;
}

/* One Q6_K row: the gemm's integer sums formed across the vector, then its fused step. As in the
 * Q4_K row dot, the vpdpbusd sums (|four codes 0..63 times q8 codes| <= 32256) fit in 16 bits, so
 * two vectors' sums pack into one of words, scaled by one vpdpwssd. */
VNNI_TARGET static void q6_K_vec_dot_avx512_vnni(int64_t n, float *s, const void *vx,
                                                 const void *vy) {
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    const __mmask32 upper = (__mmask32)0xFFFF0000u;
    /* codes 64v..64v + 63: dword k is sub-block 4v + k / 4; _mm512_packs_epi32(v = a, v = b),
     * 128-bit lane L: words 0..3 from sub-block 4a + L, words 4..7 from 4b + L */
    static const int16_t scale_words[2][32] = {
        {0, 0, 0, 0, 4, 4, 4, 4, 1, 1, 1, 1, 5, 5, 5, 5,
         2, 2, 2, 2, 6, 6, 6, 6, 3, 3, 3, 3, 7, 7, 7, 7},
        {8,  8,  8,  8,  12, 12, 12, 12, 9,  9,  9,  9,  13, 13, 13, 13,
         10, 10, 10, 10, 14, 14, 14, 14, 11, 11, 11, 11, 15, 15, 15, 15},
    };
    const __m512i idx0 = _mm512_loadu_si512((const void *)scale_words[0]);
    const __m512i idx1 = _mm512_loadu_si512((const void *)scale_words[1]);
    float acc = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        /* the -32 of every code: -32 * sum of scale_s * (the q8 sum of sub-block s) */
        const __m256i off =
            _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[i].bsums), sc16);
        __m512i sum = _mm512_zextsi256_si512(
            _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5)));
        __m512i p[4];
        for (int h = 0; h < QK_K / 128; h++) {
            const __m512i ql = _mm512_loadu_si512((const void *)(x[i].ql + 64 * h));
            const __m512i qh =
                _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h)));
            const __m512i h01 = _mm512_mask_slli_epi16(_mm512_slli_epi16(qh, 4), upper, qh, 2);
            const __m512i h23 = _mm512_mask_srli_epi16(qh, upper, qh, 2);
            const __m512i c01 =
                _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(h01, m30));
            const __m512i c23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                                _mm512_and_si512(h23, m30));
            const int8_t *q8 = y[i].qs + 128 * h;
            p[2 * h] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c01,
                                           _mm512_loadu_si512((const void *)q8));
            p[2 * h + 1] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c23,
                                               _mm512_loadu_si512((const void *)(q8 + 64)));
        }
        const __m512i sc512 = _mm512_zextsi256_si512(sc16);
        sum = _mm512_dpwssd_epi32(sum, _mm512_packs_epi32(p[0], p[1]),
                                  _mm512_permutexvar_epi16(idx0, sc512));
        sum = _mm512_dpwssd_epi32(sum, _mm512_packs_epi32(p[2], p[3]),
                                  _mm512_permutexvar_epi16(idx1, sc512));
        acc = fmaf((float)_mm512_reduce_add_epi32(sum), h2f(x[i].d) * y[i].d, acc);
    }
    *s = acc;
}

/* ---- registration ---------------------------------------------------------------------------- */

void kernels_fill_avx512(kernel_table *t, bool has_vnni) {
    KC_FILL_F16_ROWS(t, avx512);
    t->f16_mad_row = f16_mad_row_avx512;
    t->vec_dot[TENSOR_TYPE_F16] = f16_vec_dot_avx512;

    t->vec_dot[TENSOR_TYPE_Q4_K] = has_vnni ? q4_K_vec_dot_avx512_vnni : q4_K_vec_dot_avx512;
    t->vec_dot_spec[TENSOR_TYPE_Q4_K] = has_vnni ? q4_K_vec_dot_fma : NULL;
    t->vec_dot[TENSOR_TYPE_Q6_K] = has_vnni ? q6_K_vec_dot_avx512_vnni : q6_K_vec_dot_avx512;
    t->vec_dot_spec[TENSOR_TYPE_Q6_K] = has_vnni ? q6_K_vec_dot_fma : NULL;
    t->gemm[TENSOR_TYPE_Q4_K] = has_vnni ? q4_K_gemm_avx512_vnni : q4_K_gemm_avx512;
    t->gemm[TENSOR_TYPE_Q6_K] = has_vnni ? q6_K_gemm_avx512_vnni : q6_K_gemm_avx512;

    if (has_vnni) {
        t->vec_dot[TENSOR_TYPE_Q4_0] = q4_0_vec_dot_avx512_vnni;
        t->gemm[TENSOR_TYPE_Q4_0] = q4_0_gemm_avx512_vnni;
        t->gemv[TENSOR_TYPE_Q4_0] = q4_0_gemm_avx512_vnni;
        t->vec_dot[TENSOR_TYPE_Q8_0] = q8_0_vec_dot_avx512_vnni;
        t->gemm[TENSOR_TYPE_Q8_0] = q8_0_gemm_avx512_vnni;
        t->gemv[TENSOR_TYPE_Q8_0] = q8_0_gemm_avx512_vnni;
        t->gemv[TENSOR_TYPE_Q5_0] = q5_0_gemv_avx512_vnni;
    }
}
