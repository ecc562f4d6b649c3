/* model.c - load a GGUF model: map it, parse it, find its architecture's descriptor, read the
 * hyperparameters, bind and validate every weight against them, build the tokenizer. Also the
 * public model accessors.
 *
 * Architectures are rows of a table of descriptors (arch_desc in model.h): a family that differs
 * from llama only in which tensors it has and how it ropes is one more row here, plus the lines of
 * the forward pass that use its tensors. A file whose architecture has no row, that lacks a key
 * or tensor its row requires, or that has a tensor no row binds, is refused with a message naming
 * it.
 */
#include "model.h"

#include "kernels/kernels.h"
#include "kernels/tensor_types.h"

#include "base/error_text.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* llama.cpp's llama-model.cpp (load_tensors) decides which tensors each one has. */
static const arch_desc architectures[] = {
    {
        .name = "llama",
        .rope = ROPE_STYLE_NORM,
        .qkv_bias = ARCH_TENSOR_OPTIONAL,
        .qk_norm = ARCH_TENSOR_ABSENT,
        .rope_freqs = ARCH_TENSOR_OPTIONAL, /* Llama 3.1+ rope scaling */
        .output = ARCH_TENSOR_OPTIONAL,
    },
    {
        .name = "qwen2",
        .rope = ROPE_STYLE_NEOX,
        .qkv_bias = ARCH_TENSOR_REQUIRED,
        .qk_norm = ARCH_TENSOR_ABSENT,
        .rope_freqs = ARCH_TENSOR_ABSENT,
        .output = ARCH_TENSOR_OPTIONAL,
    },
    {
        .name = "qwen3",
        .rope = ROPE_STYLE_NEOX,
        .qkv_bias = ARCH_TENSOR_ABSENT,
        .qk_norm = ARCH_TENSOR_REQUIRED,
        .rope_freqs = ARCH_TENSOR_ABSENT,
        .output = ARCH_TENSOR_OPTIONAL,
    },
    {
        .name = "phi3", /* Phi-3 (4k context), Phi-4: no longrope (refused in bind_weights) */
        .rope = ROPE_STYLE_NEOX,
        .qkv_bias = ARCH_TENSOR_ABSENT,
        .qk_norm = ARCH_TENSOR_ABSENT,
        .rope_freqs = ARCH_TENSOR_ABSENT,
        .output = ARCH_TENSOR_OPTIONAL,
        .fused_qkv = ARCH_TENSOR_REQUIRED,
        .fused_gate_up = ARCH_TENSOR_REQUIRED,
        .scale_q = true,
        .window = WINDOW_CAPS_CONTEXT,
    },
    {
        .name = "gemma3", /* Gemma 3 text models (270M, 1B, and the text part of the larger) */
        .rope = ROPE_STYLE_NEOX,
        .qkv_bias = ARCH_TENSOR_ABSENT,
        .qk_norm = ARCH_TENSOR_REQUIRED,
        .rope_freqs = ARCH_TENSOR_ABSENT,
        .output = ARCH_TENSOR_OPTIONAL,
        .scale_q = true,
        .window = WINDOW_LOCAL_LAYERS,
        .post_norms = ARCH_TENSOR_REQUIRED,
        .activation = FFN_GELU,
        .scale_embeddings = true,
        .logit_softcapping = true,
    },
};

#define N_ARCHITECTURES (sizeof architectures / sizeof architectures[0])

/* "llama, qwen2, ..." into buf, for messages. */
static const char *supported_architectures(char *buf, size_t size) {
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_ARCHITECTURES && n < size; i++) {
        int w = snprintf(buf + n, size - n, "%s%s", i > 0 ? ", " : "", architectures[i].name);
        n += w > 0 ? (size_t)w : 0;
    }
    return buf;
}

typedef struct load_ctx {
    edgelm_model *model;
    const arch_desc *arch;
    bool *bound; /* (n_tensors) tensor i is bound to a weight view */
    char *err;
    size_t err_size;
} load_ctx;

