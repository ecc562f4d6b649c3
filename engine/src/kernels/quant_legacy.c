/* quant_legacy.c - scalar reference kernels of the legacy 32-weight block types: Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0 (weights) and Q8_0, Q8_1 (activations).
 *
 * Decoding equals ggml's dequantize_row_* bit for bit; encoding follows quantize_row_*_ref; dot
 * products form an exact integer sum per block and scale it in the same float order as ggml's
 * ggml_vec_dot_*_generic (the order differs per type and is kept on purpose), except the traits'
 * Q4_0 and Q8_0 dots, which use one fused multiply-add per block (see the end). Layout of every
 * block: weight j of the first half sits in the low nibble of qs[j], weight j + 16 in the high
 * nibble of the same byte; 5-bit types keep bit 4 of weight j in bit j of the 32-bit qh. A type
 * is described to the shared kernels by a legacy_type: how to unpack its codes, and its float
 * order; everything else is common.
 */
#include "quant.h"
#include "quant_ref.h"

/* Exact agreement with ggml needs every a * b + c rounded twice, as ggml's x86 build does:
 * no FMA contraction. GCC in ISO C mode (our -std=c11) does not contract; clang does by
 * default, hence the pragma. Any -ffp-contract=fast build breaks bit-exactness. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

/* qh is four bytes, read as a little-endian 32-bit word (as GGUF stores it) on any host. */
static uint32_t load_qh(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | ((uint32_t)qh[1] << 8) | ((uint32_t)qh[2] << 16) |
           ((uint32_t)qh[3] << 24);
}

static void store_qh(uint8_t qh[4], uint32_t v) {
    qh[0] = (uint8_t)v;
    qh[1] = (uint8_t)(v >> 8);
    qh[2] = (uint8_t)(v >> 16);
    qh[3] = (uint8_t)(v >> 24);
}

/* The 32 codes of a 4-bit block, minus offset: weight j in the low nibble of qs[j], weight
 * j + 16 in the high nibble. */
static inline void unpack_q4(const uint8_t qs[QK4_0 / 2], int offset, int8_t q[QK4_0]) {
    for (int j = 0; j < QK4_0 / 2; j++) {
        q[j] = (int8_t)((qs[j] & 0x0F) - offset);
        q[j + QK4_0 / 2] = (int8_t)((qs[j] >> 4) - offset);
    }
}

/* The 32 codes of a 5-bit block, minus offset: the 4-bit layout plus bit 4 of weight j in bit j
 * of qh. Written as a mask test on each 16-bit half rather than a shift by j: GCC vectorizes
 * that, and decoding and the dots run 1.1-2x faster than with the shifts. */
static inline void unpack_q5(const uint8_t qs[QK5_0 / 2], const uint8_t qh4[4], int offset,
                             int8_t q[QK5_0]) {
    const uint32_t qh = load_qh(qh4);
    const uint32_t qh_lo = qh & 0xFFFF;
    const uint32_t qh_hi = qh >> 16;
    for (int j = 0; j < QK5_0 / 2; j++) {
        const int hi0 = (qh_lo & (1u << j)) ? 0x10 : 0;
        const int hi1 = (qh_hi & (1u << j)) ? 0x10 : 0;
        q[j] = (int8_t)(((qs[j] & 0x0F) | hi0) - offset);
        q[j + QK5_0 / 2] = (int8_t)(((qs[j] >> 4) | hi1) - offset);
    }
}

/* Inverses of the two above for codes 0..15 / 0..31. */
static void pack_q4(const uint8_t q[QK4_0], uint8_t qs[QK4_0 / 2]) {
    for (int j = 0; j < QK4_0 / 2; j++) {
        qs[j] = (uint8_t)(q[j] | (q[j + QK4_0 / 2] << 4));
    }
}

static void pack_q5(const uint8_t q[QK5_0], uint8_t qs[QK5_0 / 2], uint8_t qh4[4]) {
    uint32_t qh = 0;
    for (int j = 0; j < QK5_0 / 2; j++) {
        const uint8_t q0 = q[j];
        const uint8_t q1 = q[j + QK5_0 / 2];
        qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
        qh |= ((q0 & 0x10u) >> 4) << j;
        qh |= ((q1 & 0x10u) >> 4) << (j + QK5_0 / 2);
    }
    store_qh(qh4, qh);
}

