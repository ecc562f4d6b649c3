/* quant_legacy.c - scalar reference kernels of the legacy 32-weight block types: Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0 (weights) and Q8_0, Q8_1 (activations).
 *
 * Decoding equals ggml's dequantize_row_* bit for bit; encoding follows quantize_row_*_ref; dot
 * products form an exact integer sum per block and scale it in the same float order as ggml's
 * ggml_vec_dot_*_generic (the order differs per type and is kept on purpose). Layout of every
 * block: weight j of the first half sits in the low nibble of qs[j], weight j + 16 in the high
 * nibble of the same byte; 5-bit types keep bit 4 of weight j in bit j of the 32-bit qh.
 */
#include "quant.h"
#include "quant_ref.h"

/* Exact agreement with ggml needs every a * b + c rounded twice, as ggml's x86 build does:
 * no FMA contraction. GCC in ISO C mode (our -std=c11) does not contract; clang does by
 * default, hence the pragma. Any -ffp-contract=fast build breaks bit-exactness. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <float.h>
#include <math.h>

/* qh is four bytes, read as a little-endian 32-bit word (as GGUF stores it) on any host. */
static uint32_t load_qh(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | ((uint32_t)qh[1] << 8) | ((uint32_t)qh[2] << 16) |
           ((uint32_t)qh[3] << 24);
}

static void store_qh(uint8_t qh[4], uint32_t v) {
    qh[0] = (uint8_t)v;
    qh[1] = (uint8_t)(v >> 8);
    qh[2] = (uint8_t)(v >> 16);
    qh[3] = (uint8_t)(v >> 24);
}

/* Bit 4 of weights j and j + 16 of a 5-bit block, placed at bit 4 (value 0 or 16). */
static int qh_bit_lo(uint32_t qh, int j) { return (int)(((qh >> j) << 4) & 0x10); }

static int qh_bit_hi(uint32_t qh, int j) { return (int)((qh >> (j + 12)) & 0x10); }

/* The signed value of largest magnitude (the first one on ties), as the symmetric encoders use
 * it: its sign fixes which end of the code range is reached exactly. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f;
    float max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, int n, float *min_out, float *max_out) {
    float min = FLT_MAX;
    float max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < min) {
            min = x[j];
        }
        if (x[j] > max) {
            max = x[j];
        }
    }
    *min_out = min;
    *max_out = max;
}

/* ---- Q4_0: x = d * (q - 8), q in 0..15 ------------------------------------------------------ */

void q4_0_to_float_ref(const void *src, float *dst, int64_t n) {
    const block_q4_0 *x = src;
    const int64_t nb = n / QK4_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const int x0 = (x[i].qs[j] & 0x0F) - 8;
            const int x1 = (x[i].qs[j] >> 4) - 8;
            dst[i * QK4_0 + j] = (float)x0 * d;
            dst[i * QK4_0 + j + QK4_0 / 2] = (float)x1 * d;
        }
    }
}

/* d = max / -8 where max is the signed absmax, so that value maps to code 0 exactly and the
 * other end of the range gets the extra positive level. */
void q4_0_from_float_ref(const float *src, void *dst, int64_t n) {
    block_q4_0 *y = dst;
    const int64_t nb = n / QK4_0;
    for (int64_t i = 0; i < nb; i++) {
        const float *x = src + i * QK4_0;
        const float max = signed_absmax(x, QK4_0);
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const float x0 = x[j] * id;
            const float x1 = x[j + QK4_0 / 2] * id;
            /* x * id lies in [-8, 8]; + 8.5 then truncation rounds half up into 0..16. */
            const int8_t t0 = (int8_t)(x0 + 8.5f);
            const int8_t t1 = (int8_t)(x1 + 8.5f);
            const uint8_t q0 = (uint8_t)(t0 < 15 ? t0 : 15);
            const uint8_t q1 = (uint8_t)(t1 < 15 ? t1 : 15);
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void q4_0_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    const int64_t nb = n / QK8_0;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int sumi0 = 0;
        int sumi1 = 0;
        for (int j = 0; j < QK8_0 / 2; j++) {
            const int v0 = (x[i].qs[j] & 0x0F) - 8;
            const int v1 = (x[i].qs[j] >> 4) - 8;
            sumi0 += v0 * y[i].qs[j];
            sumi1 += v1 * y[i].qs[j + QK8_0 / 2];
        }
        const int sumi = sumi0 + sumi1;
        /* ggml order: (sumi * dx) * dy */
        sumf += (float)sumi * fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d);
    }
    *s = sumf;
}

