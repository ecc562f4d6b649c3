/* kernels_sse2.c - SSE2 kernels, the x86 baseline (compiled with -msse2 only; reached through
 * kernels.c when CPUID reports SSE2 and nothing better is selected or forced).
 *
 * SSE2 has no byte shuffles, no u8 x s8 multiply-add and no FMA, so codes are widened to int16
 * and multiplied with pmaddwd. Bit-identical to the reference: the quantizers and the fp16 rows
 * (the bit-exact float-magic conversions of fp16.h, four lanes at a time). Q4_0/Q8_0 (matrix
 * kernels and dots): exact integer block sums, the reference's block order without its fused
 * multiply-add; K-quant dots: one float accumulator of 4 lanes; both within test_kernels'
 * tolerance.
 * Types not here fall back to the reference through the table.
 */
#include "kernels/kernel_table.h"
#include "kernels/kernels_common.h"
#include "kernels/quant_ref.h"

#include <emmintrin.h>
#include <math.h>
#include <string.h>

/* ---- helpers --------------------------------------------------------------------------------- */

static inline int hsum_i32_4(__m128i v) {
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(v);
}

static inline float hsum_f32_4(__m128 v) {
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_shuffle_ps(v, v, 1));
    return _mm_cvtss_f32(v);
}

static inline float hmax_f32_4(__m128 v) {
    v = _mm_max_ps(v, _mm_movehl_ps(v, v));
    v = _mm_max_ss(v, _mm_shuffle_ps(v, v, 1));
    return _mm_cvtss_f32(v);
}

static inline __m128 abs_ps(__m128 x) { return _mm_andnot_ps(_mm_set1_ps(-0.0f), x); }

/* Sign-extend the low / high 8 bytes of v to int16. */
static inline __m128i i8_lo16(__m128i v) { return _mm_srai_epi16(_mm_unpacklo_epi8(v, v), 8); }

static inline __m128i i8_hi16(__m128i v) { return _mm_srai_epi16(_mm_unpackhi_epi8(v, v), 8); }

static inline __m128i u8_lo16(__m128i v) { return _mm_unpacklo_epi8(v, _mm_setzero_si128()); }

static inline __m128i u8_hi16(__m128i v) { return _mm_unpackhi_epi8(v, _mm_setzero_si128()); }

/* Sums of 16 byte products a*b (a, b already int16 halves): 4 int32 lanes. */
static inline __m128i dot16(__m128i a_lo, __m128i a_hi, __m128i b_lo, __m128i b_hi) {
    return _mm_add_epi32(_mm_madd_epi16(a_lo, b_lo), _mm_madd_epi16(a_hi, b_hi));
}

/* ---- fp16 rows: fp16.h's float-magic conversions, four lanes at a time ------------------------
 */

static inline __m128 half_to_float4(__m128i h32) {
    const __m128i w = _mm_slli_epi32(h32, 16);
    const __m128i sign = _mm_and_si128(w, _mm_set1_epi32((int)0x80000000u));
    const __m128i two_w = _mm_add_epi32(w, w);
    const __m128 normalized =
        _mm_mul_ps(_mm_castsi128_ps(
                       _mm_add_epi32(_mm_srli_epi32(two_w, 4), _mm_set1_epi32((int)(0xE0u << 23)))),
                   _mm_castsi128_ps(_mm_set1_epi32(0x7800000)));
    const __m128 denormalized = _mm_sub_ps(
        _mm_castsi128_ps(_mm_or_si128(_mm_srli_epi32(two_w, 17), _mm_set1_epi32(126 << 23))),
        _mm_set1_ps(0.5f));
    /* two_w < 2^27, unsigned: compare two_w >> 1 (non-negative) with 2^26 */
    const __m128i is_denorm = _mm_cmplt_epi32(_mm_srli_epi32(two_w, 1), _mm_set1_epi32(1 << 26));
    const __m128i bits = _mm_or_si128(_mm_and_si128(is_denorm, _mm_castps_si128(denormalized)),
                                      _mm_andnot_si128(is_denorm, _mm_castps_si128(normalized)));
    return _mm_castsi128_ps(_mm_or_si128(sign, bits));
}

