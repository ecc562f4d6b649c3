/* kernels.h - runtime selection of the ISA-specific kernels behind the traits table.
 *
 * One kernel table per process, filled once (pthread_once) from CPUID/XGETBV on x86 or from the
 * build target on ARM, or forced with EDGELM_KERNELS=ref|sse2|avx2|avx512|neon. The selected
 * variants replace the reference functions in what tensor_type_get(), tensor_matrix_vec_dot()
 * and tensor_matrix_gemm() return; tensor_type_get_ref() (quant.h) keeps the pure reference.
 * Intrinsics live only in the kernels_<isa>.c files, each compiled with its own flags and reached
 * only through this table.
 */
#ifndef EDGELM_KERNELS_H
#define EDGELM_KERNELS_H

#include "edgelm.h"
#include "quant.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Kernel levels, weakest first. A level includes every level below it that the ISA family
 * has (avx512 starts from avx2's table, which starts from sse2's); neon stands alone. */
typedef enum kernel_level {
    KERNEL_LEVEL_REF = 0,
    KERNEL_LEVEL_SSE2,
    KERNEL_LEVEL_AVX2,   /* AVX2 + FMA + F16C */
    KERNEL_LEVEL_AVX512, /* AVX-512 F/BW/VL (VNNI used when present) */
    KERNEL_LEVEL_NEON,   /* ARMv7 NEON or AArch64 Advanced SIMD (dotprod when built for it) */
    KERNEL_LEVEL_COUNT
} kernel_level;

/* fp16 row helpers (the F16 KV cache and attention). Semantics, exactly (any level):
 *   fp16_to_fp32_row: y[i] = fp16_to_fp32(x[i])          (fp16.h, bit-exact)
 *   fp32_to_fp16_row: y[i] = fp32_to_fp16(x[i])          (round to nearest even)
 *   f16_scale_row:    y[i] = fp32_to_fp16(fp16_to_fp32(y[i]) * s)
 *   f16_mad_row:      y[i] = fp32_to_fp16(fmaf(fp16_to_fp32(x[i]), s, fp16_to_fp32(y[i])))
 * and f16_dot is the F16 vec_dot of the traits table (ggml's AVX-512 float order, see
 * f16_vec_dot_x86 in quant.c). */
typedef void (*fp16_to_fp32_row_fn)(const fp16_t *x, float *y, int64_t n);
typedef void (*fp32_to_fp16_row_fn)(const float *x, fp16_t *y, int64_t n);
typedef void (*f16_scale_row_fn)(fp16_t *y, float s, int64_t n);
typedef void (*f16_mad_row_fn)(fp16_t *y, const fp16_t *x, float s, int64_t n);

typedef struct kernel_table {
    const char *name; /* "ref", "sse2", "avx2", "avx512", "neon" */
    kernel_level level;
    /* per tensor type; NULL entries mean "the reference's" once the table is complete */
    tensor_vec_dot_fn vec_dot[TENSOR_TYPE_COUNT];
    /* matrix x matrix equal to vec_dot[type] per (row, token); NULL = loop vec_dot */
    tensor_gemm_fn gemm[TENSOR_TYPE_COUNT];
    tensor_from_float_fn from_float[TENSOR_TYPE_COUNT];
    tensor_to_float_fn to_float[TENSOR_TYPE_COUNT];
    /* the Q4_0 dot for matrices llama.cpp repacks (n_rows % 8 == 0; see tensor_matrix_vec_dot) */
    tensor_vec_dot_fn q4_0_repacked_vec_dot;
    tensor_gemm_fn q4_0_repacked_gemm; /* equal to q4_0_repacked_vec_dot, or NULL */
    fp16_to_fp32_row_fn fp16_to_fp32_row;
    fp32_to_fp16_row_fn fp32_to_fp16_row;
    f16_scale_row_fn f16_scale_row;
    f16_mad_row_fn f16_mad_row;
    tensor_vec_dot_fn f16_dot;
} kernel_table;

/* Select the process-wide level (first call only; later calls return the same answer). Returns
 * EDGELM_OK, or EDGELM_ERR_INVALID_ARGUMENT with a message in msg when EDGELM_KERNELS names an
 * unknown level or one this CPU (or build) cannot run; the table then holds the best supported
 * level, so the engine stays usable, but a model load should fail with that message. */
edgelm_status kernels_init(char *msg, size_t msg_size);

/* The selected table (initializes on first use; never NULL, always complete). */
const kernel_table *kernels_get(void);

/* ---- the tensor types with the selected kernels in place ---- */

/* Traits of a type id with the selected kernels in place (never NULL functions where the
 * reference has one), or NULL for ids the engine does not know or support. */
const tensor_type_traits *tensor_type_get(uint32_t type);
/* The row dot a whole matrix of this type with n_rows rows uses. Usually traits->vec_dot; but
 * llama.cpp's x86 CPU backend repacks Q4_0 matrices whose row count is a multiple of 8 and sums
 * those in another float order, and matching its logits needs the same order. */
tensor_vec_dot_fn tensor_matrix_vec_dot(uint32_t type, int64_t n_rows);
/* The matrix x matrix kernel of such a matrix, equal to tensor_matrix_vec_dot row by row and
 * token by token; NULL when the selected kernels have none for it (then loop the vec_dot). */
tensor_gemm_fn tensor_matrix_gemm(uint32_t type, int64_t n_rows);
/* ---- for tests and benchmarks ---- */

/* Whether this CPU and build can run a level (ref is always true). */
bool kernels_level_supported(kernel_level level);
/* A complete table for a supported level, built on the caller's storage (false when the level
 * is unsupported). Lets one process compare every level against the reference. */
bool kernels_build_table(kernel_level level, kernel_table *table);
/* "ref", "sse2", ... and back; kernels_level_from_name returns KERNEL_LEVEL_COUNT if unknown. */
const char *kernels_level_name(kernel_level level);
kernel_level kernels_level_from_name(const char *name);

/* ---- filled by the per-ISA files (each overrides only what it implements) ---- */
void kernels_fill_ref(kernel_table *t);
void kernels_fill_sse2(kernel_table *t);
void kernels_fill_avx2(kernel_table *t);
/* has_vnni: the CPU has AVX512-VNNI (those variants carry their own target attribute). */
void kernels_fill_avx512(kernel_table *t, bool has_vnni);
void kernels_fill_neon(kernel_table *t);

#endif /* EDGELM_KERNELS_H */
