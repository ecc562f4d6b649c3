/* kernels_common.h - scalar pieces shared by the per-ISA kernel files (kernels_sse2.c,
 * kernels_avx2.c, kernels_neon.c): static inline, no intrinsics, so each file compiles them with
 * its own flags. Row drivers take the file's block quantizer as a constant callback, which the
 * compiler inlines; they do the same scalar steps in the same order as the reference.
 */
#ifndef EDGELM_KERNELS_COMMON_H
#define EDGELM_KERNELS_COMMON_H

#include "fp16.h"
#include "quant.h"

#include <math.h>
#include <stdint.h>

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

/* Q8_K: the index of the first of x[0..QK_K) whose magnitude is amax (their maximum), whose
 * value sets the block scale; QK_K - 1 if none matches (only with NaNs in x). */
static inline int kc_q8_K_first_max(const float *x, float amax) {
    int first = 0;
    while (first < QK_K - 1 && fabsf(x[first]) != amax) {
        first++;
    }
    return first;
}

#endif
