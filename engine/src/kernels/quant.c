/* quant.c - the traits table of tensor types, and the reference kernels of the float types
 * (F32, F16, BF16) and of the fp16 row helpers.
 *
 * The table is the only place that maps a type id to its reference kernels; everything else
 * asks tensor_type_get(), which returns the same traits with the ISA variants selected at run
 * time by kernels.c (tensor_type_get_ref() keeps the pure reference for tests). Float dot
 * products accumulate each float product in double, as ggml's scalar ggml_vec_dot_f32/f16/bf16
 * do (ggml_float = double), then round once to float.
 */
#include "quant.h"
#include "quant_ref.h"

/* Exact agreement with ggml needs every a * b + c rounded twice, as ggml's x86 build does:
 * no FMA contraction. GCC in ISO C mode (our -std=c11) does not contract; clang does by
 * default, hence the pragma. Any -ffp-contract=fast build breaks bit-exactness. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <math.h>
#include <stddef.h>
#include <string.h>

/* ---- F32 ------------------------------------------------------------------------------------ */

void f32_to_float_ref(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void f32_from_float_ref(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void f32_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const float *x = vx;
    const float *y = vy;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        sum += (double)(x[i] * y[i]); /* float product, double accumulation */
    }
    *s = (float)sum;
}

/* ---- F16 (IEEE half) ------------------------------------------------------------------------ */

void f16_to_float_ref(const void *src, float *dst, int64_t n) {
    const fp16_t *x = src;
    for (int64_t i = 0; i < n; i++) {
        dst[i] = fp16_to_fp32(x[i]);
    }
}

void f16_from_float_ref(const float *src, void *dst, int64_t n) {
    fp16_t *y = dst;
    for (int64_t i = 0; i < n; i++) {
        y[i] = fp32_to_fp16(src[i]);
    }
}

void f16_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const fp16_t *x = vx;
    const fp16_t *y = vy;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        sum += (double)(fp16_to_fp32(x[i]) * fp16_to_fp32(y[i]));
    }
    *s = (float)sum;
}

/* ---- BF16 (bfloat16) ------------------------------------------------------------------------ */

void bf16_to_float_ref(const void *src, float *dst, int64_t n) {
    const bf16_t *x = src;
    for (int64_t i = 0; i < n; i++) {
        dst[i] = bf16_to_fp32(x[i]);
    }
}

void bf16_from_float_ref(const float *src, void *dst, int64_t n) {
    bf16_t *y = dst;
    for (int64_t i = 0; i < n; i++) {
        y[i] = fp32_to_bf16(src[i]);
    }
}

void bf16_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const bf16_t *x = vx;
    const bf16_t *y = vy;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        sum += (double)(bf16_to_fp32(x[i]) * bf16_to_fp32(y[i]));
    }
    *s = (float)sum;
}

/* ggml_vec_dot_f16 as built for AVX-512 (GGML_F16_STEP 64, EPR 16, 4 accumulators): 64-wide steps
 * fma'd into 4 x 16 float lanes, reduced as acc0+acc2, acc1+acc3, then their sum, then
 * _mm512_reduce_add_ps (halves 16->8->4, then (l0+l2) + (l1+l3)); the n % 64 leftovers are added
 * in double. The float order matters for quantized models (see quant_legacy.c). */
void f16_vec_dot_x86(int64_t n, float *s, const void *vx, const void *vy) {
    const fp16_t *x = vx;
    const fp16_t *y = vy;
    const int64_t np = n & ~(int64_t)63;
    float acc[4][16] = {{0.0f}};
    for (int64_t i = 0; i < np; i += 64) {
        for (int j = 0; j < 4; j++) {
            for (int l = 0; l < 16; l++) {
                const int64_t k = i + 16 * j + l;
                acc[j][l] = fmaf(fp16_to_fp32(x[k]), fp16_to_fp32(y[k]), acc[j][l]);
            }
        }
    }
    float v[16];
    for (int l = 0; l < 16; l++) {
        v[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    }
    float h8[8];
    for (int l = 0; l < 8; l++) {
        h8[l] = v[l + 8] + v[l];
    }
    float h4[4];
    for (int l = 0; l < 4; l++) {
        h4[l] = h8[l + 4] + h8[l];
    }
    double sum = (double)((h4[0] + h4[2]) + (h4[1] + h4[3]));
    for (int64_t i = np; i < n; i++) {
        sum += (double)(fp16_to_fp32(x[i]) * fp16_to_fp32(y[i]));
    }
    *s = (float)sum;
}

/* ---- fp16 rows (the F16 KV cache and attention; semantics in kernels.h) ---------------------- */

void fp16_to_fp32_row_ref(const fp16_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        y[i] = fp16_to_fp32(x[i]);
    }
}

