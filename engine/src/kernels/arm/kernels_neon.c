/* kernels_neon.c - ARM NEON kernels: AArch64 Advanced SIMD, and ARMv7 NEON (this file alone is
 * built with -mfpu=neon there; kernels.c checks HWCAP_NEON first). The SDOT instruction is used
 * when the build targets it (__ARM_FEATURE_DOTPROD, e.g. -march=armv8.2-a+dotprod).
 *
 * Bit-identical to the reference: the quantizers (Q8_0, Q8_1, Q8_K), the Q5_0, Q4_1 and Q5_1 dots
 * (exact integer block sums, then the reference's float steps); on AArch64 also the Q4_0/Q8_0
 * matrix kernels and dots (exact integer block sums, fused multiply-adds in the reference's
 * order; ARMv7 NEON has no fused multiply-add, so there they are within test_kernels'
 * tolerance), the fp16 rows and the F16 dot. K-quant dots: exact integer block sums, one float
 * sum, within test_kernels' tolerance. ARMv7 NEON flushes
 * denormals to zero, so there the quantizers match the reference for normal inputs only.
 */
#include "kernels/kernel_table.h"
#include "kernels/kernels_common.h"
#include "kernels/quant_ref.h"

#include <arm_neon.h>
#include <math.h>
#include <string.h>

#if defined(__aarch64__)
#define NEON_A64 1
#endif

/* ---- helpers --------------------------------------------------------------------------------- */

static inline int32_t hsum_s32(int32x4_t v) {
#if defined(NEON_A64)
    return vaddvq_s32(v);
#else
    int32x2_t s = vadd_s32(vget_low_s32(v), vget_high_s32(v));
    return vget_lane_s32(vpadd_s32(s, s), 0);
#endif
}

static inline float hmax_f32(float32x4_t v) {
#if defined(NEON_A64)
    return vmaxvq_f32(v);
#else
    float32x2_t m = vpmax_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpmax_f32(m, m), 0);
#endif
}

/* acc + the 16 products a[k] * b[k], as 4 int32 lanes (lane l holds products 4l..4l+3 with
 * SDOT; without it the lanes mix, and only their total is meaningful). */
static inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    const int16x8_t p0 = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    const int16x8_t p1 = vmull_s8(vget_high_s8(a), vget_high_s8(b));
    return vpadalq_s16(vpadalq_s16(acc, p0), p1);
#endif
}

/* roundf (half away from zero) of each lane, as int32. */
static inline int32x4_t round_half_away(float32x4_t v) {
#if defined(NEON_A64)
    return vcvtaq_s32_f32(v);
#else
    const int32x4_t t = vcvtq_s32_f32(v); /* truncates */
    const float32x4_t frac = vabsq_f32(vsubq_f32(v, vcvtq_f32_s32(t)));
    const uint32x4_t up = vcgeq_f32(frac, vdupq_n_f32(0.5f));
    const int32x4_t step =
        vbslq_s32(vcltq_f32(v, vdupq_n_f32(0.0f)), vdupq_n_s32(-1), vdupq_n_s32(1));
    return vaddq_s32(t, vandq_s32(vreinterpretq_s32_u32(up), step));
#endif
}

/* ggml's nearest_int (ties to even), computed exactly as the reference does: |v| <= 2^22. */
static inline int32x4_t nearest_int4(float32x4_t v) {
    const int32x4_t bits = vreinterpretq_s32_f32(vaddq_f32(v, vdupq_n_f32(12582912.0f)));
    return vsubq_s32(vandq_s32(bits, vdupq_n_s32(0x007fffff)), vdupq_n_s32(0x00400000));
}

/* 16 int32 in four vectors -> 16 signed bytes, in order (values in -128..127). */
static inline int8x16_t narrow16(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
    const int16x8_t ab = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
    const int16x8_t cd = vcombine_s16(vqmovn_s32(c), vqmovn_s32(d));
    return vcombine_s8(vqmovn_s16(ab), vqmovn_s16(cd));
}

/* ---- activation quantizers (bit-identical to the reference) --------------------------------- */

