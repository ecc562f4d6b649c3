/* kernel_table.h - the kernel table: one function per tensor type and operation, the contract
 * between the dispatcher (kernels.c, which picks a level once per process) and the per-ISA files
 * (x86/kernels_<isa>.c, arm/kernels_neon.c), which fill it. Each level starts from the table of
 * the level below and overrides only what it implements. test_kernels checks every entry against
 * the scalar reference (quant_ref.h), and every gemm and gemv against its level's vec_dot, bit
 * for bit.
 * Types and declarations only.
 */
#ifndef EDGELM_KERNEL_TABLE_H
#define EDGELM_KERNEL_TABLE_H

#include "fp16.h"
#include "quant.h"

#include <stdbool.h>
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
 * f16_vec_dot_x86 in quant_float.c). */
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
    /* matrix x one token (n_tokens == 1), equal to vec_dot[type] per row, where that beats a loop
     * of vec_dot (decode); NULL = loop vec_dot. Usually the gemm itself. */
    tensor_gemm_fn gemv[TENSOR_TYPE_COUNT];
    /* the scalar function (quant_ref.h) that vec_dot[type] equals bit for bit when the level sums
     * in an order of its own; NULL = the reference's order, or within test_kernels' bound of it */
    tensor_vec_dot_fn vec_dot_spec[TENSOR_TYPE_COUNT];
    tensor_from_float_fn from_float[TENSOR_TYPE_COUNT];
    tensor_to_float_fn to_float[TENSOR_TYPE_COUNT];
    fp16_to_fp32_row_fn fp16_to_fp32_row;
    fp32_to_fp16_row_fn fp32_to_fp16_row;
    f16_scale_row_fn f16_scale_row;
    f16_mad_row_fn f16_mad_row;
    tensor_vec_dot_fn f16_dot;
} kernel_table;

/* ---- filled by the per-ISA files (each overrides only what it implements) ---- */
void kernels_fill_ref(kernel_table *t);
void kernels_fill_sse2(kernel_table *t);
void kernels_fill_avx2(kernel_table *t);
/* has_vnni: the CPU has AVX512-VNNI (those variants carry their own target attribute). */
void kernels_fill_avx512(kernel_table *t, bool has_vnni);
void kernels_fill_neon(kernel_table *t);

#endif /* EDGELM_KERNEL_TABLE_H */