void fp32_to_fp16_row_ref(const float *x, fp16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        y[i] = fp32_to_fp16(x[i]);
    }
}

void f16_scale_row_ref(fp16_t *y, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        y[i] = fp32_to_fp16(fp16_to_fp32(y[i]) * s);
    }
}

void f16_mad_row_ref(fp16_t *y, const fp16_t *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        y[i] = fp32_to_fp16(fmaf(fp16_to_fp32(x[i]), s, fp16_to_fp32(y[i])));
    }
}

/* ---- the table ------------------------------------------------------------------------------ */

/* vec_dot_type as ggml's CPU backend: the 32-blocks with a symmetric code dot against Q8_0, the
 * ones with a min (Q4_1, Q5_1) against Q8_1 (which carries d * sum(q) for the min term), the
 * K-quants against Q8_K (whose bsums carry the per-16 sums for the mins). Q8_1 and Q8_K are
 * activation-only types: they have from_float but no vec_dot (and Q8_1 has no to_float, as in
 * ggml). */
static const tensor_type_traits type_traits[TENSOR_TYPE_COUNT] = {
    [TENSOR_TYPE_F32] = {.name = "f32",
                         .block_size = 1,
                         .type_size = sizeof(float),
                         .to_float = f32_to_float_ref,
                         .from_float = f32_from_float_ref,
                         .vec_dot_type = TENSOR_TYPE_F32,
                         .vec_dot = f32_vec_dot_ref},
    [TENSOR_TYPE_F16] = {.name = "f16",
                         .block_size = 1,
                         .type_size = sizeof(fp16_t),
                         .to_float = f16_to_float_ref,
                         .from_float = f16_from_float_ref,
                         .vec_dot_type = TENSOR_TYPE_F16,
                         .vec_dot = f16_vec_dot_x86},
    [TENSOR_TYPE_BF16] = {.name = "bf16",
                          .block_size = 1,
                          .type_size = sizeof(bf16_t),
                          .to_float = bf16_to_float_ref,
                          .from_float = bf16_from_float_ref,
                          .vec_dot_type = TENSOR_TYPE_BF16,
                          .vec_dot = bf16_vec_dot_ref},
    [TENSOR_TYPE_Q4_0] = {.name = "q4_0",
                          .block_size = QK4_0,
                          .type_size = sizeof(block_q4_0),
                          .is_quantized = true,
                          .to_float = q4_0_to_float_ref,
                          .from_float = q4_0_from_float_ref,
                          .vec_dot_type = TENSOR_TYPE_Q8_0,
                          .vec_dot = q4_0_vec_dot_x86},
    [TENSOR_TYPE_Q4_1] = {.name = "q4_1",
                          .block_size = QK4_1,
                          .type_size = sizeof(block_q4_1),
                          .is_quantized = true,
                          .to_float = q4_1_to_float_ref,
                          .from_float = q4_1_from_float_ref,
                          .vec_dot_type = TENSOR_TYPE_Q8_1,
                          .vec_dot = q4_1_vec_dot_ref},
    [TENSOR_TYPE_Q5_0] = {.name = "q5_0",
                          .block_size = QK5_0,
                          .type_size = sizeof(block_q5_0),
                          .is_quantized = true,
                          .to_float = q5_0_to_float_ref,
                          .from_float = q5_0_from_float_ref,
                          .vec_dot_type = TENSOR_TYPE_Q8_0,
                          .vec_dot = q5_0_vec_dot_ref},
    [TENSOR_TYPE_Q5_1] = {.name = "q5_1",
                          .block_size = QK5_1,
                          .type_size = sizeof(block_q5_1),
                          .is_quantized = true,
                          .to_float = q5_1_to_float_ref,
                          .from_float = q5_1_from_float_ref,
                          .vec_dot_type = TENSOR_TYPE_Q8_1,
                          .vec_dot = q5_1_vec_dot_ref},
    [TENSOR_TYPE_Q8_0] = {.name = "q8_0",
                          .block_size = QK8_0,
                          .type_size = sizeof(block_q8_0),
                          .is_quantized = true,
                          .to_float = q8_0_to_float_ref,
                          .from_float = q8_0_from_float_ref,
                          .vec_dot_type = TENSOR_TYPE_Q8_0,
                          .vec_dot = q8_0_vec_dot_x86},
    [TENSOR_TYPE_Q8_1] = {.name = "q8_1",
                          .block_size = QK8_1,
                          .type_size = sizeof(block_q8_1),
                          .is_quantized = true,
                          .from_float = q8_1_from_float_ref,
                          .vec_dot_type = TENSOR_TYPE_Q8_1},
    [TENSOR_TYPE_Q2_K] = {.name = "q2_K",
                          .block_size = QK_K,
                          .type_size = sizeof(block_q2_K),
                          .is_quantized = true,
                          .to_float = q2_K_to_float_ref,
                          .from_float = q2_K_from_float_ref,
                          .vec_dot_type = TENSOR_TYPE_Q8_K,
                          .vec_dot = q2_K_vec_dot_ref},
    [TENSOR_TYPE_Q3_K] = {.name = "q3_K",
                          .block_size = QK_K,
                          .type_size = sizeof(block_q3_K),
                          .is_quantized = true,
                          .to_float = q3_K_to_float_ref,
                          .from_float = q3_K_from_float_ref,
                          .vec_dot_type = TENSOR_TYPE_Q8_K,
                          .vec_dot = q3_K_vec_dot_ref},
    [TENSOR_TYPE_Q4_K] = {.name = "q4_K",
                          .block_size = QK_K,
                          .type_size = sizeof(block_q4_K),
                          .is_quantized = true,
                          .to_float = q4_K_to_float_ref,
                          .from_float = q4_K_from_float_ref,
                          .vec_dot_type = TENSOR_TYPE_Q8_K,
                          .vec_dot = q4_K_vec_dot_ref},
    [TENSOR_TYPE_Q5_K] = {.name = "q5_K",
                          .block_size = QK_K,
                          .type_size = sizeof(block_q5_K),
                          .is_quantized = true,
                          .to_float = q5_K_to_float_ref,
                          .from_float = q5_K_from_float_ref,
                          .vec_dot_type = TENSOR_TYPE_Q8_K,
                          .vec_dot = q5_K_vec_dot_x86},
    [TENSOR_TYPE_Q6_K] = {.name = "q6_K",
                          .block_size = QK_K,
                          .type_size = sizeof(block_q6_K),
                          .is_quantized = true,
                          .to_float = q6_K_to_float_ref,
                          .from_float = q6_K_from_float_ref,
                          .vec_dot_type = TENSOR_TYPE_Q8_K,
                          .vec_dot = q6_K_vec_dot_ref},
    [TENSOR_TYPE_Q8_K] = {.name = "q8_K",
                          .block_size = QK_K,
                          .type_size = sizeof(block_q8_K),
                          .is_quantized = true,
                          .to_float = q8_K_to_float_ref,
                          .from_float = q8_K_from_float_ref,
                          .vec_dot_type = TENSOR_TYPE_Q8_K},
};

const tensor_type_traits *tensor_type_get_ref(uint32_t type) {
    if (type >= TENSOR_TYPE_COUNT || type_traits[type].name == NULL) {
        return NULL;
    }
    return &type_traits[type];
}

size_t tensor_row_size(uint32_t type, int64_t n) {
    const tensor_type_traits *t = tensor_type_get_ref(type);
    if (t == NULL || n < 0 || n % t->block_size != 0) {
        return 0;
    }
    return (size_t)(n / t->block_size) * t->type_size;
}
