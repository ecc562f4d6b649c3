/* kernels_common.h - scalar pieces shared by the per-ISA kernel files (kernels_sse2.c,
 * kernels_avx2.c, kernels_avx512.c, kernels_neon.c): static inline, no intrinsics, so each file
 * compiles them with its own flags. Row drivers take the file's block quantizer as a constant
 * callback, which the compiler inlines; they do the same scalar steps in the same order as the
 * reference. The K-quant matrix x matrix driver and its group sizes, and what the Q4_0/Q8_0
 * matrix kernels of every ISA share (their float order, the token-side sums, the prefetch of the
 * next rows), live here too.
 */
#ifndef EDGELM_KERNELS_COMMON_H
#define EDGELM_KERNELS_COMMON_H

#include "fp16.h"
#include "quant.h"
#include "quant_ref.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* One 32-value Q8 block: *d = amax / 127 (unrounded), qs = roundf(x / d); returns the sum of
 * the codes (for Q8_1's s). */
typedef int (*kc_quantize_block_q8_fn)(const float *x, float *d, int8_t *qs);

/* Q8_0 row: d stored as fp16. */
static inline void kc_q8_0_from_float(const float *src, void *dst, int64_t n,
                                      kc_quantize_block_q8_fn quantize_block) {
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        float d;
        quantize_block(src + i * QK8_0, &d, y[i].qs);
        y[i].d = fp32_to_fp16(d);
    }
}

/* Q8_1 row: d and s = d * sum(codes) stored as fp16. */
static inline void kc_q8_1_from_float(const float *src, void *dst, int64_t n,
                                      kc_quantize_block_q8_fn quantize_block) {
    block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        float d;
        const int sum = quantize_block(src + i * QK8_1, &d, y[i].qs);
        y[i].d = fp32_to_fp16(d);
        y[i].s = fp32_to_fp16((float)sum * d);
    }
}

/* The Q8_0 and Q8_1 activation quantizers of an ISA file, from its one-block quantizer:
 * KC_DEFINE_Q8_FROM_FLOAT(sse2, quantize_block_q8) defines q8_0_from_float_sse2 and
 * q8_1_from_float_sse2. */
#define KC_DEFINE_Q8_FROM_FLOAT(isa, quantize_block)                                               \
    static void q8_0_from_float_##isa(const float *src, void *dst, int64_t n) {                    \
        kc_q8_0_from_float(src, dst, n, quantize_block);                                           \
    }                                                                                              \
    static void q8_1_from_float_##isa(const float *src, void *dst, int64_t n) {                    \
        kc_q8_1_from_float(src, dst, n, quantize_block);                                           \
    }

/* The F16 type's to_float and from_float are an ISA file's fp16 row helpers under the traits'
 * signatures: KC_DEFINE_F16_CONVERSIONS(avx2) defines f16_to_float_avx2 and f16_from_float_avx2
 * from fp16_to_fp32_row_avx2 and fp32_to_fp16_row_avx2. */
#define KC_DEFINE_F16_CONVERSIONS(isa)                                                             \
    static void f16_to_float_##isa(const void *src, float *dst, int64_t n) {                       \
        fp16_to_fp32_row_##isa(src, dst, n);                                                       \
    }                                                                                              \
    static void f16_from_float_##isa(const float *src, void *dst, int64_t n) {                     \
        fp32_to_fp16_row_##isa(src, dst, n);                                                       \
    }

/* Register in table t what KC_DEFINE_Q8_FROM_FLOAT(isa, ...) defined, plus the file's Q8_K
 * quantizer q8_K_from_float_<isa>. */
#define KC_FILL_Q8_FROM_FLOAT(t, isa)                                                              \
    do {                                                                                           \
        (t)->from_float[TENSOR_TYPE_Q8_0] = q8_0_from_float_##isa;                                 \
        (t)->from_float[TENSOR_TYPE_Q8_1] = q8_1_from_float_##isa;                                 \
        (t)->from_float[TENSOR_TYPE_Q8_K] = q8_K_from_float_##isa;                                 \
    } while (0)

/* Register in table t the file's fp16 row conversions and scaling (fp16_to_fp32_row_<isa>,
 * fp32_to_fp16_row_<isa>, f16_scale_row_<isa>) and the F16 conversions KC_DEFINE_F16_CONVERSIONS
 * made of them. */
#define KC_FILL_F16_ROWS(t, isa)                                                                   \
    do {                                                                                           \
        (t)->fp16_to_fp32_row = fp16_to_fp32_row_##isa;                                            \
        (t)->fp32_to_fp16_row = fp32_to_fp16_row_##isa;                                            \
        (t)->f16_scale_row = f16_scale_row_##isa;                                                  \
        (t)->to_float[TENSOR_TYPE_F16] = f16_to_float_##isa;                                       \
        (t)->from_float[TENSOR_TYPE_F16] = f16_from_float_##isa;                                   \
    } while (0)

/* Q4_K: a super-block's eight 6-bit scales into sc, and the integer sum of its mins times the
 * Q8_K sums of their 32 activations, which the dot subtracts scaled by dmin. */
