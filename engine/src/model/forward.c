/* forward.c - llama-family forward pass for a batch of tokens (see forward.h), one pass for every
 * architecture of model.c's table: what they differ in is data (which weights are bound, the rope
 * style and frequency factors), so the only per-architecture lines are the optional steps below.
 *
 * Per layer: x += Wo * attention(rope(qnorm(Wq*rmsnorm(x) + bq)), rope(knorm(Wk*... + bk)),
 *                                Wv*... + bv);
 *            x += Wdown * (silu(Wgate*rmsnorm(x)) * Wup*rmsnorm(x)).
 * The biases (qwen2) and the per-head q/k RMSNorms (qwen3, gemma3) apply when the model has them;
 * phi3's fused QKV and gate/up matrices arrive here as row ranges bound as Wq/Wk/Wv and Wgate/Wup,
 * and its 1/sqrt(head_dim) is applied to q (hp->q_scale) rather than to the scores (hp->kq_scale).
 * gemma3 adds: embeddings times sqrt(n_embd), GELU in place of SiLU, an RMSNorm of each residual
 * branch's output before its add (post-norms), local layers that attend to the last n_swa
 * positions only and rope with their own base, and an optional tanh softcap of the logits.
 * Numerics follow llama.cpp's CPU backend where it matters for identical greedy output: RMSNorm
 * sums in double, activations are converted once per matmul to the weight's vec_dot_type
 * (Q8_0/Q8_1/Q8_K/F16), RoPE angles are built by repeated multiplication in float, and the
 * query is rounded to F16 before the dot with the F16 key cache. Attention is flash-style: one
 * pass over the cached positions with an online softmax, never materializing the score row.
 * A chunk of tokens shares every weight row (read once per chunk); each (row, token) dot, and so
 * every result, is exactly what one token at a time computes. Five pool jobs per layer (QKV,
 * attention, Wo, gate/up, down); bias, residual and SwiGLU are folded into the matmul jobs.
 */
#include "forward.h"
#include "kernels/kernels.h"
#include "kernels/tensor_types.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Without a matrix kernel, a row tile of a matmul should stay in L1 next to one activation row
 * while every token of the chunk is dotted with it. */
#define MATMUL_TILE_BYTES 16384
#define MATMUL_TILE_MAX_ROWS 16
/* Matrix kernels (gemm, gemv) take as many rows per call as MATMUL_KERNEL_FLOATS results hold,
 * so that their per-call work on the activations (Q4_0/Q8_0: the block sums and scales of every
 * token) is shared by hundreds of rows; the results wait in that stack buffer (32 KiB). Threads
 * split a matrix at multiples of MATMUL_ROW_ALIGN rows, the row groups of the SIMD kernels (one
 * row per 32-bit lane of a 512-bit vector), so no group straddles two threads. */
#define MATMUL_KERNEL_FLOATS 8192
#define MATMUL_ROW_ALIGN 16

/* ---- parallel matrix x matrix ---------------------------------------------------------------- */

typedef struct matmul_task {
    const weight *w;
    const uint8_t *x; /* n_tokens activation rows in w's vec_dot_type, x_stride bytes apart */
    size_t x_stride;
    float *out; /* token t, row r at out[t * out_stride + r] */
    int64_t out_stride;
    const float *bias; /* (w->n_rows) added to every result, or NULL */
    bool accumulate;   /* out += W x (a residual) rather than out = W x */
} matmul_task;

typedef struct matmul_job {
    int n_tasks;
    int32_t n_tokens;
    bool gated; /* tasks 0 and 1 are gate and up: then out0 = act(out0) * out1 */
    ffn_activation activation;
    matmul_task tasks[3];
} matmul_job;

/* This thread's rows [*begin, *end) of an n_rows matrix: whole groups of MATMUL_ROW_ALIGN. */
static void matmul_range(int64_t n_rows, int ith, int nth, int64_t *begin, int64_t *end) {
    const int64_t n_groups = (n_rows + MATMUL_ROW_ALIGN - 1) / MATMUL_ROW_ALIGN;
    thread_pool_range(n_groups, ith, nth, begin, end);
    *begin = *begin * MATMUL_ROW_ALIGN < n_rows ? *begin * MATMUL_ROW_ALIGN : n_rows;
    *end = *end * MATMUL_ROW_ALIGN < n_rows ? *end * MATMUL_ROW_ALIGN : n_rows;
}

