/* model.h - the loaded model: mapping, parsed GGUF, hyperparameters, tokenizer and the weight
 * views the forward pass reads, and the architecture descriptor they were bound by. Internal; the
 * public face is edgelm_model in edgelm.h.
 *
 * Invariant after model_load succeeds: every weight view points inside the mapping, has exactly
 * the shape the hyperparameters imply, and its type has a vec_dot (matrices) or to_float
 * (embeddings); every tensor of the file is bound to one of them (none is silently ignored); the
 * forward pass relies on this and checks nothing per token.
 */
#ifndef EDGELM_MODEL_H
#define EDGELM_MODEL_H

#include "edgelm.h"
#include "format/file_map.h"
#include "format/gguf.h"
#include "kernels/quant.h"
#include "tokenizer/tokenizer.h"

typedef enum rope_style {
    ROPE_STYLE_NORM = 0, /* rotate adjacent pairs (x[2i], x[2i+1]) - llama GGUF layout */
    ROPE_STYLE_NEOX = 2, /* rotate halves (x[i], x[i + n_rot/2]) - qwen2 and friends */
} rope_style;

/* The gated feed-forward's activation: act(gate) * up. */
typedef enum ffn_activation {
    FFN_SILU = 0, /* SwiGLU: llama and most */
    FFN_GELU,     /* GeGLU with tanh GELU (gemma3), as ggml_geglu computes it */
} ffn_activation;

/* What <name>.attention.sliding_window means to an architecture. */
typedef enum window_rule {
    WINDOW_NONE = 0,
    /* phi3: llama.cpp computes full attention regardless (its phi3 load_hparams: "Phi SWA is
     * currently disabled"), which agrees with the window only while the context fits in it, so
     * a session's context is kept within it (hp.n_ctx_cap) */
    WINDOW_CAPS_CONTEXT,
    /* gemma3: the layers sliding_window_pattern marks local attend only to the last n_swa
     * positions and rope with rope.freq_base_swa; the others attend to everything */
    WINDOW_LOCAL_LAYERS,
} window_rule;

/* Whether a family of tensors belongs to an architecture. A tensor no rule binds is refused at
 * load (as llama.cpp refuses a file with tensors it did not create), never ignored. */
typedef enum arch_tensor_rule {
    ARCH_TENSOR_ABSENT = 0, /* not part of the architecture */
    ARCH_TENSOR_OPTIONAL,   /* used when present */
    ARCH_TENSOR_REQUIRED,   /* the file is refused without it */
} arch_tensor_rule;

/* One supported architecture, as data: everything in which the supported families differ. The
 * forward pass reads the weights bound by these rules (an absent optional tensor has NULL data)
 * and the rope style, never the architecture's name. The metadata keys are those of llama under
 * the prefix "<name>.". Source: llama.cpp's llama-model.cpp (load_tensors, build graphs). */
typedef struct arch_desc {
    const char *name; /* general.architecture and the metadata key prefix */
    rope_style rope;
    arch_tensor_rule qkv_bias;   /* blk.N.attn_{q,k,v}.bias, added to the projections */
    arch_tensor_rule qk_norm;    /* blk.N.attn_{q,k}_norm.weight: per-head RMSNorm before rope */
    arch_tensor_rule rope_freqs; /* rope_freqs.weight: per-pair divisors of the angle (Llama 3) */
    arch_tensor_rule output;     /* output.weight; OPTIONAL: token_embd when absent (tied) */
    /* blk.N.attn_qkv.weight: q, k and v stacked by rows (q_dim, then kv_dim, then kv_dim) in
     * place of attn_{q,k,v}.weight; bound as three row ranges of it (phi3). REQUIRED or ABSENT. */
    arch_tensor_rule fused_qkv;
    /* blk.N.ffn_up.weight with 2 * n_ff rows, gate then up, in place of ffn_gate.weight and
     * ffn_up.weight; bound as two row ranges of it (phi3). REQUIRED or ABSENT. */
    arch_tensor_rule fused_gate_up;
    /* q is multiplied by 1/sqrt(head_dim) (in f32, after rope) before attention, which then
     * scales the scores by 1 (llama.cpp's phi3 graph); otherwise the scores are scaled */
    bool scale_q;
    window_rule window;
    /* blk.N.post_attention_norm.weight and blk.N.post_ffw_norm.weight: RMSNorms of the
     * attention and feed-forward outputs before each residual add (gemma3). REQUIRED or ABSENT */
    arch_tensor_rule post_norms;
    ffn_activation activation;
    bool scale_embeddings;  /* the token embeddings are multiplied by sqrt(n_embd) (gemma) */
    bool logit_softcapping; /* <name>.final_logit_softcapping is read: c * tanh(logit / c) */
} arch_desc;