static int quantize_block_q8(const float *x, float *d_out, int8_t *qs) {
    float32x4_t v[8];
    float32x4_t amax = vdupq_n_f32(0.0f);
    for (int k = 0; k < 8; k++) {
        v[k] = vld1q_f32(x + 4 * k);
        amax = vmaxq_f32(amax, vabsq_f32(v[k]));
    }
    const float d = hmax_f32(amax) / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    *d_out = d;
    int32x4_t q[8];
    int32x4_t sum = vdupq_n_s32(0);
    for (int k = 0; k < 8; k++) {
        q[k] = round_half_away(vmulq_n_f32(v[k], id));
        sum = vaddq_s32(sum, q[k]);
    }
    vst1q_s8(qs, narrow16(q[0], q[1], q[2], q[3]));
    vst1q_s8(qs + 16, narrow16(q[4], q[5], q[6], q[7]));
    return hsum_s32(sum);
}

KC_DEFINE_Q8_FROM_FLOAT(neon, quantize_block_q8)

static void q8_K_from_float_neon(const float *src, void *dst, int64_t n) {
    block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        float32x4_t vmax = vdupq_n_f32(0.0f);
        for (int j = 0; j < QK_K; j += 4) {
            vmax = vmaxq_f32(vmax, vabsq_f32(vld1q_f32(x + j)));
        }
        const float amax = hmax_f32(vmax);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.0f / x[kc_q8_K_first_max(x, amax)];
        const int32x4_t v127 = vdupq_n_s32(127);
        for (int j = 0; j < QK_K; j += 16) {
            int32x4_t q[4];
            for (int k = 0; k < 4; k++) {
                q[k] = vminq_s32(nearest_int4(vmulq_n_f32(vld1q_f32(x + j + 4 * k), iscale)), v127);
            }
            vst1q_s8(y[i].qs + j, narrow16(q[0], q[1], q[2], q[3]));
            y[i].bsums[j / 16] =
                (int16_t)hsum_s32(vaddq_s32(vaddq_s32(q[0], q[1]), vaddq_s32(q[2], q[3])));
        }
        y[i].d = 1 / iscale;
    }
}

/* ---- Q4_0 / Q8_0 matrix kernels ----------------------------------------------------------------
 *
 * The traits' order per (row, token) (kernels_common.h): exact integer block sums (signed codes,
 * SDOT when the build has it), then acc = fmaf((float)sumi, dx * dy, acc) block after block on
 * AArch64 (fused, so bit-identical to the reference), acc + (float)sumi * (dx * dy) on ARMv7,
 * whose NEON has no fused multiply-add. A row's blocks are decoded to signed bytes once per chunk
 * and dotted with every token of the call; one token (decode) reads each row whole, one after
 * the other (one memory stream). The vec_dot is this kernel on one row. */

#define Q0_NEON_ROWS 16  /* rows sharing the tokens' scales of a chunk */
#define Q0_NEON_CHUNK 16 /* blocks per chunk with several tokens */

/* A block's 32 codes as signed bytes (q - 8 for Q4_0) in weight order, and its scale. */
static inline float q0_codes(bool q8, const uint8_t *block, int8x16_t c[2]) {
    if (q8) {
        c[0] = vld1q_s8((const int8_t *)(block + offsetof(block_q8_0, qs)));
        c[1] = vld1q_s8((const int8_t *)(block + offsetof(block_q8_0, qs) + 16));
    } else {
        const uint8x16_t q = vld1q_u8(block + offsetof(block_q4_0, qs));
        const int8x16_t eight = vdupq_n_s8(8);
        c[0] = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), eight);
        c[1] = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight);
    }
    uint16_t h;
    memcpy(&h, block, sizeof h);
    return fp16_to_fp32(h);
}

static inline float q0_step_neon(float acc, int32_t sumi, float d) {
#if defined(NEON_A64)
    return fmaf((float)sumi, d, acc);
#else
    return acc + (float)sumi * d;
#endif
}

