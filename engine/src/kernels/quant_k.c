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

/* Exact agreement with ggml needs every a * b + c rounded twice, as ggml's x86 build does:
 * no FMA contraction. GCC in ISO C mode (our -std=c11) does not contract; clang does by
 * default, hence the pragma. Any -ffp-contract=fast build breaks bit-exactness. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* Each K-quant type has one unpack function that turns a super-block's packed codes into
 * integers in weight order; decoding and dot products both start from it, so the bit layout
 * is written down exactly once per type. */

/* 2-bit codes (Q2_K; the low bits of Q3_K): two halves of 128 weights; in half h, byte
 * qs[32h + l] (l in 0..31) holds weights 128h + l, +32, +64, +96 in bit pairs 0-1, 2-3, 4-5,
 * 6-7. */
static void unpack_2bit(const uint8_t *qs, int8_t *codes) {
    for (int h = 0; h < QK_K / 128; h++) {
        for (int shift = 0; shift < 8; shift += 2) {
            int8_t *out = codes + 128 * h + 16 * shift; /* 32 weights per bit pair */
            for (int l = 0; l < 32; l++) {
                out[l] = (int8_t)((qs[32 * h + l] >> shift) & 3);
            }
        }
    }
}

/* 8 interleaved int32 lanes (lane = weight index mod 8) of sum scale(w) * q8[w] * code[w] over
 * one super-block, where scale is per group of `group` weights; this is the integer part of
 * ggml's generic Q3_K..Q6_K dot products, whose float lanes we then reproduce. */
static void lane_sums(const int8_t *codes, const int8_t *q8, const int *scales, int group,
                      int32_t lane[8]) {
    for (int l = 0; l < 8; l++) {
        lane[l] = 0;
    }
    for (int g = 0; g < QK_K / 8; g++) {
        const int scale = scales[8 * g / group];
        for (int l = 0; l < 8; l++) {
            lane[l] += scale * (q8[8 * g + l] * codes[8 * g + l]);
        }
    }
}

/* Add d * lane[l] into the 8 running float sums, and fold the sums at the end. */
static void lanes_accumulate(float sums[8], float d, const int32_t lane[8]) {
    for (int l = 0; l < 8; l++) {
        sums[l] += d * (float)lane[l];
    }
}

static float lanes_total(float start, const float sums[8]) {
    float total = start;
    for (int l = 0; l < 8; l++) {
        total += sums[l];
    }
    return total;
}

/* ---- Q2_K: 16 sub-blocks of 16; x = d * (sc & 15) * q - dmin * (sc >> 4), q in 0..3 ---------- */

void q2_K_to_float_ref(const void *src, float *dst, int64_t n) {
    const block_q2_K *x = src;
    const int64_t nb = n / QK_K;
    int8_t codes[QK_K];
    for (int64_t i = 0; i < nb; i++) {
        const float d = fp16_to_fp32(x[i].d);
        const float min = fp16_to_fp32(x[i].dmin);
        float *y = dst + i * QK_K;
        unpack_2bit(x[i].qs, codes);
        for (int j = 0; j < QK_K / 16; j++) {
            const uint8_t sc = x[i].scales[j];
            const float dl = d * (float)(sc & 0xF);
            const float ml = min * (float)(sc >> 4);
            for (int l = 0; l < 16; l++) {
                y[16 * j + l] = dl * (float)codes[16 * j + l] - ml;
            }
        }
    }
}

void q2_K_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q2_K *x = vx;
    const block_q8_K *y = vy;
    const int64_t nb = n / QK_K;
    int8_t codes[QK_K];
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        /* the min term: sum over sub-blocks of min_j * sum(q8 in sub-block j) */
        int summs = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            summs += y[i].bsums[j] * (x[i].scales[j] >> 4);
        }
        unpack_2bit(x[i].qs, codes);
        int isum = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            int isuml = 0;
            for (int l = 0; l < 16; l++) {
                isuml += y[i].qs[16 * j + l] * codes[16 * j + l];
            }
            isum += (x[i].scales[j] & 0xF) * isuml;
        }
        const float dall = y[i].d * fp16_to_fp32(x[i].d);
        const float dmin = y[i].d * fp16_to_fp32(x[i].dmin);
        sumf += dall * (float)isum - dmin * (float)summs;
    }
    *s = sumf;
}

/* ---- Q3_K: 16 sub-blocks of 16; x = d * (sc - 32) * (q - 4 * !hbit), q in 0..3 -------------- */

/* Signed codes -4..3: the 2-bit code, minus 4 unless the high bit is set; the high bit of
 * weight w is hmask byte w % 32, bit w / 32. Scales come out with the -32 applied. */
static void q3_K_unpack(const block_q3_K *b, int8_t *codes, int *scales) {
    unpack_2bit(b->qs, codes);
    for (int bit = 0; bit < 8; bit++) {
        for (int l = 0; l < 32; l++) {
            codes[32 * bit + l] =
                (int8_t)(codes[32 * bit + l] - (((b->hmask[l] >> bit) & 1) ? 0 : 4));
        }
    }
    for (int j = 0; j < QK_K / 16; j++) {
        scales[j] = q3_K_scale(j, b->scales) - 32;
    }
}

