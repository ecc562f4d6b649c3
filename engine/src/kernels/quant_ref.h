/* quant_ref.h - internal declarations of the scalar reference kernels behind the traits table.
 *
 * These are the specification: each to_float equals ggml's dequantize_row_* bit for bit, each
 * from_float follows ggml's quantize_row_*_ref, and each vec_dot reproduces the integer block
 * sums and the float scaling order of ggml's *_generic code. SIMD variants are tested against
 * them. The engine reaches kernels through tensor_type_get() (kernels.h), which returns the
 * selected ISA variants; this header exists so the table in tensor_types.c, the kernel table
 * (kernels.c) and the tests can name the reference functions themselves.
 */
#ifndef EDGELM_QUANT_REF_H
#define EDGELM_QUANT_REF_H

#include "quant.h"

#include <stdint.h>

/* Reference fp16 row helpers (semantics in kernels.h). */
void fp16_to_fp32_row_ref(const fp16_t *x, float *y, int64_t n);
void fp32_to_fp16_row_ref(const float *x, fp16_t *y, int64_t n);
void f16_scale_row_ref(fp16_t *y, float s, int64_t n);
void f16_mad_row_ref(fp16_t *y, const fp16_t *x, float s, int64_t n);

/* Preconditions shared by every function here: n >= 0 and a multiple of the type's block size;
 * buffers do not overlap; from_float inputs are finite (NaN/Inf give unspecified codes). */

/* ---- float types (quant_float.c) ---- */
void f32_to_float_ref(const void *src, float *dst, int64_t n);
void f32_from_float_ref(const float *src, void *dst, int64_t n);
void f32_vec_dot_ref(int64_t n, float *s, const void *x, const void *y);
void f16_to_float_ref(const void *src, float *dst, int64_t n);
void f16_from_float_ref(const float *src, void *dst, int64_t n);
void f16_vec_dot_ref(int64_t n, float *s, const void *x, const void *y);
void bf16_to_float_ref(const void *src, float *dst, int64_t n);
void bf16_from_float_ref(const float *src, void *dst, int64_t n);
void bf16_vec_dot_ref(int64_t n, float *s, const void *x, const void *y);

/* ---- legacy 32-weight blocks (quant_legacy.c) ---- */
void q4_0_to_float_ref(const void *src, float *dst, int64_t n);
void q4_0_from_float_ref(const float *src, void *dst, int64_t n);
void q4_0_vec_dot_ref(int64_t n, float *s, const void *x, const void *y); /* y: Q8_0 */
void q4_1_to_float_ref(const void *src, float *dst, int64_t n);
void q4_1_from_float_ref(const float *src, void *dst, int64_t n);
void q4_1_vec_dot_ref(int64_t n, float *s, const void *x, const void *y); /* y: Q8_1 */
void q5_0_to_float_ref(const void *src, float *dst, int64_t n);
void q5_0_from_float_ref(const float *src, void *dst, int64_t n);
void q5_0_vec_dot_ref(int64_t n, float *s, const void *x, const void *y); /* y: Q8_0 */
void q5_1_to_float_ref(const void *src, float *dst, int64_t n);
void q5_1_from_float_ref(const float *src, void *dst, int64_t n);
void q5_1_vec_dot_ref(int64_t n, float *s, const void *x, const void *y); /* y: Q8_1 */
void q8_0_to_float_ref(const void *src, float *dst, int64_t n);
void q8_0_from_float_ref(const float *src, void *dst, int64_t n);
void q8_0_vec_dot_ref(int64_t n, float *s, const void *x, const void *y); /* y: Q8_0 */

/* ---- the traits' vec_dot where it is not the generic float order ---- */
void f16_vec_dot_x86(int64_t n, float *s, const void *x, const void *y); /* ggml's x86 order */
/* Q4_0, Q8_0: per block acc = fmaf((float)sumi, dx * dy, acc), in block order (quant_legacy.c) */
void q4_0_vec_dot_fma(int64_t n, float *s, const void *x, const void *y); /* y: Q8_0 */
void q8_0_vec_dot_fma(int64_t n, float *s, const void *x, const void *y); /* y: Q8_0 */
void q8_1_from_float_ref(const float *src, void *dst, int64_t n);         /* activations only */

