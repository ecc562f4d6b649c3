/* kernels.h - runtime selection of the ISA-specific kernels behind the traits table.
 *
 * One kernel table per process, filled once (pthread_once) from CPUID/XGETBV on x86 or from the
 * build target on ARM, or forced with EDGELM_KERNELS=ref|sse2|avx2|avx512|neon. The selected
 * variants replace the reference functions in what tensor_type_get(), tensor_matrix_gemm() and
 * tensor_matrix_gemv() return; tensor_type_get_ref() (quant.h) keeps the pure reference.
 * Intrinsics live only in the per-ISA files (x86/kernels_<isa>.c, arm/kernels_neon.c), each
 * compiled with its own flags and reached only through the table (kernel_table.h).
 */
#ifndef EDGELM_KERNELS_H
#define EDGELM_KERNELS_H

#include "edgelm.h"
#include "kernel_table.h"
#include "quant.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
/* The matrix x matrix kernel of a weight type, equal to its vec_dot row by row and token by token;
 * NULL when the selected kernels have none for it (then loop the vec_dot). */
tensor_gemm_fn tensor_matrix_gemm(uint32_t type);
/* The kernel for a matrix times one token (decode), equal to the vec_dot row by row; NULL when a
 * loop of the vec_dot is the best the selected kernels have. */
tensor_gemm_fn tensor_matrix_gemv(uint32_t type);

/* ---- for tests and benchmarks ---- */

/* Whether this CPU and build can run a level (ref is always true). */
bool kernels_level_supported(kernel_level level);
/* A complete table for a supported level, built on the caller's storage (false when the level
 * is unsupported). Lets one process compare every level against the reference. */
bool kernels_build_table(kernel_level level, kernel_table *table);
/* "ref", "sse2", ... and back; kernels_level_from_name returns KERNEL_LEVEL_COUNT if unknown. */
const char *kernels_level_name(kernel_level level);
kernel_level kernels_level_from_name(const char *name);

#endif /* EDGELM_KERNELS_H */
