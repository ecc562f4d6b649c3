/* tensor_types.h - the tensor types the engine knows (tensor_types.c): their traits with the
 * scalar reference kernels, and row sizes. Names and sizes are the same at every kernel level;
 * the engine's matmuls ask kernels.h's tensor_type_get() instead, which hands out the selected
 * ISA variants.
 */
#ifndef EDGELM_TENSOR_TYPES_H
#define EDGELM_TENSOR_TYPES_H

#include "quant.h"

#include <stddef.h>
#include <stdint.h>

/* Traits of a type id with the scalar reference kernels, or NULL for ids the engine does not
 * know or support. */
const tensor_type_traits *tensor_type_get_ref(uint32_t type);
/* Bytes of a row of n elements (n must be a multiple of the block size); 0 when it is not or
 * the type is unknown. */
size_t tensor_row_size(uint32_t type, int64_t n);

#endif /* EDGELM_TENSOR_TYPES_H */