static inline int kc_q4_K_scales_and_min_sum(const block_q4_K *x, const block_q8_K *y,
                                             uint8_t sc[8]) {
    uint8_t mn[8];
    for (int j = 0; j < 8; j++) {
        k4_scale_min(j, x->scales, &sc[j], &mn[j]);
    }
    int isum_m = 0;
    for (int j = 0; j < 8; j++) {
        isum_m += mn[j] * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
    }
    return isum_m;
}

/* ---- Q4_0 and Q8_0 matrix kernels: what every ISA shares --------------------------------------
 *
 * Every level computes each (row, token) result in the traits' order (q4_0_vec_dot_fma,
 * q8_0_vec_dot_fma): per block an exact integer dot sumi, then acc = acc + (float)sumi * (dx * dy),
 * fused where the ISA has FMA, block after block. The SIMD kernels hold one weight row per 32-bit
 * lane: the codes of a group of rows are transposed, four bytes per row and lane, once per block
 * (for all the tokens of a chunk), so that one multiply-add of bytes against a token's four codes
 * broadcast to every lane adds four products to each row's sum, and each lane then runs exactly
 * the scalar chain of its row. Results therefore never depend on how rows are grouped, how many
 * tokens are in a batch or how the rows are split between threads; the level's vec_dot is its
 * matrix kernel on one row.
 *
 * The x86 kernels multiply unsigned weight bytes by signed activation bytes (vpmaddubsw,
 * vpdpbusd), so weights go in as q + offset (Q4_0: the stored nibble, q + 8; Q8_0: q ^ 0x80 =
 * q + 128) and every block's sum starts from -offset * (the sum of the token's codes of that
 * block), prepared once per call with the token's scale dy: kc_q0_tokens. */
#define KC_Q0_TOKENS 32 /* tokens whose block sums and scales are prepared at once */
#define KC_Q0_SPAN 128  /* blocks (4096 weights) of them prepared at once */

typedef struct kc_q0_tokens {
    float d[KC_Q0_TOKENS][KC_Q0_SPAN];      /* token t, block b: its scale dy */
    int32_t bias[KC_Q0_TOKENS][KC_Q0_SPAN]; /* -offset * the sum of its 32 codes */
} kc_q0_tokens;

/* The scales and code sums of blocks b0 .. b0 + n_blocks - 1 of n_tokens Q8_0 rows (x_stride
 * bytes apart) for weights stored with the given offset (0 when the kernel multiplies signed
 * codes). */
static inline void kc_q0_tokens_fill(kc_q0_tokens *ts, const uint8_t *x, size_t x_stride,
                                     int64_t n_tokens, int64_t b0, int64_t n_blocks, int offset) {
    for (int64_t t = 0; t < n_tokens; t++) {
        const block_q8_0 *y = (const block_q8_0 *)(x + (size_t)t * x_stride) + b0;
        for (int64_t b = 0; b < n_blocks; b++) {
            int sum = 0;
            for (int j = 0; j < QK8_0; j++) {
                sum += y[b].qs[j];
            }
            ts->bias[t][b] = -offset * sum;
            ts->d[t][b] = fp16_to_fp32(y[b].d);
        }
    }
}

/* What every matrix kernel gives for rows of no blocks (n == 0): zeros, as the reference's dot. */
static inline void kc_zero_out(float *out, int64_t out_stride, int64_t n_rows, int64_t n_tokens) {
    for (int64_t t = 0; t < n_tokens; t++) {
        for (int64_t r = 0; r < n_rows; r++) {
            out[t * out_stride + r] = 0.0f;
        }
    }
}

/* The codes of block b of token t: x holds n Q8_0 rows x_stride bytes apart. */
static inline const int8_t *kc_q8_0_codes(const uint8_t *x, size_t x_stride, int64_t t, int64_t b) {
    return ((const block_q8_0 *)(x + (size_t)t * x_stride) + b)->qs;
}

/* While a group of rows is dotted block by block with several tokens, the next group streams in:
 * before block j of n_blocks, prefetch the j-th share of the bytes [offset, offset + n_bytes) of
 * each of the n_rows rows (stride bytes apart) at next. A group's rows change every 18 or 34
 * bytes, and so many interleaved streams defeat the hardware prefetchers. n_rows 0: nothing. */
static inline void kc_prefetch_share(const uint8_t *next, size_t stride, int64_t n_rows,
                                     size_t offset, size_t n_bytes, int64_t j, int64_t n_blocks) {
    const size_t first = offset / 64, last = (offset + n_bytes - 1) / 64;
    const size_t per_row = last - first + 1;
    const size_t lines = per_row * (size_t)n_rows;
    const size_t from = lines * (size_t)j / (size_t)n_blocks;
    const size_t to = lines * (size_t)(j + 1) / (size_t)n_blocks;
    for (size_t l = from; l < to; l++) {
        const size_t row = l / per_row;
        __builtin_prefetch(next + row * stride + 64 * (first + l % per_row), 0, 2);
    }
}