/* ---- K-quants: decoding and dot products (quant_k.c) ---- */
void q2_K_to_float_ref(const void *src, float *dst, int64_t n);
void q2_K_vec_dot_ref(int64_t n, float *s, const void *x, const void *y); /* y: Q8_K */
void q3_K_to_float_ref(const void *src, float *dst, int64_t n);
void q3_K_vec_dot_ref(int64_t n, float *s, const void *x, const void *y);
void q4_K_to_float_ref(const void *src, float *dst, int64_t n);
void q4_K_vec_dot_ref(int64_t n, float *s, const void *x, const void *y);
/* Q4_K in the row-per-lane kernels' order: exact integer sums per super-block, two fmaf each */
void q4_K_vec_dot_fma(int64_t n, float *s, const void *x, const void *y);
void q5_K_to_float_ref(const void *src, float *dst, int64_t n);
/* the traits' Q5_K dot: ggml's x86 order (see quant_k.c) */
void q5_K_vec_dot_x86(int64_t n, float *s, const void *x, const void *y);
void q6_K_to_float_ref(const void *src, float *dst, int64_t n);
void q6_K_vec_dot_ref(int64_t n, float *s, const void *x, const void *y);
/* Q6_K in the row-per-lane kernels' order: an exact integer sum per super-block, one fmaf */
void q6_K_vec_dot_fma(int64_t n, float *s, const void *x, const void *y);
void q8_K_to_float_ref(const void *src, float *dst, int64_t n);

/* ---- K-quants: reference encoders (quant_k_encode.c) ---- */
void q2_K_from_float_ref(const float *src, void *dst, int64_t n);
void q3_K_from_float_ref(const float *src, void *dst, int64_t n);
void q4_K_from_float_ref(const float *src, void *dst, int64_t n);
void q5_K_from_float_ref(const float *src, void *dst, int64_t n);
void q6_K_from_float_ref(const float *src, void *dst, int64_t n);
void q8_K_from_float_ref(const float *src, void *dst, int64_t n); /* activations only */

/* Marks the kernels that quant_legacy.c, quant_k.c and quant_k_encode.c share between types and
 * that take a constant per-type descriptor (or function): forced inline into each type's entry
 * point, the descriptor folds to constants and every type gets its own specialised loops. Left
 * to themselves, GCC and clang keep one generic copy of some of them, 1.2-4x slower. */
#if defined(__GNUC__)
#define QUANT_SHARED_KERNEL static inline __attribute__((always_inline))
#else
#define QUANT_SHARED_KERNEL static inline
#endif

/* The 6-bit scale/min pair j (0..7) of a Q4_K/Q5_K super-block from its 12 packed bytes:
 * bytes 0-3 hold scales 0-3 (low 6 bits) and the top 2 bits of scales 4-7; bytes 4-7 hold
 * mins 0-3 and the top 2 bits of mins 4-7; bytes 8-11 hold the low nibbles of scales 4-7
 * (low half) and mins 4-7 (high half). Shared by the decoder and the encoder. */
static inline void k4_scale_min(int j, const uint8_t *packed, uint8_t *scale, uint8_t *min) {
    if (j < 4) {
        *scale = (uint8_t)(packed[j] & 63);
        *min = (uint8_t)(packed[j + 4] & 63);
    } else {
        *scale = (uint8_t)((packed[j + 4] & 0xF) | ((packed[j - 4] >> 6) << 4));
        *min = (uint8_t)((packed[j + 4] >> 4) | ((packed[j] >> 6) << 4));
    }
}

/* The 6-bit scale j (0..15) of a Q3_K super-block, as stored (0..63; the value is minus 32):
 * bytes 0-7 hold the low nibbles (scales 0-7 in the low halves, 8-15 in the high halves);
 * bytes 8-11 hold the top 2 bits, byte 8 + j % 4 at bit 2 * (j / 4). */
static inline int q3_K_scale(int j, const uint8_t *packed) {
    const int low = j < 8 ? (packed[j] & 0xF) : (packed[j - 8] >> 4);
    const int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    return low | (high << 4);
}

#endif /* EDGELM_QUANT_REF_H */
