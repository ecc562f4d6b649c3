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

/* The value of largest magnitude (the first one on ties) and, in *amax, that magnitude; 0 and 0
 * when all are 0. */
static float signed_absmax(const float *x, int n, float *amax_out) {
    float max = 0.0f;
    float amax = 0.0f;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    *amax_out = amax;
    return max;
}

/* The largest of n values, or 0 if none is positive. */
static float max_or_zero(const float *v, int n) {
    float max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (v[i] > max) {
            max = v[i];
        }
    }
    return max;
}

/* Symmetric codes l = clamp(round(iscale * x), -nmax, nmax - 1) for n values, stored in L (if
 * not NULL), and the sums of the x^2-weighted fit (ggml's rmse_type 1): *sumlx = sum w x l,
 * *suml2 = sum w l^2 with w = x^2, which give the best scale sumlx / suml2 for those codes. */
static void symmetric_codes(int n, int nmax, const float *x, float iscale, int8_t *L,
                            float *sumlx_out, float *suml2_out) {
    float sumlx = 0.0f;
    float suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        if (L != NULL) {
            L[i] = (int8_t)l;
        }
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    *sumlx_out = sumlx;
    *suml2_out = suml2;
}

/* The first step of both symmetric fits below: max = the signed absmax, codes for the scale
 * max / -nmax. Returns false, with L zeroed, for a group that is all zeros (then the fit's
 * scale is 0 and the codes stay 0, as in ggml). */
static bool symmetric_start(int n, int nmax, const float *x, int8_t *L, float *max, float *sumlx,
                            float *suml2) {
    float amax;
    *max = signed_absmax(x, n, &amax);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return false;
    }
    symmetric_codes(n, nmax, x, (float)-nmax / *max, L, sumlx, suml2);
    return true;
}

/* Stored codes are l + nmax (0..2 nmax - 1). */
static void offset_codes(int n, int nmax, int8_t *L) {
    for (int i = 0; i < n; i++) {
        L[i] = (int8_t)(L[i] + nmax);
    }
}

/* Symmetric codes l in [-nmax, nmax - 1] for n values, minimizing sum w (x - s l)^2 with
 * w = x^2 (ggml's make_qx_quants, rmse_type 1): start from s = max / -nmax, least-squares the
 * scale for those codes, then try 18 nearby starting scales and keep the best fit.
 * L receives l + nmax; returns the scale. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float max, sumlx, suml2;
    if (!symmetric_start(n, nmax, x, L, &max, &sumlx, &suml2)) {
        return 0.0f;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) {
            continue;
        }
        const float iscale = -((float)nmax + 0.1f * (float)is) / max;
        symmetric_codes(n, nmax, x, iscale, NULL, &sumlx, &suml2);
        /* sumlx^2 / suml2 is the explained energy; compare without dividing */
        if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
            symmetric_codes(n, nmax, x, iscale, L, &sumlx, &suml2);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    offset_codes(n, nmax, L);
    return scale;
}

/* Q3_K's sub-block fit (ggml's make_q3_quants with do_rmse): symmetric codes in
 * [-nmax, nmax - 1] weighted by x^2, refined coordinate-wise (up to 5 passes) by moving one
 * code at a time to its best value given the others. L receives l + nmax; returns the scale. */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float max, sumlx, suml2;
    if (!symmetric_start(n, nmax, x, L, &max, &sumlx, &suml2)) {
        return 0.0f;
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
    offset_codes(n, nmax, L);
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

/* Re-derive the codes of a group of n weights from its stored (rounded) scale d and min dm,
 * x ~ d * l - dm: l = clamp(round((x + dm) / d), 0, nmax). A group with d == 0 keeps the codes
 * of its fit. */
static void codes_with_min(const float *x, int n, float d, float dm, int nmax, uint8_t *L) {
    if (d == 0.0f) {
        return;
    }
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clamp_int(nearest_int((x[i] + dm) / d), 0, nmax);
    }
}

/* The same for the symmetric types, x ~ d * l: l = clamp(round(x / d), -nmax, nmax - 1),
 * stored as l + nmax. */
