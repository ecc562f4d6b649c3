/* kernels_avx2.c - AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c only; reached
 * through kernels.c, which calls kernels_fill_avx2 only when CPUID/XGETBV report all three).
 *
 * Bit-identical to the reference: the activation quantizers (Q8_0, Q8_1, Q8_K), the fp16 rows,
 * the F16 dot (ggml's 16-lane order), the Q4_0/Q8_0 matrix kernels and dots (exact integer block
 * sums, one fused multiply-add per block in block order, one row per lane; kernels_common.h) and
 * the Q4_1/Q5_0/Q5_1 dots (exact integer block sums, then the reference's scalar float steps).
 * The K-quant dots keep one float accumulator per 8 lanes and are within the tolerance
 * test_kernels names. The other matrix kernels (Q4_1, Q5_0 and the K-quant gemms) equal their
 * type's vec_dot here bit for bit. Precondition shared with ggml's kernels: Q8 activation codes are
 * in -127..127 (the quantizers never produce -128).
 */
#include "kernels/kernel_table.h"
#include "kernels/kernels_common.h"
#include "kernels/quant_ref.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/* ---- helpers --------------------------------------------------------------------------------- */

/* One half to float with F16C (exact, equal to fp16_to_fp32 for every input). */
static inline float h2f(fp16_t h) { return _cvtsh_ss(h); }

/* ggml's hsum_float_8: ((a0+a4) + (a2+a6)) + ((a1+a5) + (a3+a7)). */
static inline float hsum_float_8(__m256 x) {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static inline float hsum_float_4(__m128 r) {
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static inline int hsum_i32_8(__m256i x) {
    __m128i r = _mm_add_epi32(_mm256_extracti128_si256(x, 1), _mm256_castsi256_si128(x));
    r = _mm_add_epi32(r, _mm_unpackhi_epi64(r, r));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 1));
    return _mm_cvtsi128_si32(r);
}

static inline int hsum_i32_4(__m128i x) {
    x = _mm_add_epi32(x, _mm_unpackhi_epi64(x, x));
    return _mm_cvtsi128_si32(_mm_add_epi32(x, _mm_shuffle_epi32(x, 1)));
}

/* Lane k = the sum of the eight lanes of p[k]: eight horizontal sums in one hadd tree. */
static inline __m256i hsum_each_i32_8(const __m256i p[8]) {
    const __m256i c =
        _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
    const __m256i d =
        _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(c, d, 0x20),
                            _mm256_permute2x128_si256(c, d, 0x31));
}

static inline float hmax_float_8(__m256 x) {
    __m128 r = _mm_max_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    r = _mm_max_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static inline __m256 abs_ps(__m256 x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }

/* 16 packed 4-bit codes -> 32 bytes in weight order: low nibbles (weights 0..15) in the low
 * 128 bits, high nibbles (weights 16..31) in the high 128 bits. */
static inline __m256i unpack_nibbles_32(const uint8_t *qs) {
    const __m128i b = _mm_loadu_si128((const __m128i *)qs);
    const __m256i v = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* The 32 bits of a 5-bit block's qh, one per byte: 0x10 where bit j is set, else 0. */
static inline __m256i expand_qh_bits(const uint8_t qh[4]) {
    uint32_t bits;
    memcpy(&bits, qh, sizeof bits); /* GGUF is little-endian, and so is every x86 */
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0x0000000000000000);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* Rounded-to-int32 codes as bytes, in order (values must be in -128..127). */
static inline __m256i pack_i32x32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_packs_epi32(a, b);
    const __m256i cd = _mm256_packs_epi32(c, d);
    const __m256i v = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* roundf (half away from zero) of each lane, as float; exact for every float. */
static inline __m256 round_half_away(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = abs_ps(_mm256_sub_ps(v, t)); /* exact */
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(t, _mm256_and_ps(up, one));
}

/* F16C's float -> half with NaNs made canonical as fp32_to_fp16 makes them (sign | 0x7E00);
 * F16C alone would keep the top payload bits. Everything else rounds the same (nearest even). */
static inline __m128i cvt_ps_ph(__m256 v) {
    const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    const __m256 canon = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)),
                                      _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC00000)));
    return _mm256_cvtps_ph(_mm256_blendv_ps(v, canon, nan), _MM_FROUND_TO_NEAREST_INT);
}

/* ---- fp16 rows ------------------------------------------------------------------------------- */

static void fp16_to_fp32_row_avx2(const fp16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    }
    fp16_to_fp32_row_ref(x + i, y + i, n - i);
}

static void fp32_to_fp16_row_avx2(const float *x, fp16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm_storeu_si128((__m128i *)(y + i), cvt_ps_ph(_mm256_loadu_ps(x + i)));
    }
    fp32_to_fp16_row_ref(x + i, y + i, n - i);
}

static void f16_scale_row_avx2(fp16_t *y, float s, int64_t n) {
    const __m256 vs = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i)));
        _mm_storeu_si128((__m128i *)(y + i), cvt_ps_ph(_mm256_mul_ps(v, vs)));
    }
    f16_scale_row_ref(y + i, s, n - i);
}

static void f16_mad_row_avx2(fp16_t *y, const fp16_t *x, float s, int64_t n) {
    const __m256 vs = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 vx = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        const __m256 vy = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i)));
        _mm_storeu_si128((__m128i *)(y + i), cvt_ps_ph(_mm256_fmadd_ps(vx, vs, vy)));
    }
    f16_mad_row_ref(y + i, x + i, s, n - i);
}

KC_DEFINE_F16_CONVERSIONS(avx2)

/* ggml's AVX-512 F16 order (see f16_vec_dot_x86): 4 accumulators of 16 lanes, here each a pair
 * of 8-lane halves; the same per-lane fma chain, the same reduction tree. */
static void f16_vec_dot_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const fp16_t *x = vx;
    const fp16_t *y = vy;
    const int64_t np = n & ~(int64_t)63;
    __m256 lo[4], hi[4];
    for (int j = 0; j < 4; j++) {
        lo[j] = _mm256_setzero_ps();
        hi[j] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < np; i += 64) {
        for (int j = 0; j < 4; j++) {
            const int64_t k = i + 16 * j;
            const __m256 x0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + k)));
            const __m256 y0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + k)));
            const __m256 x1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + k + 8)));
            const __m256 y1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + k + 8)));
            lo[j] = _mm256_fmadd_ps(x0, y0, lo[j]);
            hi[j] = _mm256_fmadd_ps(x1, y1, hi[j]);
        }
    }
    /* v = (acc0 + acc2) + (acc1 + acc3); then 16 -> 8: v[l + 8] + v[l] */
    const __m256 vlo = _mm256_add_ps(_mm256_add_ps(lo[0], lo[2]), _mm256_add_ps(lo[1], lo[3]));
    const __m256 vhi = _mm256_add_ps(_mm256_add_ps(hi[0], hi[2]), _mm256_add_ps(hi[1], hi[3]));
    const __m256 h8 = _mm256_add_ps(vhi, vlo);
    /* 8 -> 4: h8[l + 4] + h8[l]; then (h4[0] + h4[2]) + (h4[1] + h4[3]) */
    const __m128 h4 = _mm_add_ps(_mm256_extractf128_ps(h8, 1), _mm256_castps256_ps128(h8));
    const __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
    double sum = (double)_mm_cvtss_f32(_mm_add_ss(h2, _mm_movehdup_ps(h2)));
    for (int64_t i = np; i < n; i++) {
        sum += (double)(fp16_to_fp32(x[i]) * fp16_to_fp32(y[i]));
    }
    *s = (float)sum;
}

/* ---- activation quantizers (bit-identical to the reference) --------------------------------- */

/* One Q8_0/Q8_1 block: d = amax / 127 (returned unrounded), q = roundf(x / d). Returns the
 * codes' sum. */
static int quantize_block_q8(const float *x, float *d_out, int8_t *qs) {
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        amax = _mm256_max_ps(amax, abs_ps(v[k]));
    }
    const float d = hmax_float_8(amax) / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    *d_out = d;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++) {
        q[k] = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v[k], vid)));
    }
    _mm256_storeu_si256((__m256i *)qs, pack_i32x32_to_i8(q[0], q[1], q[2], q[3]));
    return hsum_i32_8(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
}

