/* kernels_avx2.c - AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c only; reached
 * through kernels.c, which calls kernels_fill_avx2 only when CPUID/XGETBV report all three).
 *
 * Bit-identical to the reference: the activation quantizers (Q8_0, Q8_1, Q8_K), the fp16 rows,
 * the x86-order F16/Q4_0/Q8_0 dots (their 8- and 16-lane float orders are the natural AVX
 * orders) and the Q4_1/Q5_0/Q5_1 dots (exact integer block sums, then the reference's scalar
 * float steps). The K-quant dots keep one float accumulator per 8 lanes and are within the
 * tolerance test_kernels names. Precondition shared with ggml's kernels: Q8 codes are in
 * -127..127 (the quantizers never produce -128).
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

/* Q4_0 codes minus 8 dotted with Q8_0 codes, 8 lanes of 4 products each (exact for any y). */
static inline __m256i q4_0_lanes(const block_q4_0 *x, const block_q8_0 *y) {
    const __m256i q = unpack_nibbles_32(x->qs);
    const __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, qy),
                                       _mm256_maddubs_epi16(_mm256_set1_epi8(8), qy));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

static void q4_0_vec_dot_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(q4_0_lanes(&x[i], &y[i])), acc);
    }
    *s = hsum_float_8(acc);
}

static void q4_0_vec_dot_repacked_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    float acc = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const int sumi = hsum_i32_8(q4_0_lanes(&x[i], &y[i]));
        acc = fmaf((float)sumi, h2f(x[i].d) * h2f(y[i].d), acc);
    }
    *s = acc;
}

/* x, y signed bytes (x != -128): lane l = products 4l..4l+3. */
static inline __m256i dot4_i8_i8(__m256i x, __m256i y) {
    return dot4_u8_i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

static void q8_0_vec_dot_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q8_0 *x = vx;
    const block_q8_0 *y = vy;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        const __m256i qx = _mm256_loadu_si256((const __m256i *)x[i].qs);
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot4_i8_i8(qx, qy)), acc);
    }
    *s = hsum_float_8(acc);
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

/* sum over the 8 sub-blocks of mins[j] * (bsums[2j] + bsums[2j+1]), as 4 int32 lanes. */
static inline __m128i k4_min_terms(const int16_t bsums[16], const uint8_t mins[8]) {
    const __m128i b0 = _mm_loadu_si128((const __m128i *)bsums);
    const __m128i b1 = _mm_loadu_si128((const __m128i *)(bsums + 8));
    uint64_t m;
    memcpy(&m, mins, sizeof m);
    const __m128i m16 = _mm_cvtepu8_epi16(_mm_set_epi64x(0, (long long)m));
    return _mm_madd_epi16(_mm_hadd_epi16(b0, b1), m16);
}

/* The part of a Q4_K/Q5_K block dot before the codes: the 8 scales to sc, dmin * the min terms
 * added to *acc_m; returns the block's d (dy * dx). */
static inline float k4_block_head(fp16_t xd, fp16_t xdmin, const uint8_t packed[12],
                                  const block_q8_K *y, uint8_t sc[8], __m128 *acc_m) {
    uint8_t mn[8];
    k4_scales_mins(packed, sc, mn);
    const float dmin = y->d * h2f(xdmin);
    *acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(k4_min_terms(y->bsums, mn)), *acc_m);
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

/* ggml's AVX2 order exactly (q5_K_vec_dot_x86): the mins in one scalar float, not in lanes. */
static void q5_K_vec_dot_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_K *x = vx;
    const block_q8_K *y = vy;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t sc[8], mn[8];
        k4_scales_mins(x[i].scales, sc, mn);
        const float d = y[i].d * h2f(x[i].d);
        const float dmin = -y[i].d * h2f(x[i].dmin);
        const __m128i prod = k4_min_terms(y[i].bsums, mn);
        const __m128i pair = _mm_add_epi32(prod, _mm_unpackhi_epi64(prod, prod));
        summs += dmin * (float)_mm_cvtsi128_si32(_mm_add_epi32(pair, _mm_shuffle_epi32(pair, 1)));
        const __m256i hb = _mm256_loadu_si256((const __m256i *)x[i].qh);
        __m256i sum = _mm256_setzero_si256();
        for (int c = 0; c < QK_K / 64; c++) {
            const __m256i q4 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));
            /* bit 2c of qh byte l is the 5th bit of weight 64c + l, bit 2c + 1 of 64c + 32 + l */
            const __m256i h0 =
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c), one), 4);
            const __m256i h1 =
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c + 1), one), 4);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(q4, m4), h0);
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4, 4), m4), h1);
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

