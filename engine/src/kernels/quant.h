/* quant.h - tensor element types, GGUF-compatible quant block layouts and the per-type traits
 * (to_float, from_float, vec_dot, vec_dot_type) through which every kernel is reached; the table
 * of them is tensor_types.h. Types only.
 *
 * Block structs are byte-compatible with ggml's (ggml-common.h); each is size-checked below.
 * The table's reference functions (quant_ref.h) are the specification; tensor_type_get() hands
 * out the ISA variants selected at run time (kernels.h), which are tested against them. vec_dot(n,
 * x, y) takes x = one row of the weight type and y = the activations already converted to
 * traits->vec_dot_type (Q8_0 for the legacy 32-blocks, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants,
 * F16/BF16/F32 for the float types), as ggml does, so results track llama.cpp's CPU backend.
 */
#ifndef EDGELM_QUANT_H
#define EDGELM_QUANT_H

#include "fp16.h"

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* GGUF / ggml type ids (values fixed by the file format). */
typedef enum tensor_type {
    TENSOR_TYPE_F32 = 0,
    TENSOR_TYPE_F16 = 1,
    TENSOR_TYPE_Q4_0 = 2,
    TENSOR_TYPE_Q4_1 = 3,
    TENSOR_TYPE_Q5_0 = 6,
    TENSOR_TYPE_Q5_1 = 7,
    TENSOR_TYPE_Q8_0 = 8,
    TENSOR_TYPE_Q8_1 = 9,
    TENSOR_TYPE_Q2_K = 10,
    TENSOR_TYPE_Q3_K = 11,
    TENSOR_TYPE_Q4_K = 12,
    TENSOR_TYPE_Q5_K = 13,
    TENSOR_TYPE_Q6_K = 14,
    TENSOR_TYPE_Q8_K = 15,
    TENSOR_TYPE_BF16 = 30,
    TENSOR_TYPE_COUNT = 40 /* upper bound of the id space the table covers */
} tensor_type;

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12

/* Q4_0: 32 weights, 4.5 bits/weight. x = d * (q - 8), q in low nibbles (weights 0..15) then high
 * nibbles (weights 16..31). */
typedef struct {
    fp16_t d;
    uint8_t qs[QK4_0 / 2];
} block_q4_0;
static_assert(sizeof(block_q4_0) == 2 + QK4_0 / 2, "block_q4_0 size");

/* Q4_1: 32 weights, 5 bits/weight. x = d * q + m. */
typedef struct {
    fp16_t d;
    fp16_t m;
    uint8_t qs[QK4_1 / 2];
} block_q4_1;
static_assert(sizeof(block_q4_1) == 4 + QK4_1 / 2, "block_q4_1 size");

/* Q5_0: 32 weights, 5.5 bits/weight. x = d * (q - 16); qh holds the 5th bit of each weight. */
typedef struct {
    fp16_t d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
} block_q5_0;
static_assert(sizeof(block_q5_0) == 2 + 4 + QK5_0 / 2, "block_q5_0 size");

/* Q5_1: 32 weights, 6 bits/weight. x = d * q + m. */
typedef struct {
    fp16_t d;
    fp16_t m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
} block_q5_1;
static_assert(sizeof(block_q5_1) == 4 + 4 + QK5_1 / 2, "block_q5_1 size");

/* Q8_0: 32 weights, 8.5 bits/weight. x = d * q. Also the activation type for Q4_0/Q5_0/Q8_0. */
typedef struct {
    fp16_t d;
    int8_t qs[QK8_0];
} block_q8_0;
static_assert(sizeof(block_q8_0) == 2 + QK8_0, "block_q8_0 size");

/* Q8_1: activation type for Q4_1/Q5_1; s = d * sum(qs) precomputed. */
typedef struct {
    fp16_t d;
    fp16_t s;
    int8_t qs[QK8_1];
} block_q8_1;
static_assert(sizeof(block_q8_1) == 4 + QK8_1, "block_q8_1 size");