KC_DEFINE_Q8_FROM_FLOAT(avx2, quantize_block_q8)

/* Q8_K: d = max / -127 with max the first value of largest magnitude; codes nearest-even,
 * clamped at 127; bsums per 16. */
static void q8_K_from_float_avx2(const float *src, void *dst, int64_t n) {
    block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        __m256 vmax = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8) {
            vmax = _mm256_max_ps(vmax, abs_ps(_mm256_loadu_ps(x + j)));
        }
        const float amax = hmax_float_8(vmax);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const __m256 va = _mm256_set1_ps(amax);
        int first = 0;
        for (int j = 0; j < QK_K; j += 8) {
            const int m =
                _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + j)), va, _CMP_EQ_OQ));
            if (m != 0) {
                first = j + __builtin_ctz((unsigned)m);
                break;
            }
        }
        const float iscale = -127.0f / x[first];
        const __m256 vs = _mm256_set1_ps(iscale);
        const __m256i v127 = _mm256_set1_epi32(127);
        for (int j = 0; j < QK_K; j += 32) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                const __m256 v = _mm256_mul_ps(vs, _mm256_loadu_ps(x + j + 8 * k));
                const __m256 r = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                q[k] = _mm256_min_epi32(_mm256_cvttps_epi32(r), v127);
            }
            _mm256_storeu_si256((__m256i *)(y[i].qs + j),
                                pack_i32x32_to_i8(q[0], q[1], q[2], q[3]));
            y[i].bsums[j / 16] = (int16_t)hsum_i32_8(_mm256_add_epi32(q[0], q[1]));
            y[i].bsums[j / 16 + 1] = (int16_t)hsum_i32_8(_mm256_add_epi32(q[2], q[3]));
        }
        y[i].d = 1 / iscale;
    }
}

/* ---- legacy 32-blocks ------------------------------------------------------------------------ */

/* Int32 sums of each 4 consecutive products of unsigned u (0..127 safe range for pairs) and
 * signed s: 8 lanes, lane l = products 4l..4l+3. */
static inline __m256i dot4_u8_i8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

static void q4_1_vec_dot_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_1 *x = vx;
    const block_q8_1 *y = vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        const __m256i q = unpack_nibbles_32(x[i].qs);
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const int sumi = hsum_i32_8(dot4_u8_i8(q, qy));
        sumf += (h2f(x[i].d) * h2f(y[i].d)) * (float)sumi + h2f(x[i].m) * h2f(y[i].s);
    }
    *s = sumf;
}

static void q5_0_vec_dot_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_0 *x = vx;
    const block_q8_0 *y = vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const __m256i q = _mm256_or_si256(unpack_nibbles_32(x[i].qs), expand_qh_bits(x[i].qh));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, qy),
                                           _mm256_maddubs_epi16(_mm256_set1_epi8(16), qy));
        const int sumi = hsum_i32_8(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
        sumf += (h2f(x[i].d) * h2f(y[i].d)) * (float)sumi;
    }
    *s = sumf;
}

static void q5_1_vec_dot_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_1 *x = vx;
    const block_q8_1 *y = vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        const __m256i q = _mm256_or_si256(unpack_nibbles_32(x[i].qs), expand_qh_bits(x[i].qh));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const int sumi = hsum_i32_8(dot4_u8_i8(q, qy));
        sumf += (h2f(x[i].d) * h2f(y[i].d)) * (float)sumi + h2f(x[i].m) * h2f(y[i].s);
    }
    *s = sumf;
}

/* ---- Q4_1 and Q5_0 matrix x matrix (batched prefill) -----------------------------------------
 *
 * The vec_dots above run one scalar float chain per (row, token): an exact integer block sum,
 * then sumf += term, block after block. Here the chains of one row with eight tokens run side by
 * side, one token per float lane, so that every lane does exactly the scalar steps of its token
 * (and gives the vec_dot's bits) while the float work and the horizontal integer sums are shared
 * eight ways (hsum_each_i32_8). Each weight block is decoded once for all the tokens of a chunk
 * (KC_GEMM_TOKENS); the token side (scales, code sums) is prepared once per chunk and span of
 * blocks for all the rows, block-major, so one load gives a block's values for eight tokens.
 * Accumulators wait in out between spans, so n and n_tokens are unbounded. */

/* Blocks per span (1024 weights): the chunk's activations of a span, 32 tokens x 36 bytes each,
 * stay in L1 while every row is dotted with them. */
#define LEGACY_SPAN 32

typedef struct legacy_tokens {
    float d[LEGACY_SPAN][KC_GEMM_TOKENS];      /* block b, token t: the token's scale dy */
    float s[LEGACY_SPAN][KC_GEMM_TOKENS];      /* Q4_1: the token's stored s (dy * code sum) */
    int32_t bias[LEGACY_SPAN][KC_GEMM_TOKENS]; /* Q5_0: -16 * the sum of its codes */
} legacy_tokens;

/* The exact sums of one block's unsigned weight codes q (0..31) times the codes of eight tokens
 * (32 bytes at yt[k] + off), token k in lane k. */
static inline __m256i legacy_sums8(__m256i q, const uint8_t *const yt[8], size_t off) {
    __m256i p[8];
    for (int k = 0; k < 8; k++) {
        p[k] = dot4_u8_i8(q, _mm256_loadu_si256((const __m256i *)(yt[k] + off)));
    }
    return hsum_each_i32_8(p);
}

/* Q4_1 (q5_0 false) weights times Q8_1 activations, or Q5_0 weights times Q8_0. Q5_0 codes go in
 * as stored (q + 16, unsigned) and each block sum starts from -16 * the token's code sum: the
 * vec_dot's exact sum(q * qy). */
static inline __attribute__((always_inline)) void
legacy_gemm_avx2(const bool q5_0, int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
                 size_t w_stride, const void *x, size_t x_stride, float *out, int64_t out_stride) {
    const size_t wb = q5_0 ? sizeof(block_q5_0) : sizeof(block_q4_1);
    const size_t yb = q5_0 ? sizeof(block_q8_0) : sizeof(block_q8_1);
    const size_t qs_off = q5_0 ? offsetof(block_q8_0, qs) : offsetof(block_q8_1, qs);
    const int64_t nb = n / QK8_0;
    if (nb == 0) {
        kc_zero_out(out, out_stride, n_rows, n_tokens);
        return;
    }
    legacy_tokens ts;
    for (int64_t t0 = 0; t0 < n_tokens; t0 += KC_GEMM_TOKENS) {
        const int64_t nt = n_tokens - t0 < KC_GEMM_TOKENS ? n_tokens - t0 : KC_GEMM_TOKENS;
        const int64_t ng = (nt + 7) / 8;   /* groups of eight tokens, the last padded */
        const uint8_t *yt[KC_GEMM_TOKENS]; /* padding lanes repeat the last token */
        for (int64_t k = 0; k < 8 * ng; k++) {
            yt[k] = (const uint8_t *)x + (size_t)(t0 + (k < nt ? k : nt - 1)) * x_stride;
        }
        for (int64_t b0 = 0; b0 < nb; b0 += LEGACY_SPAN) {
            const int64_t nbs = nb - b0 < LEGACY_SPAN ? nb - b0 : LEGACY_SPAN;
            for (int64_t b = 0; b < nbs; b++) {
                for (int64_t k = 0; k < 8 * ng; k++) {
                    const uint8_t *y = yt[k] + (size_t)(b0 + b) * yb;
                    ts.d[b][k] = h2f(((const block_q8_0 *)y)->d); /* d leads both Q8 blocks */
                    if (q5_0) {
                        int sum = 0;
                        for (int j = 0; j < QK8_0; j++) {
                            sum += ((const block_q8_0 *)y)->qs[j];
                        }
                        ts.bias[b][k] = -16 * sum;
                    } else {
                        ts.s[b][k] = h2f(((const block_q8_1 *)y)->s);
                    }
                }
            }
            for (int64_t r = 0; r < n_rows; r++) {
                const uint8_t *row = (const uint8_t *)w + (size_t)r * w_stride + (size_t)b0 * wb;
                __m256 acc[KC_GEMM_TOKENS / 8];
                for (int64_t g = 0; g < ng; g++) {
                    float lane[8] = {0.0f};
                    for (int64_t k = 0; b0 > 0 && k < 8 && 8 * g + k < nt; k++) {
                        lane[k] = out[(t0 + 8 * g + k) * out_stride + r];
                    }
                    acc[g] = _mm256_loadu_ps(lane);
                }
                for (int64_t b = 0; b < nbs; b++) {
                    const uint8_t *blk = row + (size_t)b * wb;
                    const size_t off = (size_t)(b0 + b) * yb + qs_off;
                    __m256i q;
                    __m256 dx, m = _mm256_setzero_ps();
                    if (q5_0) {
                        const block_q5_0 *xb = (const block_q5_0 *)blk;
                        q = _mm256_or_si256(unpack_nibbles_32(xb->qs), expand_qh_bits(xb->qh));
                        dx = _mm256_set1_ps(h2f(xb->d));
                    } else {
                        const block_q4_1 *xb = (const block_q4_1 *)blk;
                        q = unpack_nibbles_32(xb->qs);
                        dx = _mm256_set1_ps(h2f(xb->d));
                        m = _mm256_set1_ps(h2f(xb->m));
                    }
                    for (int64_t g = 0; g < ng; g++) {
                        __m256i sumi = legacy_sums8(q, yt + 8 * g, off);
                        const __m256 dy = _mm256_loadu_ps(&ts.d[b][8 * g]);
                        /* the vec_dots' steps: sumf += (dx * dy) * (float)sumi [+ m * s] */
                        if (q5_0) {
                            sumi = _mm256_add_epi32(
                                sumi, _mm256_loadu_si256((const __m256i *)&ts.bias[b][8 * g]));
                            acc[g] = _mm256_add_ps(acc[g], _mm256_mul_ps(_mm256_mul_ps(dx, dy),
                                                                         _mm256_cvtepi32_ps(sumi)));
                        } else {
                            const __m256 s = _mm256_loadu_ps(&ts.s[b][8 * g]);
                            acc[g] = _mm256_add_ps(
                                acc[g], _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(dx, dy),
                                                                    _mm256_cvtepi32_ps(sumi)),
                                                      _mm256_mul_ps(m, s)));
                        }
                    }
                }
                for (int64_t g = 0; g < ng; g++) {
                    float lane[8];
                    _mm256_storeu_ps(lane, acc[g]);
                    for (int64_t k = 0; k < 8 && 8 * g + k < nt; k++) {
                        out[(t0 + 8 * g + k) * out_stride + r] = lane[k];
                    }
                }
            }
        }
    }
}