/* out[t][r] = s (+ out[t][r] when accumulating) (+ bias[r]). */
static inline void matmul_store(const matmul_task *task, int32_t t, int64_t r, float s) {
    float *out = task->out + (int64_t)t * task->out_stride;
    if (task->accumulate) {
        out[r] += s;
    } else {
        out[r] = s;
    }
    if (task->bias != NULL) {
        out[r] += task->bias[r];
    }
}

static void matmul_rows(const matmul_task *task, int32_t n_tokens, int64_t begin, int64_t end) {
    const weight *w = task->w;
    const tensor_gemm_fn kernel = n_tokens == 1               ? w->gemv
                                  : n_tokens <= FORWARD_CHUNK ? w->gemm
                                                              : NULL;
    if (kernel != NULL) {
        float dots[MATMUL_KERNEL_FLOATS]; /* token t, row r0 + r at dots[t * (r1 - r0) + r] */
        int64_t span = MATMUL_KERNEL_FLOATS / n_tokens;
        span -= span % MATMUL_ROW_ALIGN;
        for (int64_t r0 = begin; r0 < end; r0 += span) {
            const int64_t r1 = r0 + span < end ? r0 + span : end;
            kernel(w->n_cols, r1 - r0, n_tokens,
                   (const uint8_t *)w->data + (size_t)r0 * w->row_bytes, w->row_bytes, task->x,
                   task->x_stride, dots, r1 - r0);
            for (int32_t t = 0; t < n_tokens; t++) {
                for (int64_t r = r0; r < r1; r++) {
                    matmul_store(task, t, r, dots[t * (r1 - r0) + (r - r0)]);
                }
            }
        }
        return;
    }
    int64_t tile = MATMUL_TILE_BYTES / (int64_t)w->row_bytes;
    tile = tile < 1 ? 1 : tile > MATMUL_TILE_MAX_ROWS ? MATMUL_TILE_MAX_ROWS : tile;
    for (int64_t r0 = begin; r0 < end; r0 += tile) {
        const int64_t r1 = r0 + tile < end ? r0 + tile : end;
        for (int32_t t = 0; t < n_tokens; t++) {
            const uint8_t *xt = task->x + (size_t)t * task->x_stride;
            const uint8_t *row = (const uint8_t *)w->data + (size_t)r0 * w->row_bytes;
            for (int64_t r = r0; r < r1; r++, row += w->row_bytes) {
                float s;
                w->vec_dot(w->n_cols, &s, row, xt);
                matmul_store(task, t, r, s);
            }
        }
    }
}

/* ggml_vec_geglu_f32 as ggml builds it (GGML_GELU_FP16): the gate is rounded to F16 and its
 * tanh GELU looked up in a table of F16 results, one per F16 value, each ggml_gelu_f32 of that
 * value rounded to F16; saturated outside +-10. The table (128 KiB, in .bss, so untouched until
 * a GELU model is first set up) is built once: computing the tanh per element instead cost half
 * of a Gemma 3 prefill. */
static fp16_t gelu_table[1 << 16];
static pthread_once_t gelu_table_once = PTHREAD_ONCE_INIT;

static void gelu_table_build(void) {
    const float sqrt_2_over_pi = 0.79788456080286535587989211986876f;
    for (uint32_t i = 0; i < (1u << 16); i++) {
        const float x = fp16_to_fp32((fp16_t)i);
        const float gelu =
            0.5f * x * (1.0f + tanhf(sqrt_2_over_pi * x * (1.0f + 0.044715f * x * x)));
        gelu_table[i] = fp32_to_fp16(gelu);
    }
}

static inline float geglu(float gate, float up) {
    if (gate <= -10.0f) {
        return 0.0f;
    }
    if (gate >= 10.0f) {
        return gate * up;
    }
    return fp16_to_fp32(gelu_table[fp32_to_fp16(gate)]) * up;
}