/* Q2_K: super-block of 16 blocks of 16 weights, 2.625 bits/weight.
 * scales: low nibble = 4-bit scale, high nibble = 4-bit min, per block.
 * x = d * scale * q - dmin * min. */
typedef struct {
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4];
    fp16_t d;
    fp16_t dmin;
} block_q2_K;
static_assert(sizeof(block_q2_K) == 2 * 2 + QK_K / 16 + QK_K / 4, "block_q2_K size");

/* Q3_K: 16 blocks of 16 weights, 3.4375 bits/weight. hmask = high bit, qs = low 2 bits,
 * scales = 16 6-bit scales packed in 12 bytes. x = d * (scale - 32) * (q - 4 * !hbit). */
typedef struct {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    fp16_t d;
} block_q3_K;
static_assert(sizeof(block_q3_K) == 2 + QK_K / 4 + QK_K / 8 + 12, "block_q3_K size");

/* Q4_K: 8 blocks of 32 weights, 4.5 bits/weight. scales: 8 6-bit scales and 8 6-bit mins packed
 * in 12 bytes. x = d * scale * q - dmin * min. */
typedef struct {
    fp16_t d;
    fp16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];
} block_q4_K;
static_assert(sizeof(block_q4_K) == 2 * 2 + K_SCALE_SIZE + QK_K / 2, "block_q4_K size");

/* Q5_K: as Q4_K plus a high bit per weight in qh; 5.5 bits/weight. */
typedef struct {
    fp16_t d;
    fp16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} block_q5_K;
static_assert(sizeof(block_q5_K) == 2 * 2 + K_SCALE_SIZE + QK_K / 2 + QK_K / 8, "block_q5_K size");

/* Q6_K: 16 blocks of 16 weights, 6.5625 bits/weight. ql = low 4 bits, qh = high 2 bits,
 * scales = int8 per block. x = d * scale * (q - 32). */
typedef struct {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    fp16_t d;
} block_q6_K;
static_assert(sizeof(block_q6_K) == 2 + QK_K / 16 + 3 * QK_K / 4, "block_q6_K size");

/* Q8_K: activation type for the K-quants. bsums = sums of each group of 16 qs. d is float. */
typedef struct {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
} block_q8_K;
static_assert(sizeof(block_q8_K) == 4 + QK_K + QK_K / 16 * 2, "block_q8_K size");

/* Dequantize n values (n a multiple of the block size). */
typedef void (*tensor_to_float_fn)(const void *src, float *dst, int64_t n);
/* Quantize n floats into blocks (reference quantizer; n a multiple of the block size). */
typedef void (*tensor_from_float_fn)(const float *src, void *dst, int64_t n);
/* *s = dot(x, y) over n values; x is of this type, y of vec_dot_type. */
typedef void (*tensor_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);
/* Matrix x matrix for batched prefill: for r < n_rows and t < n_tokens,
 *   out[t * out_stride + r] = vec_dot(n, w + r * w_stride, x + t * x_stride)
 * bit-identical to the vec_dot of the same kernel table (so a prompt evaluated in chunks gives
 * exactly the logits of one token at a time); faster because each weight block is decoded once
 * for all the tokens. */
typedef void (*tensor_gemm_fn)(int64_t n, int64_t n_rows, int64_t n_tokens, const void *w,
                               size_t w_stride, const void *x, size_t x_stride, float *out,
                               int64_t out_stride);

typedef struct tensor_type_traits {
    const char *name;   /* "q4_K", as ggml spells it */
    int64_t block_size; /* weights per block */
    size_t type_size;   /* bytes per block */
    bool is_quantized;
    tensor_to_float_fn to_float;
    tensor_from_float_fn from_float;
    uint32_t vec_dot_type;
    tensor_vec_dot_fn vec_dot;
} tensor_type_traits;

#endif /* EDGELM_QUANT_H */