/* Unaligned 16-bit load (an fp16 scale). */
static inline int kc_load_u16(const void *p) {
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Unaligned 32-bit load (four codes). */
static inline int32_t kc_load_i32(const void *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Q8_K: the index of the first of x[0..QK_K) whose magnitude is amax (their maximum), whose
 * value sets the block scale; QK_K - 1 if none matches (only with NaNs in x). */
static inline int kc_q8_K_first_max(const float *x, float amax) {
    int first = 0;
    while (first < QK_K - 1 && fabsf(x[first]) != amax) {
        first++;
    }
    return first;
}

/* ---- matrix x matrix driver ----------------------------------------------------------------
 *
 * KC_DEFINE_GEMM(name, block_t, decoded_t, acc_t, decode, step, step2, finish) defines a
 * tensor_gemm_fn `name` for a K-quant weight type (block_t, QK_K weights per block) against Q8_K
 * activations. Each weight row is decoded once per group of KC_GEMM_BLOCKS super-blocks
 * (decode(const block_t *, decoded_t *)) and then dotted with every token of the group
 * (step(const decoded_t *, const block_q8_K *, acc_t *) for one super-block, in order; tokens
 * go in pairs through step2(u, y0, y1, acc0, acc1), which does step for both and may share the
 * loads of the decoded block), so the decoding is shared by all tokens. acc_t starts zeroed;
 * finish(const acc_t *) gives the result. When step and finish do the vec_dot's float operations in
 * its order, the results are bit-identical to it. Accumulators wait in memory between super-block
 * groups, so n and n_tokens are unbounded. */
#define KC_GEMM_BLOCKS 16 /* decoded super-blocks per pass: a few KiB, stays in L1 */
#define KC_GEMM_TOKENS 32 /* tokens whose accumulators are kept at once */

#define KC_DEFINE_GEMM(name, block_t, decoded_t, acc_t, decode, step, step2, finish)               \
    static void name(int64_t n, int64_t n_rows, int64_t n_tokens, const void *w, size_t w_stride,  \
                     const void *x, size_t x_stride, float *out, int64_t out_stride) {             \
        decoded_t u[KC_GEMM_BLOCKS];                                                               \
        acc_t acc[KC_GEMM_TOKENS];                                                                 \
        const int64_t nb = n / QK_K;                                                               \
        for (int64_t r = 0; r < n_rows; r++) {                                                     \
            const block_t *xr = (const block_t *)((const uint8_t *)w + (size_t)r * w_stride);      \
            if (r + 1 < n_rows) {                                                                  \
                kc_prefetch_row((const uint8_t *)xr + w_stride, w_stride);                         \
            }                                                                                      \
            for (int64_t t0 = 0; t0 < n_tokens; t0 += KC_GEMM_TOKENS) {                            \
                const int64_t nt =                                                                 \
                    n_tokens - t0 < KC_GEMM_TOKENS ? n_tokens - t0 : KC_GEMM_TOKENS;               \
                memset(acc, 0, sizeof acc);                                                        \
                for (int64_t b0 = 0; b0 < nb; b0 += KC_GEMM_BLOCKS) {                              \
                    const int64_t nbc = nb - b0 < KC_GEMM_BLOCKS ? nb - b0 : KC_GEMM_BLOCKS;       \
                    for (int64_t j = 0; j < nbc; j++) {                                            \
                        decode(&xr[b0 + j], &u[j]);                                                \
                    }                                                                              \
                    int64_t t = 0;                                                                 \
                    for (; t + 2 <= nt; t += 2) {                                                  \
                        const block_q8_K *y0 = (const block_q8_K *)((const uint8_t *)x +           \
                                                                    (size_t)(t0 + t) * x_stride) + \
                                               b0;                                                 \
                        const block_q8_K *y1 =                                                     \
                            (const block_q8_K *)((const uint8_t *)y0 + x_stride);                  \
                        acc_t a0 = acc[t], a1 = acc[t + 1];                                        \
                        for (int64_t j = 0; j < nbc; j++) {                                        \
                            step2(&u[j], &y0[j], &y1[j], &a0, &a1);                                \
                        }                                                                          \
                        acc[t] = a0;                                                               \
                        acc[t + 1] = a1;                                                           \
                    }                                                                              \
                    for (; t < nt; t++) {                                                          \
                        const block_q8_K *y = (const block_q8_K *)((const uint8_t *)x +            \
                                                                   (size_t)(t0 + t) * x_stride) +  \
                                              b0;                                                  \
                        acc_t a = acc[t];                                                          \
                        for (int64_t j = 0; j < nbc; j++) {                                        \
                            step(&u[j], &y[j], &a);                                                \
                        }                                                                          \
                        acc[t] = a;                                                                \
                    }                                                                              \
                }                                                                                  \
                for (int64_t t = 0; t < nt; t++) {                                                 \
                    out[(t0 + t) * out_stride + r] = finish(&acc[t]);                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

/* Ask for the next weight row while this one is dotted with every token: rows stream from memory
 * once per chunk, and the decode would otherwise wait on each line. */
static inline void kc_prefetch_row(const uint8_t *row, size_t bytes) {
    for (size_t i = 0; i < bytes; i += 64) {
        __builtin_prefetch(row + i, 0, 3);
    }
}

#endif