/* Four halves in the low 16 bits of each int32 lane. */
static inline __m128i float4_to_half(__m128 f) {
    const __m128i w = _mm_castps_si128(f);
    const __m128 base0 =
        _mm_mul_ps(_mm_mul_ps(abs_ps(f), _mm_castsi128_ps(_mm_set1_epi32(0x77800000))),
                   _mm_castsi128_ps(_mm_set1_epi32(0x08800000)));
    const __m128i shl1_w = _mm_add_epi32(w, w);
    const __m128i sign = _mm_and_si128(w, _mm_set1_epi32((int)0x80000000u));
    __m128i bias = _mm_and_si128(shl1_w, _mm_set1_epi32((int)0xFF000000u));
    /* bias < 0x71000000 (unsigned) -> 0x71000000; compare bias >> 1 (non-negative) */
    const __m128i small = _mm_cmplt_epi32(_mm_srli_epi32(bias, 1), _mm_set1_epi32(0x71000000 >> 1));
    bias = _mm_or_si128(_mm_andnot_si128(small, bias),
                        _mm_and_si128(small, _mm_set1_epi32(0x71000000)));
    const __m128 base = _mm_add_ps(
        _mm_castsi128_ps(_mm_add_epi32(_mm_srli_epi32(bias, 1), _mm_set1_epi32(0x07800000))),
        base0);
    const __m128i bits = _mm_castps_si128(base);
    const __m128i exp_bits = _mm_and_si128(_mm_srli_epi32(bits, 13), _mm_set1_epi32(0x7C00));
    const __m128i mant_bits = _mm_and_si128(bits, _mm_set1_epi32(0x0FFF));
    const __m128i nonsign = _mm_add_epi32(exp_bits, mant_bits);
    /* shl1_w > 0xFF000000 (unsigned): NaN */
    const __m128i nan = _mm_cmpgt_epi32(_mm_srli_epi32(shl1_w, 1), _mm_set1_epi32(0x7F800000));
    const __m128i h =
        _mm_or_si128(_mm_and_si128(nan, _mm_set1_epi32(0x7E00)), _mm_andnot_si128(nan, nonsign));
    return _mm_or_si128(_mm_srli_epi32(sign, 16), h);
}

/* Eight halves from two vectors of four (each in the low 16 bits of its lanes). */
static inline __m128i pack_halves(__m128i a, __m128i b) {
    /* sign-extend the 16-bit values so the signed-saturating pack keeps their bits */
    a = _mm_srai_epi32(_mm_slli_epi32(a, 16), 16);
    b = _mm_srai_epi32(_mm_slli_epi32(b, 16), 16);
    return _mm_packs_epi32(a, b);
}

static void fp16_to_fp32_row_sse2(const fp16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128((const __m128i *)(x + i));
        _mm_storeu_ps(y + i, half_to_float4(_mm_unpacklo_epi16(h, _mm_setzero_si128())));
        _mm_storeu_ps(y + i + 4, half_to_float4(_mm_unpackhi_epi16(h, _mm_setzero_si128())));
    }
    fp16_to_fp32_row_ref(x + i, y + i, n - i);
}

static void fp32_to_fp16_row_sse2(const float *x, fp16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i a = float4_to_half(_mm_loadu_ps(x + i));
        const __m128i b = float4_to_half(_mm_loadu_ps(x + i + 4));
        _mm_storeu_si128((__m128i *)(y + i), pack_halves(a, b));
    }
    fp32_to_fp16_row_ref(x + i, y + i, n - i);
}

static void f16_scale_row_sse2(fp16_t *y, float s, int64_t n) {
    const __m128 vs = _mm_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128((const __m128i *)(y + i));
        const __m128 a = _mm_mul_ps(half_to_float4(_mm_unpacklo_epi16(h, _mm_setzero_si128())), vs);
        const __m128 b = _mm_mul_ps(half_to_float4(_mm_unpackhi_epi16(h, _mm_setzero_si128())), vs);
        _mm_storeu_si128((__m128i *)(y + i), pack_halves(float4_to_half(a), float4_to_half(b)));
    }
    f16_scale_row_ref(y + i, s, n - i);
}

KC_DEFINE_F16_CONVERSIONS(sse2)

/* ---- activation quantizers (bit-identical to the reference) --------------------------------- */