/* Q8_0 matrix x matrix: four tokens per pass over a row, each weight block loaded (and its signs
 * taken) once for the four; per token exactly q8_0_vec_dot_avx2's operations in its order. */
static void q8_0_gemm_avx2(int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
                           size_t w_stride, const void *x, size_t x_stride, float *out,
                           int64_t out_stride) {
    const int64_t nb = n / QK8_0;
    const __m256i ones16 = _mm256_set1_epi16(1);
    for (int64_t r = 0; r < n_rows; r++) {
        const block_q8_0 *xr = (const block_q8_0 *)((const uint8_t *)w + (size_t)r * w_stride);
        for (int64_t t0 = 0; t0 < n_tokens; t0 += 4) {
            const block_q8_0 *y[4]; /* tokens past the end repeat the last one */
            const int64_t nt = kc_q8_0_token_group(x, x_stride, t0, n_tokens, 4, y);
            __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                             _mm256_setzero_ps()};
            for (int64_t i = 0; i < nb; i++) {
                const float dx = h2f(xr[i].d);
                const __m256i qx = _mm256_loadu_si256((const __m256i *)xr[i].qs);
                const __m256i ax = _mm256_sign_epi8(qx, qx);
                for (int k = 0; k < 4; k++) {
                    const __m256i qy = _mm256_loadu_si256((const __m256i *)y[k][i].qs);
                    const __m256i lanes = _mm256_madd_epi16(
                        _mm256_maddubs_epi16(ax, _mm256_sign_epi8(qy, qx)), ones16);
                    acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dx * h2f(y[k][i].d)),
                                             _mm256_cvtepi32_ps(lanes), acc[k]);
                }
            }
            for (int64_t k = 0; k < nt; k++) {
                out[(t0 + k) * out_stride + r] = hsum_float_8(acc[k]);
            }
        }
    }
}

/* ---- Q4_0 matrix x matrix in llama.cpp's repacked order ----------------------------------------
 *
 * q4_0_vec_dot_repacked_avx2 runs one scalar fmaf chain per (row, token), block after block,
 * which is slow one dot at a time. Here eight tokens of one row run in the eight float lanes:
 * lane k does exactly fmaf((float)sumi_k, dx * dy_k, acc_k) per block, in block order, so each
 * result is bit-identical to that dot. The integer block sums are formed as sum(q * y) - 8 *
 * sum(y), with sum(y) and the token scales computed once per token and block for all rows. */

/* lane k = the sum of the 8 int32 lanes of v[k] */
static inline __m256i hsum_8x8_i32(const __m256i v[8]) {
    const __m256i a =
        _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    const __m256i b =
        _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                            _mm256_permute2x128_si256(a, b, 0x31));
}