/* ---- Q4_1: x = d * q + m, q in 0..15 -------------------------------------------------------- */

void q4_1_to_float_ref(const void *src, float *dst, int64_t n) {
    const block_q4_1 *x = src;
    const int64_t nb = n / QK4_1;
    for (int64_t i = 0; i < nb; i++) {
        const float d = fp16_to_fp32(x[i].d);
        const float m = fp16_to_fp32(x[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const int x0 = x[i].qs[j] & 0x0F;
            const int x1 = x[i].qs[j] >> 4;
            dst[i * QK4_1 + j] = (float)x0 * d + m;
            dst[i * QK4_1 + j + QK4_1 / 2] = (float)x1 * d + m;
        }
    }
}

/* m = block min, d = (max - min) / 15; codes round half up. */
void q4_1_from_float_ref(const float *src, void *dst, int64_t n) {
    block_q4_1 *y = dst;
    const int64_t nb = n / QK4_1;
    for (int64_t i = 0; i < nb; i++) {
        const float *x = src + i * QK4_1;
        float min, max;
        min_max(x, QK4_1, &min, &max);
        const float d = (max - min) / ((1 << 4) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        y[i].m = fp32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const float x0 = (x[j] - min) * id;
            const float x1 = (x[j + QK4_1 / 2] - min) * id;
            const int8_t t0 = (int8_t)(x0 + 0.5f);
            const int8_t t1 = (int8_t)(x1 + 0.5f);
            const uint8_t q0 = (uint8_t)(t0 < 15 ? t0 : 15);
            const uint8_t q1 = (uint8_t)(t1 < 15 ? t1 : 15);
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void q4_1_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_1 *x = vx;
    const block_q8_1 *y = vy;
    const int64_t nb = n / QK8_1;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int sumi0 = 0;
        int sumi1 = 0;
        for (int j = 0; j < QK8_1 / 2; j++) {
            const int v0 = x[i].qs[j] & 0x0F;
            const int v1 = x[i].qs[j] >> 4;
            sumi0 += v0 * y[i].qs[j];
            sumi1 += v1 * y[i].qs[j + QK8_1 / 2];
        }
        const int sumi = sumi0 + sumi1;
        /* sum((d q + m) * y) = (dx dy) sumi + m * (dy sum(qy)); y.s holds dy * sum(qy). */
        sumf += (fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d)) * (float)sumi +
                fp16_to_fp32(x[i].m) * fp16_to_fp32(y[i].s);
    }
    *s = sumf;
}

/* ---- Q5_0: x = d * (q - 16), q in 0..31 ----------------------------------------------------- */

void q5_0_to_float_ref(const void *src, float *dst, int64_t n) {
    const block_q5_0 *x = src;
    const int64_t nb = n / QK5_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = fp16_to_fp32(x[i].d);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int x0 = ((x[i].qs[j] & 0x0F) | qh_bit_lo(qh, j)) - 16;
            const int x1 = ((x[i].qs[j] >> 4) | qh_bit_hi(qh, j)) - 16;
            dst[i * QK5_0 + j] = (float)x0 * d;
            dst[i * QK5_0 + j + QK5_0 / 2] = (float)x1 * d;
        }
    }
}

void q5_0_from_float_ref(const float *src, void *dst, int64_t n) {
    block_q5_0 *y = dst;
    const int64_t nb = n / QK5_0;
    for (int64_t i = 0; i < nb; i++) {
        const float *x = src + i * QK5_0;
        const float max = signed_absmax(x, QK5_0);
        const float d = max / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            const float x0 = x[j] * id;
            const float x1 = x[j + QK5_0 / 2] * id;
            const int8_t t0 = (int8_t)(x0 + 16.5f);
            const int8_t t1 = (int8_t)(x1 + 16.5f);
            const uint8_t q0 = (uint8_t)(t0 < 31 ? t0 : 31);
            const uint8_t q1 = (uint8_t)(t1 < 31 ? t1 : 31);
            y[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= ((q0 & 0x10u) >> 4) << j;
            qh |= ((q1 & 0x10u) >> 4) << (j + QK5_0 / 2);
        }
        store_qh(y[i].qh, qh);
    }
}

