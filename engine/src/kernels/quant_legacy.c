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

/* The 32 codes of a 4-bit block, minus offset: weight j in the low nibble of qs[j], weight
 * j + 16 in the high nibble. */
static void unpack_q4(const uint8_t qs[QK4_0 / 2], int offset, int8_t q[QK4_0]) {
    for (int j = 0; j < QK4_0 / 2; j++) {
        q[j] = (int8_t)((qs[j] & 0x0F) - offset);
        q[j + QK4_0 / 2] = (int8_t)((qs[j] >> 4) - offset);
    }
}

/* The 32 codes of a 5-bit block, minus offset: the 4-bit layout plus bit 4 of weight j in bit j
 * of qh. */
static void unpack_q5(const uint8_t qs[QK5_0 / 2], const uint8_t qh4[4], int offset,
                      int8_t q[QK5_0]) {
    const uint32_t qh = load_qh(qh4);
    unpack_q4(qs, 0, q);
    for (int j = 0; j < QK5_0; j++) {
        q[j] = (int8_t)((q[j] | (int)(((qh >> j) & 1) << 4)) - offset);
    }
}

/* Inverses of the two above for codes 0..15 / 0..31. */
static void pack_q4(const uint8_t q[QK4_0], uint8_t qs[QK4_0 / 2]) {
    for (int j = 0; j < QK4_0 / 2; j++) {
        qs[j] = (uint8_t)(q[j] | (q[j + QK4_0 / 2] << 4));
    }
}

static void pack_q5(const uint8_t q[QK5_0], uint8_t qs[QK5_0 / 2], uint8_t qh4[4]) {
    uint32_t qh = 0;
    for (int j = 0; j < QK5_0 / 2; j++) {
        const uint8_t q0 = q[j];
        const uint8_t q1 = q[j + QK5_0 / 2];
        qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
        qh |= ((q0 & 0x10u) >> 4) << j;
        qh |= ((q1 & 0x10u) >> 4) << (j + QK5_0 / 2);
    }
    store_qh(qh4, qh);
}

/* Exact integer dot product of 32 codes. */
static int dot32(const int8_t *a, const int8_t *b) {
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        sum += a[j] * b[j];
    }
    return sum;
}

/* ggml's code rounding: v + bias truncated (bias = offset + 0.5, so halves round up), clamped
 * at max. bias is added as one constant, as ggml does: v + 8.5f, not v + 8 + 0.5f. */
static uint8_t round_code(float v, float bias, int max) {
    const int8_t t = (int8_t)(v + bias);
    return (uint8_t)(t < max ? t : max);
}

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
        int8_t q[QK4_0];
        unpack_q4(x[i].qs, 8, q);
        for (int j = 0; j < QK4_0; j++) {
            dst[i * QK4_0 + j] = (float)q[j] * d;
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
        uint8_t q[QK4_0];
        for (int j = 0; j < QK4_0; j++) {
            /* x * id lies in [-8, 8]; + 8.5 then truncation rounds half up into 0..16. */
            const float v = x[j] * id;
            q[j] = round_code(v, 8.5f, 15);
        }
        pack_q4(q, y[i].qs);
    }
}

void q4_0_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    const int64_t nb = n / QK8_0;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int8_t q[QK8_0];
        unpack_q4(x[i].qs, 8, q);
        const int sumi = dot32(q, y[i].qs);
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
        int8_t q[QK4_1];
        unpack_q4(x[i].qs, 0, q);
        for (int j = 0; j < QK4_1; j++) {
            dst[i * QK4_1 + j] = (float)q[j] * d + m;
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
        uint8_t q[QK4_1];
        for (int j = 0; j < QK4_1; j++) {
            const float v = (x[j] - min) * id;
            q[j] = round_code(v, 0.5f, 15);
        }
        pack_q4(q, y[i].qs);
    }
}

void q4_1_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_1 *x = vx;
    const block_q8_1 *y = vy;
    const int64_t nb = n / QK8_1;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int8_t q[QK8_1];
        unpack_q4(x[i].qs, 0, q);
        const int sumi = dot32(q, y[i].qs);
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
        int8_t q[QK5_0];
        unpack_q5(x[i].qs, x[i].qh, 16, q);
        for (int j = 0; j < QK5_0; j++) {
            dst[i * QK5_0 + j] = (float)q[j] * d;
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
        uint8_t q[QK5_0];
        for (int j = 0; j < QK5_0; j++) {
            const float v = x[j] * id;
            q[j] = round_code(v, 16.5f, 31);
        }
        pack_q5(q, y[i].qs, y[i].qh);
    }
}

void q5_0_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_0 *x = vx;
    const block_q8_0 *y = vy;
    const int64_t nb = n / QK8_0;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        /* codes computed inline, not unpack_q5 + dot32: GCC unrolls this loop fully and
         * it runs ~1.3x faster */
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
        int8_t q[QK5_1];
        unpack_q5(x[i].qs, x[i].qh, 0, q);
        for (int j = 0; j < QK5_1; j++) {
            dst[i * QK5_1 + j] = (float)q[j] * d + m;
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
        uint8_t q[QK5_1];
        for (int j = 0; j < QK5_1; j++) {
            /* (x - min) * id lies in [0, 31]: no clamp needed (ggml has none either). */
            const float v = (x[j] - min) * id;
            q[j] = (uint8_t)(v + 0.5f);
        }
        pack_q5(q, y[i].qs, y[i].qh);
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

/* One Q8_0/Q8_1 block: d = absmax / 127, returned unrounded; q = roundf(x / d) (round half away
 * from zero). Returns d; *sum gets the sum of the codes. */
static float quantize_block_q8(const float *x, int8_t qs[QK8_0], int *sum) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; j++) {
        amax = fmaxf(amax, fabsf(x[j]));
    }
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int s = 0;
    for (int j = 0; j < QK8_0; j++) {
        qs[j] = (int8_t)roundf(x[j] * id);
        s += qs[j];
    }
    *sum = s;
    return d;
}

/* Also the activation quantizer of Q4_0/Q5_0/Q8_0 matmuls, so it must match ggml exactly. */
void q8_0_from_float_ref(const float *src, void *dst, int64_t n) {
    block_q8_0 *y = dst;
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        int sum;
        y[i].d = fp32_to_fp16(quantize_block_q8(src + i * QK8_0, y[i].qs, &sum));
    }
}

void q8_0_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q8_0 *x = vx;
    const block_q8_0 *y = vy;
    const int64_t nb = n / QK8_0;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const int sumi = dot32(x[i].qs, y[i].qs);
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
        int sum;
        const float d = quantize_block_q8(src + i * QK8_1, y[i].qs, &sum);
        y[i].d = fp32_to_fp16(d);
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
        unpack_q4(x[i].qs, 8, q);
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
        int8_t q[QK8_0];
        unpack_q4(x[i].qs, 8, q);
        const int sumi = dot32(q, y[i].qs);
        acc = fmaf((float)sumi, fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d), acc);
    }
    *s = acc;
}