static void q4_0_repacked_gemm_avx2(int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
                                    size_t w_stride, const void *x, size_t x_stride, float *out,
                                    int64_t out_stride) {
    const int64_t nb = n / QK4_0;
    const __m256i ones16 = _mm256_set1_epi16(1);
    const __m256i ones8 = _mm256_set1_epi8(1);
    float yd[KC_Q4_0_GEMM_BLOCKS][8];      /* token scales */
    int32_t ysum8[KC_Q4_0_GEMM_BLOCKS][8]; /* 8 * sum of the token's codes */
    __m256 acc[KC_Q4_0_GEMM_ROWS];
    for (int64_t r0 = 0; r0 < n_rows; r0 += KC_Q4_0_GEMM_ROWS) {
        const int64_t nr = n_rows - r0 < KC_Q4_0_GEMM_ROWS ? n_rows - r0 : KC_Q4_0_GEMM_ROWS;
        for (int64_t t0 = 0; t0 < n_tokens; t0 += 8) {
            const block_q8_0 *y[8]; /* tokens past the end repeat the last one */
            const int64_t nt = kc_q8_0_token_group(x, x_stride, t0, n_tokens, 8, y);
            for (int64_t r = 0; r < nr; r++) {
                acc[r] = _mm256_setzero_ps();
            }
            for (int64_t b0 = 0; b0 < nb; b0 += KC_Q4_0_GEMM_BLOCKS) {
                const int64_t nbc = nb - b0 < KC_Q4_0_GEMM_BLOCKS ? nb - b0 : KC_Q4_0_GEMM_BLOCKS;
                for (int64_t j = 0; j < nbc; j++) {
                    for (int k = 0; k < 8; k++) {
                        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[k][b0 + j].qs);
                        ysum8[j][k] =
                            8 *
                            hsum_i32_8(_mm256_madd_epi16(_mm256_maddubs_epi16(ones8, qy), ones16));
                        yd[j][k] = h2f(y[k][b0 + j].d);
                    }
                }
                for (int64_t r = 0; r < nr; r++) {
                    const block_q4_0 *xr =
                        (const block_q4_0 *)((const uint8_t *)w + (size_t)(r0 + r) * w_stride) + b0;
                    __m256 a = acc[r];
                    for (int64_t j = 0; j < nbc; j++) {
                        const __m256i q = unpack_nibbles_32(xr[j].qs);
                        __m256i lanes[8];
                        for (int k = 0; k < 8; k++) {
                            const __m256i qy = _mm256_loadu_si256((const __m256i *)y[k][b0 + j].qs);
                            lanes[k] = _mm256_madd_epi16(_mm256_maddubs_epi16(q, qy), ones16);
                        }
                        const __m256i sumi = _mm256_sub_epi32(
                            hsum_8x8_i32(lanes), _mm256_loadu_si256((const __m256i *)ysum8[j]));
                        const __m256 d =
                            _mm256_mul_ps(_mm256_set1_ps(h2f(xr[j].d)), _mm256_loadu_ps(yd[j]));
                        a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), d, a);
                    }
                    acc[r] = a;
                }
            }
            for (int64_t r = 0; r < nr; r++) {
                float lane[8];
                _mm256_storeu_ps(lane, acc[r]);
                for (int64_t k = 0; k < nt; k++) {
                    out[(t0 + k) * out_stride + r0 + r] = lane[k];
                }
            }
        }
    }
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
    uint64_t m;
    memcpy(&m, mn, sizeof m);
    u->mins = _mm_cvtepu8_epi16(_mm_set_epi64x(0, (long long)m));
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
    __m256i sa = _mm256_setzero_si256(), sb = _mm256_setzero_si256();
    for (int c = 0; c < QK_K / 64; c++) {
        const __m256i lo = u->lo[c], hi = u->hi[c];
        const __m256i s_lo = u->sc[2 * c], s_hi = u->sc[2 * c + 1];
        const __m256i *qa = (const __m256i *)(ya->qs + 64 * c);
        const __m256i *qb = (const __m256i *)(yb->qs + 64 * c);
        sa = _mm256_add_epi32(
            sa, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256(qa)), s_lo));
        sb = _mm256_add_epi32(
            sb, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256(qb)), s_lo));
        sa = _mm256_add_epi32(
            sa, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, _mm256_loadu_si256(qa + 1)), s_hi));
        sb = _mm256_add_epi32(
            sb, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, _mm256_loadu_si256(qb + 1)), s_hi));
    }
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

/* ---- registration ---------------------------------------------------------------------------- */

void kernels_fill_avx2(kernel_table *t) {
    KC_FILL_F16_ROWS(t, avx2);
    t->f16_mad_row = f16_mad_row_avx2;
    t->vec_dot[TENSOR_TYPE_F16] = f16_vec_dot_avx2;

    KC_FILL_Q8_FROM_FLOAT(t, avx2);

    t->vec_dot[TENSOR_TYPE_Q4_0] = q4_0_vec_dot_avx2;
    t->q4_0_repacked_vec_dot = q4_0_vec_dot_repacked_avx2;
    t->q4_0_repacked_gemm = q4_0_repacked_gemm_avx2;
    t->vec_dot[TENSOR_TYPE_Q8_0] = q8_0_vec_dot_avx2;
    t->gemm[TENSOR_TYPE_Q8_0] = q8_0_gemm_avx2;
    t->vec_dot[TENSOR_TYPE_Q4_1] = q4_1_vec_dot_avx2;
    t->vec_dot[TENSOR_TYPE_Q5_0] = q5_0_vec_dot_avx2;
    t->vec_dot[TENSOR_TYPE_Q5_1] = q5_1_vec_dot_avx2;

    t->vec_dot[TENSOR_TYPE_Q2_K] = q2_K_vec_dot_avx2;
    t->vec_dot[TENSOR_TYPE_Q3_K] = q3_K_vec_dot_avx2;
    t->vec_dot[TENSOR_TYPE_Q4_K] = q4_K_vec_dot_avx2;
    t->vec_dot[TENSOR_TYPE_Q5_K] = q5_K_vec_dot_avx2;
    t->vec_dot[TENSOR_TYPE_Q6_K] = q6_K_vec_dot_avx2;
    t->gemm[TENSOR_TYPE_Q4_K] = q4_K_gemm_avx2;
    t->gemm[TENSOR_TYPE_Q6_K] = q6_K_gemm_avx2;
}