/* Exact integer dot product of 32 codes. */
static inline int dot32(const int8_t *a, const int8_t *b) {
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        sum += a[j] * b[j];
    }
    return sum;
}

/* ---- shared encoding steps: codes, scale (and min) of one block of 32 floats ---------------- */

/* ggml's code rounding: v + bias truncated (bias = offset + 0.5, so halves round up), clamped
 * at max. bias is added as one constant, as ggml does: v + 8.5f, not v + 8 + 0.5f. */
static uint8_t round_code(float v, float bias, int max) {
    const int8_t t = (int8_t)(v + bias);
    return (uint8_t)(t < max ? t : max);
}

/* The symmetric types (Q4_0, Q5_0): d = max / -offset where max is the signed absmax (the first
 * on ties), so that value maps to code 0 exactly and the other end of the range gets the extra
 * positive level; x / d lies in [-offset, offset] and rounds half up into 0..max_code.
 * Returns d (unrounded). */
static float encode_symmetric(const float *x, int offset, int max_code, uint8_t q[32]) {
    float amax = 0.0f;
    float max = 0.0f;
    for (int j = 0; j < 32; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    const float d = max / (float)-offset;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) {
        q[j] = round_code(x[j] * id, (float)offset + 0.5f, max_code);
    }
    return d;
}

/* The types with a min (Q4_1, Q5_1): m = block min, d = (max - min) / max_code, codes rounded
 * half up. ggml clamps Q4_1's codes at 15 but not Q5_1's ((x - min) / d <= 31 already), and
 * converts them differently; clamp keeps each. Returns d (unrounded), m in *min_out. */
static float encode_with_min(const float *x, int max_code, bool clamp, float *min_out,
                             uint8_t q[32]) {
    float min = FLT_MAX;
    float max = -FLT_MAX;
    for (int j = 0; j < 32; j++) {
        if (x[j] < min) {
            min = x[j];
        }
        if (x[j] > max) {
            max = x[j];
        }
    }
    const float d = (max - min) / (float)max_code;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) {
        const float v = (x[j] - min) * id;
        q[j] = clamp ? round_code(v, 0.5f, max_code) : (uint8_t)(v + 0.5f);
    }
    *min_out = min;
    return d;
}

/* One Q8_0/Q8_1 block: d = absmax / 127, returned unrounded; q = roundf(x / d) (round half away
 * from zero). Returns d; *sum gets the sum of the codes. */
static float encode_q8(const float *x, int8_t qs[QK8_0], int *sum) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; j++) {
        amax = fmaxf(amax, fabsf(x[j]));
    }
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int s = 0;
    for (int j = 0; j < QK8_0; j++) {
        qs[j] = (int8_t)roundf(x[j] * id);
        s += qs[j];
    }
    *sum = s;
    return d;
}

/* ---- the types ------------------------------------------------------------------------------ */

/* Every legacy block starts with its fp16 scale d; the types with a min store fp16 m right after
 * it. The shared kernels read and write both here, and reach the codes through the type. */
static_assert(offsetof(block_q4_0, d) == 0 && offsetof(block_q4_1, d) == 0 &&
                  offsetof(block_q5_0, d) == 0 && offsetof(block_q5_1, d) == 0 &&
                  offsetof(block_q8_0, d) == 0,
              "legacy blocks start with d");
static_assert(offsetof(block_q4_1, m) == sizeof(fp16_t) &&
                  offsetof(block_q5_1, m) == sizeof(fp16_t),
              "legacy blocks with a min store it after d");
#define HEADER_D 0
#define HEADER_M sizeof(fp16_t)

static inline float header_load(const uint8_t *block, size_t offset) {
    fp16_t h;
    memcpy(&h, block + offset, sizeof h);
    return fp16_to_fp32(h);
}

static inline void header_store(uint8_t *block, size_t offset, float v) {
    const fp16_t h = fp32_to_fp16(v);
    memcpy(block + offset, &h, sizeof h);
}