void q5_0_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_0 *x = vx;
    const block_q8_0 *y = vy;
    const int64_t nb = n / QK8_0;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const uint32_t qh = load_qh(x[i].qh);
        int sumi0 = 0;
        int sumi1 = 0;
        for (int j = 0; j < QK8_0 / 2; j++) {
            const int x0 = ((x[i].qs[j] & 0x0F) | qh_bit_lo(qh, j)) - 16;
            const int x1 = ((x[i].qs[j] >> 4) | qh_bit_hi(qh, j)) - 16;
            sumi0 += x0 * y[i].qs[j];
            sumi1 += x1 * y[i].qs[j + QK8_0 / 2];
        }
        const int sumi = sumi0 + sumi1;
        /* ggml order: (dx * dy) * sumi */
        sumf += (fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d)) * (float)sumi;
    }
    *s = sumf;
}

/* ---- Q5_1: x = d * q + m, q in 0..31 -------------------------------------------------------- */

void q5_1_to_float_ref(const void *src, float *dst, int64_t n) {
    const block_q5_1 *x = src;
    const int64_t nb = n / QK5_1;
    for (int64_t i = 0; i < nb; i++) {
        const float d = fp16_to_fp32(x[i].d);
        const float m = fp16_to_fp32(x[i].m);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int x0 = (x[i].qs[j] & 0x0F) | qh_bit_lo(qh, j);
            const int x1 = (x[i].qs[j] >> 4) | qh_bit_hi(qh, j);
            dst[i * QK5_1 + j] = (float)x0 * d + m;
            dst[i * QK5_1 + j + QK5_1 / 2] = (float)x1 * d + m;
        }
    }
}

void q5_1_from_float_ref(const float *src, void *dst, int64_t n) {
    block_q5_1 *y = dst;
    const int64_t nb = n / QK5_1;
    for (int64_t i = 0; i < nb; i++) {
        const float *x = src + i * QK5_1;
        float min, max;
        min_max(x, QK5_1, &min, &max);
        const float d = (max - min) / ((1 << 5) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        y[i].m = fp32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            const float x0 = (x[j] - min) * id;
            const float x1 = (x[j + QK5_1 / 2] - min) * id;
            /* (x - min) * id lies in [0, 31]: no clamp needed (ggml has none either). */
            const uint8_t q0 = (uint8_t)(x0 + 0.5f);
            const uint8_t q1 = (uint8_t)(x1 + 0.5f);
            y[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= ((q0 & 0x10u) >> 4) << j;
            qh |= ((q1 & 0x10u) >> 4) << (j + QK5_1 / 2);
        }
        store_qh(y[i].qh, qh);
    }
}

void q5_1_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_1 *x = vx;
    const block_q8_1 *y = vy;
    const int64_t nb = n / QK8_1;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const uint32_t qh = load_qh(x[i].qh);
        int sumi0 = 0;
        int sumi1 = 0;
        for (int j = 0; j < QK8_1 / 2; j++) {
            const int x0 = (x[i].qs[j] & 0x0F) | qh_bit_lo(qh, j);
            const int x1 = (x[i].qs[j] >> 4) | qh_bit_hi(qh, j);
            sumi0 += x0 * y[i].qs[j];
            sumi1 += x1 * y[i].qs[j + QK8_1 / 2];
        }
        const int sumi = sumi0 + sumi1;
        sumf += (fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d)) * (float)sumi +
                fp16_to_fp32(x[i].m) * fp16_to_fp32(y[i].s);
    }
    *s = sumf;
}

/* ---- Q8_0: x = d * q, q in -127..127 -------------------------------------------------------- */

void q8_0_to_float_ref(const void *src, float *dst, int64_t n) {
    const block_q8_0 *x = src;
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < QK8_0; j++) {
            dst[i * QK8_0 + j] = (float)x[i].qs[j] * d;
        }
    }
}

/* d = absmax / 127; q = roundf(x / d) (round half away from zero). Also the activation
 * quantizer of Q4_0/Q5_0/Q8_0 matmuls, so it must match ggml exactly. */
