/* quant_float.c - the reference kernels of the float types (F32, F16, BF16) and of the fp16 row
 * helpers (declared in quant_ref.h).
 *
 * Float dot products accumulate each float product in double, as ggml's scalar
 * ggml_vec_dot_f32/f16/bf16 do (ggml_float = double), then round once to float.
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

/* The same conversions as the fp16 row helpers below. */
void f16_to_float_ref(const void *src, float *dst, int64_t n) { fp16_to_fp32_row_ref(src, dst, n); }

void f16_from_float_ref(const float *src, void *dst, int64_t n) {
    fp32_to_fp16_row_ref(src, dst, n);
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
