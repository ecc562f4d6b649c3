/* quant_k.c - scalar reference decoders and dot products of the K-quants (Q2_K..Q6_K, with
 * Q8_K activations) and the Q8_K decoder. The encoders live in quant_k_encode.c.
 *
 * Every K-quant packs QK_K = 256 weights into one super-block with an fp16 super-scale d (and
 * dmin for the types with mins) and small per-sub-block integer scales. Decoding equals ggml's
 * dequantize_row_* bit for bit (same float operations in the same order). Dot products form
 * exact integer sums and scale them in the order of ggml's ggml_vec_dot_*_q8_K_generic; for
 * Q3_K..Q6_K that code keeps 8 float partial sums (one per lane = weight index mod 8) across
 * super-blocks and adds them at the end, and so do we, so results match bit for bit. Q5_K is the
 * exception: its dot follows ggml's x86 order (q5_K_vec_dot_x86, see there).
 */
#include "quant.h"
#include "quant_ref.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>

/* Exact agreement with ggml needs every a * b + c rounded twice, as ggml's x86 build does:
 * no FMA contraction. GCC in ISO C mode (our -std=c11) does not contract; clang does by
 * default, hence the pragma. Any -ffp-contract=fast build breaks bit-exactness. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* Each K-quant type has one unpack function that turns a super-block into integers in weight
 * order (codes, per-group scales and mins) plus its float super-scales; decoding and dot products
 * all start from it, so the bit layout is written down exactly once per type. */
typedef struct {
    int8_t codes[QK_K];
    int scales[QK_K / 16]; /* one per group of k_type.group weights (16 or 8 used) */
    int mins[QK_K / 16];   /* the types with mins only */
    float d;
    float dmin; /* the types with mins only */
} k_block;

/* What the shared kernels need of a type:
 *   x[w] = d * scales[g] * codes[w] - dmin * mins[g]   (g = w / group; the min term only if
 *                                                       has_min) */
typedef struct {
    size_t block_bytes;
    int group; /* weights per scale */
    bool has_min;
    void (*unpack)(const void *block, k_block *out);
} k_type;

/* 2-bit codes (Q2_K; the low bits of Q3_K): two halves of 128 weights; in half h, byte
 * qs[32h + l] (l in 0..31) holds weights 128h + l, +32, +64, +96 in bit pairs 0-1, 2-3, 4-5,
 * 6-7. */
static inline void unpack_2bit(const uint8_t *qs, int8_t *codes) {
    for (int h = 0; h < QK_K / 128; h++) {
        for (int shift = 0; shift < 8; shift += 2) {
            int8_t *out = codes + 128 * h + 16 * shift; /* 32 weights per bit pair */
            for (int l = 0; l < 32; l++) {
                out[l] = (int8_t)((qs[32 * h + l] >> shift) & 3);
            }
        }
    }
}

/* The extra high bit of Q3_K (hmask) and Q5_K (qh): weight w's is byte w % 32, bit w / 32.
 * Code w gets `set` added where the bit is set and `clear` where it is not (written with a mask,
 * which GCC vectorizes; `is_set ? set : clear` runs 2x slower). */
static inline void add_high_bits(const uint8_t hbits[QK_K / 8], int set, int clear, int8_t *codes) {
    for (int bit = 0; bit < 8; bit++) {
        for (int l = 0; l < 32; l++) {
            const int is_set = (hbits[l] >> bit) & 1;
            codes[32 * bit + l] = (int8_t)(codes[32 * bit + l] + clear + (-is_set & (set - clear)));
        }
    }
}

/* 4-bit codes (Q4_K; the low bits of Q5_K) in four chunks of 64: byte qs[32c + l] holds weight
 * 64c + l (low nibble) and 64c + 32 + l (high nibble). Also fetches the 8 scales and mins (see
 * k4_scale_min) and the super-scales. */
static void unpack_4bit(const uint8_t *qs, const uint8_t *packed_scales, fp16_t d, fp16_t dmin,
                        k_block *out) {
    for (int c = 0; c < QK_K / 64; c++) {
        for (int l = 0; l < 32; l++) {
            out->codes[64 * c + l] = (int8_t)(qs[32 * c + l] & 0xF);
            out->codes[64 * c + 32 + l] = (int8_t)(qs[32 * c + l] >> 4);
        }
    }
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        k4_scale_min(j, packed_scales, &sc, &m);
        out->scales[j] = sc;
        out->mins[j] = m;
    }
    out->d = fp16_to_fp32(d);
    out->dmin = fp16_to_fp32(dmin);
}