static void q4_1_gemm_avx2(int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
                           size_t w_stride, const void *x, size_t x_stride, float *out,
                           int64_t out_stride) {
    legacy_gemm_avx2(false, n, n_rows, n_tokens, w, w_stride, x, x_stride, out, out_stride);
}

static void q5_0_gemm_avx2(int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
                           size_t w_stride, const void *x, size_t x_stride, float *out,
                           int64_t out_stride) {
    legacy_gemm_avx2(true, n, n_rows, n_tokens, w, w_stride, x, x_stride, out, out_stride);
}

/* ---- K-quants -------------------------------------------------------------------------------- */

/* From 16 int16 scales: scale 2j in the low 8 lanes, scale 2j + 1 in the high 8. */
static inline __m256i scale_pair_v(__m256i sc16, int j) {
    const __m256i pair = _mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(j));
    const __m256i ctrl = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2,
                                          3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
    return _mm256_shuffle_epi8(pair, ctrl);
}

/* One 128-weight half h of a Q2_K/Q3_K/Q6_K block: quarter k's 32 unsigned codes c[k] times the
 * Q8 values q8[32k..32k+31], each 16 scaled by the int16 scale of group 8h + 2k or 8h + 2k + 1;
 * quarters 0 and 2 go to sum[0], 1 and 3 to sum[1] (8 int32 lanes each). */
static inline void quarters_dot(const __m256i c[4], const int8_t *q8, __m256i sc16, int h,
                                __m256i sum[2]) {
    for (int k = 0; k < 4; k++) {
        const __m256i p =
            _mm256_maddubs_epi16(c[k], _mm256_loadu_si256((const __m256i *)(q8 + 32 * k)));
        sum[k & 1] =
            _mm256_add_epi32(sum[k & 1], _mm256_madd_epi16(p, scale_pair_v(sc16, 4 * h + k)));
    }
}

/* Q4_K/Q5_K 6-bit scales and mins as 8 bytes each (layout in quant_ref.h, k4_scale_min). */
static inline void k4_scales_mins(const uint8_t packed[12], uint8_t scales[8], uint8_t mins[8]) {
    uint32_t w[3];
    memcpy(w, packed, sizeof w);
    const uint32_t sc[2] = {w[0] & 0x3f3f3f3fu, (w[2] & 0x0f0f0f0fu) | ((w[0] >> 2) & 0x30303030u)};
    const uint32_t mn[2] = {w[1] & 0x3f3f3f3fu,
                            ((w[2] >> 4) & 0x0f0f0f0fu) | ((w[1] >> 2) & 0x30303030u)};
    memcpy(scales, sc, sizeof sc);
    memcpy(mins, mn, sizeof mn);
}

/* The 8 mins of k4_scales_mins as 16-bit lanes. */
static inline __m128i k4_mins16(const uint8_t mins[8]) {
    uint64_t m;
    memcpy(&m, mins, sizeof m);
    return _mm_cvtepu8_epi16(_mm_set_epi64x(0, (long long)m));
}

/* sum over the 8 sub-blocks of mins16[j] * (bsums[2j] + bsums[2j+1]), as 4 int32 lanes. */
static inline __m128i k4_min_terms(const int16_t bsums[16], __m128i mins16) {
    const __m128i b0 = _mm_loadu_si128((const __m128i *)bsums);
    const __m128i b1 = _mm_loadu_si128((const __m128i *)(bsums + 8));
    return _mm_madd_epi16(_mm_hadd_epi16(b0, b1), mins16);
}

/* The part of a Q4_K/Q5_K block dot before the codes: the 8 scales to sc, dmin * the min terms
 * added to *acc_m; returns the block's d (dy * dx). */
static inline float k4_block_head(fp16_t xd, fp16_t xdmin, const uint8_t packed[12],
                                  const block_q8_K *y, uint8_t sc[8], __m128 *acc_m) {
    uint8_t mn[8];
    k4_scales_mins(packed, sc, mn);
    const float dmin = y->d * h2f(xdmin);
    *acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(k4_min_terms(y->bsums, k4_mins16(mn))),
                          *acc_m);
    return y->d * h2f(xd);
}

static void q4_K_vec_dot_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t sc[8];
        const float d = k4_block_head(x[i].d, x[i].dmin, x[i].scales, &y[i], sc, &acc_m);
        const uint8_t *qs = x[i].qs;
        const int8_t *q8 = y[i].qs;
        __m256i sum0 = _mm256_setzero_si256();
        __m256i sum1 = _mm256_setzero_si256();
        for (int c = 0; c < QK_K / 64; c++) {
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
            const __m256i lo = _mm256_and_si256(q4, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
            const __m256i y0 = _mm256_loadu_si256((const __m256i *)(q8 + 64 * c));
            const __m256i y1 = _mm256_loadu_si256((const __m256i *)(q8 + 64 * c + 32));
            const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0),
                                                 _mm256_set1_epi16((short)sc[2 * c]));
            const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1),
                                                 _mm256_set1_epi16((short)sc[2 * c + 1]));
            sum0 = _mm256_add_epi32(sum0, p0);
            sum1 = _mm256_add_epi32(sum1, p1);
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_add_epi32(sum0, sum1)),
                              acc);
    }
    *s = hsum_float_8(acc) - hsum_float_4(acc_m);
}

/* Chunk c (weights 64c .. 64c + 63) of a Q5_K block as 5-bit codes, sub-block 2c to lo and 2c + 1
 * to hi; hb is the block's qh. */
static inline void q5_K_codes(const uint8_t *qs, __m256i hb, int c, __m256i *lo, __m256i *hi) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i one = _mm256_set1_epi8(1);
    const __m256i q4 = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
    /* bit 2c of qh byte l is the 5th bit of weight 64c + l, bit 2c + 1 of 64c + 32 + l */
    const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c), one), 4);
    const __m256i h1 =
        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c + 1), one), 4);
    *lo = _mm256_or_si256(_mm256_and_si256(q4, m4), h0);
    *hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4, 4), m4), h1);
}