void q8_0_from_float_ref(const float *src, void *dst, int64_t n) {
    block_q8_0 *y = dst;
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float *x = src + i * QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) {
            amax = fmaxf(amax, fabsf(x[j]));
        }
        const float d = amax / ((1 << 7) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) {
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
        }
    }
}

void q8_0_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q8_0 *x = vx;
    const block_q8_0 *y = vy;
    const int64_t nb = n / QK8_0;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++) {
            sumi += x[i].qs[j] * y[i].qs[j];
        }
        /* ggml order: sumi * (dx * dy) */
        sumf += (float)sumi * (fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d));
    }
    *s = sumf;
}

/* ---- Q8_1: Q8_0 plus s = d * sum(q), the activation type of Q4_1/Q5_1 ----------------------- */

void q8_1_from_float_ref(const float *src, void *dst, int64_t n) {
    block_q8_1 *y = dst;
    const int64_t nb = n / QK8_1;
    for (int64_t i = 0; i < nb; i++) {
        const float *x = src + i * QK8_1;
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; j++) {
            amax = fmaxf(amax, fabsf(x[j]));
        }
        const float d = amax / ((1 << 7) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = fp32_to_fp16((float)sum * d);
    }
}

/* ---- ggml x86 summation orders --------------------------------------------------------------
 * Quantized matmuls amplify 1-ulp differences: a float that lands on the other side of a rounding
 * boundary when the next layer's activations are quantized changes a whole Q8 code, and logits move
 * by ~0.05. So the float part of these dots follows the order of ggml's x86 kernels exactly, not the
 * generic one. ggml_vec_dot_{q4_0,q8_0}_q8_0 (AVX2 path, also taken by AVX-512 builds) and
 * llamafile's tinyBLAS_Q0_AVX (batched prompt) both keep 8 float lanes; lane l takes the integer
 * sum of the products 4l..4l+3 of each block, acc_l = fma(dx * dy, lane_l, acc_l), and the lanes
 * are summed at the end as hsum_float_8: ((a0+a4) + (a2+a6)) + ((a1+a5) + (a3+a7)). */
static float hsum_lanes8(const float *a) {
    const float r0 = a[0] + a[4];
    const float r1 = a[1] + a[5];
    const float r2 = a[2] + a[6];
    const float r3 = a[3] + a[7];
    return (r0 + r2) + (r1 + r3);
}

static void lanes8_accumulate(float *acc, float d, const int8_t *qx, const int8_t *qy) {
    for (int l = 0; l < 8; l++) {
        int sumi = 0;
        for (int j = 4 * l; j < 4 * l + 4; j++) {
            sumi += qx[j] * qy[j];
        }
        acc[l] = fmaf(d, (float)sumi, acc[l]);
    }
}

void q4_0_vec_dot_x86(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    float acc[8] = {0.0f};
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int8_t q[QK8_0];
        for (int j = 0; j < QK8_0 / 2; j++) {
            q[j] = (int8_t)((x[i].qs[j] & 0x0F) - 8);
            q[j + QK8_0 / 2] = (int8_t)((x[i].qs[j] >> 4) - 8);
        }
        lanes8_accumulate(acc, fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d), q, y[i].qs);
    }
    *s = hsum_lanes8(acc);
}

void q8_0_vec_dot_x86(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q8_0 *x = vx;
    const block_q8_0 *y = vy;
    float acc[8] = {0.0f};
    for (int64_t i = 0; i < n / QK8_0; i++) {
        lanes8_accumulate(acc, fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d), x[i].qs, y[i].qs);
    }
    *s = hsum_lanes8(acc);
}

/* Q4_0 matrices whose row count is a multiple of 8 are repacked by ggml on x86 (AVX2) into
 * block_q4_0x8 and multiplied by ggml_gemv/gemm_q4_0_8x8_q8_0: one whole-block integer sum per
 * block, acc = fma(sumi, dx * dy, acc). */
void q4_0_vec_dot_x86_repacked(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    float acc = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_0 / 2; j++) {
            sumi += ((x[i].qs[j] & 0x0F) - 8) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK8_0 / 2];
        }
        acc = fmaf((float)sumi, fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d), acc);
    }
    *s = acc;
}