/* roundf of each lane (half away from zero), as int32; |v| < 2^31. */
static inline __m128i round_half_away_i32(__m128 v) {
    const __m128i t = _mm_cvttps_epi32(v);
    const __m128 frac = abs_ps(_mm_sub_ps(v, _mm_cvtepi32_ps(t))); /* exact */
    const __m128i up = _mm_castps_si128(_mm_cmpge_ps(frac, _mm_set1_ps(0.5f)));
    /* +1 or -1 by the sign of v: (v < 0 ? -1 : 1) = 1 | (sign mask as all ones) */
    const __m128i neg = _mm_castps_si128(_mm_cmplt_ps(v, _mm_setzero_ps()));
    const __m128i step = _mm_or_si128(neg, _mm_set1_epi32(1));
    return _mm_add_epi32(t, _mm_and_si128(up, step));
}

/* ggml's nearest_int (ties to even) exactly as the reference computes it: |v| <= 2^22. */
static inline __m128i nearest_int4(__m128 v) {
    const __m128 biased = _mm_add_ps(v, _mm_set1_ps(12582912.0f));
    return _mm_sub_epi32(_mm_and_si128(_mm_castps_si128(biased), _mm_set1_epi32(0x007fffff)),
                         _mm_set1_epi32(0x00400000));
}

/* 16 int32 (four vectors) -> 16 signed bytes, in order (values in -128..127). */
static inline __m128i pack_i32x16_to_i8(__m128i a, __m128i b, __m128i c, __m128i d) {
    return _mm_packs_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(c, d));
}

static int quantize_block_q8(const float *x, float *d_out, int8_t *qs) {
    __m128 v[8];
    __m128 amax = _mm_setzero_ps();
    for (int k = 0; k < 8; k++) {
        v[k] = _mm_loadu_ps(x + 4 * k);
        amax = _mm_max_ps(amax, abs_ps(v[k]));
    }
    const float d = hmax_f32_4(amax) / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    *d_out = d;
    const __m128 vid = _mm_set1_ps(id);
    __m128i q[8];
    __m128i sum = _mm_setzero_si128();
    for (int k = 0; k < 8; k++) {
        q[k] = round_half_away_i32(_mm_mul_ps(v[k], vid));
        sum = _mm_add_epi32(sum, q[k]);
    }
    _mm_storeu_si128((__m128i *)qs, pack_i32x16_to_i8(q[0], q[1], q[2], q[3]));
    _mm_storeu_si128((__m128i *)(qs + 16), pack_i32x16_to_i8(q[4], q[5], q[6], q[7]));
    return hsum_i32_4(sum);
}

KC_DEFINE_Q8_FROM_FLOAT(sse2, quantize_block_q8)

static void q8_K_from_float_sse2(const float *src, void *dst, int64_t n) {
    block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        __m128 vmax = _mm_setzero_ps();
        for (int j = 0; j < QK_K; j += 4) {
            vmax = _mm_max_ps(vmax, abs_ps(_mm_loadu_ps(x + j)));
        }
        const float amax = hmax_f32_4(vmax);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.0f / x[kc_q8_K_first_max(x, amax)];
        const __m128 vs = _mm_set1_ps(iscale);
        const __m128i v127 = _mm_set1_epi32(127);
        for (int j = 0; j < QK_K; j += 16) {
            __m128i q[4];
            for (int k = 0; k < 4; k++) {
                q[k] = nearest_int4(_mm_mul_ps(vs, _mm_loadu_ps(x + j + 4 * k)));
                const __m128i over = _mm_cmpgt_epi32(q[k], v127);
                q[k] = _mm_or_si128(_mm_andnot_si128(over, q[k]), _mm_and_si128(over, v127));
            }
            _mm_storeu_si128((__m128i *)(y[i].qs + j), pack_i32x16_to_i8(q[0], q[1], q[2], q[3]));
            y[i].bsums[j / 16] = (int16_t)hsum_i32_4(
                _mm_add_epi32(_mm_add_epi32(q[0], q[1]), _mm_add_epi32(q[2], q[3])));
        }
        y[i].d = 1 / iscale;
    }
}

/* ---- Q4_0 / Q8_0 matrix kernels ----------------------------------------------------------------
 *
 * The traits' order per (row, token) (kernels_common.h), without FMA: acc = acc + (float)sumi *
 * (dx * dy), rounded twice, block after block. A row's blocks are widened to int16 codes once per
 * chunk of blocks and dotted with every token of the call (pmaddwd), whose codes are widened once
 * per chunk for a group of rows. One token (decode) reads each row whole, one after the other
 * (one memory stream). The vec_dot is this kernel on one row. */