static void matmul_worker(void *arg, int ith, int nth) {
    const matmul_job *job = arg;
    for (int i = 0; i < job->n_tasks; i++) {
        int64_t begin, end;
        matmul_range(job->tasks[i].w->n_rows, ith, nth, &begin, &end);
        matmul_rows(&job->tasks[i], job->n_tokens, begin, end);
    }
    if (job->gated) {
        /* gate and up have the same row count, so this thread owns the same rows of both */
        const matmul_task *gate = &job->tasks[0], *up = &job->tasks[1];
        int64_t begin, end;
        matmul_range(gate->w->n_rows, ith, nth, &begin, &end);
        for (int32_t t = 0; t < job->n_tokens; t++) {
            float *g = gate->out + (int64_t)t * gate->out_stride;
            const float *u = up->out + (int64_t)t * up->out_stride;
            if (job->activation == FFN_GELU) {
                for (int64_t r = begin; r < end; r++) {
                    g[r] = geglu(g[r], u[r]);
                }
            } else {
                for (int64_t r = begin; r < end; r++) {
                    g[r] = (g[r] / (1.0f + expf(-g[r]))) * u[r];
                }
            }
        }
    }
}

/* Convert n_tokens rows of n inputs (x_stride floats apart) to vdt into dst; returns the row
 * stride in bytes. */
static size_t convert_rows(uint32_t vdt, const float *x, int64_t x_stride, int n, int32_t n_tokens,
                           uint8_t *dst) {
    const size_t stride = tensor_row_size(vdt, n);
    const tensor_type_traits *t = tensor_type_get(vdt);
    for (int32_t i = 0; i < n_tokens; i++) {
        t->from_float(x + (int64_t)i * x_stride, dst + (size_t)i * stride, n);
    }
    return stride;
}

typedef struct matmul_out {
    const weight *w;
    float *out;
    int64_t out_stride;
    const weight *bias; /* may be NULL or have NULL data */
    bool accumulate;
} matmul_out;

/* out_i = W_i * x for up to three weights sharing the input x: n_tokens rows of n values,
 * x_stride floats apart. The input is converted once per distinct vec_dot_type. */
static void matmul(forward_state *fs, const float *x, int64_t x_stride, int n, int32_t n_tokens,
                   const matmul_out *outs, int n_outs, bool gated) {
    uint32_t slot_type[3];
    size_t slot_stride[3];
    int n_slots = 0;
    matmul_job job = {.n_tokens = n_tokens, .gated = gated, .activation = fs->model->hp.activation};
    for (int i = 0; i < n_outs; i++) {
        const weight *w = outs[i].w;
        const uint32_t vdt = w->traits->vec_dot_type;
        int slot = -1;
        for (int s = 0; s < n_slots; s++) {
            if (slot_type[s] == vdt) {
                slot = s;
            }
        }
        if (slot < 0) {
            slot = n_slots++;
            slot_type[slot] = vdt;
            slot_stride[slot] = convert_rows(vdt, x, x_stride, n, n_tokens, fs->act[slot]);
        }
        const weight *b = outs[i].bias;
        job.tasks[job.n_tasks++] = (matmul_task){
            .w = w,
            .x = fs->act[slot],
            .x_stride = slot_stride[slot],
            .out = outs[i].out,
            .out_stride = outs[i].out_stride,
            .bias = b != NULL ? b->data : NULL,
            .accumulate = outs[i].accumulate,
        };
    }
    thread_pool_run(fs->pool, matmul_worker, &job);
}

/* ---- elementwise ops ------------------------------------------------------------------------- */

/* ggml_rms_norm then ggml_mul: y = (x * (1/sqrt(mean(x^2) + eps))) * w, the sum in double. */
static void rms_norm(float *out, const float *x, const float *w, int n, float eps) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        sum += (double)(x[i] * x[i]);
    }
    const float mean = (float)(sum / n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int i = 0; i < n; i++) {
        out[i] = (x[i] * scale) * w[i];
    }
}

/* RMSNorm of each of n_heads heads of head_dim values, in place, with one weight vector: ggml's
 * rms_norm over ne0 of the (head_dim, n_heads) view, then the mul. */