/* ggml's AVX2 order exactly (q5_K_vec_dot_x86): the mins in one scalar float, not in lanes. */
static void q5_K_vec_dot_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_K *x = vx;
    const block_q8_K *y = vy;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t sc[8], mn[8];
        k4_scales_mins(x[i].scales, sc, mn);
        const float d = y[i].d * h2f(x[i].d);
        const float dmin = -y[i].d * h2f(x[i].dmin);
        summs += dmin * (float)hsum_i32_4(k4_min_terms(y[i].bsums, k4_mins16(mn)));
        const __m256i hb = _mm256_loadu_si256((const __m256i *)x[i].qh);
        __m256i sum = _mm256_setzero_si256();
        for (int c = 0; c < QK_K / 64; c++) {
            __m256i lo, hi;
            q5_K_codes(x[i].qs, hb, c, &lo, &hi);
            const __m256i y0 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * c));
            const __m256i y1 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * c + 32));
            const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0),
                                                 _mm256_set1_epi16((short)sc[2 * c]));
            const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1),
                                                 _mm256_set1_epi16((short)sc[2 * c + 1]));
            sum = _mm256_add_epi32(sum, _mm256_add_epi32(p0, p1));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sum), acc);
    }
    *s = hsum_float_8(acc) + summs;
}

static void q6_K_vec_dot_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m30 = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * h2f(x[i].d);
        const int8_t *sc = x[i].scales;
        /* codes are stored as 0..63 = value + 32: subtract 32 * scale * sum(q8) per group */
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
        const __m256i bs = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        __m256i sum[2] = {_mm256_sub_epi32(_mm256_setzero_si256(),
                                           _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5)),
                          _mm256_setzero_si256()};
        for (int h = 0; h < QK_K / 128; h++) {
            const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * h));
            const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h));
            const __m256i c[4] = {
                _mm256_or_si256(_mm256_and_si256(ql0, m4),
                                _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30)),
                _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                _mm256_and_si256(qh, m30)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30)),
            };
            const int8_t *q8 = y[i].qs + 128 * h;
            quarters_dot(c, q8, sc16, h, sum);
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d),
                              _mm256_cvtepi32_ps(_mm256_add_epi32(sum[0], sum[1])), acc);
    }
    *s = hsum_float_8(acc);
}

/* Q3_K scales (layout in quant_ref.h, q3_K_scale) minus 32, as 16 int16 lanes (built in
 * registers: a round trip through memory would stall on store forwarding). */
static inline __m256i q3_K_scales16(const uint8_t packed[12]) {
    uint32_t w[3];
    memcpy(w, packed, sizeof w);
    const __m128i s =
        _mm_set_epi32((int)(((w[1] >> 4) & 0x0f0f0f0fu) | ((w[2] >> 2) & 0x30303030u)),
                      (int)(((w[0] >> 4) & 0x0f0f0f0fu) | (w[2] & 0x30303030u)),
                      (int)((w[1] & 0x0f0f0f0fu) | ((w[2] & 0x0c0c0c0cu) << 2)),
                      (int)((w[0] & 0x0f0f0f0fu) | ((w[2] & 0x03030303u) << 4)));
    return _mm256_cvtepi8_epi16(_mm_sub_epi8(s, _mm_set1_epi8(32)));
}

static void q3_K_vec_dot_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q3_K *x = vx;
    const block_q8_K *y = vy;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * h2f(x[i].d);
        const __m256i sc16 = q3_K_scales16(x[i].scales);
        /* codes are (2-bit | 4 * hbit) - 4: subtract 4 * scale * sum(q8) per group */
        const __m256i bs = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        __m256i sum[2] = {_mm256_sub_epi32(_mm256_setzero_si256(),
                                           _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 2)),
                          _mm256_setzero_si256()};
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        for (int h = 0; h < QK_K / 128; h++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            const int8_t *q8 = y[i].qs + 128 * h;
            /* quarter k: 2-bit field k of q, high bit 4h + k of hm; groups 8h + 2k, + 1 */
            const __m256i h0 = _mm256_srli_epi16(hm, 4 * h);
            __m256i c[4];
            for (int k = 0; k < 4; k++) {
                const __m256i hbit = _mm256_and_si256(_mm256_srli_epi16(h0, k), one);
                c[k] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m3),
                                       _mm256_slli_epi16(hbit, 2));
            }
            quarters_dot(c, q8, sc16, h, sum);
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d),
                              _mm256_cvtepi32_ps(_mm256_add_epi32(sum[0], sum[1])), acc);
    }
    *s = hsum_float_8(acc);
}

static void q2_K_vec_dot_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q2_K *x = vx;
    const block_q8_K *y = vy;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    __m256 acc_m = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float dall = y[i].d * h2f(x[i].d);
        const float dmin = y[i].d * h2f(x[i].dmin);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(sc8, m4));
        const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), m4));
        const __m256i bs = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        acc_m = _mm256_fmadd_ps(_mm256_set1_ps(dmin),
                                _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mins16)), acc_m);
        __m256i sum[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int h = 0; h < QK_K / 128; h++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            const int8_t *q8 = y[i].qs + 128 * h;
            /* quarter k: 2-bit field k of q; groups 8h + 2k, 8h + 2k + 1 */
            __m256i c[4];
            for (int k = 0; k < 4; k++) {
                c[k] = _mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m3);
            }
            quarters_dot(c, q8, sc16, h, sum);
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dall),
                              _mm256_cvtepi32_ps(_mm256_add_epi32(sum[0], sum[1])), acc);
    }
    *s = hsum_float_8(acc) - hsum_float_8(acc_m);
}

/* ---- Q4_0 and Q8_0: matrix kernels, one row per 32-bit lane ----------------------------------
 *
 * The scheme and the float order are kernels_common.h's (kc_q0_tokens): eight rows per group,
 * vector w[g] holding in lane r the four codes 4g..4g+3 of row r's block. Q4_0 keeps its stored
 * nibbles (q + 8, unsigned): vpmaddubsw against the token's four codes broadcast gives two 16-bit
 * pair sums per row, the eight groups of a block add up in 16 bits (|sum| <= 8 * 2 * 15 * 127 <
 * 2^15) and one vpmaddwd makes the row's block sum. Q8_0 codes are signed: |q| times y with q's
 * sign (vpsignb) keeps every pair sum below 2^15, widened after each group. A pass decodes
 * Q0_CHUNK blocks of a row group once for every token of the call. */

#define Q0_ROWS 8   /* rows per group: one per 32-bit lane */
#define Q0_CHUNK 16 /* blocks decoded per pass */

typedef struct q0_decoded {
    __m256i w[8]; /* group g: lane r = row r's codes 4g..4g+3 (Q4_0: q + 8; Q8_0: q) */
    __m256i a[8]; /* Q8_0 only: |w[g]| */
    __m256 d;     /* lane r = row r's block scale */
} q0_decoded;

/* Eight 16-byte rows (p[r] + off) as four vectors c[j] whose lane r holds dword j of row r (rows i
 * and i + 4 in the two 128-bit lanes of a[i], then a 4 x 4 dword transpose per 128-bit lane). */
static inline void q0_load_transposed(const uint8_t *const p[Q0_ROWS], size_t off, __m256i c[4]) {
    __m256i a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(p[i + 4] + off)),
                                _mm_loadu_si128((const __m128i *)(p[i] + off)));
    }
    const __m256i t0 = _mm256_unpacklo_epi32(a[0], a[1]);
    const __m256i t1 = _mm256_unpackhi_epi32(a[0], a[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(a[2], a[3]);
    const __m256i t3 = _mm256_unpackhi_epi32(a[2], a[3]);
    c[0] = _mm256_unpacklo_epi64(t0, t2);
    c[1] = _mm256_unpackhi_epi64(t0, t2);
    c[2] = _mm256_unpacklo_epi64(t1, t3);
    c[3] = _mm256_unpackhi_epi64(t1, t3);
}

/* The fp16 scales at p[r] + off as 8 floats. */
static inline __m256 q0_row_scales(const uint8_t *const p[Q0_ROWS], size_t off) {
    __m128i h = _mm_setzero_si128();
#define Q0_SCALE(r) h = _mm_insert_epi16(h, kc_load_u16(p[r] + off), r)
    Q0_SCALE(0), Q0_SCALE(1), Q0_SCALE(2), Q0_SCALE(3);
    Q0_SCALE(4), Q0_SCALE(5), Q0_SCALE(6), Q0_SCALE(7);
#undef Q0_SCALE
    return _mm256_cvtph_ps(h);
}

static inline void q4_0_decode8(const uint8_t *const p[Q0_ROWS], size_t off, q0_decoded *u) {
    __m256i c[4];
    q0_load_transposed(p, off + offsetof(block_q4_0, qs), c);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int j = 0; j < 4; j++) {
        u->w[j] = _mm256_and_si256(c[j], m4);
        u->w[j + 4] = _mm256_and_si256(_mm256_srli_epi32(c[j], 4), m4);
    }
    u->d = q0_row_scales(p, off);
}

