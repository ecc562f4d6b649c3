/* kernels_neon.c - ARM NEON kernels: AArch64 Advanced SIMD, and ARMv7 NEON (this file alone is
 * built with -mfpu=neon there; kernels.c checks HWCAP_NEON first). The SDOT instruction is used
 * when the build targets it (__ARM_FEATURE_DOTPROD, e.g. -march=armv8.2-a+dotprod).
 *
 * Bit-identical to the reference: the quantizers (Q8_0, Q8_1, Q8_K) and the x86-order Q4_0/Q8_0
 * dots (exact integer lanes; fused multiply-adds: vfmaq_f32 on AArch64, fmaf on ARMv7, whose
 * vmlaq_f32 is not fused); on AArch64 also the fp16 rows and the F16 dot. K-quant dots: exact
 * integer block sums, one float sum, within test_kernels' tolerance. ARMv7 NEON flushes
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

/* The 16 products a[k] * b[k] as 4 lanes of exactly 4 consecutive products each. */
static inline int32x4_t dot16_lanes4(int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(vdupq_n_s32(0), a, b);
#else
    const int32x4_t s0 = vpaddlq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    const int32x4_t s1 = vpaddlq_s16(vmull_s8(vget_high_s8(a), vget_high_s8(b)));
#if defined(NEON_A64)
    return vpaddq_s32(s0, s1);
#else
    return vcombine_s32(vpadd_s32(vget_low_s32(s0), vget_high_s32(s0)),
                        vpadd_s32(vget_low_s32(s1), vget_high_s32(s1)));
#endif
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

/* ---- x86-order Q4_0 / Q8_0 dots -------------------------------------------------------------- */

/* acc[0..7] = fma(d, lanes, acc) lane by lane, fused as the reference's fmaf. */
static inline void lanes8_fma(float32x4_t acc[2], float d, int32x4_t lo, int32x4_t hi) {
#if defined(NEON_A64)
    acc[0] = vfmaq_f32(acc[0], vdupq_n_f32(d), vcvtq_f32_s32(lo));
    acc[1] = vfmaq_f32(acc[1], vdupq_n_f32(d), vcvtq_f32_s32(hi));
#else
    float a[8];
    int32_t l[8];
    vst1q_f32(a, acc[0]);
    vst1q_f32(a + 4, acc[1]);
    vst1q_s32(l, lo);
    vst1q_s32(l + 4, hi);
    for (int k = 0; k < 8; k++) {
        a[k] = fmaf(d, (float)l[k], a[k]);
    }
    acc[0] = vld1q_f32(a);
    acc[1] = vld1q_f32(a + 4);
#endif
}

/* hsum_float_8: ((a0+a4) + (a2+a6)) + ((a1+a5) + (a3+a7)). */
static inline float hsum_lanes8(const float32x4_t acc[2]) {
    float a[4];
    vst1q_f32(a, vaddq_f32(acc[0], acc[1]));
    return (a[0] + a[2]) + (a[1] + a[3]);
}

static inline void q4_0_codes(const block_q4_0 *x, int8x16_t *c0, int8x16_t *c1) {
    const uint8x16_t b = vld1q_u8(x->qs);
    const int8x16_t eight = vdupq_n_s8(8);
    *c0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(0x0F))), eight);
    *c1 = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(b, 4)), eight);
}

static void q4_0_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    float32x4_t acc[2] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int8x16_t c0, c1;
        q4_0_codes(&x[i], &c0, &c1);
        const int32x4_t lo = dot16_lanes4(c0, vld1q_s8(y[i].qs));
        const int32x4_t hi = dot16_lanes4(c1, vld1q_s8(y[i].qs + 16));
        lanes8_fma(acc, fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d), lo, hi);
    }
    *s = hsum_lanes8(acc);
}

static void q4_0_vec_dot_repacked_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    float acc = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int8x16_t c0, c1;
        q4_0_codes(&x[i], &c0, &c1);
        const int32x4_t sum =
            dot16(dot16(vdupq_n_s32(0), c0, vld1q_s8(y[i].qs)), c1, vld1q_s8(y[i].qs + 16));
        acc = fmaf((float)hsum_s32(sum), fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d), acc);
    }
    *s = acc;
}

/* Q4_0 matrix x matrix in the repacked order: four tokens of one row in the four float lanes, lane
 * k doing exactly q4_0_vec_dot_repacked_neon's fmaf((float)sumi_k, dx * dy_k, acc_k) per block in
 * block order (vfmaq_f32 is fused on AArch64; ARMv7 takes fmaf lane by lane), so every result is
 * bit-identical to that dot. Token scales are converted once per block for all rows. */