void q3_K_to_float_ref(const void *src, float *dst, int64_t n) {
    const block_q3_K *x = src;
    const int64_t nb = n / QK_K;
    int8_t codes[QK_K];
    int scales[QK_K / 16];
    for (int64_t i = 0; i < nb; i++) {
        const float d_all = fp16_to_fp32(x[i].d);
        float *y = dst + i * QK_K;
        q3_K_unpack(&x[i], codes, scales);
        for (int j = 0; j < QK_K / 16; j++) {
            const float dl = d_all * (float)scales[j];
            for (int l = 0; l < 16; l++) {
                y[16 * j + l] = dl * (float)codes[16 * j + l];
            }
        }
    }
}

void q3_K_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q3_K *x = vx;
    const block_q8_K *y = vy;
    const int64_t nb = n / QK_K;
    int8_t codes[QK_K];
    int scales[QK_K / 16];
    float sums[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        int32_t lane[8];
        q3_K_unpack(&x[i], codes, scales);
        lane_sums(codes, y[i].qs, scales, 16, lane);
        lanes_accumulate(sums, fp16_to_fp32(x[i].d) * y[i].d, lane);
    }
    *s = lanes_total(0.0f, sums);
}

/* ---- Q4_K / Q5_K: 8 sub-blocks of 32; x = d * sc * q - dmin * m ----------------------------- */

/* 4-bit codes in four chunks of 64: byte qs[32c + l] holds weight 64c + l (low nibble) and
 * 64c + 32 + l (high nibble). Also fetches the 8 scales and mins (see k4_scale_min). */
static void k4_unpack(const uint8_t *qs, const uint8_t *packed_scales, int8_t *codes, int *scales,
                      int *mins) {
    for (int c = 0; c < QK_K / 64; c++) {
        for (int l = 0; l < 32; l++) {
            codes[64 * c + l] = (int8_t)(qs[32 * c + l] & 0xF);
            codes[64 * c + 32 + l] = (int8_t)(qs[32 * c + l] >> 4);
        }
    }
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        k4_scale_min(j, packed_scales, &sc, &m);
        scales[j] = sc;
        mins[j] = m;
    }
}

/* Q5_K: the 5th bit of weight w is qh byte w % 32, bit w / 32 (chunk c uses bits 2c, 2c + 1). */
static void q5_K_unpack(const block_q5_K *b, int8_t *codes, int *scales, int *mins) {
    k4_unpack(b->qs, b->scales, codes, scales, mins);
    for (int bit = 0; bit < 8; bit++) {
        for (int l = 0; l < 32; l++) {
            codes[32 * bit + l] =
                (int8_t)(codes[32 * bit + l] + (((b->qh[l] >> bit) & 1) ? 16 : 0));
        }
    }
}

/* d * sc * q - dmin * m for one super-block of unpacked codes (ggml's operation order). */
static void k4_decode(const int8_t *codes, const int *scales, const int *mins, float d, float min,
                      float *y) {
    for (int j = 0; j < QK_K / 32; j++) {
        const float dl = d * (float)scales[j];
        const float ml = min * (float)mins[j];
        for (int l = 0; l < 32; l++) {
            y[32 * j + l] = dl * (float)codes[32 * j + l] - ml;
        }
    }
}

/* ggml's generic Q4_K/Q5_K dot: the mins through bsums (two 16-sums per 32-weight sub-block)
 * go straight into sumf, the scaled codes through the 8 lanes added at the end. */
static void k4_dot_block(const int8_t *codes, const int *scales, const int *mins, float d,
                         float dmin, const block_q8_K *y, float sums[8], float *sumf) {
    int sumi = 0;
    for (int j = 0; j < QK_K / 16; j++) {
        sumi += y->bsums[j] * mins[j / 2];
    }
    int32_t lane[8];
    lane_sums(codes, y->qs, scales, 32, lane);
    lanes_accumulate(sums, d * y->d, lane);
    *sumf -= dmin * y->d * (float)sumi;
}

void q4_K_to_float_ref(const void *src, float *dst, int64_t n) {
    const block_q4_K *x = src;
    const int64_t nb = n / QK_K;
    int8_t codes[QK_K];
    int scales[8], mins[8];
    for (int64_t i = 0; i < nb; i++) {
        k4_unpack(x[i].qs, x[i].scales, codes, scales, mins);
        k4_decode(codes, scales, mins, fp16_to_fp32(x[i].d), fp16_to_fp32(x[i].dmin),
                  dst + i * QK_K);
    }
}

void q4_K_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    const int64_t nb = n / QK_K;
    int8_t codes[QK_K];
    int scales[8], mins[8];
    float sums[8] = {0};
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        k4_unpack(x[i].qs, x[i].scales, codes, scales, mins);
        k4_dot_block(codes, scales, mins, fp16_to_fp32(x[i].d), fp16_to_fp32(x[i].dmin), &y[i],
                     sums, &sumf);
    }
    *s = lanes_total(sumf, sums);
}