/* ggml's *_generic dots scale each block's integer sum sumi in one of these float orders; they
 * round differently, so each type keeps its own. */
typedef enum {
    SCALE_SUMI_DX_DY,   /* (sumi * dx) * dy, y Q8_0: Q4_0 */
    SCALE_DXDY_SUMI,    /* (dx * dy) * sumi, y Q8_0: Q5_0, Q8_0 */
    SCALE_DXDY_SUMI_MS, /* (dx * dy) * sumi + m * s, y Q8_1 (s = dy * sum(qy)): Q4_1, Q5_1 */
} legacy_scale_order;

/* A type as the shared kernels below see it. x = d * (q - offset), or d * q + m for the types
 * with a min, which are exactly those that dot against Q8_1 (order SCALE_DXDY_SUMI_MS). */
typedef struct {
    size_t block_bytes;
    int offset;   /* subtracted from the stored code; 0 for the types with a min */
    int max_code; /* stored codes are 0..max_code */
    bool clamp;   /* encoder clamps codes at max_code (all but Q5_1, as in ggml) */
    legacy_scale_order order;
    /* the block's 32 codes in weight order, minus offset */
    void (*codes)(const void *block, int offset, int8_t q[32]);
    /* store 32 codes 0..max_code (d and m are stored by the caller) */
    void (*pack)(const uint8_t q[32], void *block);
} legacy_type;

static void q4_0_codes(const void *block, int offset, int8_t q[32]) {
    unpack_q4(((const block_q4_0 *)block)->qs, offset, q);
}

static void q4_0_pack(const uint8_t q[32], void *block) { pack_q4(q, ((block_q4_0 *)block)->qs); }

static void q4_1_codes(const void *block, int offset, int8_t q[32]) {
    unpack_q4(((const block_q4_1 *)block)->qs, offset, q);
}

static void q4_1_pack(const uint8_t q[32], void *block) { pack_q4(q, ((block_q4_1 *)block)->qs); }

static void q5_0_codes(const void *block, int offset, int8_t q[32]) {
    const block_q5_0 *b = block;
    unpack_q5(b->qs, b->qh, offset, q);
}

static void q5_0_pack(const uint8_t q[32], void *block) {
    block_q5_0 *b = block;
    pack_q5(q, b->qs, b->qh);
}

static void q5_1_codes(const void *block, int offset, int8_t q[32]) {
    const block_q5_1 *b = block;
    unpack_q5(b->qs, b->qh, offset, q);
}

static void q5_1_pack(const uint8_t q[32], void *block) {
    block_q5_1 *b = block;
    pack_q5(q, b->qs, b->qh);
}

/* Q8_0 stores its codes as they are; its encoder is encode_q8 (no pack). */
static void q8_0_codes(const void *block, int offset, int8_t q[32]) {
    (void)offset;
    memcpy(q, ((const block_q8_0 *)block)->qs, QK8_0);
}

/* Q4_0: x = d * (q - 8), q in 0..15; encoded with d = max / -8 (max: the signed absmax). */
static const legacy_type q4_0_type = {.block_bytes = sizeof(block_q4_0),
                                      .offset = 8,
                                      .max_code = 15,
                                      .clamp = true,
                                      .order = SCALE_SUMI_DX_DY,
                                      .codes = q4_0_codes,
                                      .pack = q4_0_pack};

/* Q4_1: x = d * q + m, q in 0..15; encoded with m = min, d = (max - min) / 15. */
static const legacy_type q4_1_type = {.block_bytes = sizeof(block_q4_1),
                                      .offset = 0,
                                      .max_code = 15,
                                      .clamp = true,
                                      .order = SCALE_DXDY_SUMI_MS,
                                      .codes = q4_1_codes,
                                      .pack = q4_1_pack};

/* Q5_0: x = d * (q - 16), q in 0..31; encoded with d = max / -16. */
static const legacy_type q5_0_type = {.block_bytes = sizeof(block_q5_0),
                                      .offset = 16,
                                      .max_code = 31,
                                      .clamp = true,
                                      .order = SCALE_DXDY_SUMI,
                                      .codes = q5_0_codes,
                                      .pack = q5_0_pack};