static edgelm_status load_fail(load_ctx *ctx, edgelm_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static edgelm_status load_fail(load_ctx *ctx, edgelm_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    error_text_vformat(ctx->err, ctx->err_size, ctx->model->path, fmt, ap);
    va_end(ap);
    return status;
}

/* Read "<arch>.<suffix>" as a positive int32; required unless default_value >= 0. */
static edgelm_status read_arch_int(load_ctx *ctx, const char *arch, const char *suffix,
                                   int32_t default_value, int32_t max_value, int32_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint32_t v;
    edgelm_status st = gguf_get_u32(&ctx->model->gguf, key, &v);
    if (st == EDGELM_ERR_MISSING && default_value >= 0) {
        *out = default_value;
        return EDGELM_OK;
    }
    if (st == EDGELM_ERR_MISSING) {
        return load_fail(ctx, st, "required metadata key '%s' is missing", key);
    }
    if (st != EDGELM_OK || v == 0 || v > (uint32_t)max_value) {
        return load_fail(ctx, st != EDGELM_OK ? st : EDGELM_ERR_BAD_SHAPE,
                         "metadata '%s' must be an integer in 1..%" PRId32, key, max_value);
    }
    *out = (int32_t)v;
    return EDGELM_OK;
}

static edgelm_status read_arch_float(load_ctx *ctx, const char *arch, const char *suffix,
                                     float default_value, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    edgelm_status st = gguf_get_f32(&ctx->model->gguf, key, out);
    if (st == EDGELM_ERR_MISSING) {
        *out = default_value;
        return EDGELM_OK;
    }
    if (st != EDGELM_OK || !(*out > 0.0f) || *out > 1e30f) {
        return load_fail(ctx, st != EDGELM_OK ? st : EDGELM_ERR_BAD_SHAPE,
                         "metadata '%s' must be a positive float", key);
    }
    return EDGELM_OK;
}

/* Bind tensor `name` with expected (n_cols, n_rows); n_rows 1 for vectors. An ABSENT rule binds
 * nothing (out zeroed): such a tensor, if the file has it, is then refused as unused. */
static edgelm_status bind_weight(load_ctx *ctx, const char *name, int64_t n_cols, int64_t n_rows,
                                 arch_tensor_rule rule, bool needs_vec_dot, weight *out) {
    memset(out, 0, sizeof *out);
    if (rule == ARCH_TENSOR_ABSENT) {
        return EDGELM_OK;
    }
    const gguf_tensor *t = gguf_find_tensor(&ctx->model->gguf, name);
    if (t == NULL) {
        return rule == ARCH_TENSOR_REQUIRED
                   ? load_fail(ctx, EDGELM_ERR_MISSING,
                               "tensor '%s' is missing (architecture '%s' requires it)", name,
                               ctx->arch->name)
                   : EDGELM_OK;
    }
    const bool is_vector = n_rows == 1;
    bool shape_ok = (int64_t)t->ne[0] == n_cols && (int64_t)t->ne[1] == n_rows && t->ne[2] == 1 &&
                    t->ne[3] == 1;
    if (!shape_ok) {
        return load_fail(ctx, EDGELM_ERR_BAD_SHAPE,
                         "tensor '%s' has shape [%" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64
                         "], expected [%" PRId64 ", %" PRId64 "]",
                         name, t->ne[0], t->ne[1], t->ne[2], t->ne[3], n_cols, n_rows);
    }
    const tensor_type_traits *traits = tensor_type_get(t->type);
    if (traits == NULL || traits->to_float == NULL ||
        (needs_vec_dot &&
         (traits->vec_dot == NULL || tensor_type_get(traits->vec_dot_type) == NULL ||
          tensor_type_get(traits->vec_dot_type)->from_float == NULL))) {
        return load_fail(ctx, EDGELM_ERR_BAD_TENSOR_TYPE,
                         "tensor '%s': type %s cannot be used here", name,
                         traits ? traits->name : "unknown");
    }
    if (is_vector && t->type != TENSOR_TYPE_F32) {
        return load_fail(ctx, EDGELM_ERR_BAD_TENSOR_TYPE,
                         "tensor '%s': norm/bias vectors must be f32, not %s", name, traits->name);
    }
    if (needs_vec_dot && n_cols % tensor_type_get(traits->vec_dot_type)->block_size != 0) {
        return load_fail(ctx, EDGELM_ERR_BAD_SHAPE,
                         "tensor '%s': row length %" PRId64 " does not fit %s activation blocks",
                         name, n_cols, tensor_type_get(traits->vec_dot_type)->name);
    }
    out->data = t->data;
    out->traits = traits;
    out->vec_dot = needs_vec_dot ? traits->vec_dot : NULL;
    out->gemm = needs_vec_dot ? tensor_matrix_gemm(t->type) : NULL;
    out->gemv = needs_vec_dot ? tensor_matrix_gemv(t->type) : NULL;
    out->type = t->type;
    out->n_cols = n_cols;
    out->n_rows = n_rows;
    out->row_bytes = tensor_row_size(t->type, n_cols);
    ctx->model->weight_bytes += t->n_bytes;
    ctx->bound[t - ctx->model->gguf.tensors] = true;
    return EDGELM_OK;
}

/* Rows [first, first + n_rows) of the bound matrix w, as a weight of their own: the same mapped
 * bytes from row `first` on (a GGUF row is whole blocks, so row r starts at r * row_bytes for
 * every type), never a copy. */
static weight weight_rows(const weight *w, int64_t first, int64_t n_rows) {
    weight view = *w;
    view.data = (const uint8_t *)w->data + (size_t)first * w->row_bytes;
    view.n_rows = n_rows;
    return view;
}

static edgelm_status bind_layer(load_ctx *ctx, int32_t il, layer_weights *l) {
    const arch_desc *arch = ctx->arch;
    const arch_tensor_rule R = ARCH_TENSOR_REQUIRED;
    const model_hparams *hp = &ctx->model->hp;
    const int64_t q_dim = (int64_t)hp->n_head * hp->head_dim;
    const int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    char name[96];
    edgelm_status st;
#define BIND_TO(target, suffix, cols, rows, rule, matrix)                                          \
    do {                                                                                           \
        snprintf(name, sizeof name, "blk.%d.%s", (int)il, suffix);                                 \
        st = bind_weight(ctx, name, cols, rows, rule, matrix, &(target));                          \
        if (st != EDGELM_OK) {                                                                     \
            return st;                                                                             \
        }                                                                                          \
    } while (0)
#define BIND(field, suffix, cols, rows, rule, matrix)                                              \
    BIND_TO(l->field, suffix, cols, rows, rule, matrix)
    BIND(attn_norm, "attn_norm.weight", hp->n_embd, 1, R, false);
    if (arch->fused_qkv == R) { /* phi3: one matrix, its rows q then k then v */
        weight qkv;
        BIND_TO(qkv, "attn_qkv.weight", hp->n_embd, q_dim + 2 * kv_dim, R, true);
        l->wq = weight_rows(&qkv, 0, q_dim);
        l->wk = weight_rows(&qkv, q_dim, kv_dim);
        l->wv = weight_rows(&qkv, q_dim + kv_dim, kv_dim);
    } else {
        BIND(wq, "attn_q.weight", hp->n_embd, q_dim, R, true);
        BIND(wk, "attn_k.weight", hp->n_embd, kv_dim, R, true);
        BIND(wv, "attn_v.weight", hp->n_embd, kv_dim, R, true);
    }
    BIND(bq, "attn_q.bias", q_dim, 1, arch->qkv_bias, false);
    BIND(bk, "attn_k.bias", kv_dim, 1, arch->qkv_bias, false);
    BIND(bv, "attn_v.bias", kv_dim, 1, arch->qkv_bias, false);
    BIND(attn_q_norm, "attn_q_norm.weight", hp->head_dim, 1, arch->qk_norm, false);
    BIND(attn_k_norm, "attn_k_norm.weight", hp->head_dim, 1, arch->qk_norm, false);
    BIND(wo, "attn_output.weight", q_dim, hp->n_embd, R, true);
    BIND(ffn_norm, "ffn_norm.weight", hp->n_embd, 1, R, false);
    if (arch->fused_gate_up == R) { /* phi3: ffn_up holds gate then up (ggml_swiglu's halves) */
        weight gate_up;
        BIND_TO(gate_up, "ffn_up.weight", hp->n_embd, 2 * (int64_t)hp->n_ff, R, true);
        l->ffn_gate = weight_rows(&gate_up, 0, hp->n_ff);
        l->ffn_up = weight_rows(&gate_up, hp->n_ff, hp->n_ff);
    } else {
        BIND(ffn_gate, "ffn_gate.weight", hp->n_embd, hp->n_ff, R, true);
        BIND(ffn_up, "ffn_up.weight", hp->n_embd, hp->n_ff, R, true);
    }
    BIND(ffn_down, "ffn_down.weight", hp->n_ff, hp->n_embd, R, true);
    BIND(attn_post_norm, "post_attention_norm.weight", hp->n_embd, 1, arch->post_norms, false);
    BIND(ffn_post_norm, "post_ffw_norm.weight", hp->n_embd, 1, arch->post_norms, false);
#undef BIND
#undef BIND_TO
    return EDGELM_OK;
}

/* <arch>.attention.sliding_window by the architecture's window rule (model.h). For local
 * layers, sliding_window_pattern is either one bool per layer (true: local) or a period n
 * (layer il is local unless il % n == n - 1; 0: every layer), 6 when absent, and the local rope
 * base is rope.freq_base_swa, 10000 when absent: llama.cpp's defaults for converted Gemma 3
 * files, which carry neither key. */
static edgelm_status read_window(load_ctx *ctx) {
    edgelm_model *m = ctx->model;
    model_hparams *hp = &m->hp;
    const arch_desc *arch = ctx->arch;
    char key[128];
    uint32_t n_swa = 0;
    snprintf(key, sizeof key, "%s.attention.sliding_window", arch->name);
    if (arch->window == WINDOW_NONE || gguf_get_u32(&m->gguf, key, &n_swa) != EDGELM_OK ||
        n_swa == 0) {
        return EDGELM_OK; /* Phi-4, a Gemma 3 without a window: full attention everywhere */
    }
    const int32_t window = n_swa > (uint32_t)INT32_MAX ? INT32_MAX : (int32_t)n_swa;
    if (arch->window == WINDOW_CAPS_CONTEXT) {
        hp->n_ctx_cap = window;
        return EDGELM_OK;
    }
    hp->n_swa = window;
    edgelm_status st =
        read_arch_float(ctx, arch->name, "rope.freq_base_swa", 10000.0f, &hp->rope_freq_base_swa);
    if (st != EDGELM_OK) {
        return st;
    }
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", arch->name);
    const gguf_kv *kv = gguf_find(&m->gguf, key);
    uint32_t period = 6;
    if (kv != NULL && kv->type == GGUF_TYPE_ARRAY) {
        const gguf_array *arr = &kv->value.arr;
        if (arr->elem_type != GGUF_TYPE_BOOL || arr->n != (uint64_t)hp->n_layer) {
            return load_fail(ctx, EDGELM_ERR_BAD_SHAPE,
                             "metadata '%s' must be a period or %d bools (one per layer)", key,
                             (int)hp->n_layer);
        }
        for (int32_t il = 0; il < hp->n_layer; il++) {
            m->layers[il].local = gguf_array_i64(arr, (uint64_t)il) != 0;
        }
    } else {
        if (kv != NULL && (st = gguf_get_u32(&m->gguf, key, &period)) != EDGELM_OK) {
            return load_fail(ctx, st, "metadata '%s' must be a period or %d bools (one per layer)",
                             key, (int)hp->n_layer);
        }
        for (int32_t il = 0; il < hp->n_layer; il++) {
            m->layers[il].local = period == 0 || (uint32_t)il % period < period - 1;
        }
    }
    for (int32_t il = 0; il < hp->n_layer; il++) {
        hp->n_local_layers += m->layers[il].local;
    }
    return EDGELM_OK;
}

static edgelm_status read_hparams(load_ctx *ctx) {
    edgelm_model *m = ctx->model;
    model_hparams *hp = &m->hp;
    const arch_desc *arch = ctx->arch;
    const char *a = arch->name;
    edgelm_status st;
    const int32_t big = 1 << 20;
    if ((st = read_arch_int(ctx, a, "context_length", 2048, 1 << 24, &hp->n_ctx_train)) ||
        (st = read_arch_int(ctx, a, "embedding_length", -1, big, &hp->n_embd)) ||
        (st = read_arch_int(ctx, a, "block_count", -1, 4096, &hp->n_layer)) ||
        (st = read_arch_int(ctx, a, "feed_forward_length", -1, big, &hp->n_ff)) ||
        (st = read_arch_int(ctx, a, "attention.head_count", -1, 4096, &hp->n_head))) {
        return st;
    }
    if ((st = read_arch_int(ctx, a, "attention.head_count_kv", hp->n_head, 4096, &hp->n_head_kv))) {
        return st;
    }
    if (hp->n_embd % hp->n_head != 0) {
        return load_fail(ctx, EDGELM_ERR_BAD_SHAPE,
                         "embedding length %d is not a multiple of the head count %d",
                         (int)hp->n_embd, (int)hp->n_head);
    }
    if (hp->n_head % hp->n_head_kv != 0) {
        return load_fail(ctx, EDGELM_ERR_BAD_SHAPE,
                         "head count %d is not a multiple of the KV head count %d", (int)hp->n_head,
                         (int)hp->n_head_kv);
    }
    if ((st = read_arch_int(ctx, a, "attention.key_length", hp->n_embd / hp->n_head, 65536,
                            &hp->head_dim)) ||
        (st = read_arch_int(ctx, a, "rope.dimension_count", hp->head_dim, 65536, &hp->n_rot))) {
        return st;
    }
    int32_t value_dim;
    if ((st = read_arch_int(ctx, a, "attention.value_length", hp->head_dim, 65536, &value_dim))) {
        return st;
    }
    if (value_dim != hp->head_dim) { /* the KV cache and attention assume one head size */
        return load_fail(ctx, EDGELM_ERR_BAD_SHAPE,
                         "value head size %d differs from the key head size %d (not supported)",
                         (int)value_dim, (int)hp->head_dim);
    }
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0 || hp->head_dim % 2 != 0) {
        return load_fail(ctx, EDGELM_ERR_BAD_SHAPE,
                         "rope dimension count %d must be even and at most the head size %d",
                         (int)hp->n_rot, (int)hp->head_dim);
    }
    if ((st = read_arch_float(ctx, a, "rope.freq_base", 10000.0f, &hp->rope_freq_base))) {
        return st;
    }
    float eps;
    if ((st = read_arch_float(ctx, a, "attention.layer_norm_rms_epsilon", 1e-5f, &eps))) {
        return st;
    }
    hp->rms_eps = eps;
    /* rope scaling: only linear is implemented; yarn/longrope would silently give wrong text */
    hp->rope_freq_scale = 1.0f;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    gguf_string scaling;
    if (gguf_get_string(&m->gguf, key, &scaling) == EDGELM_OK &&
        !gguf_string_equals(scaling, "none") && !gguf_string_equals(scaling, "linear")) {
        return load_fail(ctx, EDGELM_ERR_UNSUPPORTED_ARCH,
                         "rope scaling type '%.*s' is not supported (none, linear)",
                         (int)(scaling.len > 32 ? 32 : scaling.len), scaling.data);
    }
    float factor = 0.0f;
    snprintf(key, sizeof key, "%s.rope.scaling.factor", a);
    if (gguf_get_f32(&m->gguf, key, &factor) != EDGELM_OK) {
        snprintf(key, sizeof key, "%s.rope.scale_linear", a);
        if (gguf_get_f32(&m->gguf, key, &factor) != EDGELM_OK) {
            factor = 0.0f;
        }
    }
    if (factor > 0.0f && factor < 1e6f) {
        hp->rope_freq_scale = 1.0f / factor;
    }
    /* rope_yarn's mscale: used by llama.cpp only with longrope/yarn, which are refused; a file
     * that asks for another value would be computed wrongly */
    float attn_factor = 1.0f;
    snprintf(key, sizeof key, "%s.rope.scaling.attn_factor", a);
    if (gguf_get_f32(&m->gguf, key, &attn_factor) == EDGELM_OK && attn_factor != 1.0f) {
        return load_fail(ctx, EDGELM_ERR_UNSUPPORTED_ARCH,
                         "metadata '%s' = %g is not supported (only 1)", key, (double)attn_factor);
    }
    hp->rope = arch->rope;
    /* gemma_pytorch's query_pre_attn_scalar, as llama.cpp reads it: Gemma 3 27B (62 layers)
     * scales by the embedding per head, every other size by the head size */
    const float q_scale_dim = arch->window == WINDOW_LOCAL_LAYERS && hp->n_layer == 62
                                  ? (float)(hp->n_embd / hp->n_head)
                                  : (float)hp->head_dim;
    hp->q_scale = arch->scale_q ? 1.0f / sqrtf(q_scale_dim) : 1.0f;
    hp->kq_scale = arch->scale_q ? 1.0f : 1.0f / sqrtf((float)hp->head_dim);
    hp->embd_scale = arch->scale_embeddings ? sqrtf((float)hp->n_embd) : 1.0f;
    hp->activation = arch->activation;
    hp->logit_softcap = 0.0f;
    if (arch->logit_softcapping) {
        float cap = 0.0f;
        snprintf(key, sizeof key, "%s.final_logit_softcapping", a);
        if (gguf_get_f32(&m->gguf, key, &cap) == EDGELM_OK && (!(cap >= 0.0f) || !isfinite(cap))) {
            return load_fail(ctx, EDGELM_ERR_BAD_SHAPE, "metadata '%s' = %g must be >= 0", key,
                             (double)cap);
        }
        hp->logit_softcap = cap;
    }
    return EDGELM_OK;
}

