/* kernels_avx512.c - AVX-512 F/BW/VL kernels (compiled with those flags plus AVX2/FMA/F16C, which
 * every AVX-512 CPU has; kernels.c registers them only when CPUID/XGETBV report all of it). The
 * VNNI variants carry target("avx512vnni") and are registered only when CPUID reports VNNI.
 *
 * The table starts from the AVX2 one; this file replaces what gains from 64-byte vectors: the
 * K-quant dots of the common decode types (one 512-bit step covers 64 weights), the F16 dot in
 * its native 16-lane order (bit-identical to f16_vec_dot_x86) and the fp16 rows.
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
                             int64_t out_stride){Q4_K_GEMM_BODY(MADD_ACC_PLAIN)}

VNNI_TARGET static void q4_K_gemm_avx512_vnni(int64_t n, int64_t n_rows, int64_t n_tokens,
                                              const void *w, size_t w_stride, const void *x,
                                              size_t x_stride, float *out, int64_t out_stride) {
    Q4_K_GEMM_BODY(MADD_ACC_VNNI)
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
                             int64_t out_stride){Q6_K_GEMM_BODY(MADD_ACC_PLAIN)}

VNNI_TARGET static void q6_K_gemm_avx512_vnni(int64_t n, int64_t n_rows, int64_t n_tokens,
                                              const void *w, size_t w_stride, const void *x,
                                              size_t x_stride, float *out, int64_t out_stride) {
    Q6_K_GEMM_BODY(MADD_ACC_VNNI)
}

/* ---- registration ---------------------------------------------------------------------------- */

void kernels_fill_avx512(kernel_table *t, bool has_vnni) {
    KC_FILL_F16_ROWS(t, avx512);
    t->f16_mad_row = f16_mad_row_avx512;
    t->vec_dot[TENSOR_TYPE_F16] = f16_vec_dot_avx512;

    t->vec_dot[TENSOR_TYPE_Q4_K] = has_vnni ? q4_K_vec_dot_avx512_vnni : q4_K_vec_dot_avx512;
    t->vec_dot[TENSOR_TYPE_Q6_K] = has_vnni ? q6_K_vec_dot_avx512_vnni : q6_K_vec_dot_avx512;
    t->gemm[TENSOR_TYPE_Q4_K] = has_vnni ? q4_K_gemm_avx512_vnni : q4_K_gemm_avx512;
    t->gemm[TENSOR_TYPE_Q6_K] = has_vnni ? q6_K_gemm_avx512_vnni : q6_K_gemm_avx512;
}