static void codes_symmetric(const float *x, int n, float d, int nmax, int8_t *L) {
    if (d == 0.0f) {
        return;
    }
    for (int i = 0; i < n; i++) {
        L[i] = (int8_t)(clamp_int(nearest_int(x[i] / d), -nmax, nmax - 1) + nmax);
    }
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

/* Every encoder below handles one super-block: QK_K floats into one block. */
QUANT_SHARED_KERNEL void encode_row(const float *src, void *dst, int64_t n, size_t block_bytes,
                                    void (*encode)(const float *x, void *block)) {
    for (int64_t i = 0; i < n / QK_K; i++) {
        encode(src + i * QK_K, (uint8_t *)dst + (size_t)i * block_bytes);
    }
}

/* ---- Q2_K ----------------------------------------------------------------------------------- */

static void q2_K_encode(const float *x, void *block) {
    block_q2_K *y = block;
    const float q4scale = 15.0f;
    uint8_t L[QK_K];
    uint8_t Laux[16];
    float weights[16];
    float mins[QK_K / 16];
    float scales[QK_K / 16];
    for (int j = 0; j < QK_K / 16; j++) {
        for (int l = 0; l < 16; l++) {
            weights[l] = fabsf(x[16 * j + l]);
        }
        scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f,
                                     0.1f, 15, true);
    }
    /* the min is subtracted, so scales and mins are >= 0 */
    const float max_scale = max_or_zero(scales, QK_K / 16);
    const float max_min = max_or_zero(mins, QK_K / 16);

    /* 4-bit scales (low nibble) and mins (high nibble) against fp16 d and dmin */
    if (max_scale > 0.0f) {
        const float iscale = q4scale / max_scale;
        for (int j = 0; j < QK_K / 16; j++) {
            y->scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
        }
        y->d = fp32_to_fp16(max_scale / q4scale);
    } else {
        memset(y->scales, 0, sizeof y->scales);
        y->d = fp32_to_fp16(0.0f);
    }
    if (max_min > 0.0f) {
        const float iscale = q4scale / max_min;
        for (int j = 0; j < QK_K / 16; j++) {
            const int l = nearest_int(iscale * mins[j]);
            y->scales[j] = (uint8_t)(y->scales[j] | (l << 4));
        }
        y->dmin = fp32_to_fp16(max_min / q4scale);
    } else {
        y->dmin = fp32_to_fp16(0.0f);
    }

    /* re-derive the codes from the scales as stored */
    for (int j = 0; j < QK_K / 16; j++) {
        const float d = fp16_to_fp32(y->d) * (float)(y->scales[j] & 0xF);
        const float dm = fp16_to_fp32(y->dmin) * (float)(y->scales[j] >> 4);
        codes_with_min(x + 16 * j, 16, d, dm, 3, L + 16 * j);
    }
    pack_2bit(L, y->qs);
}

void q2_K_from_float_ref(const float *src, void *dst, int64_t n) {
    encode_row(src, dst, n, sizeof(block_q2_K), q2_K_encode);
}

/* ---- Q3_K / Q6_K (shared: 16 sub-blocks of 16, symmetric codes, signed scales) -------------- */

/* A super-block fitted per 16-weight sub-block by make_q3_quants or make_qx_quants. */
typedef struct {
    int8_t L[QK_K];          /* codes l + nmax, l in [-nmax, nmax - 1] */
    float scales[QK_K / 16]; /* signed */
    float max_scale;         /* the scale of largest magnitude (the first on ties) */
    float amax;              /* its magnitude */
} symmetric_fit;

static void fit_sub_blocks16(const float *x, int nmax,
                             float (*fit)(int n, int nmax, const float *x, int8_t *L),
                             symmetric_fit *f) {
    for (int j = 0; j < QK_K / 16; j++) {
        f->scales[j] = fit(16, nmax, x + 16 * j, f->L + 16 * j);
    }
    f->max_scale = signed_absmax(f->scales, QK_K / 16, &f->amax);
}

static void q3_K_encode(const float *x, void *block) {
    block_q3_K *y = block;
    symmetric_fit f;
    fit_sub_blocks16(x, 4, make_q3_quants, &f);

    /* 6-bit scales stored as sc + 32 in [0, 63]: low nibbles in bytes 0-7, top 2 bits in
     * bytes 8-11 (see q3_K_scale) */
    memset(y->scales, 0, sizeof y->scales);
    if (f.max_scale != 0.0f) {
        const float iscale = -32.0f / f.max_scale;
        for (int j = 0; j < QK_K / 16; j++) {
            const int l = clamp_int((int8_t)nearest_int(iscale * f.scales[j]), -32, 31) + 32;
            if (j < 8) {
                y->scales[j] = (uint8_t)(l & 0xF);
            } else {
                y->scales[j - 8] = (uint8_t)(y->scales[j - 8] | ((l & 0xF) << 4));
            }
            y->scales[j % 4 + 8] = (uint8_t)(y->scales[j % 4 + 8] | ((l >> 4) << (2 * (j / 4))));
        }
        y->d = fp32_to_fp16(1 / iscale);
    } else {
        y->d = fp32_to_fp16(0.0f);
    }

    for (int j = 0; j < QK_K / 16; j++) {
        const int sc = q3_K_scale(j, y->scales) - 32;
        codes_symmetric(x + 16 * j, 16, fp16_to_fp32(y->d) * (float)sc, 4, f.L + 16 * j);
    }

    /* codes 0..7: bit 2 goes to hmask (byte w % 32, bit w / 32), bits 0-1 to qs */
    uint8_t low[QK_K];
    memset(y->hmask, 0, sizeof y->hmask);
    for (int w = 0; w < QK_K; w++) {
        int code = f.L[w];
        if (code > 3) {
            y->hmask[w % 32] = (uint8_t)(y->hmask[w % 32] | (1u << (w / 32)));
            code -= 4;
        }
        low[w] = (uint8_t)code;
    }
    pack_2bit(low, y->qs);
}