/* A 2-D weight as stored: n_rows rows of n_cols elements (GGUF ne[0] = n_cols), or a range of
 * whole rows of such a tensor (a fused one): row r is always at data + r * row_bytes. */
typedef struct weight {
    const void *data;
    const tensor_type_traits *traits;
    tensor_vec_dot_fn vec_dot; /* matrices: the row dot of its type (the selected kernels') */
    tensor_gemm_fn gemm;       /* matrices: its matrix x matrix kernel, or NULL */
    tensor_gemm_fn gemv;       /* matrices: its matrix x one token kernel, or NULL */
    uint32_t type;
    int64_t n_cols;
    int64_t n_rows;
    size_t row_bytes;
} weight;

typedef struct layer_weights {
    weight attn_norm;      /* (n_embd) */
    weight wq;             /* (n_embd -> n_head * head_dim) */
    weight wk;             /* (n_embd -> n_head_kv * head_dim) */
    weight wv;             /* (n_embd -> n_head_kv * head_dim) */
    weight bq, bk, bv;     /* (q_dim), (kv_dim), (kv_dim) biases, or data NULL (arch qkv_bias) */
    weight attn_q_norm;    /* (head_dim) per-head RMSNorm of q, or data NULL (arch qk_norm) */
    weight attn_k_norm;    /* (head_dim) per-head RMSNorm of k, or data NULL */
    weight wo;             /* (n_head * head_dim -> n_embd) */
    weight ffn_norm;       /* (n_embd) */
    weight ffn_gate;       /* (n_embd -> n_ff) */
    weight ffn_up;         /* (n_embd -> n_ff) */
    weight ffn_down;       /* (n_ff -> n_embd) */
    weight attn_post_norm; /* (n_embd) RMSNorm of the attention output, or data NULL */
    weight ffn_post_norm;  /* (n_embd) RMSNorm of the feed-forward output, or data NULL */
    /* a sliding-window layer (WINDOW_LOCAL_LAYERS): attends to positions within hp.n_swa of
     * the query, ropes with hp.rope_freq_base_swa and scale 1 */
    bool local;
} layer_weights;

typedef struct model_hparams {
    int32_t n_vocab;
    int32_t n_ctx_train;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;
    int32_t n_ff;
    int32_t n_rot; /* rope dimension count (<= head_dim, even) */
    float rope_freq_base;
    float rope_freq_scale; /* 1 / linear scaling factor */
    float rms_eps;
    float q_scale;  /* multiplies q after rope, before attention: 1, or 1/sqrt(head_dim) */
    float kq_scale; /* multiplies the attention scores: 1/sqrt(head_dim), or 1 */
    /* local layers' window in tokens (WINDOW_LOCAL_LAYERS): the query at position p sees
     * positions p - n_swa + 1 .. p (llama.cpp's LLAMA_SWA_TYPE_STANDARD); 0 when none */
    int32_t n_swa;
    int32_t n_local_layers;   /* how many layers are local */
    float rope_freq_base_swa; /* local layers' rope base */
    int32_t n_ctx_cap;   /* sessions' context is at most this (WINDOW_CAPS_CONTEXT), 0 when none */
    float embd_scale;    /* multiplies the token embeddings: 1, or sqrt(n_embd) */
    float logit_softcap; /* logits become c * tanh(logit / c) when c > 0 */
    ffn_activation activation;
    rope_style rope;
    /* (n_rot / 2) divisors of each rotated pair's angle, from rope_freqs.weight (Llama 3 rope
     * scaling; finite and > 0), or NULL: ggml_rope_ext's freq_factors */
    const float *rope_freq_factors;
} model_hparams;

struct edgelm_model {
    char *path;
    file_map map;
    gguf_file gguf;
    tokenizer *tok;
    model_hparams hp;
    const arch_desc *arch; /* an entry of the table in model.c */
    weight token_embd;     /* (n_vocab rows of n_embd) */
    weight output_norm;    /* (n_embd) */
    weight output;         /* (n_embd -> n_vocab); token_embd when tied */
    layer_weights *layers; /* n_layer entries */
    uint64_t fingerprint;
    uint64_t weight_bytes;
    bool vocab_only; /* loaded for the tokenizer only: arch NULL, hp and weights zero */
};

#endif /* EDGELM_MODEL_H */