static inline __attribute__((always_inline)) void
q0_gemm_neon(const bool q8, int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
             size_t w_stride, const void *x, size_t x_stride, float *out, int64_t out_stride) {
    const size_t bb = q8 ? sizeof(block_q8_0) : sizeof(block_q4_0);
    const int64_t nb = n / QK8_0;
    float dy[KC_Q0_TOKENS * Q0_NEON_CHUNK]; /* token t, block j of the chunk at [t * chunk + j] */
    int8x16_t c[Q0_NEON_CHUNK][2];
    for (int64_t t0 = 0; t0 < n_tokens; t0 += KC_Q0_TOKENS) {
        const int64_t nt = n_tokens - t0 < KC_Q0_TOKENS ? n_tokens - t0 : KC_Q0_TOKENS;
        const int64_t chunk = Q0_NEON_CHUNK * (KC_Q0_TOKENS / nt);
        const int64_t group = nt == 1 ? n_rows : Q0_NEON_ROWS;
        const uint8_t *xt = (const uint8_t *)x + (size_t)t0 * x_stride;
        for (int64_t r0 = 0; r0 < n_rows; r0 += group) {
            const int64_t r1 = r0 + group < n_rows ? r0 + group : n_rows;
            for (int64_t c0 = 0; c0 < nb; c0 += chunk) {
                const int64_t nc = nb - c0 < chunk ? nb - c0 : chunk;
                for (int64_t t = 0; t < nt; t++) {
                    const block_q8_0 *y = (const block_q8_0 *)(xt + (size_t)t * x_stride) + c0;
                    for (int64_t j = 0; j < nc; j++) {
                        dy[t * chunk + j] = fp16_to_fp32(y[j].d);
                    }
                }
                for (int64_t r = r0; r < r1; r++) {
                    const uint8_t *row =
                        (const uint8_t *)w + (size_t)r * w_stride + (size_t)c0 * bb;
                    for (int64_t j0 = 0; j0 < nc; j0 += Q0_NEON_CHUNK) {
                        const int64_t nj = nc - j0 < Q0_NEON_CHUNK ? nc - j0 : Q0_NEON_CHUNK;
                        float dx[Q0_NEON_CHUNK];
                        for (int64_t j = 0; j < nj; j++) {
                            dx[j] = q0_codes(q8, row + (size_t)(j0 + j) * bb, c[j]);
                        }
                        for (int64_t t = 0; t < nt; t++) {
                            const block_q8_0 *y =
                                (const block_q8_0 *)(xt + (size_t)t * x_stride) + c0 + j0;
                            float acc = c0 + j0 == 0 ? 0.0f : out[(t0 + t) * out_stride + r];
                            for (int64_t j = 0; j < nj; j++) {
                                const int32x4_t s =
                                    dot16(dot16(vdupq_n_s32(0), c[j][0], vld1q_s8(y[j].qs)),
                                          c[j][1], vld1q_s8(y[j].qs + 16));
                                acc =
                                    q0_step_neon(acc, hsum_s32(s), dx[j] * dy[t * chunk + j0 + j]);
                            }
                            out[(t0 + t) * out_stride + r] = acc;
                        }
                    }
                }
            }
        }
    }
}

/* Q4_0 (q8 false) or Q8_0 weights times Q8_0 activations: the matrix kernel, or for one token
 * the row-sequential one; rows shorter than a block are all zero. */
static void q0_matmul_neon(bool q8, int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
                           size_t w_stride, const void *x, size_t x_stride, float *out,
                           int64_t out_stride) {
    if (n < QK8_0) {
        kc_zero_out(out, out_stride, n_rows, n_tokens);
        return;
    }
    q0_gemm_neon(q8, n, n_rows, n_tokens, w, w_stride, x, x_stride, out, out_stride);
}

static void q4_0_gemm_neon(int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
                           size_t w_stride, const void *x, size_t x_stride, float *out,
                           int64_t out_stride) {
    q0_matmul_neon(false, n, n_rows, n_tokens, w, w_stride, x, x_stride, out, out_stride);
}

static void q8_0_gemm_neon(int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
                           size_t w_stride, const void *x, size_t x_stride, float *out,
                           int64_t out_stride) {
    q0_matmul_neon(true, n, n_rows, n_tokens, w, w_stride, x, x_stride, out, out_stride);
}