static void head_norms(float *vec, const float *w, int n_heads, int head_dim, float eps) {
    for (int h = 0; h < n_heads; h++) {
        rms_norm(vec + (size_t)h * head_dim, vec + (size_t)h * head_dim, w, head_dim, eps);
    }
}

void forward_rope_angles(const model_hparams *hp, bool local, int32_t pos, float *cos_out,
                         float *sin_out) {
    /* llama.cpp's get_rope_freq_base/scale: local layers use the SWA base and no scaling */
    const float base = local ? hp->rope_freq_base_swa : hp->rope_freq_base;
    const float freq_scale = local ? 1.0f : hp->rope_freq_scale;
    const float theta_scale = powf(base, -2.0f / (float)hp->n_rot);
    const float *factors = local ? NULL : hp->rope_freq_factors;
    float theta = (float)pos;
    for (int i = 0; i < hp->n_rot / 2; i++) {
        /* ggml_rope_cache_init: rope_yarn(theta / ff) with ext_factor 0 is freq_scale * that */
        const float angle = freq_scale * (factors != NULL ? theta / factors[i] : theta);
        cos_out[i] = cosf(angle);
        sin_out[i] = sinf(angle);
        theta *= theta_scale;
    }
}

static void rope_apply(const model_hparams *hp, const float *cos_v, const float *sin_v, float *vec,
                       int n_heads) {
    const int half = hp->n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *head = vec + (size_t)h * hp->head_dim;
        for (int i = 0; i < half; i++) {
            const float c = cos_v[i], s = sin_v[i];
            /* NORM rotates (2i, 2i+1); NEOX rotates (i, i + n_rot/2) */
            const int a = hp->rope == ROPE_STYLE_NEOX ? i : 2 * i;
            const int b = hp->rope == ROPE_STYLE_NEOX ? i + half : 2 * i + 1;
            const float x0 = head[a], x1 = head[b];
            head[a] = x0 * c - x1 * s;
            head[b] = x0 * s + x1 * c;
        }
    }
}

void forward_rotate_keys(forward_state *fs, int32_t begin, int32_t end, int32_t delta) {
    const model_hparams *hp = &fs->model->hp;
    /* the chunk's rope tables are free between passes: row 0 of each holds the angles */
    forward_rope_angles(hp, false, delta, fs->rope_cos, fs->rope_sin);
    forward_rope_angles(hp, true, delta, fs->rope_cos_local, fs->rope_sin_local);
    for (int32_t il = 0; il < hp->n_layer; il++) {
        const bool local = fs->model->layers[il].local;
        kv_cache_rotate_k(&fs->cache, il, begin, end, hp->head_dim, hp->n_rot,
                          hp->rope == ROPE_STYLE_NEOX, local ? fs->rope_cos_local : fs->rope_cos,
                          local ? fs->rope_sin_local : fs->rope_sin);
    }
}

/* ---- attention ------------------------------------------------------------------------------- */

typedef struct attention_job {
    forward_state *fs;
    const kernel_table *kernels;
    int32_t layer;
    int32_t pos0;     /* position of the chunk's first token */
    int32_t n_tokens; /* token t attends to positions 0..pos0+t (a local layer: the last n_swa) */
    bool local;
} attention_job;