static inline int32x4_t hsum_4x4_s32(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
#if defined(NEON_A64)
    return vpaddq_s32(vpaddq_s32(a, b), vpaddq_s32(c, d));
#else
    const int32x2_t ab = vpadd_s32(vadd_s32(vget_low_s32(a), vget_high_s32(a)),
                                   vadd_s32(vget_low_s32(b), vget_high_s32(b)));
    const int32x2_t cd = vpadd_s32(vadd_s32(vget_low_s32(c), vget_high_s32(c)),
                                   vadd_s32(vget_low_s32(d), vget_high_s32(d)));
    return vcombine_s32(ab, cd);
#endif
}

static void q4_0_repacked_gemm_neon(int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
                                    size_t w_stride, const void *x, size_t x_stride, float *out,
                                    int64_t out_stride) {
    const int64_t nb = n / QK4_0;
    float yd[KC_Q4_0_GEMM_BLOCKS][4];
    float32x4_t acc[KC_Q4_0_GEMM_ROWS];
    for (int64_t r0 = 0; r0 < n_rows; r0 += KC_Q4_0_GEMM_ROWS) {
        const int64_t nr = n_rows - r0 < KC_Q4_0_GEMM_ROWS ? n_rows - r0 : KC_Q4_0_GEMM_ROWS;
        for (int64_t t0 = 0; t0 < n_tokens; t0 += 4) {
            const block_q8_0 *y[4]; /* tokens past the end repeat the last one */
            const int64_t nt = kc_q8_0_token_group(x, x_stride, t0, n_tokens, 4, y);
            for (int64_t r = 0; r < nr; r++) {
                acc[r] = vdupq_n_f32(0.0f);
            }
            for (int64_t b0 = 0; b0 < nb; b0 += KC_Q4_0_GEMM_BLOCKS) {
                const int64_t nbc = nb - b0 < KC_Q4_0_GEMM_BLOCKS ? nb - b0 : KC_Q4_0_GEMM_BLOCKS;
                for (int64_t j = 0; j < nbc; j++) {
                    for (int k = 0; k < 4; k++) {
                        yd[j][k] = fp16_to_fp32(y[k][b0 + j].d);
                    }
                }
                for (int64_t r = 0; r < nr; r++) {
                    const block_q4_0 *xr =
                        (const block_q4_0 *)((const uint8_t *)w + (size_t)(r0 + r) * w_stride) + b0;
                    float32x4_t a = acc[r];
                    for (int64_t j = 0; j < nbc; j++) {
                        int8x16_t c0, c1;
                        q4_0_codes(&xr[j], &c0, &c1);
                        int32x4_t s[4];
                        for (int k = 0; k < 4; k++) {
                            const int8_t *qy = y[k][b0 + j].qs;
                            s[k] = dot16(dot16(vdupq_n_s32(0), c0, vld1q_s8(qy)), c1,
                                         vld1q_s8(qy + 16));
                        }
                        const float32x4_t sumf =
                            vcvtq_f32_s32(hsum_4x4_s32(s[0], s[1], s[2], s[3]));
                        const float32x4_t d = vmulq_n_f32(vld1q_f32(yd[j]), fp16_to_fp32(xr[j].d));
#if defined(NEON_A64)
                        a = vfmaq_f32(a, sumf, d);
#else
                        float av[4], sv[4], dv[4];
                        vst1q_f32(av, a);
                        vst1q_f32(sv, sumf);
                        vst1q_f32(dv, d);
                        for (int k = 0; k < 4; k++) {
                            av[k] = fmaf(sv[k], dv[k], av[k]);
                        }
                        a = vld1q_f32(av);
#endif
                    }
                    acc[r] = a;
                }
            }
            for (int64_t r = 0; r < nr; r++) {
                float lane[4];
                vst1q_f32(lane, acc[r]);
                for (int64_t k = 0; k < nt; k++) {
                    out[(t0 + k) * out_stride + r0 + r] = lane[k];
                }
            }
        }
    }
}

static void q8_0_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q8_0 *x = vx;
    const block_q8_0 *y = vy;
    float32x4_t acc[2] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const int32x4_t lo = dot16_lanes4(vld1q_s8(x[i].qs), vld1q_s8(y[i].qs));
        const int32x4_t hi = dot16_lanes4(vld1q_s8(x[i].qs + 16), vld1q_s8(y[i].qs + 16));
        lanes8_fma(acc, fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d), lo, hi);
    }
    *s = hsum_lanes8(acc);
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
    t->q4_0_repacked_vec_dot = q4_0_vec_dot_repacked_neon;
    t->q4_0_repacked_gemm = q4_0_repacked_gemm_neon;
    t->vec_dot[TENSOR_TYPE_Q8_0] = q8_0_vec_dot_neon;
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
