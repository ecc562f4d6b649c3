/* kernels.c - CPU feature detection and the once-filled process-wide kernel table (kernels.h).
 *
 * The only mutable state here is written exactly once, inside pthread_once, before any reader
 * can see it; afterwards it is read-only, so concurrent model loads and sessions share it
 * safely. CPU features come from CPUID + XGETBV on x86 (the OS must save the vector state) and
 * from the build target (+ HWCAP on 32-bit ARM) on ARM. No intrinsics here.
 */
#include "kernels.h"
#include "quant_ref.h"
#include "tensor_types.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(EDGELM_KERNELS_X86) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define KERNELS_X86 1
#endif
#if defined(EDGELM_KERNELS_NEON)
#define KERNELS_NEON 1
#if defined(__arm__) && defined(__linux__)
#include <sys/auxv.h>
#define KERNELS_NEON_HWCAP_BIT (1UL << 12) /* HWCAP_NEON on 32-bit ARM Linux */
#endif
#endif

static const char *const level_names[KERNEL_LEVEL_COUNT] = {
    [KERNEL_LEVEL_REF] = "ref",       [KERNEL_LEVEL_SSE2] = "sse2", [KERNEL_LEVEL_AVX2] = "avx2",
    [KERNEL_LEVEL_AVX512] = "avx512", [KERNEL_LEVEL_NEON] = "neon",
};

const char *kernels_level_name(kernel_level level) {
    return (unsigned)level < KERNEL_LEVEL_COUNT ? level_names[level] : "unknown";
}

kernel_level kernels_level_from_name(const char *name) {
    for (int i = 0; i < KERNEL_LEVEL_COUNT; i++) {
        if (name != NULL && strcmp(name, level_names[i]) == 0) {
            return (kernel_level)i;
        }
    }
    return KERNEL_LEVEL_COUNT;
}

/* ---- CPU features ---------------------------------------------------------------------------- */

typedef struct cpu_features {
    bool sse2;
    bool avx2;   /* AVX2 + FMA + F16C, with YMM state enabled by the OS */
    bool avx512; /* AVX-512 F + BW + VL, with ZMM and opmask state enabled, and avx2 */
    bool avx512_vnni;
    bool neon;
} cpu_features;

#if defined(KERNELS_X86)
static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

static cpu_features detect_cpu(void) {
    cpu_features f = {0};
#if defined(KERNELS_X86)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) {
        return f;
    }
    f.sse2 = (d >> 26) & 1;
    const bool fma = (c >> 12) & 1;
    const bool osxsave = (c >> 27) & 1;
    const bool avx = (c >> 28) & 1;
    const bool f16c = (c >> 29) & 1;
    uint64_t xcr0 = osxsave ? read_xcr0() : 0;
    const bool ymm_state = (xcr0 & 0x6) == 0x6;   /* XMM | YMM */
    const bool zmm_state = (xcr0 & 0xE6) == 0xE6; /* + opmask, ZMM_Hi256, Hi16_ZMM */
    unsigned b7 = 0, c7 = 0;
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b7, c7, d);
    }
    f.avx2 = f.sse2 && avx && fma && f16c && ymm_state && ((b7 >> 5) & 1);
    const bool avx512f = (b7 >> 16) & 1, avx512bw = (b7 >> 30) & 1, avx512vl = (b7 >> 31) & 1;
    f.avx512 = f.avx2 && zmm_state && avx512f && avx512bw && avx512vl;
    f.avx512_vnni = f.avx512 && ((c7 >> 11) & 1);
#endif
#if defined(KERNELS_NEON)
#if defined(__aarch64__) || defined(__ARM_NEON)
    f.neon = true; /* AArch64 always has Advanced SIMD; a NEON-flagged ARMv7 build requires it */
#elif defined(KERNELS_NEON_HWCAP_BIT)
    f.neon = (getauxval(AT_HWCAP) & KERNELS_NEON_HWCAP_BIT) != 0;
#endif
#endif
    return f;
}

bool kernels_level_supported(kernel_level level) {
    const cpu_features f = detect_cpu();
    switch (level) {
    case KERNEL_LEVEL_REF:
        return true;
    case KERNEL_LEVEL_SSE2:
        return f.sse2;
    case KERNEL_LEVEL_AVX2:
        return f.avx2;
    case KERNEL_LEVEL_AVX512:
        return f.avx512;
    case KERNEL_LEVEL_NEON:
        return f.neon;
    default:
        return false;
    }
}

/* ---- tables ---------------------------------------------------------------------------------- */

void kernels_fill_ref(kernel_table *t) {
    memset(t, 0, sizeof *t);
    t->name = level_names[KERNEL_LEVEL_REF];
    t->level = KERNEL_LEVEL_REF;
    for (uint32_t type = 0; type < TENSOR_TYPE_COUNT; type++) {
        const tensor_type_traits *r = tensor_type_get_ref(type);
        if (r != NULL) {
            t->vec_dot[type] = r->vec_dot;
            t->from_float[type] = r->from_float;
            t->to_float[type] = r->to_float;
        }
    }
    t->fp16_to_fp32_row = fp16_to_fp32_row_ref;
    t->fp32_to_fp16_row = fp32_to_fp16_row_ref;
    t->f16_scale_row = f16_scale_row_ref;
    t->f16_mad_row = f16_mad_row_ref;
    t->f16_dot = f16_vec_dot_x86;
}

/* A gemm or gemv must equal the vec_dot of its own table bit for bit. A level that replaces a
 * type's vec_dot without providing a gemm (gemv) for it drops the one it inherited from the level
 * below. */