/* One (head, token) item: the flash-attention output of head h for token t. */
static void attention_head(const attention_job *job, int h, int32_t t) {
    forward_state *fs = job->fs;
    const kernel_table *kt = job->kernels;
    const model_hparams *hp = &fs->model->hp;
    const int head_dim = hp->head_dim;
    const int q_dim = hp->n_head * head_dim;
    const int group = hp->n_head / hp->n_head_kv;
    const float scale = hp->kq_scale; /* 1/sqrt(head_dim), or 1 when q carries it */
    const int32_t n_pos = job->pos0 + t + 1;
    /* llama.cpp masks key position p for query position P when P - p >= n_swa */
    const int32_t first = job->local && n_pos > hp->n_swa ? n_pos - hp->n_swa : 0;
    const size_t off = (size_t)t * q_dim + (size_t)h * head_dim;
    const int kv_off = (h / group) * head_dim;
    float *out = fs->att + off;
    /* ggml's CPU flash attention with an F16 V cache: the running output is kept in F16 and
     * rounded after every rescale and every fma (ggml_vec_scale_f16 / ggml_vec_mad_f16, here
     * f16_scale_row / f16_mad_row), the running sum S in float; the K.q dot is ggml_vec_dot_f16
     * (the table's f16_dot: 16-lane float accumulators over the first multiple of 64, the rest
     * of the products summed in double), on the F16 key row and the F16 query as stored.
     * Matching this matters even for F32 weights (1e-3). */
    fp16_t *acc = fs->o16 + off;
    float max_score = -INFINITY;
    float sum = 0.0f;
    for (int i = 0; i < head_dim; i++) {
        acc[i] = 0;
    }
    const fp16_t *q16 = fs->q16 + off;
    for (int32_t p = first; p < n_pos; p++) {
        if (job->local && !kv_cache_holds(&fs->cache, p)) {
            continue; /* gone from the ring since a context shift (llama.cpp: masked) */
        }
        float dot;
        kt->f16_dot(head_dim, &dot, kv_cache_k(&fs->cache, job->layer, p) + kv_off, q16);
        const float score = dot * scale;
        const fp16_t *v = kv_cache_v(&fs->cache, job->layer, p) + kv_off;
        float ms = 1.0f; /* rescale of the old output and sum when the max grows */
        float vs = 1.0f; /* weight of this position, expf(score - max) */
        if (score > max_score) {
            ms = expf(max_score - score);
            max_score = score;
            kt->f16_scale_row(acc, ms, head_dim);
        } else {
            vs = expf(score - max_score);
        }
        kt->f16_mad_row(acc, v, vs, head_dim);
        sum = fmaf(sum, ms, vs);
    }
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    kt->fp16_to_fp32_row(acc, out, head_dim);
    for (int i = 0; i < head_dim; i++) {
        out[i] *= inv;
    }
}

/* Items are (head, token) pairs in head-major order, split into contiguous ranges: every head
 * costs the same summed over the chunk's tokens, so whole heads balance the causal triangle, and
 * a thread keeps one head's K/V rows hot across its tokens. */
static void attention_worker(void *arg, int ith, int nth) {
    const attention_job *job = arg;
    const model_hparams *hp = &job->fs->model->hp;
    const int64_t n_items = (int64_t)hp->n_head * job->n_tokens;
    int64_t begin, end;
    thread_pool_range(n_items, ith, nth, &begin, &end);
    for (int64_t j = begin; j < end; j++) {
        attention_head(job, (int)(j / job->n_tokens), (int32_t)(j % job->n_tokens));
    }
}

/* ---- the pass -------------------------------------------------------------------------------- */

/* x += W in for the chunk's n tokens (n_in values each); with a post-norm (gemma3),
 * x += rmsnorm(W in) instead, the product waiting in xb. */
static void project_residual(forward_state *fs, const weight *w, const weight *post_norm,
                             const float *in, int n_in, int32_t n) {
    const model_hparams *hp = &fs->model->hp;
    const int n_embd = hp->n_embd;
    if (post_norm->data == NULL) {
        const matmul_out out = {w, fs->x, n_embd, NULL, true};
        matmul(fs, in, n_in, n_in, n, &out, 1, false);
        return;
    }
    const matmul_out out = {w, fs->xb, n_embd, NULL, false};
    matmul(fs, in, n_in, n_in, n, &out, 1, false);
    for (int32_t t = 0; t < n; t++) {
        float *y = fs->xb + (size_t)t * n_embd;
        float *x = fs->x + (size_t)t * n_embd;
        rms_norm(y, y, post_norm->data, n_embd, hp->rms_eps);
        for (int i = 0; i < n_embd; i++) {
            x[i] += y[i];
        }
    }
}