static void q4_0_vec_dot_neon(int64_t n, float *s, const void *x, const void *y) {
    q4_0_gemm_neon(n, 1, 1, x, 0, y, 0, s, 1);
}

static void q8_0_vec_dot_neon(int64_t n, float *s, const void *x, const void *y) {
    q8_0_gemm_neon(n, 1, 1, x, 0, y, 0, s, 1);
}

/* ---- Q5_0, Q4_1, Q5_1 --------------------------------------------------------------------------
 * One exact integer sum per block and then the reference's float steps in its order
 * (legacy_vec_dot), so these equal it bit for bit. They matter on boards: llama.cpp's Q4_K_M
 * files hold Q5_0 for every matrix whose rows are not a multiple of 256 weights (SmolLM2's 576,
 * Gemma 3 270M's 640), Q5_K_M files Q5_1. */

/* 0x10 in byte j where bit j of bits (16 bits) is set: a Q5 block's fifth bits for 16 codes. */
static inline uint8x16_t fifth_bits16(uint32_t bits) {
    static const uint8_t bit_of_byte[16] = {1, 2, 4, 8, 16, 32, 64, 128,
                                            1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t v =
        vcombine_u8(vdup_n_u8((uint8_t)(bits & 0xFF)), vdup_n_u8((uint8_t)((bits >> 8) & 0xFF)));
    return vandq_u8(vtstq_u8(v, vld1q_u8(bit_of_byte)), vdupq_n_u8(0x10));
}

/* The exact dot of one block's 32 codes (qs: 16 bytes of nibbles, code j low and j + 16 high;
 * qh: their fifth bits or NULL; minus offset) with 32 activation codes. */
static inline int32_t legacy_block_dot(const uint8_t *qs, const uint8_t *qh, int offset,
                                       const int8_t *y) {
    const uint8x16_t q = vld1q_u8(qs);
    uint8x16_t lo = vandq_u8(q, vdupq_n_u8(0x0F));
    uint8x16_t hi = vshrq_n_u8(q, 4);
    if (qh != NULL) {
        uint32_t bits;
        memcpy(&bits, qh, sizeof bits);
        lo = vorrq_u8(lo, fifth_bits16(bits & 0xFFFFu));
        hi = vorrq_u8(hi, fifth_bits16(bits >> 16));
    }
    const int8x16_t off = vdupq_n_s8((int8_t)offset);
    const int32x4_t s =
        dot16(dot16(vdupq_n_s32(0), vsubq_s8(vreinterpretq_s8_u8(lo), off), vld1q_s8(y)),
              vsubq_s8(vreinterpretq_s8_u8(hi), off), vld1q_s8(y + 16));
    return hsum_s32(s);
}

static inline float h16(const fp16_t *h) { return fp16_to_fp32(*h); }

static void q5_0_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_0 *x = vx;
    const block_q8_0 *y = vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const int32_t sumi = legacy_block_dot(x[i].qs, x[i].qh, 16, y[i].qs);
        sumf += (h16(&x[i].d) * h16(&y[i].d)) * (float)sumi;
    }
    *s = sumf;
}

static void q4_1_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_1 *x = vx;
    const block_q8_1 *y = vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        const int32_t sumi = legacy_block_dot(x[i].qs, NULL, 0, y[i].qs);
        sumf += (h16(&x[i].d) * h16(&y[i].d)) * (float)sumi + h16(&x[i].m) * h16(&y[i].s);
    }
    *s = sumf;
}

static void q5_1_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_1 *x = vx;
    const block_q8_1 *y = vy;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        const int32_t sumi = legacy_block_dot(x[i].qs, x[i].qh, 0, y[i].qs);
        sumf += (h16(&x[i].d) * h16(&y[i].d)) * (float)sumi + h16(&x[i].m) * h16(&y[i].s);
    }
    *s = sumf;
}

/* ---- K-quants -------------------------------------------------------------------------------- */