void q3_K_from_float_ref(const float *src, void *dst, int64_t n) {
    encode_row(src, dst, n, sizeof(block_q3_K), q3_K_encode);
}

static void q6_K_encode(const float *x, void *block) {
    block_q6_K *y = block;
    symmetric_fit f;
    fit_sub_blocks16(x, 32, make_qx_quants, &f);
    if (f.amax < GROUP_MAX_EPS) {
        memset(y, 0, sizeof *y);
        y->d = fp32_to_fp16(0.0f);
        return;
    }

    /* int8 scales against fp16 d; the largest maps to -128 (clamped to 127 if positive) */
    const float iscale = -128.0f / f.max_scale;
    y->d = fp32_to_fp16(1 / iscale);
    for (int j = 0; j < QK_K / 16; j++) {
        const int l = nearest_int(iscale * f.scales[j]);
        y->scales[j] = (int8_t)(l < 127 ? l : 127);
    }

    for (int j = 0; j < QK_K / 16; j++) {
        const float d = fp16_to_fp32(y->d) * (float)y->scales[j];
        codes_symmetric(x + 16 * j, 16, d, 32, f.L + 16 * j);
    }

    /* layout: see q6_K_unpack in quant_k.c */
    for (int h = 0; h < QK_K / 128; h++) {
        const int8_t *Lh = f.L + 128 * h;
        uint8_t *ql = y->ql + 64 * h;
        uint8_t *qh = y->qh + 32 * h;
        for (int l = 0; l < 32; l++) {
            const int q1 = Lh[l], q2 = Lh[l + 32], q3 = Lh[l + 64], q4 = Lh[l + 96];
            ql[l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
            ql[l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
            qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
        }
    }
}

void q6_K_from_float_ref(const float *src, void *dst, int64_t n) {
    encode_row(src, dst, n, sizeof(block_q6_K), q6_K_encode);
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
    }
    const float max_scale = max_or_zero(scales, QK_K / 32);
    const float max_min = max_or_zero(mins, QK_K / 32);

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
        const float dm = fp16_to_fp32(*dmin_out) * (float)m;
        codes_with_min(x + 32 * j, 32, d, dm, nmax, L + 32 * j);
    }
}

static void q4_K_encode(const float *x, void *block) {
    block_q4_K *y = block;
    uint8_t L[QK_K];
    k4_encode_superblock(x, 15, -1.0f, 20, y->scales, &y->d, &y->dmin, L);
    /* chunk c of 64: byte 32c + l = weight 64c + l (low) | weight 64c + 32 + l (high) */
    for (int c = 0; c < QK_K / 64; c++) {
        for (int l = 0; l < 32; l++) {
            y->qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
        }
    }
}

void q4_K_from_float_ref(const float *src, void *dst, int64_t n) {
    encode_row(src, dst, n, sizeof(block_q4_K), q4_K_encode);
}

static void q5_K_encode(const float *x, void *block) {
    block_q5_K *y = block;
    uint8_t L[QK_K];
    k4_encode_superblock(x, 31, -0.5f, 15, y->scales, &y->d, &y->dmin, L);
    /* low 4 bits as Q4_K; bit 4 of weight w in qh byte w % 32, bit w / 32 */
    memset(y->qh, 0, sizeof y->qh);
    for (int c = 0; c < QK_K / 64; c++) {
        for (int l = 0; l < 32; l++) {
            const int l1 = L[64 * c + l];
            const int l2 = L[64 * c + 32 + l];
            y->qh[l] = (uint8_t)(y->qh[l] | ((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1)));
            y->qs[32 * c + l] = (uint8_t)((l1 & 0xF) | ((l2 & 0xF) << 4));
        }
    }
}

void q5_K_from_float_ref(const float *src, void *dst, int64_t n) {
    encode_row(src, dst, n, sizeof(block_q5_K), q5_K_encode);
}

/* ---- Q8_K (activations) --------------------------------------------------------------------- */

/* d = max / -127 with max the signed absmax (so that value encodes as -127 exactly), codes
 * nearest-even, clamped at 127; bsums = sums of each 16 codes, used by the K-quant dot products
 * for the min terms. Must match ggml exactly: llama.cpp quantizes activations this way. */
static void q8_K_encode(const float *x, void *block) {
    block_q8_K *y = block;
    float amax;
    const float max = signed_absmax(x, QK_K, &amax);
    if (amax == 0.0f) {
        /* ggml leaves bsums untouched here; we zero them so the block is fully defined */
        memset(y, 0, sizeof *y);
        return;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < QK_K; j++) {
        const int v = nearest_int(iscale * x[j]);
        y->qs[j] = (int8_t)(v < 127 ? v : 127);
    }
    for (int j = 0; j < QK_K / 16; j++) {
        int sum = 0;
        for (int ii = 0; ii < 16; ii++) {
            sum += y->qs[16 * j + ii];
        }
        y->bsums[j] = (int16_t)sum;
    }
    y->d = 1 / iscale;
}

void q8_K_from_float_ref(const float *src, void *dst, int64_t n) {
    encode_row(src, dst, n, sizeof(block_q8_K), q8_K_encode);
}
