/* tensor_types.c - the table of tensor types: per type id its name, block and byte sizes and its
 * scalar reference kernels (quant_ref.h). The only place that maps a type id to its kernels;
 * kernels.c copies it and puts the selected ISA variants in place (tensor_type_get()).
 */
#include "tensor_types.h"

#include "quant_ref.h"

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
                          .vec_dot = q4_0_vec_dot_fma},
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
                          .vec_dot = q8_0_vec_dot_fma},
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