static inline void q8_0_decode8(const uint8_t *const p[Q0_ROWS], size_t off, q0_decoded *u) {
    q0_load_transposed(p, off + offsetof(block_q8_0, qs), u->w);
    q0_load_transposed(p, off + offsetof(block_q8_0, qs) + 16, u->w + 4);
    for (int g = 0; g < 8; g++) {
        u->a[g] = _mm256_sign_epi8(u->w[g], u->w[g]);
    }
    u->d = q0_row_scales(p, off);
}

/* Each row's exact block sum with one token (bias = -8 * sum(qy) for Q4_0, 0 for Q8_0). */
static inline __m256i q0_block_sums(bool q8, const q0_decoded *u, const int8_t *qy, int32_t bias) {
    const __m256i ones = _mm256_set1_epi16(1);
    if (q8) {
        __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
        for (int g = 0; g < 8; g += 2) {
            const __m256i y0 = _mm256_set1_epi32(kc_load_i32(qy + 4 * g));
            const __m256i y1 = _mm256_set1_epi32(kc_load_i32(qy + 4 * g + 4));
            s0 = _mm256_add_epi32(
                s0, _mm256_madd_epi16(_mm256_maddubs_epi16(u->a[g], _mm256_sign_epi8(y0, u->w[g])),
                                      ones));
            s1 = _mm256_add_epi32(
                s1,
                _mm256_madd_epi16(
                    _mm256_maddubs_epi16(u->a[g + 1], _mm256_sign_epi8(y1, u->w[g + 1])), ones));
        }
        return _mm256_add_epi32(s0, s1);
    }
    __m256i p0 = _mm256_maddubs_epi16(u->w[0], _mm256_set1_epi32(kc_load_i32(qy)));
    __m256i p1 = _mm256_maddubs_epi16(u->w[1], _mm256_set1_epi32(kc_load_i32(qy + 4)));
    for (int g = 2; g < 8; g += 2) {
        p0 = _mm256_add_epi16(
            p0, _mm256_maddubs_epi16(u->w[g], _mm256_set1_epi32(kc_load_i32(qy + 4 * g))));
        p1 = _mm256_add_epi16(
            p1, _mm256_maddubs_epi16(u->w[g + 1], _mm256_set1_epi32(kc_load_i32(qy + 4 * g + 4))));
    }
    return _mm256_add_epi32(_mm256_set1_epi32(bias),
                            _mm256_madd_epi16(_mm256_add_epi16(p0, p1), ones));
}

/* acc = fma((float)sumi, dx * dy, acc): the traits' float step, one row per lane. */
static inline __m256 q0_step(__m256 acc, __m256i sumi, __m256 dx, float dy) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_mul_ps(dx, _mm256_set1_ps(dy)), acc);
}

/* NT tokens (t .. t + NT - 1 of the call) over the decoded blocks u[0..n_blocks), which are the
 * row's blocks b .. and entries j0.. of the token side ts. */
static inline __attribute__((always_inline)) void
q0_tokens_pass(bool q8, const q0_decoded *u, int64_t n_blocks, const kc_q0_tokens *ts, int64_t j0,
               const uint8_t *x, size_t x_stride, int64_t t, int64_t b, __m256 *acc, const int NT) {
    __m256 a[4];
    const int8_t *qy[4];
    for (int k = 0; k < NT; k++) {
        a[k] = acc[k];
        qy[k] = kc_q8_0_codes(x, x_stride, t + k, b);
    }
    for (int64_t j = 0; j < n_blocks; j++) {
        for (int k = 0; k < NT; k++) {
            const __m256i s =
                q0_block_sums(q8, &u[j], qy[k] + j * sizeof(block_q8_0), ts->bias[t + k][j0 + j]);
            a[k] = q0_step(a[k], s, u[j].d, ts->d[t + k][j0 + j]);
        }
    }
    for (int k = 0; k < NT; k++) {
        acc[k] = a[k];
    }
}

static inline __attribute__((always_inline)) void
q0_gemm_avx2(const bool q8, int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
             size_t w_stride, const void *x, size_t x_stride, float *out, int64_t out_stride) {
    const size_t block_bytes = q8 ? sizeof(block_q8_0) : sizeof(block_q4_0);
    const int64_t nb = n / QK8_0;
    kc_q0_tokens ts;
    q0_decoded u[Q0_CHUNK];
    __m256 acc[KC_Q0_TOKENS];
    for (int64_t t0 = 0; t0 < n_tokens; t0 += KC_Q0_TOKENS) {
        const int64_t nt = n_tokens - t0 < KC_Q0_TOKENS ? n_tokens - t0 : KC_Q0_TOKENS;
        const uint8_t *xt = (const uint8_t *)x + (size_t)t0 * x_stride;
        for (int64_t b0 = 0; b0 < nb; b0 += KC_Q0_SPAN) {
            const int64_t nbs = nb - b0 < KC_Q0_SPAN ? nb - b0 : KC_Q0_SPAN;
            kc_q0_tokens_fill(&ts, xt, x_stride, nt, b0, nbs, q8 ? 0 : 8);
            for (int64_t r0 = 0; r0 < n_rows; r0 += Q0_ROWS) {
                const int64_t nr = n_rows - r0 < Q0_ROWS ? n_rows - r0 : Q0_ROWS;
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
                    if (b0 == 0) {
                        acc[t] = _mm256_setzero_ps();
                    } else {
                        float lane[Q0_ROWS] = {0.0f};
                        memcpy(lane, out + (t0 + t) * out_stride + r0, (size_t)nr * sizeof(float));
                        acc[t] = _mm256_loadu_ps(lane);
                    }
                }
                for (int64_t c0 = 0; c0 < nbs; c0 += Q0_CHUNK) {
                    const int64_t ncb = nbs - c0 < Q0_CHUNK ? nbs - c0 : Q0_CHUNK;
                    const int64_t b = b0 + c0;
                    const int64_t n_decoded = nt == 1 ? 1 : ncb;
                    for (int64_t j0 = 0; j0 < ncb; j0 += n_decoded) {
                        for (int64_t j = 0; j < n_decoded; j++) {
                            kc_prefetch_share(next, w_stride, nr_next, span_off, span_bytes,
                                              c0 + j0 + j, nbs);
                            if (q8) {
                                q8_0_decode8(p, (size_t)(b + j0 + j) * block_bytes, &u[j]);
                            } else {
                                q4_0_decode8(p, (size_t)(b + j0 + j) * block_bytes, &u[j]);
                            }
                        }
                        int64_t t = 0;
                        for (; t + 4 <= nt; t += 4) {
                            q0_tokens_pass(q8, u, n_decoded, &ts, c0 + j0, xt, x_stride, t, b + j0,
                                           acc + t, 4);
                        }
                        for (; t < nt; t++) {
                            q0_tokens_pass(q8, u, n_decoded, &ts, c0 + j0, xt, x_stride, t, b + j0,
                                           acc + t, 1);
                        }
                    }
                }
                for (int64_t t = 0; t < nt; t++) {
                    float lane[Q0_ROWS];
                    _mm256_storeu_ps(lane, acc[t]);
                    memcpy(out + (t0 + t) * out_stride + r0, lane, (size_t)nr * sizeof(float));
                }
            }
        }
    }
}

/* One token (decode): as in the AVX-512 kernel (see there), each row of a group is read whole,
 * one after the other, since interleaved row streams read memory at half the speed; its block
 * sums, eight blocks per vector (lane = block), and scales wait in sums[row] and dx[row], an 8 x 8
 * transpose turns them to one row per lane, and the float chain runs as in the gemm, so the two
 * give the same bits. */