/* Q2_K: 16 groups of 16; x = d * (sc & 15) * q - dmin * (sc >> 4), q in 0..3. */
static inline void q2_K_unpack(const void *block, k_block *out) {
    const block_q2_K *b = block;
    unpack_2bit(b->qs, out->codes);
    for (int j = 0; j < QK_K / 16; j++) {
        out->scales[j] = b->scales[j] & 0xF;
        out->mins[j] = b->scales[j] >> 4;
    }
    out->d = fp16_to_fp32(b->d);
    out->dmin = fp16_to_fp32(b->dmin);
}

/* Q3_K: 16 groups of 16; x = d * (sc - 32) * (q - 4 * !hbit), q in 0..3. Codes come out signed
 * (-4..3), scales with the -32 applied. */
static void q3_K_unpack(const void *block, k_block *out) {
    const block_q3_K *b = block;
    unpack_2bit(b->qs, out->codes);
    add_high_bits(b->hmask, 0, -4, out->codes);
    for (int j = 0; j < QK_K / 16; j++) {
        out->scales[j] = q3_K_scale(j, b->scales) - 32;
    }
    out->d = fp16_to_fp32(b->d);
}

/* Q4_K: 8 groups of 32; x = d * sc * q - dmin * m, q in 0..15, sc and m 6-bit. */
static void q4_K_unpack(const void *block, k_block *out) {
    const block_q4_K *b = block;
    unpack_4bit(b->qs, b->scales, b->d, b->dmin, out);
}

/* Q5_K: as Q4_K with a 5th bit per weight in qh (q in 0..31). */
static void q5_K_unpack(const void *block, k_block *out) {
    const block_q5_K *b = block;
    unpack_4bit(b->qs, b->scales, b->d, b->dmin, out);
    add_high_bits(b->qh, 16, 0, out->codes);
}

/* Q6_K: 16 groups of 16; x = d * sc * (q - 32), q in 0..63, sc int8. Two halves of 128
 * weights. In half h, for l in 0..31: ql[64h + l] holds the low nibbles of weights l (low) and
 * l + 64 (high); ql[64h + 32 + l] those of l + 32 and l + 96; qh[32h + l] holds the top 2 bits
 * of weights l, l + 32, l + 64, l + 96 in bit pairs 0-1, 2-3, 4-5, 6-7 (offsets within the
 * half). Codes come out with the -32 applied. */