/* One chunk of n <= n_chunk_max tokens at positions pos0.. */
static void forward_chunk(forward_state *fs, const int32_t *tokens, int32_t n, int32_t pos0,
                          bool want_logits) {
    const edgelm_model *m = fs->model;
    const model_hparams *hp = &m->hp;
    const int n_embd = hp->n_embd;
    const int q_dim = hp->n_head * hp->head_dim;
    const int kv_dim = hp->n_head_kv * hp->head_dim;
    const int half_rot = hp->n_rot / 2;
    const kernel_table *kt = kernels_get();

    for (int32_t t = 0; t < n; t++) {
        /* get_rows: dequantize the token's embedding row */
        float *x = fs->x + (size_t)t * n_embd;
        m->token_embd.traits->to_float((const uint8_t *)m->token_embd.data +
                                           (size_t)tokens[t] * m->token_embd.row_bytes,
                                       x, n_embd);
        if (hp->embd_scale != 1.0f) { /* gemma: ggml_scale by sqrt(n_embd) */
            for (int i = 0; i < n_embd; i++) {
                x[i] *= hp->embd_scale;
            }
        }
        forward_rope_angles(hp, false, pos0 + t, fs->rope_cos + (size_t)t * half_rot,
                            fs->rope_sin + (size_t)t * half_rot);
        if (hp->n_local_layers > 0) {
            forward_rope_angles(hp, true, pos0 + t, fs->rope_cos_local + (size_t)t * half_rot,
                                fs->rope_sin_local + (size_t)t * half_rot);
        }
    }

    kv_cache_claim(&fs->cache, pos0, n);
    for (int32_t il = 0; il < hp->n_layer; il++) {
        const layer_weights *l = &m->layers[il];
        for (int32_t t = 0; t < n; t++) {
            rms_norm(fs->xb + (size_t)t * n_embd, fs->x + (size_t)t * n_embd, l->attn_norm.data,
                     n_embd, hp->rms_eps);
        }
        const matmul_out qkv[3] = {
            {&l->wq, fs->q, q_dim, &l->bq, false},
            {&l->wk, fs->k, kv_dim, &l->bk, false},
            {&l->wv, fs->v, kv_dim, &l->bv, false},
        };
        matmul(fs, fs->xb, n_embd, n_embd, n, qkv, 3, false);
        const float *cos_table = l->local ? fs->rope_cos_local : fs->rope_cos;
        const float *sin_table = l->local ? fs->rope_sin_local : fs->rope_sin;
        for (int32_t t = 0; t < n; t++) {
            const float *c = cos_table + (size_t)t * half_rot;
            const float *s = sin_table + (size_t)t * half_rot;
            float *q = fs->q + (size_t)t * q_dim;
            float *k = fs->k + (size_t)t * kv_dim;
            const float *v = fs->v + (size_t)t * kv_dim;
            if (l->attn_q_norm.data != NULL) { /* qwen3: both or neither (the arch's rule) */
                head_norms(q, l->attn_q_norm.data, hp->n_head, hp->head_dim, hp->rms_eps);
                head_norms(k, l->attn_k_norm.data, hp->n_head_kv, hp->head_dim, hp->rms_eps);
            }
            rope_apply(hp, c, s, q, hp->n_head);
            rope_apply(hp, c, s, k, hp->n_head_kv);
            if (hp->q_scale != 1.0f) { /* phi3, gemma3: ggml_scale of q, attention scale 1 */
                for (int i = 0; i < q_dim; i++) {
                    q[i] *= hp->q_scale;
                }
            }
            kt->fp32_to_fp16_row(k, kv_cache_k(&fs->cache, il, pos0 + t), kv_dim);
            kt->fp32_to_fp16_row(v, kv_cache_v(&fs->cache, il, pos0 + t), kv_dim);
            kt->fp32_to_fp16_row(q, fs->q16 + (size_t)t * q_dim, q_dim);
        }
        attention_job job = {fs, kt, il, pos0, n, l->local};
        thread_pool_run(fs->pool, attention_worker, &job);
        project_residual(fs, &l->wo, &l->attn_post_norm, fs->att, q_dim, n);

        for (int32_t t = 0; t < n; t++) {
            rms_norm(fs->xb + (size_t)t * n_embd, fs->x + (size_t)t * n_embd, l->ffn_norm.data,
                     n_embd, hp->rms_eps);
        }
        const matmul_out gate_up[2] = {
            {&l->ffn_gate, fs->hb, hp->n_ff, NULL, false},
            {&l->ffn_up, fs->hb2, hp->n_ff, NULL, false},
        };
        matmul(fs, fs->xb, n_embd, n_embd, n, gate_up, 2, true);
        project_residual(fs, &l->ffn_down, &l->ffn_post_norm, fs->hb, hp->n_ff, n);
    }
    if (pos0 + n > fs->cache.n_used) {
        fs->cache.n_used = pos0 + n;
    }
    if (want_logits) {
        const size_t last = (size_t)(n - 1) * n_embd;
        rms_norm(fs->xb, fs->x + last, m->output_norm.data, n_embd, hp->rms_eps);
        const matmul_out out = {&m->output, fs->logits, hp->n_vocab, NULL, false};
        matmul(fs, fs->xb, n_embd, n_embd, 1, &out, 1, false);
        if (hp->logit_softcap > 0.0f) { /* ggml_scale(1/c), ggml_tanh, ggml_scale(c) */
            const float inv = 1.0f / hp->logit_softcap;
            for (int32_t i = 0; i < hp->n_vocab; i++) {
                fs->logits[i] = tanhf(fs->logits[i] * inv) * hp->logit_softcap;
            }
        }
    }
}