static inline void transpose_8x8(__m256i r[8]) {
    __m256i t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    /* u[4i + c], 128-bit lane L: rows 4i..4i+3 of column 4L + c */
    for (int i = 0; i < 2; i++) {
        u[4 * i] = _mm256_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x20);
        r[4 + c] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x31);
    }
}

/* The exact sums (without the bias) of 8 consecutive blocks of a row with the token's codes of
 * those blocks (y: Q8_0 blocks), lane = block. */
static inline __m256i q0_tile_sums8(bool q8, const uint8_t *blocks, const block_q8_0 *y) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i p[8];
    for (int j = 0; j < 8; j++) {
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[j].qs);
        if (q8) {
            const __m256i qx = _mm256_loadu_si256(
                (const __m256i *)(blocks + j * sizeof(block_q8_0) + offsetof(block_q8_0, qs)));
            p[j] = _mm256_madd_epi16(
                _mm256_maddubs_epi16(_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qy, qx)), ones);
        } else {
            const __m128i b = _mm_loadu_si128(
                (const __m128i *)(blocks + j * sizeof(block_q4_0) + offsetof(block_q4_0, qs)));
            const __m256i q =
                _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(0x0F));
            p[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(q, qy), ones);
        }
    }
    return hsum_each_i32_8(p);
}

/* The scales of 8 consecutive blocks as floats (lane = block). */
static inline __m256 q0_tile_scales8(const uint8_t *blocks, size_t block_bytes) {
    __m128i h = _mm_setzero_si128();
#define Q0_TILE_SCALE(j) h = _mm_insert_epi16(h, kc_load_u16(blocks + (j)*block_bytes), j)
    Q0_TILE_SCALE(0), Q0_TILE_SCALE(1), Q0_TILE_SCALE(2), Q0_TILE_SCALE(3);
    Q0_TILE_SCALE(4), Q0_TILE_SCALE(5), Q0_TILE_SCALE(6), Q0_TILE_SCALE(7);
#undef Q0_TILE_SCALE
    return _mm256_cvtph_ps(h);
}

#define Q0_GEMV_AHEAD 8192 /* bytes of the row prefetched ahead of the blocks being read */
/* Blocks of a row read in one go (8192 weights): rows up to that long are one memory stream from
 * end to end; longer ones are read in spans of it, their token side prepared per span. */
#define Q0_GEMV_SPAN 256

static inline __attribute__((always_inline)) void q0_gemv_avx2(const bool q8, int64_t n,
                                                               int64_t n_rows, const void *w,
                                                               size_t w_stride, const void *x,
                                                               float *out) {
    const size_t bb = q8 ? sizeof(block_q8_0) : sizeof(block_q4_0);
    const int64_t nb = n / QK8_0;
    const block_q8_0 *y = x;
    int32_t bias[Q0_GEMV_SPAN];           /* -offset * each block's code sum (Q4_0) */
    float dy[Q0_GEMV_SPAN];               /* each block's scale */
    int32_t sums[Q0_ROWS][Q0_GEMV_SPAN];  /* row r, block b: exact block sum (no bias) */
    float dx[Q0_ROWS][Q0_GEMV_SPAN];      /* row r, block b: scale */
    uint8_t tail[8 * sizeof(block_q8_0)]; /* a row's last, partial tile, zero-padded */
    block_q8_0 ytail[8];                  /* the token's, likewise */
    for (int64_t b0 = 0; b0 < nb; b0 += Q0_GEMV_SPAN) {
        const int64_t nbs = nb - b0 < Q0_GEMV_SPAN ? nb - b0 : Q0_GEMV_SPAN;
        for (int64_t b = 0; b < nbs; b++) {
            int s = 0;
            for (int j = 0; j < QK8_0; j++) {
                s += y[b0 + b].qs[j];
            }
            bias[b] = q8 ? 0 : -8 * s;
            dy[b] = h2f(y[b0 + b].d);
        }
        const int64_t full = nbs & ~(int64_t)7;
        if (full < nbs) {
            memset(ytail, 0, sizeof ytail);
            memcpy(ytail, y + b0 + full, (size_t)(nbs - full) * sizeof(block_q8_0));
        }
        for (int64_t r0 = 0; r0 < n_rows; r0 += Q0_ROWS) {
            const int64_t nr = n_rows - r0 < Q0_ROWS ? n_rows - r0 : Q0_ROWS;
            for (int64_t r = 0; r < Q0_ROWS; r++) {
                const int64_t row_index = r0 + (r < nr ? r : nr - 1);
                const uint8_t *row =
                    (const uint8_t *)w + (size_t)row_index * w_stride + (size_t)b0 * bb;
                /* bytes of this call's rows after this one */
                const size_t after = (size_t)(n_rows - 1 - row_index) * w_stride;
                for (int64_t b = 0; b < nbs; b += 8) {
                    const uint8_t *blocks = row + (size_t)b * bb;
                    const block_q8_0 *yb = y + b0 + b;
                    for (size_t ahead = 0; ahead < 8 * bb; ahead += 64) {
                        _mm_prefetch((const char *)(blocks + Q0_GEMV_AHEAD + ahead), _MM_HINT_T0);
                    }
                    if (b + 8 > nbs) {
                        /* the token's missing blocks are zeros, so the row's may be anything:
                         * read from the call's following rows, copied out only near its last
                         * row (see q0_gemv_vnni) */
                        yb = ytail;
                        if (after < (size_t)(b + 8 - nbs) * bb) {
                            memset(tail, 0, sizeof tail);
                            memcpy(tail, blocks, (size_t)(nbs - b) * bb);
                            blocks = tail;
                        }
                    }
                    _mm256_storeu_si256((__m256i *)&sums[r][b], q0_tile_sums8(q8, blocks, yb));
                    _mm256_storeu_ps(&dx[r][b], q0_tile_scales8(blocks, bb));
                }
            }
            float lane[Q0_ROWS] = {0.0f};
            if (b0 > 0) {
                memcpy(lane, out + r0, (size_t)nr * sizeof(float));
            }
            __m256 acc = _mm256_loadu_ps(lane);
            for (int64_t b = 0; b < nbs; b += 8) {
                __m256i t[8], d[8];
                for (int r = 0; r < Q0_ROWS; r++) {
                    t[r] = _mm256_loadu_si256((const __m256i *)&sums[r][b]);
                    d[r] = _mm256_castps_si256(_mm256_loadu_ps(&dx[r][b]));
                }
                transpose_8x8(t);
                transpose_8x8(d);
                const int64_t nj = nbs - b < 8 ? nbs - b : 8;
                for (int64_t j = 0; j < nj; j++) {
                    const __m256i s = _mm256_add_epi32(t[j], _mm256_set1_epi32(bias[b + j]));
                    acc = q0_step(acc, s, _mm256_castsi256_ps(d[j]), dy[b + j]);
                }
            }
            _mm256_storeu_ps(lane, acc);
            memcpy(out + r0, lane, (size_t)nr * sizeof(float));
        }
    }
}

/* Q4_0 (q8 false) or Q8_0 weights times Q8_0 activations: the matrix kernel, or for one token
 * the row-sequential one; rows shorter than a block are all zero. */
static void q0_matmul_avx2(bool q8, int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
                           size_t w_stride, const void *x, size_t x_stride, float *out,
                           int64_t out_stride) {
    if (n < QK8_0) {
        kc_zero_out(out, out_stride, n_rows, n_tokens);
        return;
    }
    if (n_tokens == 1) {
        q0_gemv_avx2(q8, n, n_rows, w, w_stride, x, out);
    } else {
        q0_gemm_avx2(q8, n, n_rows, n_tokens, w, w_stride, x, x_stride, out, out_stride);
    }
}

static void q4_0_gemm_avx2(int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
                           size_t w_stride, const void *x, size_t x_stride, float *out,
                           int64_t out_stride) {
    q0_matmul_avx2(false, n, n_rows, n_tokens, w, w_stride, x, x_stride, out, out_stride);
}

static void q8_0_gemm_avx2(int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
                           size_t w_stride, const void *x, size_t x_stride, float *out,
                           int64_t out_stride) {
    q0_matmul_avx2(true, n, n_rows, n_tokens, w, w_stride, x, x_stride, out, out_stride);
}