void q5_K_to_float_ref(const void *src, float *dst, int64_t n) {
    const block_q5_K *x = src;
    const int64_t nb = n / QK_K;
    int8_t codes[QK_K];
    int scales[8], mins[8];
    for (int64_t i = 0; i < nb; i++) {
        q5_K_unpack(&x[i], codes, scales, mins);
        k4_decode(codes, scales, mins, fp16_to_fp32(x[i].d), fp16_to_fp32(x[i].dmin),
                  dst + i * QK_K);
    }
}

/* ggml's x86 (AVX2, also taken by AVX-512 builds) Q5_K dot, the order llama.cpp's logits come
 * from: per super-block, 8 int32 lanes where lane l takes, for every 64-weight chunk c, scale 2c
 * times the 4 products 64c + 4l.. and scale 2c + 1 times the 4 products 64c + 32 + 4l..;
 * acc_l = fma(dy * dx, lane_l, acc_l); the mins go into one float, summs += (-dy * dmin) * (int
 * sum), and the result is hsum_float_8(acc) + summs. ggml's generic order sums other lanes, and
 * a 1-ulp difference can flip a Q8 code of the next layer's activations. */
void q5_K_vec_dot_x86(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_K *x = vx;
    const block_q8_K *y = vy;
    int8_t codes[QK_K];
    int scales[8], mins[8];
    float acc[8] = {0.0f};
    float summs = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        q5_K_unpack(&x[i], codes, scales, mins);
        const float d = y[i].d * fp16_to_fp32(x[i].d);
        const float dmin = -y[i].d * fp16_to_fp32(x[i].dmin);
        int isum_m = 0;
        for (int j = 0; j < 8; j++) {
            isum_m += mins[j] * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        summs += dmin * (float)isum_m;
        for (int l = 0; l < 8; l++) {
            int32_t lane = 0;
            for (int c = 0; c < QK_K / 64; c++) {
                for (int half = 0; half < 2; half++) {
                    const int w0 = 64 * c + 32 * half + 4 * l;
                    int32_t p = 0;
                    for (int k = 0; k < 4; k++) {
                        p += codes[w0 + k] * y[i].qs[w0 + k];
                    }
                    lane += scales[2 * c + half] * p;
                }
            }
            acc[l] = fmaf(d, (float)lane, acc[l]);
        }
    }
    const float r0 = acc[0] + acc[4], r1 = acc[1] + acc[5];
    const float r2 = acc[2] + acc[6], r3 = acc[3] + acc[7];
    *s = ((r0 + r2) + (r1 + r3)) + summs;
}

/* ---- Q6_K: 16 sub-blocks of 16; x = d * sc * (q - 32), q in 0..63, sc int8 ------------------ */

/* Two halves of 128 weights. In half h, for l in 0..31: ql[64h + l] holds the low nibbles of
 * weights l (low) and l + 64 (high); ql[64h + 32 + l] those of l + 32 and l + 96; qh[32h + l]
 * holds the top 2 bits of weights l, l + 32, l + 64, l + 96 in bit pairs 0-1, 2-3, 4-5, 6-7
 * (offsets within the half). Codes come out with the -32 applied. */
static void q6_K_unpack(const block_q6_K *b, int8_t *codes, int *scales) {
    for (int h = 0; h < QK_K / 128; h++) {
        const uint8_t *ql = b->ql + 64 * h;
        const uint8_t *qh = b->qh + 32 * h;
        int8_t *out = codes + 128 * h;
        for (int l = 0; l < 32; l++) {
            out[l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            out[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            out[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            out[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
    for (int j = 0; j < QK_K / 16; j++) {
        scales[j] = b->scales[j];
    }
}

void q6_K_to_float_ref(const void *src, float *dst, int64_t n) {
    const block_q6_K *x = src;
    const int64_t nb = n / QK_K;
    int8_t codes[QK_K];
    int scales[QK_K / 16];
    for (int64_t i = 0; i < nb; i++) {
        const float d = fp16_to_fp32(x[i].d);
        float *y = dst + i * QK_K;
        q6_K_unpack(&x[i], codes, scales);
        for (int w = 0; w < QK_K; w++) {
            /* ggml order: (d * sc) * q */
            y[w] = d * (float)scales[w / 16] * (float)codes[w];
        }
    }
}

void q6_K_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    const int64_t nb = n / QK_K;
    int8_t codes[QK_K];
    int scales[QK_K / 16];
    float sums[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        int32_t lane[8];
        q6_K_unpack(&x[i], codes, scales);
        lane_sums(codes, y[i].qs, scales, 16, lane);
        lanes_accumulate(sums, fp16_to_fp32(x[i].d) * y[i].d, lane);
    }
    *s = lanes_total(0.0f, sums);
}

/* ---- Q8_K: x = d * q, d a float ------------------------------------------------------------- */

void q8_K_to_float_ref(const void *src, float *dst, int64_t n) {
    const block_q8_K *x = src;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        for (int j = 0; j < QK_K; j++) {
            dst[i * QK_K + j] = x[i].d * (float)x[i].qs[j];
        }
    }
}