void forward_batch(forward_state *fs, const int32_t *tokens, int32_t n, int32_t pos0,
                   bool want_logits) {
    int32_t chunk = fs->n_chunk;
    if (chunk < 1 || chunk > fs->n_chunk_max) {
        chunk = fs->n_chunk_max;
    }
    for (int32_t i = 0; i < n; i += chunk) {
        const int32_t len = n - i < chunk ? n - i : chunk;
        forward_chunk(fs, tokens + i, len, pos0 + i, want_logits && i + len == n);
    }
}

void forward_token(forward_state *fs, int32_t token, int32_t pos, bool want_logits) {
    forward_chunk(fs, &token, 1, pos, want_logits);
}

/* ---- setup ----------------------------------------------------------------------------------- */

/* Floats of chunk scratch (x .. rope tables) for n_chunk tokens, logits excluded. */
static size_t chunk_floats(const model_hparams *hp, size_t n_chunk) {
    const size_t q_dim = (size_t)hp->n_head * hp->head_dim;
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t per_token = 2 * (size_t)hp->n_embd + 2 * q_dim + 2 * kv_dim +
                             2 * (size_t)hp->n_ff + 4 * (size_t)(hp->n_rot / 2);
    return per_token * n_chunk;
}

/* Bytes of one activation row: F32 of the widest matmul input bounds every vec_dot_type. */
static size_t activation_row_bytes(const model_hparams *hp) {
    size_t wide = (size_t)hp->n_embd;
    const size_t q_dim = (size_t)hp->n_head * hp->head_dim;
    wide = q_dim > wide ? q_dim : wide;
    wide = (size_t)hp->n_ff > wide ? (size_t)hp->n_ff : wide;
    return wide * sizeof(float);
}

/* Rows a local layer's KV ring needs: the window, plus a chunk whose queries all still see
 * their windows while the chunk's own rows are written; 0 when that is no smaller than the
 * context (then local layers keep every position, as the others do). */
static uint32_t ring_rows(const model_hparams *hp, uint32_t n_ctx) {
    if (hp->n_local_layers == 0 || hp->n_swa <= 0 ||
        (uint64_t)hp->n_swa + FORWARD_CHUNK >= (uint64_t)n_ctx) {
        return 0;
    }
    return (uint32_t)hp->n_swa + FORWARD_CHUNK;
}

uint64_t forward_state_bytes(const edgelm_model *model, uint32_t n_ctx) {
    const model_hparams *hp = &model->hp;
    const uint64_t n_chunk = FORWARD_CHUNK;
    const uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim;
    const uint32_t n_ring = ring_rows(hp, n_ctx);
    return kv_cache_bytes_windowed(hp->n_layer, n_ctx, hp->n_head_kv * hp->head_dim,
                                   n_ring > 0 ? hp->n_local_layers : 0, n_ring) +
           (chunk_floats(hp, FORWARD_CHUNK) + (uint64_t)hp->n_vocab) * sizeof(float) +
           3 * n_chunk * activation_row_bytes(hp) + 2 * n_chunk * q_dim * sizeof(fp16_t);
}