static void q4_K_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * fp16_to_fp32(x[i].d);
        const float dmin = y[i].d * fp16_to_fp32(x[i].dmin);
        uint8_t sc[8];
        const int isum_m = kc_q4_K_scales_and_min_sum(&x[i], &y[i], sc);
        int32x4_t sum = vdupq_n_s32(0);
        for (int c = 0; c < QK_K / 64; c++) {
            const uint8x16_t qa = vld1q_u8(x[i].qs + 32 * c);
            const uint8x16_t qb = vld1q_u8(x[i].qs + 32 * c + 16);
            const int8_t *q8 = y[i].qs + 64 * c;
            int32x4_t lo =
                dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(vandq_u8(qa, m4)), vld1q_s8(q8));
            lo = dot16(lo, vreinterpretq_s8_u8(vandq_u8(qb, m4)), vld1q_s8(q8 + 16));
            int32x4_t hi =
                dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(vshrq_n_u8(qa, 4)), vld1q_s8(q8 + 32));
            hi = dot16(hi, vreinterpretq_s8_u8(vshrq_n_u8(qb, 4)), vld1q_s8(q8 + 48));
            sum = vmlaq_n_s32(sum, lo, sc[2 * c]);
            sum = vmlaq_n_s32(sum, hi, sc[2 * c + 1]);
        }
        sumf += d * (float)hsum_s32(sum) - dmin * (float)isum_m;
    }
    *s = sumf;
}

static void q6_K_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const uint8x16_t m30 = vdupq_n_u8(0x30);
    const int8x16_t m32 = vdupq_n_s8(32);
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * fp16_to_fp32(x[i].d);
        const int8_t *sc = x[i].scales;
        int32x4_t sum = vdupq_n_s32(0);
        for (int h = 0; h < QK_K / 128; h++) {
            const uint8_t *ql = x[i].ql + 64 * h;
            const uint8_t *qh = x[i].qh + 32 * h;
            const int8_t *q8 = y[i].qs + 128 * h;
            for (int part = 0; part < 2; part++) {
                const uint8x16_t l0 = vld1q_u8(ql + 16 * part);
                const uint8x16_t l1 = vld1q_u8(ql + 32 + 16 * part);
                const uint8x16_t hb = vld1q_u8(qh + 16 * part);
                const uint8x16_t c[4] = {
                    vorrq_u8(vandq_u8(l0, m4), vandq_u8(vshlq_n_u8(hb, 4), m30)),
                    vorrq_u8(vandq_u8(l1, m4), vandq_u8(vshlq_n_u8(hb, 2), m30)),
                    vorrq_u8(vshrq_n_u8(l0, 4), vandq_u8(hb, m30)),
                    vorrq_u8(vshrq_n_u8(l1, 4), vandq_u8(vshrq_n_u8(hb, 2), m30))};
                for (int k = 0; k < 4; k++) {
                    /* weights 32k + 16 part + 0..15 of the half: group 8h + 2k + part */
                    const int8x16_t code = vsubq_s8(vreinterpretq_s8_u8(c[k]), m32);
                    const int32x4_t p =
                        dot16(vdupq_n_s32(0), code, vld1q_s8(q8 + 32 * k + 16 * part));
                    sum = vmlaq_n_s32(sum, p, sc[8 * h + 2 * k + part]);
                }
            }
        }
        sumf += d * (float)hsum_s32(sum);
    }
    *s = sumf;
}

/* ---- fp16 (AArch64 only: ARMv7 NEON has no half conversions without extra FPU options) ------- */

/* ---- K-quant matrix x matrix (batched prefill; driver in kernels_common.h) -------------------
 *
 * The decoded super-block holds the signed codes and unpacked scales the vec_dots above rebuild
 * for every token. Per token the step computes the same exact integer block sums (grouped
 * differently, which integers allow) and then the vec_dots' float expression, so results are
 * bit-identical to them. */

typedef struct q4_K_decoded_neon {
    int8x16_t c[16]; /* sub-block j: codes c[2j] (weights 32j..32j+15) and c[2j+1] */
    int16_t mins[8];
    int32_t sc[8];
    float d, dmin;
} q4_K_decoded_neon;

