/* quant_k_encode.c - reference encoders of the K-quants (Q2_K..Q6_K weights, Q8_K activations).
 *
 * Same algorithms, float operations and operation order as ggml's quantize_row_*_ref (no
 * importance matrix), so a generator writes the bytes llama-quantize would write for the same
 * F32 weights. Each weight encoder first fits a scale (and min) per sub-block by a small search
 * (make_qx/q3/qkx2 below), then quantizes those scales to 4 or 6 bits against an fp16
 * super-scale, then re-derives every code from the stored (rounded) scales. The stack arrays
 * are fixed-size (one super-block); nothing allocates. Inputs must be finite.
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
#include <stdbool.h>
#include <string.h>

/* Below this, a group counts as all zeros (ggml's GROUP_MAX_EPS). */
#define GROUP_MAX_EPS 1e-15f

/* Round to nearest, ties to even, by adding 1.5 * 2^23 and reading the low mantissa bits:
 * exact for |f| <= 2^22 - 1. ggml uses this instead of lrintf, and rounding differences decide
 * codes, so we keep it. Out-of-range inputs give a meaningless (but defined) result that the
 * callers clamp. */
static int nearest_int(float f) {
    const float biased = f + 12582912.0f;
    int32_t bits;
    memcpy(&bits, &biased, sizeof bits);
    return (bits & 0x007fffff) - 0x00400000;
}

static int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* Symmetric codes l in [-nmax, nmax - 1] for n values, minimizing sum w (x - s l)^2 with
 * w = x^2 (ggml's rmse_type 1): start from s = max / -nmax (max = signed absmax), least-squares
 * the scale for those codes, then try 18 nearby starting scales and keep the best fit.
 * L receives l + nmax (0..2 nmax - 1); returns the scale. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0.0f;
    float amax = 0.0f;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0.0f;
    float suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) {
            continue;
        }
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = 0.0f;
        suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        /* sumlx^2 / suml2 is the explained energy; compare without dividing */
        if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
                L[i] = (int8_t)(l + nmax);
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Q3_K's sub-block fit (ggml's make_q3_quants with do_rmse): symmetric codes in
 * [-nmax, nmax - 1] weighted by x^2, refined coordinate-wise (up to 5 passes) by moving one
 * code at a time to its best value given the others. L receives l + nmax; returns the scale. */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0.0f;
    float amax = 0.0f;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = (float)-nmax / max;
    float sumlx = 0.0f;
    float suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (slx > 0.0f) {
                float sl2 = suml2 - w * (float)L[i] * (float)L[i];
                int new_l = nearest_int(x[i] * sl2 / slx);
                new_l = clamp_int(new_l, -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * (float)new_l;
                    sl2 += w * (float)new_l * (float)new_l;
                    if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (n_changed == 0) {
            break;
        }
    }
    for (int i = 0; i < n; i++) {
        L[i] = (int8_t)(L[i] + nmax);
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Affine fit x ~ scale * l - the_min with codes l in [0, nmax] (ggml's make_qkx2_quants):
 * start from the min/max grid, then for nstep + 1 trial grids (rmin + rdelta * is) solve the
 * weighted least-squares scale and min for the resulting codes and keep the one with the
 * smallest weighted error (absolute if use_mad, squared otherwise). The min is clamped to <= 0
 * so the_min >= 0. L receives the codes, Laux is scratch of n entries; returns the scale. */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                              float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                              bool use_mad) {
    float min = x[0];
    float max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) {
            min = x[i];
        }
        if (x[i] > max) {
            max = x[i];
        }
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0.0f) {
        min = 0.0f;
    }
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)clamp_int(l, 0, nmax);
        float diff = scale * (float)L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0.0f;
        float sum_l2 = 0.0f;
        float sum_xl = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * (float)l;
            sum_l2 += w * (float)l * (float)l;
            sum_xl += w * (float)l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0.0f) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0.0f) {
                this_min = 0.0f;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0.0f;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Pack 2-bit codes L[0..255] into the Q2_K/Q3_K qs layout (see unpack_2bit in quant_k.c). */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_K; j += 128) {
        for (int l = 0; l < 32; l++) {
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                      (L[j + l + 96] << 6));
        }
    }
}