/* Q5_1: x = d * q + m, q in 0..31; encoded with m = min, d = (max - min) / 31. */
static const legacy_type q5_1_type = {.block_bytes = sizeof(block_q5_1),
                                      .offset = 0,
                                      .max_code = 31,
                                      .clamp = false,
                                      .order = SCALE_DXDY_SUMI_MS,
                                      .codes = q5_1_codes,
                                      .pack = q5_1_pack};

/* Q8_0: x = d * q, q in -127..127; encoded by encode_q8 (d = absmax / 127), not through here. */
static const legacy_type q8_0_type = {
    .block_bytes = sizeof(block_q8_0), .order = SCALE_DXDY_SUMI, .codes = q8_0_codes};

/* ---- the shared kernels --------------------------------------------------------------------- */

static inline bool has_min(const legacy_type *t) { return t->order == SCALE_DXDY_SUMI_MS; }

/* Block i of a row, its scale d and its codes. */
QUANT_SHARED_KERNEL const uint8_t *block_codes(const legacy_type *t, const void *row, int64_t i,
                                               float *d, int8_t q[32]) {
    const uint8_t *block = (const uint8_t *)row + (size_t)i * t->block_bytes;
    t->codes(block, t->offset, q);
    *d = header_load(block, HEADER_D);
    return block;
}

/* x = d * q, or d * q + m (ggml's operation order). */
QUANT_SHARED_KERNEL void legacy_to_float(const legacy_type *t, const void *src, float *dst,
                                         int64_t n) {
    for (int64_t i = 0; i < n / 32; i++) {
        float d;
        int8_t q[32];
        const uint8_t *block = block_codes(t, src, i, &d, q);
        const float m = has_min(t) ? header_load(block, HEADER_M) : 0.0f;
        float *y = dst + i * 32;
        for (int j = 0; j < 32; j++) {
            y[j] = has_min(t) ? (float)q[j] * d + m : (float)q[j] * d;
        }
    }
}

/* quantize_row_*_ref of the 4- and 5-bit types. */
QUANT_SHARED_KERNEL void legacy_from_float(const legacy_type *t, const float *src, void *dst,
                                           int64_t n) {
    for (int64_t i = 0; i < n / 32; i++) {
        uint8_t *block = (uint8_t *)dst + (size_t)i * t->block_bytes;
        uint8_t q[32];
        if (has_min(t)) {
            float min;
            header_store(block, HEADER_D,
                         encode_with_min(src + i * 32, t->max_code, t->clamp, &min, q));
            header_store(block, HEADER_M, min);
        } else {
            header_store(block, HEADER_D,
                         encode_symmetric(src + i * 32, t->offset, t->max_code, q));
        }
        t->pack(q, block);
    }
}

/* ggml_vec_dot_*_generic: one exact integer sum per block, scaled in the type's order. */
QUANT_SHARED_KERNEL float legacy_vec_dot(const legacy_type *t, int64_t n, const void *vx,
                                         const void *vy) {
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / 32; i++) {
        float dx;
        int8_t q[32];
        const uint8_t *x = block_codes(t, vx, i, &dx, q);
        if (has_min(t)) {
            const block_q8_1 *y = (const block_q8_1 *)vy + i;
            const int sumi = dot32(q, y->qs);
            const float mx = header_load(x, HEADER_M);
            sumf += (dx * fp16_to_fp32(y->d)) * (float)sumi + mx * fp16_to_fp32(y->s);
        } else {
            const block_q8_0 *y = (const block_q8_0 *)vy + i;
            const int sumi = dot32(q, y->qs);
            const float dy = fp16_to_fp32(y->d);
            sumf += t->order == SCALE_SUMI_DX_DY ? (float)sumi * dx * dy : (dx * dy) * (float)sumi;
        }
    }
    return sumf;
}

/* ---- the reference kernels of each type ----------------------------------------------------- */

void q4_0_to_float_ref(const void *src, float *dst, int64_t n) {
    legacy_to_float(&q4_0_type, src, dst, n);
}