static inline void q4_K_decode_neon(const block_q4_K *x, q4_K_decoded_neon *u) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    for (int c = 0; c < QK_K / 64; c++) {
        const uint8x16_t qa = vld1q_u8(x->qs + 32 * c);
        const uint8x16_t qb = vld1q_u8(x->qs + 32 * c + 16);
        u->c[4 * c] = vreinterpretq_s8_u8(vandq_u8(qa, m4));
        u->c[4 * c + 1] = vreinterpretq_s8_u8(vandq_u8(qb, m4));
        u->c[4 * c + 2] = vreinterpretq_s8_u8(vshrq_n_u8(qa, 4));
        u->c[4 * c + 3] = vreinterpretq_s8_u8(vshrq_n_u8(qb, 4));
    }
    for (int j = 0; j < 8; j++) {
        uint8_t sc, mn;
        k4_scale_min(j, x->scales, &sc, &mn);
        u->sc[j] = sc;
        u->mins[j] = (int16_t)mn;
    }
    u->d = fp16_to_fp32(x->d);
    u->dmin = fp16_to_fp32(x->dmin);
}

/* sum over j of mins[j] * (bsums[2j] + bsums[2j+1]) (pair sums fit int16: |bsum| <= 16 * 128) */
static inline int32_t k4_min_sum_neon(const int16_t bsums[16], const int16_t mins[8]) {
    const int16x8_t b0 = vld1q_s16(bsums), b1 = vld1q_s16(bsums + 8);
    const int16x8_t pairs = vcombine_s16(vpadd_s16(vget_low_s16(b0), vget_high_s16(b0)),
                                         vpadd_s16(vget_low_s16(b1), vget_high_s16(b1)));
    const int16x8_t m = vld1q_s16(mins);
    const int32x4_t p = vmlal_s16(vmull_s16(vget_low_s16(pairs), vget_low_s16(m)),
                                  vget_high_s16(pairs), vget_high_s16(m));
    return hsum_s32(p);
}

static inline void q4_K_step_neon(const q4_K_decoded_neon *u, const block_q8_K *y, float *acc) {
    const float d = y->d * u->d;
    const float dmin = y->d * u->dmin;
    const int32_t isum_m = k4_min_sum_neon(y->bsums, u->mins);
    int32x4_t sum = vdupq_n_s32(0);
    for (int j = 0; j < 8; j++) {
        const int32x4_t p = dot16(dot16(vdupq_n_s32(0), u->c[2 * j], vld1q_s8(y->qs + 32 * j)),
                                  u->c[2 * j + 1], vld1q_s8(y->qs + 32 * j + 16));
        sum = vmlaq_n_s32(sum, p, u->sc[j]);
    }
    *acc += d * (float)hsum_s32(sum) - dmin * (float)isum_m;
}

static inline void q4_K_step2_neon(const q4_K_decoded_neon *u, const block_q8_K *ya,
                                   const block_q8_K *yb, float *acc_a, float *acc_b) {
    q4_K_step_neon(u, ya, acc_a);
    q4_K_step_neon(u, yb, acc_b);
}

static inline float k_finish_neon(const float *acc) { return *acc; }

KC_DEFINE_GEMM(q4_K_gemm_neon, block_q4_K, q4_K_decoded_neon, float, q4_K_decode_neon,
               q4_K_step_neon, q4_K_step2_neon, k_finish_neon)

typedef struct q6_K_decoded_neon {
    int8x16_t c[16]; /* 16-weight group g (weights 16g..16g+15): signed codes (value - 32) */
    int32_t sc[16];
    float d;
} q6_K_decoded_neon;