#define Q0_SSE2_ROWS 16  /* rows sharing the tokens' widened codes of a chunk */
#define Q0_SSE2_CHUNK 16 /* blocks per chunk with several tokens */

/* Block j of a row (block_bytes apart) as 32 int16 codes (q - 8 for Q4_0, q for Q8_0) in
 * weight order, and its scale. */
static inline float q0_widen_block(bool q8, const uint8_t *block, __m128i c[4]) {
    if (q8) {
        const __m128i a = _mm_loadu_si128((const __m128i *)(block + offsetof(block_q8_0, qs)));
        const __m128i b = _mm_loadu_si128((const __m128i *)(block + offsetof(block_q8_0, qs) + 16));
        c[0] = i8_lo16(a), c[1] = i8_hi16(a), c[2] = i8_lo16(b), c[3] = i8_hi16(b);
    } else {
        const __m128i q = _mm_loadu_si128((const __m128i *)(block + offsetof(block_q4_0, qs)));
        const __m128i m4 = _mm_set1_epi8(0x0F), eight = _mm_set1_epi16(8);
        const __m128i lo = _mm_and_si128(q, m4), hi = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
        c[0] = _mm_sub_epi16(u8_lo16(lo), eight), c[1] = _mm_sub_epi16(u8_hi16(lo), eight);
        c[2] = _mm_sub_epi16(u8_lo16(hi), eight), c[3] = _mm_sub_epi16(u8_hi16(hi), eight);
    }
    return fp16_to_fp32((fp16_t)kc_load_u16(block));
}

static inline int q0_dot32(const __m128i x[4], const __m128i y[4]) {
    const __m128i s =
        _mm_add_epi32(_mm_add_epi32(_mm_madd_epi16(x[0], y[0]), _mm_madd_epi16(x[1], y[1])),
                      _mm_add_epi32(_mm_madd_epi16(x[2], y[2]), _mm_madd_epi16(x[3], y[3])));
    return hsum_i32_4(s);
}

static inline __attribute__((always_inline)) void
q0_gemm_sse2(const bool q8, int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
             size_t w_stride, const void *x, size_t x_stride, float *out, int64_t out_stride) {
    const size_t bb = q8 ? sizeof(block_q8_0) : sizeof(block_q4_0);
    const int64_t nb = n / QK8_0;
    /* the tokens' widened codes and scales of one chunk: token t, block j at [t * chunk + j] */
    __m128i yw[KC_Q0_TOKENS * Q0_SSE2_CHUNK][4];
    float dy[KC_Q0_TOKENS * Q0_SSE2_CHUNK];
    __m128i xw[4];
    for (int64_t t0 = 0; t0 < n_tokens; t0 += KC_Q0_TOKENS) {
        const int64_t nt = n_tokens - t0 < KC_Q0_TOKENS ? n_tokens - t0 : KC_Q0_TOKENS;
        /* one token: all its blocks fit the buffer in chunks of nt * chunk, rows one by one */
        const int64_t chunk = Q0_SSE2_CHUNK * (KC_Q0_TOKENS / nt);
        const int64_t group = nt == 1 ? n_rows : Q0_SSE2_ROWS;
        for (int64_t r0 = 0; r0 < n_rows; r0 += group) {
            const int64_t r1 = r0 + group < n_rows ? r0 + group : n_rows;
            for (int64_t c0 = 0; c0 < nb; c0 += chunk) {
                const int64_t nc = nb - c0 < chunk ? nb - c0 : chunk;
                for (int64_t t = 0; t < nt; t++) {
                    const block_q8_0 *y =
                        (const block_q8_0 *)((const uint8_t *)x + (size_t)(t0 + t) * x_stride) + c0;
                    for (int64_t j = 0; j < nc; j++) {
                        dy[t * chunk + j] =
                            q0_widen_block(true, (const uint8_t *)&y[j], yw[t * chunk + j]);
                    }
                }
                for (int64_t r = r0; r < r1; r++) {
                    const uint8_t *row =
                        (const uint8_t *)w + (size_t)r * w_stride + (size_t)c0 * bb;
                    float acc[KC_Q0_TOKENS];
                    for (int64_t t = 0; t < nt; t++) {
                        acc[t] = c0 == 0 ? 0.0f : out[(t0 + t) * out_stride + r];
                    }
                    for (int64_t j = 0; j < nc; j++) {
                        const float dx = q0_widen_block(q8, row + (size_t)j * bb, xw);
                        for (int64_t t = 0; t < nt; t++) {
                            const int sumi = q0_dot32(xw, yw[t * chunk + j]);
                            acc[t] = acc[t] + (float)sumi * (dx * dy[t * chunk + j]);
                        }
                    }
                    for (int64_t t = 0; t < nt; t++) {
                        out[(t0 + t) * out_stride + r] = acc[t];
                    }
                }
            }
        }
    }
}