/* The row dots are the matrix kernels on one row and one token. */
static void q4_0_vec_dot_avx2(int64_t n, float *s, const void *x, const void *y) {
    q4_0_gemm_avx2(n, 1, 1, x, 0, y, 0, s, 1);
}

static void q8_0_vec_dot_avx2(int64_t n, float *s, const void *x, const void *y) {
    q8_0_gemm_avx2(n, 1, 1, x, 0, y, 0, s, 1);
}

/* ---- K-quant matrix x matrix (batched prefill; driver in kernels_common.h) -------------------
 *
 * The decoded super-block holds what the vec_dots above rebuild for every token (codes split into
 * nibbles, scales widened and broadcast), so per token only the multiplies remain. The step
 * functions repeat the vec_dots' float operations in order on the same exact integer sums. */

typedef struct q4_K_decoded_avx2 {
    __m256i lo[4], hi[4]; /* chunk c: codes of sub-blocks 2c (low nibbles) and 2c + 1 */
    __m256i sc[8];        /* sub-block scales, broadcast to 16-bit lanes */
    __m128i mins;         /* the 8 mins, 16-bit */
    float d, dmin;
} q4_K_decoded_avx2;

typedef struct k_acc_avx2 {
    __m256 acc;
    __m128 acc_m;
} k_acc_avx2;

static inline void q4_K_decode_avx2(const block_q4_K *x, q4_K_decoded_avx2 *u) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    uint8_t sc[8], mn[8];
    k4_scales_mins(x->scales, sc, mn);
    for (int c = 0; c < QK_K / 64; c++) {
        const __m256i q4 = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * c));
        u->lo[c] = _mm256_and_si256(q4, m4);
        u->hi[c] = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
    }
    for (int j = 0; j < 8; j++) {
        u->sc[j] = _mm256_set1_epi16((short)sc[j]);
    }
    u->mins = k4_mins16(mn);
    u->d = h2f(x->d);
    u->dmin = h2f(x->dmin);
}

static inline void q4_K_step_avx2(const q4_K_decoded_avx2 *u, const block_q8_K *y, k_acc_avx2 *a) {
    const float dmin = y->d * u->dmin;
    const __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)y->bsums),
                                         _mm_loadu_si128((const __m128i *)(y->bsums + 8)));
    a->acc_m =
        _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(_mm_madd_epi16(pairs, u->mins)), a->acc_m);
    const float d = y->d * u->d;
    __m256i sum0 = _mm256_setzero_si256();
    __m256i sum1 = _mm256_setzero_si256();
    for (int c = 0; c < QK_K / 64; c++) {
        const __m256i y0 = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * c));
        const __m256i y1 = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * c + 32));
        sum0 = _mm256_add_epi32(
            sum0, _mm256_madd_epi16(_mm256_maddubs_epi16(u->lo[c], y0), u->sc[2 * c]));
        sum1 = _mm256_add_epi32(
            sum1, _mm256_madd_epi16(_mm256_maddubs_epi16(u->hi[c], y1), u->sc[2 * c + 1]));
    }
    a->acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_add_epi32(sum0, sum1)),
                             a->acc);
}

/* The scaled code sums of one Q4_K or Q5_K super-block (codes lo/hi of each 64-weight chunk,
 * 16-bit sub-block scales sc) with two tokens' activations, each code vector used for both. */
static inline void k4_code_sums2(const __m256i lo[4], const __m256i hi[4], const __m256i sc[8],
                                 const block_q8_K *ya, const block_q8_K *yb, __m256i *sa,
                                 __m256i *sb) {
    __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();
    for (int c = 0; c < QK_K / 64; c++) {
        const __m256i *qa = (const __m256i *)(ya->qs + 64 * c);
        const __m256i *qb = (const __m256i *)(yb->qs + 64 * c);
        a = _mm256_add_epi32(
            a, _mm256_madd_epi16(_mm256_maddubs_epi16(lo[c], _mm256_loadu_si256(qa)), sc[2 * c]));
        b = _mm256_add_epi32(
            b, _mm256_madd_epi16(_mm256_maddubs_epi16(lo[c], _mm256_loadu_si256(qb)), sc[2 * c]));
        a = _mm256_add_epi32(
            a, _mm256_madd_epi16(_mm256_maddubs_epi16(hi[c], _mm256_loadu_si256(qa + 1)),
                                 sc[2 * c + 1]));
        b = _mm256_add_epi32(
            b, _mm256_madd_epi16(_mm256_maddubs_epi16(hi[c], _mm256_loadu_si256(qb + 1)),
                                 sc[2 * c + 1]));
    }
    *sa = a;
    *sb = b;
}

/* q4_K_step_avx2 for two tokens, each decoded vector loaded once for both. */
static inline void q4_K_step2_avx2(const q4_K_decoded_avx2 *u, const block_q8_K *ya,
                                   const block_q8_K *yb, k_acc_avx2 *a, k_acc_avx2 *b) {
    const __m128i mins = u->mins;
    const float dmin_a = ya->d * u->dmin, dmin_b = yb->d * u->dmin;
    const __m128i pairs_a = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)ya->bsums),
                                           _mm_loadu_si128((const __m128i *)(ya->bsums + 8)));
    const __m128i pairs_b = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)yb->bsums),
                                           _mm_loadu_si128((const __m128i *)(yb->bsums + 8)));
    a->acc_m =
        _mm_fmadd_ps(_mm_set1_ps(dmin_a), _mm_cvtepi32_ps(_mm_madd_epi16(pairs_a, mins)), a->acc_m);
    b->acc_m =
        _mm_fmadd_ps(_mm_set1_ps(dmin_b), _mm_cvtepi32_ps(_mm_madd_epi16(pairs_b, mins)), b->acc_m);
    __m256i sa, sb;
    k4_code_sums2(u->lo, u->hi, u->sc, ya, yb, &sa, &sb);
    a->acc = _mm256_fmadd_ps(_mm256_set1_ps(ya->d * u->d), _mm256_cvtepi32_ps(sa), a->acc);
    b->acc = _mm256_fmadd_ps(_mm256_set1_ps(yb->d * u->d), _mm256_cvtepi32_ps(sb), b->acc);
}

static inline float k_finish_avx2(const k_acc_avx2 *a) {
    return hsum_float_8(a->acc) - hsum_float_4(a->acc_m);
}

KC_DEFINE_GEMM(q4_K_gemm_avx2, block_q4_K, q4_K_decoded_avx2, k_acc_avx2, q4_K_decode_avx2,
               q4_K_step_avx2, q4_K_step2_avx2, k_finish_avx2)

typedef struct q6_K_decoded_avx2 {
    __m256i c[8];     /* half h, quarter k at 4h + k: unsigned codes 0..63 */
    __m256i scale[8]; /* the matching scale pair (scale_pair_v) */
    __m256i sc16;     /* the 16 group scales, 16-bit, for the -32 offset */
    float d;
} q6_K_decoded_avx2;

static inline void q6_K_decode_avx2(const block_q6_K *x, q6_K_decoded_avx2 *u) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m30 = _mm256_set1_epi8(0x30);
    u->sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
    for (int h = 0; h < QK_K / 128; h++) {
        const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h));
        const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h + 32));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * h));
        u->c[4 * h] = _mm256_or_si256(_mm256_and_si256(ql0, m4),
                                      _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
        u->c[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                          _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
        u->c[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                          _mm256_and_si256(qh, m30));
        u->c[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                          _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
        for (int k = 0; k < 4; k++) {
            u->scale[4 * h + k] = scale_pair_v(u->sc16, 4 * h + k);
        }
    }
    u->d = h2f(x->d);
}

static inline void q6_K_step_avx2(const q6_K_decoded_avx2 *u, const block_q8_K *y, __m256 *acc) {
    const float d = y->d * u->d;
    const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
    __m256i sum[2] = {_mm256_sub_epi32(_mm256_setzero_si256(),
                                       _mm256_slli_epi32(_mm256_madd_epi16(bs, u->sc16), 5)),
                      _mm256_setzero_si256()};
    for (int i = 0; i < 8; i++) {
        const __m256i p =
            _mm256_maddubs_epi16(u->c[i], _mm256_loadu_si256((const __m256i *)(y->qs + 32 * i)));
        sum[i & 1] = _mm256_add_epi32(sum[i & 1], _mm256_madd_epi16(p, u->scale[i]));
    }
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_add_epi32(sum[0], sum[1])),
                           *acc);
}