static inline void q6_K_decode_neon(const block_q6_K *x, q6_K_decoded_neon *u) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const uint8x16_t m30 = vdupq_n_u8(0x30);
    const int8x16_t m32 = vdupq_n_s8(32);
    for (int h = 0; h < QK_K / 128; h++) {
        const uint8_t *ql = x->ql + 64 * h;
        const uint8_t *qh = x->qh + 32 * h;
        for (int part = 0; part < 2; part++) {
            const uint8x16_t l0 = vld1q_u8(ql + 16 * part);
            const uint8x16_t l1 = vld1q_u8(ql + 32 + 16 * part);
            const uint8x16_t hb = vld1q_u8(qh + 16 * part);
            const uint8x16_t c[4] = {vorrq_u8(vandq_u8(l0, m4), vandq_u8(vshlq_n_u8(hb, 4), m30)),
                                     vorrq_u8(vandq_u8(l1, m4), vandq_u8(vshlq_n_u8(hb, 2), m30)),
                                     vorrq_u8(vshrq_n_u8(l0, 4), vandq_u8(hb, m30)),
                                     vorrq_u8(vshrq_n_u8(l1, 4), vandq_u8(vshrq_n_u8(hb, 2), m30))};
            for (int k = 0; k < 4; k++) {
                /* weights 128h + 32k + 16part + 0..15: group 8h + 2k + part */
                u->c[8 * h + 2 * k + part] = vsubq_s8(vreinterpretq_s8_u8(c[k]), m32);
            }
        }
    }
    for (int g = 0; g < 16; g++) {
        u->sc[g] = x->scales[g];
    }
    u->d = fp16_to_fp32(x->d);
}

static inline void q6_K_step_neon(const q6_K_decoded_neon *u, const block_q8_K *y, float *acc) {
    const float d = y->d * u->d;
    int32x4_t sum = vdupq_n_s32(0);
    for (int g = 0; g < 16; g++) {
        const int32x4_t p = dot16(vdupq_n_s32(0), u->c[g], vld1q_s8(y->qs + 16 * g));
        sum = vmlaq_n_s32(sum, p, u->sc[g]);
    }
    *acc += d * (float)hsum_s32(sum);
}

static inline void q6_K_step2_neon(const q6_K_decoded_neon *u, const block_q8_K *ya,
                                   const block_q8_K *yb, float *acc_a, float *acc_b) {
    q6_K_step_neon(u, ya, acc_a);
    q6_K_step_neon(u, yb, acc_b);
}

KC_DEFINE_GEMM(q6_K_gemm_neon, block_q6_K, q6_K_decoded_neon, float, q6_K_decode_neon,
               q6_K_step_neon, q6_K_step2_neon, k_finish_neon)

#if defined(NEON_A64)
/* Halves -> floats: exact; NaNs come out quieted with their payload, as fp16_to_fp32 makes
 * them (FPCR.DN is clear on Linux). */
static inline float32x4_t half4_to_float(uint16x4_t h) {
    return vcvt_f32_f16(vreinterpret_f16_u16(h));
}

/* Floats -> halves (round to nearest even); NaNs become sign | 0x7E00 as in fp32_to_fp16. */
static inline uint16x4_t float4_to_half(float32x4_t v) {
    const uint16x4_t h = vreinterpret_u16_f16(vcvt_f16_f32(v));
    const uint16x4_t nan = vmovn_u32(vmvnq_u32(vceqq_f32(v, v)));
    const uint16x4_t sign =
        vand_u16(vmovn_u32(vshrq_n_u32(vreinterpretq_u32_f32(v), 16)), vdup_n_u16(0x8000));
    return vbsl_u16(nan, vorr_u16(sign, vdup_n_u16(0x7E00)), h);
}

static void fp16_to_fp32_row_neon(const fp16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        vst1q_f32(y + i, half4_to_float(vld1_u16(x + i)));
    }
    fp16_to_fp32_row_ref(x + i, y + i, n - i);
}

static void fp32_to_fp16_row_neon(const float *x, fp16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        vst1_u16(y + i, float4_to_half(vld1q_f32(x + i)));
    }
    fp32_to_fp16_row_ref(x + i, y + i, n - i);
}

static void f16_scale_row_neon(fp16_t *y, float s, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        vst1_u16(y + i, float4_to_half(vmulq_n_f32(half4_to_float(vld1_u16(y + i)), s)));
    }
    f16_scale_row_ref(y + i, s, n - i);
}