/* Q4_0 (q8 false) or Q8_0 weights times Q8_0 activations: the matrix kernel, or for one token
 * the row-sequential one; rows shorter than a block are all zero. */
static void q0_matmul_sse2(bool q8, int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
                           size_t w_stride, const void *x, size_t x_stride, float *out,
                           int64_t out_stride) {
    if (n < QK8_0) {
        kc_zero_out(out, out_stride, n_rows, n_tokens);
        return;
    }
    q0_gemm_sse2(q8, n, n_rows, n_tokens, w, w_stride, x, x_stride, out, out_stride);
}

static void q4_0_gemm_sse2(int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
                           size_t w_stride, const void *x, size_t x_stride, float *out,
                           int64_t out_stride) {
    q0_matmul_sse2(false, n, n_rows, n_tokens, w, w_stride, x, x_stride, out, out_stride);
}

static void q8_0_gemm_sse2(int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
                           size_t w_stride, const void *x, size_t x_stride, float *out,
                           int64_t out_stride) {
    q0_matmul_sse2(true, n, n_rows, n_tokens, w, w_stride, x, x_stride, out, out_stride);
}

static void q4_0_vec_dot_sse2(int64_t n, float *s, const void *x, const void *y) {
    q4_0_gemm_sse2(n, 1, 1, x, 0, y, 0, s, 1);
}

static void q8_0_vec_dot_sse2(int64_t n, float *s, const void *x, const void *y) {
    q8_0_gemm_sse2(n, 1, 1, x, 0, y, 0, s, 1);
}

/* ---- K-quants -------------------------------------------------------------------------------- */

/* sum of scale * code * q8 over 32 weights: 32 unsigned code bytes in c0 (weights 0-15) and c1
 * (16-31), scaled codes kept in int16 (|code * scale| < 2^15). */
static inline __m128i scaled_dot32(__m128i c0, __m128i c1, __m128i scale16, const int8_t *q8) {
    const __m128i y0 = _mm_loadu_si128((const __m128i *)q8);
    const __m128i y1 = _mm_loadu_si128((const __m128i *)(q8 + 16));
    const __m128i a = dot16(_mm_mullo_epi16(u8_lo16(c0), scale16),
                            _mm_mullo_epi16(u8_hi16(c0), scale16), i8_lo16(y0), i8_hi16(y0));
    const __m128i b = dot16(_mm_mullo_epi16(u8_lo16(c1), scale16),
                            _mm_mullo_epi16(u8_hi16(c1), scale16), i8_lo16(y1), i8_hi16(y1));
    return _mm_add_epi32(a, b);
}

static void q4_K_vec_dot_sse2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m128 acc = _mm_setzero_ps();
    float sum_mins = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * fp16_to_fp32(x[i].d);
        const float dmin = y[i].d * fp16_to_fp32(x[i].dmin);
        uint8_t sc[8];
        const int isum_m = kc_q4_K_scales_and_min_sum(&x[i], &y[i], sc);
        sum_mins += dmin * (float)isum_m;
        __m128i sum = _mm_setzero_si128();
        for (int c = 0; c < QK_K / 64; c++) {
            const __m128i q0 = _mm_loadu_si128((const __m128i *)(x[i].qs + 32 * c));
            const __m128i q1 = _mm_loadu_si128((const __m128i *)(x[i].qs + 32 * c + 16));
            const int8_t *q8 = y[i].qs + 64 * c;
            sum = _mm_add_epi32(sum, scaled_dot32(_mm_and_si128(q0, m4), _mm_and_si128(q1, m4),
                                                  _mm_set1_epi16((short)sc[2 * c]), q8));
            sum = _mm_add_epi32(sum, scaled_dot32(_mm_and_si128(_mm_srli_epi16(q0, 4), m4),
                                                  _mm_and_si128(_mm_srli_epi16(q1, 4), m4),
                                                  _mm_set1_epi16((short)sc[2 * c + 1]), q8 + 32));
        }
        acc = _mm_add_ps(acc, _mm_mul_ps(_mm_set1_ps(d), _mm_cvtepi32_ps(sum)));
    }
    *s = hsum_f32_4(acc) - sum_mins;
}