/* Store the 6-bit scale ls and min lm of sub-block j (0..7) into the Q4_K/Q5_K 12-byte layout
 * (the inverse of k4_scale_min). Call for j = 0..7 in order: j < 4 writes bytes j and j + 4
 * whole, j >= 4 writes byte j + 4 and ORs its top bits into bytes j - 4 and j. */
static void k4_store_scale_min(uint8_t *packed, int j, uint8_t ls, uint8_t lm) {
    if (j < 4) {
        packed[j] = ls;
        packed[j + 4] = lm;
    } else {
        packed[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
        packed[j] |= (uint8_t)((lm >> 4) << 6);
    }
}

/* ---- Q2_K ----------------------------------------------------------------------------------- */

void q2_K_from_float_ref(const float *src, void *dst, int64_t n) {
    block_q2_K *y = dst;
    const int64_t nb = n / QK_K;
    const float q4scale = 15.0f;
    uint8_t L[QK_K];
    uint8_t Laux[16];
    float weights[16];
    float mins[QK_K / 16];
    float scales[QK_K / 16];

    for (int64_t i = 0; i < nb; i++) {
        const float *x = src + i * QK_K;
        float max_scale = 0.0f; /* the min is subtracted, so scales are >= 0 */
        float max_min = 0.0f;
        for (int j = 0; j < QK_K / 16; j++) {
            for (int l = 0; l < 16; l++) {
                weights[l] = fabsf(x[16 * j + l]);
            }
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux,
                                         -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) {
                max_scale = scales[j];
            }
            if (mins[j] > max_min) {
                max_min = mins[j];
            }
        }

        /* 4-bit scales (low nibble) and mins (high nibble) against fp16 d and dmin */
        if (max_scale > 0.0f) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < QK_K / 16; j++) {
                y[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            }
            y[i].d = fp32_to_fp16(max_scale / q4scale);
        } else {
            memset(y[i].scales, 0, sizeof y[i].scales);
            y[i].d = fp32_to_fp16(0.0f);
        }
        if (max_min > 0.0f) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < QK_K / 16; j++) {
                const int l = nearest_int(iscale * mins[j]);
                y[i].scales[j] = (uint8_t)(y[i].scales[j] | (l << 4));
            }
            y[i].dmin = fp32_to_fp16(max_min / q4scale);
        } else {
            y[i].dmin = fp32_to_fp16(0.0f);
        }

        /* re-derive the codes from the scales as stored */
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = fp16_to_fp32(y[i].d) * (float)(y[i].scales[j] & 0xF);
            if (d == 0.0f) {
                continue;
            }
            const float dm = fp16_to_fp32(y[i].dmin) * (float)(y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ii++) {
                const int l = nearest_int((x[16 * j + ii] + dm) / d);
                L[16 * j + ii] = (uint8_t)clamp_int(l, 0, 3);
            }
        }
        pack_2bit(L, y[i].qs);
    }
}

/* ---- Q3_K ----------------------------------------------------------------------------------- */