static void q6_K_unpack(const void *block, k_block *out) {
    const block_q6_K *b = block;
    for (int h = 0; h < QK_K / 128; h++) {
        const uint8_t *ql = b->ql + 64 * h;
        const uint8_t *qh = b->qh + 32 * h;
        int8_t *c = out->codes + 128 * h;
        for (int l = 0; l < 32; l++) {
            c[l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            c[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            c[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            c[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
    for (int j = 0; j < QK_K / 16; j++) {
        out->scales[j] = b->scales[j];
    }
    out->d = fp16_to_fp32(b->d);
}

/* (q2_K_unpack is inline, the others not: that is what GCC runs fastest, within 5% of the
 * per-type code this replaced.) */
static const k_type q2_K_type = {sizeof(block_q2_K), 16, true, q2_K_unpack};
static const k_type q3_K_type = {sizeof(block_q3_K), 16, false, q3_K_unpack};
static const k_type q4_K_type = {sizeof(block_q4_K), 32, true, q4_K_unpack};
static const k_type q5_K_type = {sizeof(block_q5_K), 32, true, q5_K_unpack};
static const k_type q6_K_type = {sizeof(block_q6_K), 16, false, q6_K_unpack};

QUANT_SHARED_KERNEL void unpack_block(const k_type *t, const void *row, int64_t i, k_block *out) {
    t->unpack((const uint8_t *)row + (size_t)i * t->block_bytes, out);
}

/* ---- decoding: dequantize_row_q{2..6}_K -------------------------------------------------- */

/* Per group: dl = d * sc, ml = dmin * m, then x = dl * q - ml (or dl * q), ggml's order. */
QUANT_SHARED_KERNEL void k_to_float(const k_type *t, const void *src, float *dst, int64_t n) {
    k_block b;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack_block(t, src, i, &b);
        float *y = dst + i * QK_K;
        for (int g = 0; g < QK_K / t->group; g++) {
            const float dl = b.d * (float)b.scales[g];
            const float ml = t->has_min ? b.dmin * (float)b.mins[g] : 0.0f;
            for (int l = 0; l < t->group; l++) {
                const int w = t->group * g + l;
                y[w] = t->has_min ? dl * (float)b.codes[w] - ml : dl * (float)b.codes[w];
            }
        }
    }
}

void q2_K_to_float_ref(const void *src, float *dst, int64_t n) {
    k_to_float(&q2_K_type, src, dst, n);
}

void q3_K_to_float_ref(const void *src, float *dst, int64_t n) {
    k_to_float(&q3_K_type, src, dst, n);
}

void q4_K_to_float_ref(const void *src, float *dst, int64_t n) {
    k_to_float(&q4_K_type, src, dst, n);
}

void q5_K_to_float_ref(const void *src, float *dst, int64_t n) {
    k_to_float(&q5_K_type, src, dst, n);
}

void q6_K_to_float_ref(const void *src, float *dst, int64_t n) {
    k_to_float(&q6_K_type, src, dst, n);
}

/* Q8_K: x = d * q, d a float. */
void q8_K_to_float_ref(const void *src, float *dst, int64_t n) {
    const block_q8_K *x = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        for (int j = 0; j < QK_K; j++) {
            dst[i * QK_K + j] = x[i].d * (float)x[i].qs[j];
        }
    }
}

/* ---- dot products against Q8_K ----------------------------------------------------------- */

/* ggml_vec_dot_q2_K_q8_K_generic: one integer sum per super-block for the scaled codes and one
 * for the mins (through bsums), scaled by y.d * d and y.d * dmin. */
void q2_K_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q8_K *y = vy;
    k_block b;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack_block(&q2_K_type, vx, i, &b);
        /* the min term: sum over groups of min_j * sum(q8 in group j) */
        int summs = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            summs += y[i].bsums[j] * b.mins[j];
        }
        int isum = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            int isuml = 0;
            for (int l = 0; l < 16; l++) {
                isuml += y[i].qs[16 * j + l] * b.codes[16 * j + l];
            }
            isum += b.scales[j] * isuml;
        }
        const float dall = y[i].d * b.d;
        const float dmin = y[i].d * b.dmin;
        sumf += dall * (float)isum - dmin * (float)summs;
    }
    *s = sumf;
}

/* ggml's generic Q3_K, Q4_K and Q6_K dots: per super-block, 8 interleaved int32 lanes (lane =
 * weight index mod 8) of sum scale(w) * q8[w] * code[w], added into 8 float sums as
 * sums[l] += (d * y.d) * lane[l]; the mins (Q4_K) through bsums (group / 16 sums per group) go
 * straight into sumf -= (dmin * y.d) * sum; the result is sumf + sums[0] + ... + sums[7]. */
QUANT_SHARED_KERNEL float k_lanes_vec_dot(const k_type *t, int64_t n, const void *vx,
                                          const block_q8_K *y) {
    k_block b;
    float sums[8] = {0};
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack_block(t, vx, i, &b);
        if (t->has_min) {
            int summ = 0;
            for (int j = 0; j < QK_K / 16; j++) {
                summ += y[i].bsums[j] * b.mins[16 * j / t->group];
            }
            sumf -= b.dmin * y[i].d * (float)summ;
        }
        int32_t lane[8] = {0};
        for (int g = 0; g < QK_K / 8; g++) {
            const int scale = b.scales[8 * g / t->group];
            for (int l = 0; l < 8; l++) {
                lane[l] += scale * (y[i].qs[8 * g + l] * b.codes[8 * g + l]);
            }
        }
        const float d = b.d * y[i].d;
        for (int l = 0; l < 8; l++) {
            sums[l] += d * (float)lane[l];
        }
    }
    for (int l = 0; l < 8; l++) {
        sumf += sums[l];
    }
    return sumf;
}

void q3_K_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    *s = k_lanes_vec_dot(&q3_K_type, n, vx, vy);
}