void q4_1_to_float_ref(const void *src, float *dst, int64_t n) {
    legacy_to_float(&q4_1_type, src, dst, n);
}

void q5_0_to_float_ref(const void *src, float *dst, int64_t n) {
    legacy_to_float(&q5_0_type, src, dst, n);
}

void q5_1_to_float_ref(const void *src, float *dst, int64_t n) {
    legacy_to_float(&q5_1_type, src, dst, n);
}

void q8_0_to_float_ref(const void *src, float *dst, int64_t n) {
    legacy_to_float(&q8_0_type, src, dst, n);
}

void q4_0_from_float_ref(const float *src, void *dst, int64_t n) {
    legacy_from_float(&q4_0_type, src, dst, n);
}

void q4_1_from_float_ref(const float *src, void *dst, int64_t n) {
    legacy_from_float(&q4_1_type, src, dst, n);
}

void q5_0_from_float_ref(const float *src, void *dst, int64_t n) {
    legacy_from_float(&q5_0_type, src, dst, n);
}

void q5_1_from_float_ref(const float *src, void *dst, int64_t n) {
    legacy_from_float(&q5_1_type, src, dst, n);
}

/* Also the activation quantizer of Q4_0/Q5_0/Q8_0 matmuls, so it must match ggml exactly. */
void q8_0_from_float_ref(const float *src, void *dst, int64_t n) {
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sum;
        y[i].d = fp32_to_fp16(encode_q8(src + i * QK8_0, y[i].qs, &sum));
    }
}

/* Q8_1: Q8_0 plus s = d * sum(q), the activation type of Q4_1/Q5_1 (no to_float, as in ggml). */
void q8_1_from_float_ref(const float *src, void *dst, int64_t n) {
    block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int sum;
        const float d = encode_q8(src + i * QK8_1, y[i].qs, &sum);
        y[i].d = fp32_to_fp16(d);
        y[i].s = fp32_to_fp16((float)sum * d);
    }
}

void q4_0_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    *s = legacy_vec_dot(&q4_0_type, n, vx, vy);
}

void q4_1_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    *s = legacy_vec_dot(&q4_1_type, n, vx, vy);
}

void q5_0_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    *s = legacy_vec_dot(&q5_0_type, n, vx, vy);
}

void q5_1_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    *s = legacy_vec_dot(&q5_1_type, n, vx, vy);
}

/* ggml writes sumi * (dx * dy): the same product as (dx * dy) * sumi. */
void q8_0_vec_dot_ref(int64_t n, float *s, const void *vx, const void *vy) {
    *s = legacy_vec_dot(&q8_0_type, n, vx, vy);
}

/* ---- the traits' Q4_0 and Q8_0 dots: one fused multiply-add per block -------------------------
 * One exact integer sum per block, accumulated block after block as acc = fmaf((float)sumi,
 * dx * dy, acc): the order of ggml's repacked x86 Q4_0 kernels (ggml_gemv/gemm_q4_0_8x8_q8_0),
 * and the order in which the SIMD matrix kernels run each (row, token) pair in its own vector
 * lane (see kernels_common.h), so that one token at a time, a batch and any split of the rows
 * between threads give the same bits. Levels without a fused multiply-add (SSE2, ARMv7 NEON)
 * round the product first; test_kernels bounds the difference. */
QUANT_SHARED_KERNEL float fma_chain_vec_dot(const legacy_type *t, int64_t n, const void *vx,
                                            const block_q8_0 *y) {
    float acc = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        float dx;
        int8_t q[32];
        block_codes(t, vx, i, &dx, q);
        acc = fmaf((float)dot32(q, y[i].qs), dx * fp16_to_fp32(y[i].d), acc);
    }
    return acc;
}

void q4_0_vec_dot_fma(int64_t n, float *s, const void *vx, const void *vy) {
    *s = fma_chain_vec_dot(&q4_0_type, n, vx, vy);
}

void q8_0_vec_dot_fma(int64_t n, float *s, const void *vx, const void *vy) {
    *s = fma_chain_vec_dot(&q8_0_type, n, vx, vy);
}