static void f16_mad_row_neon(fp16_t *y, const fp16_t *x, float s, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t vx = half4_to_float(vld1_u16(x + i));
        const float32x4_t vy = half4_to_float(vld1_u16(y + i));
        vst1_u16(y + i, float4_to_half(vfmaq_n_f32(vy, vx, s)));
    }
    f16_mad_row_ref(y + i, x + i, s, n - i);
}

KC_DEFINE_F16_CONVERSIONS(neon)

/* ggml's AVX-512 F16 order (see f16_vec_dot_x86): 4 accumulators of 16 lanes, each held as
 * four 4-lane vectors; the same fused per-lane chains and the same reduction tree. */
static void f16_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const fp16_t *x = vx;
    const fp16_t *y = vy;
    const int64_t np = n & ~(int64_t)63;
    float32x4_t acc[4][4];
    for (int j = 0; j < 4; j++) {
        for (int q = 0; q < 4; q++) {
            acc[j][q] = vdupq_n_f32(0.0f);
        }
    }
    for (int64_t i = 0; i < np; i += 64) {
        for (int j = 0; j < 4; j++) {
            for (int q = 0; q < 4; q++) {
                const int64_t k = i + 16 * j + 4 * q;
                acc[j][q] = vfmaq_f32(acc[j][q], half4_to_float(vld1_u16(x + k)),
                                      half4_to_float(vld1_u16(y + k)));
            }
        }
    }
    float32x4_t v[4]; /* lanes 0-3, 4-7, 8-11, 12-15 of (acc0 + acc2) + (acc1 + acc3) */
    for (int q = 0; q < 4; q++) {
        v[q] = vaddq_f32(vaddq_f32(acc[0][q], acc[2][q]), vaddq_f32(acc[1][q], acc[3][q]));
    }
    /* 16 -> 8: v[l + 8] + v[l]; 8 -> 4: h8[l + 4] + h8[l] */
    const float32x4_t h4 = vaddq_f32(vaddq_f32(v[3], v[1]), vaddq_f32(v[2], v[0]));
    float h[4];
    vst1q_f32(h, h4);
    double sum = (double)((h[0] + h[2]) + (h[1] + h[3]));
    for (int64_t i = np; i < n; i++) {
        sum += (double)(fp16_to_fp32(x[i]) * fp16_to_fp32(y[i]));
    }
    *s = (float)sum;
}
#endif /* NEON_A64 */

/* ---- registration ---------------------------------------------------------------------------- */

void kernels_fill_neon(kernel_table *t) {
    KC_FILL_Q8_FROM_FLOAT(t, neon);

    t->vec_dot[TENSOR_TYPE_Q4_0] = q4_0_vec_dot_neon;
    t->gemm[TENSOR_TYPE_Q4_0] = q4_0_gemm_neon;
    t->gemv[TENSOR_TYPE_Q4_0] = q4_0_gemm_neon;
    t->vec_dot[TENSOR_TYPE_Q8_0] = q8_0_vec_dot_neon;
    t->gemm[TENSOR_TYPE_Q8_0] = q8_0_gemm_neon;
    t->gemv[TENSOR_TYPE_Q8_0] = q8_0_gemm_neon;
    t->vec_dot[TENSOR_TYPE_Q5_0] = q5_0_vec_dot_neon;
    t->vec_dot[TENSOR_TYPE_Q4_1] = q4_1_vec_dot_neon;
    t->vec_dot[TENSOR_TYPE_Q5_1] = q5_1_vec_dot_neon;
    t->vec_dot[TENSOR_TYPE_Q4_K] = q4_K_vec_dot_neon;
    t->vec_dot[TENSOR_TYPE_Q6_K] = q6_K_vec_dot_neon;
    t->gemm[TENSOR_TYPE_Q4_K] = q4_K_gemm_neon;
    t->gemm[TENSOR_TYPE_Q6_K] = q6_K_gemm_neon;
#if defined(NEON_A64)
    KC_FILL_F16_ROWS(t, neon);
    t->f16_mad_row = f16_mad_row_neon;
    t->vec_dot[TENSOR_TYPE_F16] = f16_vec_dot_neon;
#endif
}