/* Every weight of the model by ctx->arch's rules; then refuse any tensor none of them bound. */
static edgelm_status bind_weights(load_ctx *ctx) {
    edgelm_model *m = ctx->model;
    const arch_desc *arch = ctx->arch;
    model_hparams *hp = &m->hp;
    const arch_tensor_rule R = ARCH_TENSOR_REQUIRED;
    edgelm_status st;
    const gguf_tensor *embd = gguf_find_tensor(&m->gguf, "token_embd.weight");
    if (embd != NULL && (int64_t)embd->ne[1] != hp->n_vocab) {
        return load_fail(ctx, EDGELM_ERR_BAD_SHAPE,
                         "token_embd.weight has %" PRIu64 " rows but the vocabulary has %d tokens",
                         embd->ne[1], (int)hp->n_vocab);
    }
    if ((st = bind_weight(ctx, "token_embd.weight", hp->n_embd, hp->n_vocab, R, false,
                          &m->token_embd)) ||
        (st = bind_weight(ctx, "output_norm.weight", hp->n_embd, 1, R, false, &m->output_norm)) ||
        (st = bind_weight(ctx, "output.weight", hp->n_embd, hp->n_vocab, arch->output, true,
                          &m->output))) {
        return st;
    }
    if (m->output.data == NULL) { /* tied embeddings: the output projection reuses token_embd */
        if ((st = bind_weight(ctx, "token_embd.weight", hp->n_embd, hp->n_vocab, R, true,
                              &m->output))) {
            return st;
        }
        m->weight_bytes -= m->output.row_bytes * (uint64_t)m->output.n_rows;
    }
    /* ggml_rope_ext's freq_factors: one divisor per rotated pair, so n_rot / 2 F32 values */
    weight rope_freqs;
    if ((st = bind_weight(ctx, "rope_freqs.weight", hp->n_rot / 2, 1, arch->rope_freqs, false,
                          &rope_freqs))) {
        return st;
    }
    /* Phi-3 128k and Phi-3.5 carry longrope as these (llama.cpp: LLM_TENSOR_ROPE_FACTORS_LONG/
     * SHORT, chosen by context length, with an attention factor); their converter writes no
     * rope.scaling.type, so the tensors are what names it */
    static const char *const longrope_tensors[] = {"rope_factors_long.weight",
                                                   "rope_factors_short.weight"};
    for (size_t i = 0; i < 2; i++) {
        if (gguf_find_tensor(&m->gguf, longrope_tensors[i]) != NULL) {
            return load_fail(ctx, EDGELM_ERR_UNSUPPORTED_ARCH,
                             "tensor '%s': longrope rope scaling (Phi-3 128k, Phi-3.5) is not "
                             "supported",
                             longrope_tensors[i]);
        }
    }
    hp->rope_freq_factors = rope_freqs.data;
    for (int32_t i = 0; hp->rope_freq_factors != NULL && i < hp->n_rot / 2; i++) {
        const float f = hp->rope_freq_factors[i];
        if (!(f > 0.0f) || !isfinite(f)) {
            return load_fail(ctx, EDGELM_ERR_BAD_SHAPE,
                             "rope_freqs.weight[%d] is %g; frequency factors must be positive",
                             (int)i, (double)f);
        }
    }
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (m->layers == NULL) {
        return load_fail(ctx, EDGELM_ERR_OUT_OF_MEMORY, "out of memory");
    }
    if ((st = read_window(ctx)) != EDGELM_OK) { /* marks the local layers */
        return st;
    }
    for (int32_t il = 0; il < hp->n_layer; il++) {
        if ((st = bind_layer(ctx, il, &m->layers[il])) != EDGELM_OK) {
            return st;
        }
    }
    for (uint64_t i = 0; i < m->gguf.n_tensors; i++) {
        if (!ctx->bound[i]) { /* computing without it would give wrong text, silently */
            char names[128];
            return load_fail(ctx, EDGELM_ERR_UNSUPPORTED_ARCH,
                             "tensor '%s' is not part of architecture '%s' (supported: %s)",
                             m->gguf.tensors[i].name_z, arch->name,
                             supported_architectures(names, sizeof names));
        }
    }
    return EDGELM_OK;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

edgelm_model_params edgelm_model_params_default(void) {
    edgelm_model_params p = {.prefault = false, .vocab_only = false};
    return p;
}

void edgelm_model_free(edgelm_model *model) {
    if (model == NULL) {
        return;
    }
    tokenizer_free(model->tok);
    free(model->layers);
    gguf_free(&model->gguf);
    file_map_close(&model->map);
    free(model->path);
    free(model);
}

/* The tokenizer from the file's tokenizer.* metadata, and n_vocab from it. */
static edgelm_status create_tokenizer(load_ctx *ctx) {
    edgelm_model *m = ctx->model;
    char tok_err[256];
    const edgelm_status st = tokenizer_create(&m->gguf, &m->tok, tok_err, sizeof tok_err);
    if (st != EDGELM_OK) {
        return load_fail(ctx, st, "%s", tok_err);
    }
    m->hp.n_vocab = tokenizer_n_vocab(m->tok);
    return EDGELM_OK;
}

edgelm_status edgelm_model_load(const char *path, const edgelm_model_params *params,
                                edgelm_model **out, char *err, size_t err_size) {
    edgelm_model_params defaults = edgelm_model_params_default();
    char local_err[16];
    err = error_text_target(err, &err_size, local_err, sizeof local_err);
    if (out == NULL || path == NULL) {
        snprintf(err, err_size, "edgelm_model_load: NULL argument");
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    *out = NULL;
    if (params == NULL) {
        params = &defaults;
    }
    {
        char kernel_err[160];
        if (kernels_init(kernel_err, sizeof kernel_err) != EDGELM_OK) { /* bad EDGELM_KERNELS */
            snprintf(err, err_size, "%s", kernel_err);
            return EDGELM_ERR_INVALID_ARGUMENT;
        }
    }
    edgelm_model *m = calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(err, err_size, "%s: out of memory", path);
        return EDGELM_ERR_OUT_OF_MEMORY;
    }
    load_ctx ctx = {.model = m, .arch = NULL, .bound = NULL, .err = err, .err_size = err_size};
    edgelm_status st;
    m->path = strdup(path);
    if (m->path == NULL) {
        st = EDGELM_ERR_OUT_OF_MEMORY;
        snprintf(err, err_size, "%s: out of memory", path);
        goto fail;
    }
    st = file_map_open(path, params->prefault, &m->map, err, err_size);
    if (st != EDGELM_OK) {
        goto fail;
    }
    {
        char gguf_err[256];
        st = gguf_parse(m->map.data, m->map.size, &m->gguf, gguf_err, sizeof gguf_err);
        if (st != EDGELM_OK) {
            load_fail(&ctx, st, "%s", gguf_err);
            goto fail;
        }
    }
    if (params->vocab_only) {
        m->vocab_only = true;
        if ((st = create_tokenizer(&ctx)) != EDGELM_OK) {
            goto fail;
        }
        *out = m;
        return EDGELM_OK;
    }
    if (m->gguf.n_tensors == 0) {
        st = load_fail(&ctx, EDGELM_ERR_MISSING,
                       "the file has no tensors: a vocabulary-only GGUF, which can only tokenize "
                       "(edgelm --tokenize, or edgelm_model_params.vocab_only)");
        goto fail;
    }
    gguf_string arch_name;
    if (gguf_get_string(&m->gguf, "general.architecture", &arch_name) != EDGELM_OK) {
        st = load_fail(&ctx, EDGELM_ERR_MISSING, "metadata 'general.architecture' is missing");
        goto fail;
    }
    for (size_t i = 0; i < N_ARCHITECTURES && ctx.arch == NULL; i++) {
        if (gguf_string_equals(arch_name, architectures[i].name)) {
            ctx.arch = &architectures[i];
        }
    }
    if (ctx.arch == NULL) {
        char names[128];
        st = load_fail(&ctx, EDGELM_ERR_UNSUPPORTED_ARCH,
                       "architecture '%.*s' is not supported (supported: %s)",
                       (int)(arch_name.len > 64 ? 64 : arch_name.len), arch_name.data,
                       supported_architectures(names, sizeof names));
        goto fail;
    }
    m->arch = ctx.arch;
    if ((st = read_hparams(&ctx)) != EDGELM_OK) {
        goto fail;
    }
    if ((st = create_tokenizer(&ctx)) != EDGELM_OK) {
        goto fail;
    }
    ctx.bound = calloc(m->gguf.n_tensors > 0 ? (size_t)m->gguf.n_tensors : 1, sizeof *ctx.bound);
    if (ctx.bound == NULL) {
        st = load_fail(&ctx, EDGELM_ERR_OUT_OF_MEMORY, "out of memory");
        goto fail;
    }
    if ((st = bind_weights(&ctx)) != EDGELM_OK) {
        goto fail;
    }
    free(ctx.bound);
    ctx.bound = NULL;
    /* Fingerprint: header, metadata and tensor table, plus a sample of every tensor's bytes (its
     * first and last 64 and 14 evenly spaced 64-byte windows), so two files that differ only in
     * weights do not share saved KV state; cheap enough to do at every load. */
    m->fingerprint = fnv1a(1469598103934665603ull, m->map.data, (size_t)m->gguf.data_offset);
    m->fingerprint = fnv1a(m->fingerprint, &m->map.size, sizeof m->map.size);
    for (uint64_t i = 0; i < m->gguf.n_tensors; i++) {
        const gguf_tensor *t = &m->gguf.tensors[i];
        const uint8_t *bytes = t->data;
        const uint64_t window = t->n_bytes < 64 ? t->n_bytes : 64;
        for (uint64_t k = 0; k < 16; k++) {
            uint64_t at = (t->n_bytes - window) * k / 15;
            m->fingerprint = fnv1a(m->fingerprint, bytes + at, (size_t)window);
        }
    }
    *out = m;
    return EDGELM_OK;

fail:
    free(ctx.bound);
    edgelm_model_free(m);
    return st;
}

/* Appends to a text of a fixed buffer: out[*used..] gets the formatted text (truncated), *used
 * counts the length the whole text needs. */
static void describe_append(char *out, size_t size, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void describe_append(char *out, size_t size, size_t *used, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const int n =
        vsnprintf(*used < size ? out + *used : NULL, *used < size ? size - *used : 0, fmt, ap);
    va_end(ap);
    *used += n > 0 ? (size_t)n : 0;
}

static const char *yes_no(bool b) { return b ? "yes" : "no"; }

size_t edgelm_model_describe(const edgelm_model *model, char *buf, size_t size) {
    size_t used = 0;
    if (buf != NULL && size > 0) {
        buf[0] = '\0';
    } else {
        size = 0;
    }
    if (model->vocab_only) {
        describe_append(buf, size, &used, "vocab_only: yes\n");
        return used;
    }
    const model_hparams *hp = &model->hp;
    const arch_desc *a = model->arch;
    const layer_weights *l0 = &model->layers[0];
    describe_append(buf, size, &used, "heads: %d query, %d key/value, head size %d\n",
                    (int)hp->n_head, (int)hp->n_head_kv, (int)hp->head_dim);
    describe_append(buf, size, &used, "feed-forward: %d (%s%s)\n", (int)hp->n_ff,
                    hp->activation == FFN_GELU ? "GeGLU" : "SwiGLU",
                    a->fused_gate_up == ARCH_TENSOR_REQUIRED ? ", gate and up fused" : "");
    describe_append(buf, size, &used, "rope: %s, %d dimensions, base %g, linear scale %g\n",
                    hp->rope == ROPE_STYLE_NEOX ? "neox (halves)" : "normal (pairs)",
                    (int)hp->n_rot, (double)hp->rope_freq_base,
                    (double)(1.0f / hp->rope_freq_scale));
    if (hp->rope_freq_factors != NULL) {
        float lo = hp->rope_freq_factors[0], hi = lo;
        for (int i = 1; i < hp->n_rot / 2; i++) {
            lo = fminf(lo, hp->rope_freq_factors[i]);
            hi = fmaxf(hi, hp->rope_freq_factors[i]);
        }
        describe_append(buf, size, &used,
                        "rope frequency factors: %d (rope_freqs.weight, Llama 3), %g to %g\n",
                        (int)(hp->n_rot / 2), (double)lo, (double)hi);
    } else {
        describe_append(buf, size, &used, "rope frequency factors: none\n");
    }
    describe_append(buf, size, &used, "q/k norms: %s\n", yes_no(l0->attn_q_norm.data != NULL));
    describe_append(buf, size, &used, "qkv biases: %s\n", yes_no(l0->bq.data != NULL));
    describe_append(buf, size, &used, "fused qkv: %s\n",
                    yes_no(a->fused_qkv == ARCH_TENSOR_REQUIRED));
    if (hp->n_swa > 0) {
        describe_append(buf, size, &used,
                        "sliding window: %d tokens on %d of %d layers (local rope base %g)\n",
                        (int)hp->n_swa, (int)hp->n_local_layers, (int)hp->n_layer,
                        (double)hp->rope_freq_base_swa);
    } else if (hp->n_ctx_cap > 0) {
        describe_append(buf, size, &used, "sliding window: %d tokens (sessions are capped to it)\n",
                        (int)hp->n_ctx_cap);
    } else {
        describe_append(buf, size, &used, "sliding window: none\n");
    }
    describe_append(buf, size, &used, "output: %s\n",
                    model->output.data == model->token_embd.data ? "tied to token_embd"
                                                                 : "output.weight");
    describe_append(buf, size, &used, "post-norms: %s\n", yes_no(l0->attn_post_norm.data != NULL));
    if (hp->embd_scale != 1.0f) {
        describe_append(buf, size, &used, "embedding scale: %g\n", (double)hp->embd_scale);
    }
    if (hp->logit_softcap > 0.0f) {
        describe_append(buf, size, &used, "final logit softcapping: %g\n",
                        (double)hp->logit_softcap);
    }
    describe_append(buf, size, &used, "rms norm epsilon: %g\n", (double)hp->rms_eps);
    return used;
}

int32_t edgelm_model_n_vocab(const edgelm_model *model) { return model->hp.n_vocab; }
int32_t edgelm_model_n_ctx_train(const edgelm_model *model) { return model->hp.n_ctx_train; }
int32_t edgelm_model_n_layer(const edgelm_model *model) { return model->hp.n_layer; }
int32_t edgelm_model_n_embd(const edgelm_model *model) { return model->hp.n_embd; }
int32_t edgelm_model_token_bos(const edgelm_model *model) { return tokenizer_bos(model->tok); }
int32_t edgelm_model_token_eos(const edgelm_model *model) { return tokenizer_eos(model->tok); }
bool edgelm_model_add_bos(const edgelm_model *model) { return tokenizer_add_bos(model->tok); }
bool edgelm_model_token_is_eog(const edgelm_model *model, int32_t token) {
    return tokenizer_is_eog(model->tok, token);
}
uint64_t edgelm_model_weight_bytes(const edgelm_model *model) { return model->weight_bytes; }
uint64_t edgelm_model_fingerprint(const edgelm_model *model) { return model->fingerprint; }

int64_t edgelm_model_n_metadata(const edgelm_model *model) { return (int64_t)model->gguf.n_kv; }

/* Render a scalar kv value (or one array element) as text. */
static int render_scalar(uint32_t type, const gguf_kv *kv, char *buf, size_t size) {
    switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64:
        return snprintf(buf, size, "%" PRIu64, kv->value.u64);
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_INT64:
        return snprintf(buf, size, "%" PRId64, kv->value.i64);
    case GGUF_TYPE_FLOAT32:
    case GGUF_TYPE_FLOAT64:
        return snprintf(buf, size, "%g", kv->value.f64);
    case GGUF_TYPE_BOOL:
        return snprintf(buf, size, "%s", kv->value.b ? "true" : "false");
    default:
        return snprintf(buf, size, "?");
    }
}

static void render_string(gguf_string s, size_t max_chars, char *buf, size_t size) {
    size_t n = 0;
    if (size == 0) {
        return;
    }
    for (uint64_t i = 0; i < s.len && i < max_chars && n + 5 < size; i++) {
        unsigned char c = (unsigned char)s.data[i];
        if (c == '\n') {
            buf[n++] = '\\';
            buf[n++] = 'n';
        } else if (c < 32) {
            n += (size_t)snprintf(buf + n, size - n, "\\x%02x", c);
        } else {
            buf[n++] = (char)c;
        }
    }
    if (s.len > max_chars && n + 4 < size) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
}

bool edgelm_model_metadata(const edgelm_model *model, int64_t index, const char **key, char *buf,
                           size_t buf_size) {
    static __thread char key_buf[256];
    if (index < 0 || (uint64_t)index >= model->gguf.n_kv || buf_size == 0) {
        return false;
    }
    const gguf_kv *kv = &model->gguf.kv[index];
    render_string(kv->key, 200, key_buf, sizeof key_buf);
    *key = key_buf;
    if (kv->type == GGUF_TYPE_STRING) {
        render_string(kv->value.str, 120, buf, buf_size);
    } else if (kv->type == GGUF_TYPE_ARRAY) {
        const gguf_array *arr = &kv->value.arr;
        size_t n = (size_t)snprintf(buf, buf_size, "[%s x %" PRIu64 "]",
                                    gguf_type_name(arr->elem_type), arr->n);
        for (uint64_t i = 0; i < arr->n && i < 4 && n + 40 < buf_size; i++) {
            buf[n++] = i == 0 ? ' ' : ',';
            if (arr->elem_type == GGUF_TYPE_STRING) {
                char piece[48];
                render_string(arr->strings[i], 24, piece, sizeof piece);
                n += (size_t)snprintf(buf + n, buf_size - n, "'%s'", piece);
            } else {
                gguf_kv tmp;
                memset(&tmp, 0, sizeof tmp);
                if (arr->elem_type == GGUF_TYPE_FLOAT32 || arr->elem_type == GGUF_TYPE_FLOAT64) {
                    tmp.value.f64 = (double)gguf_array_f32(arr, i);
                } else if (arr->elem_type == GGUF_TYPE_BOOL) {
                    tmp.value.b = gguf_array_i64(arr, i) != 0;
                } else {
                    tmp.value.i64 = gguf_array_i64(arr, i);
                }
                n += (size_t)render_scalar(arr->elem_type, &tmp, buf + n, buf_size - n);
            }
        }
        if (arr->n > 4 && n + 5 < buf_size) {
            snprintf(buf + n, buf_size - n, ",...");
        }
    } else {
        render_scalar(kv->type, kv, buf, buf_size);
    }
    return true;
}

bool edgelm_model_metadata_string(const edgelm_model *model, const char *key, char *buf,
                                  size_t buf_size) {
    gguf_string s;
    if (gguf_get_string(&model->gguf, key, &s) != EDGELM_OK || s.len >= buf_size) {
        return false;
    }
    memcpy(buf, s.data, (size_t)s.len);
    buf[s.len] = '\0';
    return true;
}

int64_t edgelm_model_n_tensors(const edgelm_model *model) { return (int64_t)model->gguf.n_tensors; }

bool edgelm_model_tensor(const edgelm_model *model, int64_t index, edgelm_tensor_info *info) {
    if (index < 0 || (uint64_t)index >= model->gguf.n_tensors) {
        return false;
    }
    const gguf_tensor *t = &model->gguf.tensors[index];
    const tensor_type_traits *traits = tensor_type_get(t->type);
    info->name = t->name_z;
    info->type_name = traits ? traits->name : "unknown";
    info->n_dims = t->n_dims;
    memcpy(info->ne, t->ne, sizeof info->ne);
    info->n_bytes = t->n_bytes;
    info->file_offset = model->gguf.data_offset + t->offset;
    return true;
}

int32_t edgelm_tokenize(const edgelm_model *model, const char *text, size_t len, bool add_bos,
                        bool parse_special, int32_t *tokens, int32_t max_tokens) {
    if (model == NULL || (text == NULL && len > 0) || max_tokens < 0 ||
        (tokens == NULL && max_tokens > 0)) {
        return -(int32_t)EDGELM_ERR_INVALID_ARGUMENT;
    }
    return tokenizer_encode(model->tok, text, len, add_bos, parse_special, tokens, max_tokens);
}

int32_t edgelm_token_to_piece(const edgelm_model *model, int32_t token, char *buf,
                              size_t buf_size) {
    if (model == NULL || (buf == NULL && buf_size > 0)) {
        return -(int32_t)EDGELM_ERR_INVALID_ARGUMENT;
    }
    return tokenizer_token_to_piece(model->tok, token, buf, buf_size);
}

const char *edgelm_token_text(const edgelm_model *model, int32_t token) {
    return model ? tokenizer_token_text(model->tok, token) : NULL;
}