void q3_K_from_float_ref(const float *src, void *dst, int64_t n) {
    block_q3_K *y = dst;
    const int64_t nb = n / QK_K;
    int8_t L[QK_K];
    float scales[QK_K / 16];

    for (int64_t i = 0; i < nb; i++) {
        const float *x = src + i * QK_K;
        float max_scale = 0.0f; /* signed scale of largest magnitude */
        float amax = 0.0f;
        for (int j = 0; j < QK_K / 16; j++) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            const float scale = fabsf(scales[j]);
            if (scale > amax) {
                amax = scale;
                max_scale = scales[j];
            }
        }

        /* 6-bit scales stored as sc + 32 in [0, 63]: low nibbles in bytes 0-7, top 2 bits in
         * bytes 8-11 (see q3_K_scale) */
        memset(y[i].scales, 0, sizeof y[i].scales);
        if (max_scale != 0.0f) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < QK_K / 16; j++) {
                const int l = clamp_int((int8_t)nearest_int(iscale * scales[j]), -32, 31) + 32;
                if (j < 8) {
                    y[i].scales[j] = (uint8_t)(l & 0xF);
                } else {
                    y[i].scales[j - 8] = (uint8_t)(y[i].scales[j - 8] | ((l & 0xF) << 4));
                }
                y[i].scales[j % 4 + 8] =
                    (uint8_t)(y[i].scales[j % 4 + 8] | ((l >> 4) << (2 * (j / 4))));
            }
            y[i].d = fp32_to_fp16(1 / iscale);
        } else {
            y[i].d = fp32_to_fp16(0.0f);
        }

        for (int j = 0; j < QK_K / 16; j++) {
            const int sc = q3_K_scale(j, y[i].scales) - 32;
            const float d = fp16_to_fp32(y[i].d) * (float)sc;
            if (d == 0.0f) {
                continue;
            }
            for (int ii = 0; ii < 16; ii++) {
                const int l = clamp_int(nearest_int(x[16 * j + ii] / d), -4, 3);
                L[16 * j + ii] = (int8_t)(l + 4);
            }
        }

        /* codes 0..7: bit 2 goes to hmask (byte w % 32, bit w / 32), bits 0-1 to qs */
        uint8_t low[QK_K];
        memset(y[i].hmask, 0, sizeof y[i].hmask);
        for (int w = 0; w < QK_K; w++) {
            int code = L[w];
            if (code > 3) {
                y[i].hmask[w % 32] = (uint8_t)(y[i].hmask[w % 32] | (1u << (w / 32)));
                code -= 4;
            }
            low[w] = (uint8_t)code;
        }
        pack_2bit(low, y[i].qs);
    }
}

/* ---- Q4_K / Q5_K (shared: 8 sub-blocks of 32, 6-bit scales and mins) ------------------------ */

/* Fit codes in [0, nmax] per 32-weight sub-block, quantize the scales and mins to 6 bits against
 * fp16 d = max_scale / 63 and dmin = max_min / 63, and re-derive the codes (L, 0..nmax) from the
 * stored values. Weights of the fit: rms of the sub-block + |x| (ggml's choice). */
static void k4_encode_superblock(const float *x, int nmax, float rmin, int nstep, uint8_t *scales12,
                                 fp16_t *d_out, fp16_t *dmin_out, uint8_t *L) {
    uint8_t Laux[32];
    float weights[32];
    float mins[QK_K / 32];
    float scales[QK_K / 32];
    float max_scale = 0.0f;
    float max_min = 0.0f;
    for (int j = 0; j < QK_K / 32; j++) {
        float sum_x2 = 0.0f;
        for (int l = 0; l < 32; l++) {
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        }
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) {
            weights[l] = av_x + fabsf(x[32 * j + l]);
        }
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                     rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) {
            max_scale = scales[j];
        }
        if (mins[j] > max_min) {
            max_min = mins[j];
        }
    }

    const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        k4_store_scale_min(scales12, j, ls, lm);
    }
    *d_out = fp32_to_fp16(max_scale / 63.0f);
    *dmin_out = fp32_to_fp16(max_min / 63.0f);

    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        k4_scale_min(j, scales12, &sc, &m);
        const float d = fp16_to_fp32(*d_out) * (float)sc;
        if (d == 0.0f) {
            continue;
        }
        const float dm = fp16_to_fp32(*dmin_out) * (float)m;
        for (int ii = 0; ii < 32; ii++) {
            const int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)clamp_int(l, 0, nmax);
        }
    }
}