/* The next n floats of the one buffer forward_init() carves the chunk's activations from. */
static float *take_floats(float **cursor, size_t n) {
    float *p = *cursor;
    *cursor += n;
    return p;
}

void forward_free(forward_state *fs) {
    if (fs == NULL) {
        return;
    }
    thread_pool_free(fs->pool);
    kv_cache_free(&fs->cache);
    free(fs->x);
    free(fs->logits);
    free(fs->q16);
    free(fs->o16);
    for (int i = 0; i < 3; i++) {
        free(fs->act[i]);
    }
    memset(fs, 0, sizeof *fs);
}

edgelm_status forward_init(forward_state *fs, const edgelm_model *model, uint32_t n_ctx,
                           int n_threads) {
    memset(fs, 0, sizeof *fs);
    fs->model = model;
    const model_hparams *hp = &model->hp;
    if (hp->activation == FFN_GELU) {
        pthread_once(&gelu_table_once, gelu_table_build);
    }
    const size_t n_chunk = FORWARD_CHUNK;
    const size_t q_dim = (size_t)hp->n_head * hp->head_dim;
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t half_rot = (size_t)(hp->n_rot / 2);
    const uint32_t n_ring = ring_rows(hp, n_ctx);
    edgelm_status st = EDGELM_ERR_OUT_OF_MEMORY;
    bool *windowed = n_ring > 0 ? calloc((size_t)hp->n_layer, sizeof *windowed) : NULL;
    if (n_ring > 0 && windowed == NULL) {
        goto fail;
    }
    for (int32_t il = 0; windowed != NULL && il < hp->n_layer; il++) {
        windowed[il] = model->layers[il].local;
    }
    st = kv_cache_init_windowed(&fs->cache, hp->n_layer, n_ctx, (int32_t)kv_dim, windowed,
                                hp->n_swa, n_ring);
    free(windowed);
    if (st != EDGELM_OK) {
        goto fail;
    }
    st = EDGELM_ERR_OUT_OF_MEMORY;
    fs->n_chunk_max = FORWARD_CHUNK;
    fs->n_chunk = FORWARD_CHUNK;
    /* calloc: rows of the chunk a short prompt never reaches are never touched */
    float *f = calloc(chunk_floats(hp, n_chunk), sizeof(float));
    if (f == NULL) {
        goto fail;
    }
    fs->x = take_floats(&f, n_chunk * (size_t)hp->n_embd);
    fs->xb = take_floats(&f, n_chunk * (size_t)hp->n_embd);
    fs->q = take_floats(&f, n_chunk * q_dim);
    fs->k = take_floats(&f, n_chunk * kv_dim);
    fs->v = take_floats(&f, n_chunk * kv_dim);
    fs->att = take_floats(&f, n_chunk * q_dim);
    fs->hb = take_floats(&f, n_chunk * (size_t)hp->n_ff);
    fs->hb2 = take_floats(&f, n_chunk * (size_t)hp->n_ff);
    fs->rope_cos = take_floats(&f, n_chunk * half_rot);
    fs->rope_sin = take_floats(&f, n_chunk * half_rot);
    fs->rope_cos_local = take_floats(&f, n_chunk * half_rot);
    fs->rope_sin_local = f;
    fs->logits = calloc((size_t)hp->n_vocab, sizeof(float));
    fs->q16 = calloc(n_chunk * q_dim, sizeof(fp16_t));
    fs->o16 = calloc(n_chunk * q_dim, sizeof(fp16_t));
    if (fs->logits == NULL || fs->q16 == NULL || fs->o16 == NULL) {
        goto fail;
    }
    fs->act_row_bytes = activation_row_bytes(hp);
    for (int i = 0; i < 3; i++) {
        fs->act[i] = malloc(n_chunk * fs->act_row_bytes);
        if (fs->act[i] == NULL) {
            goto fail;
        }
    }
    st = thread_pool_create(n_threads, &fs->pool);
    if (st != EDGELM_OK) {
        goto fail;
    }
    return EDGELM_OK;
fail:
    forward_free(fs);
    return st;
}