void q4_K_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    *s = k_lanes_vec_dot(&q4_K_type, n, vx, vy);
}

void q6_K_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    *s = k_lanes_vec_dot(&q6_K_type, n, vx, vy);
}

/* ggml's x86 (AVX2, also taken by AVX-512 builds) Q5_K dot, the order llama.cpp's logits come
 * from: per super-block, 8 int32 lanes where lane l takes, for every 64-weight chunk c, scale 2c
 * times the 4 products 64c + 4l.. and scale 2c + 1 times the 4 products 64c + 32 + 4l..;
 * acc_l = fma(dy * dx, lane_l, acc_l); the mins go into one float, summs += (-dy * dmin) * (int
 * sum), and the result is hsum_float_8(acc) + summs. ggml's generic order sums other lanes, and
 * a 1-ulp difference can flip a Q8 code of the next layer's activations. */
void q5_K_vec_dot_x86(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q8_K *y = vy;
    k_block b;
    float acc[8] = {0.0f};
    float summs = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack_block(&q5_K_type, vx, i, &b);
        const float d = y[i].d * b.d;
        const float dmin = -y[i].d * b.dmin;
        int isum_m = 0;
        for (int j = 0; j < 8; j++) {
            isum_m += b.mins[j] * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        summs += dmin * (float)isum_m;
        for (int l = 0; l < 8; l++) {
            int32_t lane = 0;
            for (int c = 0; c < QK_K / 64; c++) {
                for (int half = 0; half < 2; half++) {
                    const int w0 = 64 * c + 32 * half + 4 * l;
                    int32_t p = 0;
                    for (int k = 0; k < 4; k++) {
                        p += b.codes[w0 + k] * y[i].qs[w0 + k];
                    }
                    lane += b.scales[2 * c + half] * p;
                }
            }
            acc[l] = fmaf(d, (float)lane, acc[l]);
        }
    }
    const float r0 = acc[0] + acc[4], r1 = acc[1] + acc[5];
    const float r2 = acc[2] + acc[6], r3 = acc[3] + acc[7];
    *s = ((r0 + r2) + (r1 + r3)) + summs;
}

/* The Q4_K order of the row-per-lane matrix kernels (AVX-512 VNNI): per super-block, two exact
 * integer sums, isum = sum over sub-blocks s of scale_s * (codes_s . q8_s) and summ = sum of
 * min_s * (the q8 sum of sub-block s), then acc = fmaf((float)isum, d * y.d, acc) and
 * acc = fmaf(-(float)summ, dmin * y.d, acc), super-block after super-block. Each row's whole
 * chain runs in one vector lane there, so a row gives the same bits alone, in a batch of tokens
 * or in any split of the rows between threads. Within a float rounding per super-block of
 * ggml's order (k_lanes_vec_dot); test_kernels bounds the difference. */
void q4_K_vec_dot_fma(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q8_K *y = vy;
    k_block b;
    float acc = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack_block(&q4_K_type, vx, i, &b);
        int32_t isum = 0, summ = 0;
        for (int j = 0; j < QK_K / 32; j++) {
            int32_t dot = 0;
            for (int l = 0; l < 32; l++) {
                dot += b.codes[32 * j + l] * y[i].qs[32 * j + l];
            }
            isum += b.scales[j] * dot;
            summ += b.mins[j] * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        acc = fmaf((float)isum, b.d * y[i].d, acc);
        acc = fmaf(-(float)summ, b.dmin * y[i].d, acc);
    }
    *s = acc;
}

/* Q6_K in the same row-per-lane kernels' order: per super-block the exact integer sum of
 * scale_s * (codes_s . q8_s) over the sixteen sub-blocks (codes with the -32 applied), then
 * acc = fmaf((float)isum, d * y.d, acc). */
void q6_K_vec_dot_fma(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q8_K *y = vy;
    k_block b;
    float acc = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack_block(&q6_K_type, vx, i, &b);
        int32_t isum = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            int32_t dot = 0;
            for (int l = 0; l < 16; l++) {
                dot += b.codes[16 * j + l] * y[i].qs[16 * j + l];
            }
            isum += b.scales[j] * dot;
        }
        acc = fmaf((float)isum, b.d * y[i].d, acc);
    }
    *s = acc;
}