static void q6_K_vec_dot_sse2(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m128i m30 = _mm_set1_epi8(0x30);
    __m128 acc = _mm_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * fp16_to_fp32(x[i].d);
        const int8_t *sc = x[i].scales;
        int isum_off = 0; /* codes are value + 32 */
        for (int j = 0; j < QK_K / 16; j++) {
            isum_off += sc[j] * y[i].bsums[j];
        }
        __m128i sum = _mm_cvtsi32_si128(-32 * isum_off);
        for (int h = 0; h < QK_K / 128; h++) {
            const uint8_t *ql = x[i].ql + 64 * h;
            const uint8_t *qh = x[i].qh + 32 * h;
            const int8_t *q8 = y[i].qs + 128 * h;
            /* two 16-byte halves (l in 0..15, 16..31) of each 32-weight quarter */
            for (int part = 0; part < 2; part++) {
                const __m128i l0 = _mm_loadu_si128((const __m128i *)(ql + 16 * part));
                const __m128i l1 = _mm_loadu_si128((const __m128i *)(ql + 32 + 16 * part));
                const __m128i hb = _mm_loadu_si128((const __m128i *)(qh + 16 * part));
                const __m128i c[4] = {
                    _mm_or_si128(_mm_and_si128(l0, m4), _mm_and_si128(_mm_slli_epi16(hb, 4), m30)),
                    _mm_or_si128(_mm_and_si128(l1, m4), _mm_and_si128(_mm_slli_epi16(hb, 2), m30)),
                    _mm_or_si128(_mm_and_si128(_mm_srli_epi16(l0, 4), m4), _mm_and_si128(hb, m30)),
                    _mm_or_si128(_mm_and_si128(_mm_srli_epi16(l1, 4), m4),
                                 _mm_and_si128(_mm_srli_epi16(hb, 2), m30))};
                for (int k = 0; k < 4; k++) {
                    /* weights 32k + 16 part + 0..15 of the half: group 8h + 2k + part */
                    const __m128i scale = _mm_set1_epi16((short)sc[8 * h + 2 * k + part]);
                    const __m128i yv = _mm_loadu_si128((const __m128i *)(q8 + 32 * k + 16 * part));
                    sum = _mm_add_epi32(sum, dot16(_mm_mullo_epi16(u8_lo16(c[k]), scale),
                                                   _mm_mullo_epi16(u8_hi16(c[k]), scale),
                                                   i8_lo16(yv), i8_hi16(yv)));
                }
            }
        }
        acc = _mm_add_ps(acc, _mm_mul_ps(_mm_set1_ps(d), _mm_cvtepi32_ps(sum)));
    }
    *s = hsum_f32_4(acc);
}

/* ---- registration ---------------------------------------------------------------------------- */

void kernels_fill_sse2(kernel_table *t) {
    KC_FILL_F16_ROWS(t, sse2);

    KC_FILL_Q8_FROM_FLOAT(t, sse2);

    t->vec_dot[TENSOR_TYPE_Q4_0] = q4_0_vec_dot_sse2;
    t->gemm[TENSOR_TYPE_Q4_0] = q4_0_gemm_sse2;
    t->gemv[TENSOR_TYPE_Q4_0] = q4_0_gemm_sse2;
    t->vec_dot[TENSOR_TYPE_Q8_0] = q8_0_vec_dot_sse2;
    t->gemm[TENSOR_TYPE_Q8_0] = q8_0_gemm_sse2;
    t->gemv[TENSOR_TYPE_Q8_0] = q8_0_gemm_sse2;
    t->vec_dot[TENSOR_TYPE_Q4_K] = q4_K_vec_dot_sse2;
    t->vec_dot[TENSOR_TYPE_Q6_K] = q6_K_vec_dot_sse2;
}