void q4_K_from_float_ref(const float *src, void *dst, int64_t n) {
    block_q4_K *y = dst;
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++) {
        k4_encode_superblock(src + i * QK_K, 15, -1.0f, 20, y[i].scales, &y[i].d, &y[i].dmin, L);
        /* chunk c of 64: byte 32c + l = weight 64c + l (low) | weight 64c + 32 + l (high) */
        for (int c = 0; c < QK_K / 64; c++) {
            for (int l = 0; l < 32; l++) {
                y[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
            }
        }
    }
}

void q5_K_from_float_ref(const float *src, void *dst, int64_t n) {
    block_q5_K *y = dst;
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++) {
        k4_encode_superblock(src + i * QK_K, 31, -0.5f, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
        /* low 4 bits as Q4_K; bit 4 of weight w in qh byte w % 32, bit w / 32 */
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int c = 0; c < QK_K / 64; c++) {
            for (int l = 0; l < 32; l++) {
                const int l1 = L[64 * c + l];
                const int l2 = L[64 * c + 32 + l];
                y[i].qh[l] =
                    (uint8_t)(y[i].qh[l] | ((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1)));
                y[i].qs[32 * c + l] = (uint8_t)((l1 & 0xF) | ((l2 & 0xF) << 4));
            }
        }
    }
}

/* ---- Q6_K ----------------------------------------------------------------------------------- */

void q6_K_from_float_ref(const float *src, void *dst, int64_t n) {
    block_q6_K *y = dst;
    const int64_t nb = n / QK_K;
    int8_t L[QK_K];
    float scales[QK_K / 16];

    for (int64_t i = 0; i < nb; i++) {
        const float *x = src + i * QK_K;
        float max_scale = 0.0f; /* signed scale of largest magnitude */
        float max_abs_scale = 0.0f;
        for (int ib = 0; ib < QK_K / 16; ib++) {
            scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            const float abs_scale = fabsf(scales[ib]);
            if (abs_scale > max_abs_scale) {
                max_abs_scale = abs_scale;
                max_scale = scales[ib];
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            y[i].d = fp32_to_fp16(0.0f);
            continue;
        }

        /* int8 scales against fp16 d; the largest maps to -128 (clamped to 127 if positive) */
        const float iscale = -128.0f / max_scale;
        y[i].d = fp32_to_fp16(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ib++) {
            const int l = nearest_int(iscale * scales[ib]);
            y[i].scales[ib] = (int8_t)(l < 127 ? l : 127);
        }

        for (int j = 0; j < QK_K / 16; j++) {
            const float d = fp16_to_fp32(y[i].d) * (float)y[i].scales[j];
            if (d == 0.0f) {
                continue;
            }
            for (int ii = 0; ii < 16; ii++) {
                const int l = clamp_int(nearest_int(x[16 * j + ii] / d), -32, 31);
                L[16 * j + ii] = (int8_t)(l + 32);
            }
        }

        /* layout: see q6_K_unpack in quant_k.c */
        for (int h = 0; h < QK_K / 128; h++) {
            const int8_t *Lh = L + 128 * h;
            uint8_t *ql = y[i].ql + 64 * h;
            uint8_t *qh = y[i].qh + 32 * h;
            for (int l = 0; l < 32; l++) {
                const int q1 = Lh[l], q2 = Lh[l + 32], q3 = Lh[l + 64], q4 = Lh[l + 96];
                ql[l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
                ql[l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
                qh[l] =
                    (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
        }
    }
}

/* ---- Q8_K (activations) --------------------------------------------------------------------- */

/* d = max / -127 with max the signed absmax (so that value encodes as -127 exactly), codes
 * nearest-even, clamped at 127; bsums = sums of each 16 codes, used by the K-quant dot products
 * for the min terms. Must match ggml exactly: llama.cpp quantizes activations this way. */
void q8_K_from_float_ref(const float *src, void *dst, int64_t n) {
    block_q8_K *y = dst;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float *x = src + i * QK_K;
        float max = 0.0f;
        float amax = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            const float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            /* ggml leaves bsums untouched here; we zero them so the block is fully defined */
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            const int v = nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int ii = 0; ii < 16; ii++) {
                sum += y[i].qs[16 * j + ii];
            }
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}