/* q6_K_step_avx2 for two tokens, each decoded vector loaded once for both. */
static inline void q6_K_step2_avx2(const q6_K_decoded_avx2 *u, const block_q8_K *ya,
                                   const block_q8_K *yb, __m256 *acc_a, __m256 *acc_b) {
    const __m256i sc16 = u->sc16;
    __m256i sa = _mm256_sub_epi32(
        _mm256_setzero_si256(),
        _mm256_slli_epi32(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)ya->bsums), sc16),
                          5));
    __m256i sb = _mm256_sub_epi32(
        _mm256_setzero_si256(),
        _mm256_slli_epi32(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)yb->bsums), sc16),
                          5));
    for (int i = 0; i < 8; i++) {
        const __m256i c = u->c[i], scale = u->scale[i];
        sa = _mm256_add_epi32(
            sa, _mm256_madd_epi16(
                    _mm256_maddubs_epi16(c, _mm256_loadu_si256((const __m256i *)(ya->qs + 32 * i))),
                    scale));
        sb = _mm256_add_epi32(
            sb, _mm256_madd_epi16(
                    _mm256_maddubs_epi16(c, _mm256_loadu_si256((const __m256i *)(yb->qs + 32 * i))),
                    scale));
    }
    *acc_a = _mm256_fmadd_ps(_mm256_set1_ps(ya->d * u->d), _mm256_cvtepi32_ps(sa), *acc_a);
    *acc_b = _mm256_fmadd_ps(_mm256_set1_ps(yb->d * u->d), _mm256_cvtepi32_ps(sb), *acc_b);
}

static inline float q6_K_finish_avx2(const __m256 *acc) { return hsum_float_8(*acc); }

KC_DEFINE_GEMM(q6_K_gemm_avx2, block_q6_K, q6_K_decoded_avx2, __m256, q6_K_decode_avx2,
               q6_K_step_avx2, q6_K_step2_avx2, q6_K_finish_avx2)

/* Q5_K: the decoded super-block holds the 5-bit codes (q5_K_codes), the scales broadcast and the
 * mins widened; the steps repeat q5_K_vec_dot_avx2's float operations in its order, the mins'
 * part in one scalar float per token as there. */
typedef struct q5_K_decoded_avx2 {
    __m256i lo[4], hi[4]; /* chunk c: codes of sub-blocks 2c and 2c + 1 */
    __m256i sc[8];        /* sub-block scales, broadcast to 16-bit lanes */
    __m128i mins;         /* the 8 mins, 16-bit */
    float d, dmin;
} q5_K_decoded_avx2;

typedef struct q5_K_acc_avx2 {
    __m256 acc;
    float summs; /* sum of -dmin * the integer min sum, block after block */
} q5_K_acc_avx2;

static inline void q5_K_decode_avx2(const block_q5_K *x, q5_K_decoded_avx2 *u) {
    uint8_t sc[8], mn[8];
    k4_scales_mins(x->scales, sc, mn);
    const __m256i hb = _mm256_loadu_si256((const __m256i *)x->qh);
    for (int c = 0; c < QK_K / 64; c++) {
        q5_K_codes(x->qs, hb, c, &u->lo[c], &u->hi[c]);
    }
    for (int j = 0; j < 8; j++) {
        u->sc[j] = _mm256_set1_epi16((short)sc[j]);
    }
    u->mins = k4_mins16(mn);
    u->d = h2f(x->d);
    u->dmin = h2f(x->dmin);
}

static inline void q5_K_step_avx2(const q5_K_decoded_avx2 *u, const block_q8_K *y,
                                  q5_K_acc_avx2 *a) {
    const float d = y->d * u->d;
    const float dmin = -y->d * u->dmin;
    a->summs += dmin * (float)hsum_i32_4(k4_min_terms(y->bsums, u->mins));
    __m256i sum = _mm256_setzero_si256();
    for (int c = 0; c < QK_K / 64; c++) {
        const __m256i y0 = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * c));
        const __m256i y1 = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * c + 32));
        sum = _mm256_add_epi32(sum,
                               _mm256_madd_epi16(_mm256_maddubs_epi16(u->lo[c], y0), u->sc[2 * c]));
        sum = _mm256_add_epi32(
            sum, _mm256_madd_epi16(_mm256_maddubs_epi16(u->hi[c], y1), u->sc[2 * c + 1]));
    }
    a->acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sum), a->acc);
}

/* q5_K_step_avx2 for two tokens, each decoded vector loaded once for both. */
static inline void q5_K_step2_avx2(const q5_K_decoded_avx2 *u, const block_q8_K *ya,
                                   const block_q8_K *yb, q5_K_acc_avx2 *a, q5_K_acc_avx2 *b) {
    const float dmin_a = -ya->d * u->dmin, dmin_b = -yb->d * u->dmin;
    a->summs += dmin_a * (float)hsum_i32_4(k4_min_terms(ya->bsums, u->mins));
    b->summs += dmin_b * (float)hsum_i32_4(k4_min_terms(yb->bsums, u->mins));
    __m256i sa, sb;
    k4_code_sums2(u->lo, u->hi, u->sc, ya, yb, &sa, &sb);
    a->acc = _mm256_fmadd_ps(_mm256_set1_ps(ya->d * u->d), _mm256_cvtepi32_ps(sa), a->acc);
    b->acc = _mm256_fmadd_ps(_mm256_set1_ps(yb->d * u->d), _mm256_cvtepi32_ps(sb), b->acc);
}

static inline float q5_K_finish_avx2(const q5_K_acc_avx2 *a) {
    return hsum_float_8(a->acc) + a->summs;
}

KC_DEFINE_GEMM(q5_K_gemm_avx2, block_q5_K, q5_K_decoded_avx2, q5_K_acc_avx2, q5_K_decode_avx2,
               q5_K_step_avx2, q5_K_step2_avx2, q5_K_finish_avx2)

/* ---- registration ---------------------------------------------------------------------------- */

void kernels_fill_avx2(kernel_table *t) {
    KC_FILL_F16_ROWS(t, avx2);
    t->f16_mad_row = f16_mad_row_avx2;
    t->vec_dot[TENSOR_TYPE_F16] = f16_vec_dot_avx2;

    KC_FILL_Q8_FROM_FLOAT(t, avx2);

    t->vec_dot[TENSOR_TYPE_Q4_0] = q4_0_vec_dot_avx2;
    t->gemm[TENSOR_TYPE_Q4_0] = q4_0_gemm_avx2;
    t->gemv[TENSOR_TYPE_Q4_0] = q4_0_gemm_avx2;
    t->vec_dot[TENSOR_TYPE_Q8_0] = q8_0_vec_dot_avx2;
    t->gemm[TENSOR_TYPE_Q8_0] = q8_0_gemm_avx2;
    t->gemv[TENSOR_TYPE_Q8_0] = q8_0_gemm_avx2;
    t->vec_dot[TENSOR_TYPE_Q4_1] = q4_1_vec_dot_avx2;
    t->gemm[TENSOR_TYPE_Q4_1] = q4_1_gemm_avx2;
    t->vec_dot[TENSOR_TYPE_Q5_0] = q5_0_vec_dot_avx2;
    t->gemm[TENSOR_TYPE_Q5_0] = q5_0_gemm_avx2;
    t->vec_dot[TENSOR_TYPE_Q5_1] = q5_1_vec_dot_avx2;

    t->vec_dot[TENSOR_TYPE_Q2_K] = q2_K_vec_dot_avx2;
    t->vec_dot[TENSOR_TYPE_Q3_K] = q3_K_vec_dot_avx2;
    t->vec_dot[TENSOR_TYPE_Q4_K] = q4_K_vec_dot_avx2;
    t->vec_dot[TENSOR_TYPE_Q5_K] = q5_K_vec_dot_avx2;
    t->vec_dot[TENSOR_TYPE_Q6_K] = q6_K_vec_dot_avx2;
    t->gemm[TENSOR_TYPE_Q4_K] = q4_K_gemm_avx2;
    t->gemm[TENSOR_TYPE_Q5_K] = q5_K_gemm_avx2;
    t->gemm[TENSOR_TYPE_Q6_K] = q6_K_gemm_avx2;
}