static void drop_stale_gemms(const kernel_table *before, kernel_table *after) {
    for (uint32_t type = 0; type < TENSOR_TYPE_COUNT; type++) {
        if (after->vec_dot[type] != before->vec_dot[type]) {
            if (after->gemm[type] == before->gemm[type]) {
                after->gemm[type] = NULL;
            }
            if (after->gemv[type] == before->gemv[type]) {
                after->gemv[type] = NULL;
            }
            if (after->vec_dot_spec[type] == before->vec_dot_spec[type]) {
                after->vec_dot_spec[type] = NULL;
            }
        }
    }
}

bool kernels_build_table(kernel_level level, kernel_table *table) {
    if (!kernels_level_supported(level)) {
        return false;
    }
    kernels_fill_ref(table);
    kernel_table before;
#define FILL(call)                                                                                 \
    do {                                                                                           \
        before = *table;                                                                           \
        call;                                                                                      \
        drop_stale_gemms(&before, table);                                                          \
    } while (0)
#if defined(KERNELS_X86)
    const cpu_features f = detect_cpu();
    if (level == KERNEL_LEVEL_SSE2 || level == KERNEL_LEVEL_AVX2 || level == KERNEL_LEVEL_AVX512) {
        FILL(kernels_fill_sse2(table));
    }
    if (level == KERNEL_LEVEL_AVX2 || level == KERNEL_LEVEL_AVX512) {
        FILL(kernels_fill_avx2(table));
    }
    if (level == KERNEL_LEVEL_AVX512) {
        FILL(kernels_fill_avx512(table, f.avx512_vnni));
    }
#endif
#if defined(KERNELS_NEON)
    if (level == KERNEL_LEVEL_NEON) {
        FILL(kernels_fill_neon(table));
    }
#endif
#undef FILL
    (void)before;
    (void)drop_stale_gemms; /* unused where no SIMD level is compiled in (riscv64, armv6) */
    table->name = level_names[level];
    table->level = level;
    /* the F16 dot helper always equals the F16 vec_dot of the same table */
    table->f16_dot = table->vec_dot[TENSOR_TYPE_F16];
    return true;
}

static kernel_level best_level(void) {
    static const kernel_level order[] = {KERNEL_LEVEL_AVX512, KERNEL_LEVEL_AVX2, KERNEL_LEVEL_NEON,
                                         KERNEL_LEVEL_SSE2};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if (kernels_level_supported(order[i])) {
            return order[i];
        }
    }
    return KERNEL_LEVEL_REF;
}

/* ---- the process-wide selection (written once under pthread_once) -----------------------------
 */

static pthread_once_t selected_once = PTHREAD_ONCE_INIT;
static kernel_table selected_table;
static tensor_type_traits selected_traits[TENSOR_TYPE_COUNT];
static edgelm_status selected_status;
static char selected_msg[200];

static void select_once(void) {
    kernel_level level = best_level();
    const char *forced = getenv("EDGELM_KERNELS");
    selected_status = EDGELM_OK;
    if (forced != NULL && forced[0] != '\0') {
        const kernel_level want = kernels_level_from_name(forced);
        if (want == KERNEL_LEVEL_COUNT) {
            selected_status = EDGELM_ERR_INVALID_ARGUMENT;
            snprintf(selected_msg, sizeof selected_msg,
                     "EDGELM_KERNELS=%.40s: unknown kernel level (ref, sse2, avx2, avx512, neon)",
                     forced);
        } else if (!kernels_level_supported(want)) {
            selected_status = EDGELM_ERR_INVALID_ARGUMENT;
            snprintf(selected_msg, sizeof selected_msg,
                     "EDGELM_KERNELS=%s: this CPU or build cannot run that kernel level "
                     "(best available: %s)",
                     level_names[want], level_names[level]);
        } else {
            level = want;
        }
    }
    kernels_build_table(level, &selected_table);
    for (uint32_t type = 0; type < TENSOR_TYPE_COUNT; type++) {
        const tensor_type_traits *r = tensor_type_get_ref(type);
        if (r == NULL) {
            continue;
        }
        selected_traits[type] = *r;
        selected_traits[type].vec_dot = selected_table.vec_dot[type];
        selected_traits[type].from_float = selected_table.from_float[type];
        selected_traits[type].to_float = selected_table.to_float[type];
    }
}

edgelm_status kernels_init(char *msg, size_t msg_size) {
    pthread_once(&selected_once, select_once);
    if (selected_status != EDGELM_OK && msg != NULL && msg_size > 0) {
        snprintf(msg, msg_size, "%s", selected_msg);
    }
    return selected_status;
}

const kernel_table *kernels_get(void) {
    pthread_once(&selected_once, select_once);
    return &selected_table;
}

const char *edgelm_kernels_name(void) { return kernels_get()->name; }

/* ---- the tensor types with the selected kernels in place ----------------------------------- */

const tensor_type_traits *tensor_type_get(uint32_t type) {
    if (tensor_type_get_ref(type) == NULL) {
        return NULL;
    }
    pthread_once(&selected_once, select_once);
    return &selected_traits[type];
}

tensor_gemm_fn tensor_matrix_gemm(uint32_t type) {
    return tensor_type_get(type) != NULL ? kernels_get()->gemm[type] : NULL;
}

tensor_gemm_fn tensor_matrix_gemv(uint32_t type) {
    return tensor_type_get(type) != NULL ? kernels_get()->gemv[type] : NULL;
}
