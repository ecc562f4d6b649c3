/* forward.c - llama-family forward pass for a single token (see forward.h).
 *
 * Per layer: x += Wo * attention(rope(Wq*rmsnorm(x)), rope(Wk*...), Wv*...);
 *            x += Wdown * (silu(Wgate*rmsnorm(x)) * Wup*rmsnorm(x)).
 * Numerics follow llama.cpp's CPU backend where it matters for identical greedy output: RMSNorm
 * sums in double, activations are converted once per matmul to the weight's vec_dot_type
 * (Q8_0/Q8_1/Q8_K/F16), RoPE angles are built by repeated multiplication in float, and the
 * query is rounded to F16 before the dot with the F16 key cache. Attention is flash-style: one
 * pass over the cached positions with an online softmax, never materializing the score row.
 */
#include "forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- parallel matrix x vector ---------------------------------------------------------------- */

typedef struct matvec_task {
    const weight *w;
    const void *x; /* activations in w's vec_dot_type */
    float *out;    /* (w->n_rows) */
} matvec_task;

typedef struct matvec_job {
    int n_tasks;
    matvec_task tasks[3];
} matvec_job;

static void matvec_worker(void *arg, int ith, int nth) {
    const matvec_job *job = arg;
    for (int t = 0; t < job->n_tasks; t++) {
        const matvec_task *task = &job->tasks[t];
        const weight *w = task->w;
        int64_t begin, end;
        thread_pool_range(w->n_rows, ith, nth, &begin, &end);
        const uint8_t *row = (const uint8_t *)w->data + (size_t)begin * w->row_bytes;
        for (int64_t r = begin; r < end; r++, row += w->row_bytes) {
            w->vec_dot(w->n_cols, &task->out[r], row, task->x);
        }
    }
}

/* out_i = W_i * x for up to three weights sharing the input x (n values). The input is
 * converted once per distinct vec_dot_type into the activation slots. */
static void matvec(forward_state *fs, const float *x, int n, const weight *w0, float *out0,
                   const weight *w1, float *out1, const weight *w2, float *out2) {
    const weight *ws[3] = {w0, w1, w2};
    float *outs[3] = {out0, out1, out2};
    uint32_t slot_type[3];
    int n_slots = 0;
    matvec_job job = {0};
    for (int i = 0; i < 3 && ws[i] != NULL; i++) {
        uint32_t vdt = ws[i]->traits->vec_dot_type;
        int slot = -1;
        for (int s = 0; s < n_slots; s++) {
            if (slot_type[s] == vdt) {
                slot = s;
            }
        }
        if (slot < 0) {
            slot = n_slots++;
            slot_type[slot] = vdt;
            if (vdt == TENSOR_TYPE_F32) {
                memcpy(fs->act[slot], x, (size_t)n * sizeof(float));
            } else {
                tensor_type_get(vdt)->from_float(x, fs->act[slot], n);
            }
        }
        job.tasks[job.n_tasks++] = (matvec_task){ws[i], fs->act[slot], outs[i]};
    }
    thread_pool_run(fs->pool, matvec_worker, &job);
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

/* cos/sin of pos * freq_scale * base^(-2i/n_rot), built by repeated multiplication as ggml's
 * rope cache does (so the angles round the same way). */
static void rope_angles(forward_state *fs, int32_t pos) {
    const model_hparams *hp = &fs->model->hp;
    const float theta_scale = powf(hp->rope_freq_base, -2.0f / (float)hp->n_rot);
    float theta = (float)pos;
    for (int i = 0; i < hp->n_rot / 2; i++) {
        const float angle = hp->rope_freq_scale * theta;
        fs->rope_cos[i] = cosf(angle);
        fs->rope_sin[i] = sinf(angle);
        theta *= theta_scale;
    }
}

static void rope_apply(const forward_state *fs, float *vec, int n_heads) {
    const model_hparams *hp = &fs->model->hp;
    const int half = hp->n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *head = vec + (size_t)h * hp->head_dim;
        for (int i = 0; i < half; i++) {
            const float c = fs->rope_cos[i], s = fs->rope_sin[i];
            /* NORM rotates (2i, 2i+1); NEOX rotates (i, i + n_rot/2) */
            const int a = hp->rope == ROPE_STYLE_NEOX ? i : 2 * i;
            const int b = hp->rope == ROPE_STYLE_NEOX ? i + half : 2 * i + 1;
            const float x0 = head[a], x1 = head[b];
            head[a] = x0 * c - x1 * s;
            head[b] = x0 * s + x1 * c;
        }
    }
}

/* ---- attention ------------------------------------------------------------------------------- */

typedef struct attention_job {
    forward_state *fs;
    int32_t layer;
    int32_t n_pos; /* attend to positions 0..n_pos-1 */
} attention_job;

static void attention_worker(void *arg, int ith, int nth) {
    const attention_job *job = arg;
    forward_state *fs = job->fs;
    const model_hparams *hp = &fs->model->hp;
    const int head_dim = hp->head_dim;
    const int group = hp->n_head / hp->n_head_kv;
    const float scale = 1.0f / sqrtf((float)head_dim);
    int64_t begin, end;
    thread_pool_range(hp->n_head, ith, nth, &begin, &end);
    for (int64_t h = begin; h < end; h++) {
        const fp16_t *q = fs->q16 + h * head_dim;
        const int kv_off = (int)(h / group) * head_dim;
        float *out = fs->xb + h * head_dim;
        /* ggml's CPU flash attention with an F16 V cache: the running output is kept in F16 and
         * rounded after every rescale and every fma (ggml_vec_scale_f16 / ggml_vec_mad_f16), the
         * running sum S in float; the K.q dot (ggml_vec_dot_f16, head_dim < 64: all leftovers)
         * sums float products in double. Matching this matters even for F32 weights (1e-3). */
        fp16_t *acc = fs->o16 + h * head_dim;
        float max_score = -INFINITY;
        float sum = 0.0f;
        for (int i = 0; i < head_dim; i++) {
            acc[i] = 0;
        }
        for (int32_t t = 0; t < job->n_pos; t++) {
            const fp16_t *k = kv_cache_k(&fs->cache, job->layer, t) + kv_off;
            double dot = 0.0;
            for (int i = 0; i < head_dim; i++) {
                dot += (double)(fp16_to_fp32(q[i]) * fp16_to_fp32(k[i]));
            }
            const float score = (float)dot * scale;
            const fp16_t *v = kv_cache_v(&fs->cache, job->layer, t) + kv_off;
            float ms = 1.0f; /* rescale of the old output and sum when the max grows */
            float vs = 1.0f; /* weight of this position, expf(score - max) */
            if (score > max_score) {
                ms = expf(max_score - score);
                max_score = score;
                for (int i = 0; i < head_dim; i++) {
                    acc[i] = fp32_to_fp16(fp16_to_fp32(acc[i]) * ms);
                }
            } else {
                vs = expf(score - max_score);
            }
            for (int i = 0; i < head_dim; i++) {
                acc[i] = fp32_to_fp16(fmaf(fp16_to_fp32(v[i]), vs, fp16_to_fp32(acc[i])));
            }
            sum = fmaf(sum, ms, vs);
        }
        const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        for (int i = 0; i < head_dim; i++) {
            out[i] = fp16_to_fp32(acc[i]) * inv;
        }
    }
}

/* ---- the pass -------------------------------------------------------------------------------- */

static void add_bias(float *x, const weight *b) {
    if (b->data != NULL) {
        const float *bias = b->data;
        for (int64_t i = 0; i < b->n_cols; i++) {
            x[i] += bias[i];
        }
    }
}

void forward_token(forward_state *fs, int32_t token, int32_t pos, bool want_logits) {
    const edgelm_model *m = fs->model;
    const model_hparams *hp = &m->hp;
    const int n_embd = hp->n_embd;
    const int q_dim = hp->n_head * hp->head_dim;
    const int kv_dim = hp->n_head_kv * hp->head_dim;

    /* get_rows: dequantize the token's embedding row */
    m->token_embd.traits->to_float(
        (const uint8_t *)m->token_embd.data + (size_t)token * m->token_embd.row_bytes, fs->x,
        n_embd);
    rope_angles(fs, pos);

    for (int32_t il = 0; il < hp->n_layer; il++) {
        const layer_weights *l = &m->layers[il];
        rms_norm(fs->xb, fs->x, l->attn_norm.data, n_embd, hp->rms_eps);
        matvec(fs, fs->xb, n_embd, &l->wq, fs->q, &l->wk, fs->k, &l->wv, fs->v);
        add_bias(fs->q, &l->bq);
        add_bias(fs->k, &l->bk);
        add_bias(fs->v, &l->bv);
        rope_apply(fs, fs->q, hp->n_head);
        rope_apply(fs, fs->k, hp->n_head_kv);
        fp16_t *k_row = kv_cache_k(&fs->cache, il, pos);
        fp16_t *v_row = kv_cache_v(&fs->cache, il, pos);
        for (int i = 0; i < kv_dim; i++) {
            k_row[i] = fp32_to_fp16(fs->k[i]);
            v_row[i] = fp32_to_fp16(fs->v[i]);
        }
        for (int i = 0; i < q_dim; i++) {
            fs->q16[i] = fp32_to_fp16(fs->q[i]);
        }
        attention_job job = {fs, il, pos + 1};
        thread_pool_run(fs->pool, attention_worker, &job);
        /* fs->xb now holds the attention output (q_dim); project back into the residual */
        matvec(fs, fs->xb, q_dim, &l->wo, fs->q, NULL, NULL, NULL, NULL);
        for (int i = 0; i < n_embd; i++) {
            fs->x[i] += fs->q[i];
        }

        rms_norm(fs->xb, fs->x, l->ffn_norm.data, n_embd, hp->rms_eps);
        matvec(fs, fs->xb, n_embd, &l->ffn_gate, fs->hb, &l->ffn_up, fs->hb2, NULL, NULL);
        for (int i = 0; i < hp->n_ff; i++) {
            const float g = fs->hb[i];
            fs->hb[i] = (g / (1.0f + expf(-g))) * fs->hb2[i];
        }
        matvec(fs, fs->hb, hp->n_ff, &l->ffn_down, fs->xb, NULL, NULL, NULL, NULL);
        for (int i = 0; i < n_embd; i++) {
            fs->x[i] += fs->xb[i];
        }
    }
    if (pos + 1 > fs->cache.n_used) {
        fs->cache.n_used = pos + 1;
    }
    if (want_logits) {
        rms_norm(fs->xb, fs->x, m->output_norm.data, n_embd, hp->rms_eps);
        matvec(fs, fs->xb, n_embd, &m->output, fs->logits, NULL, NULL, NULL, NULL);
    }
}

/* ---- setup ----------------------------------------------------------------------------------- */

static int32_t max_i32(int32_t a, int32_t b) {
    return a > b ? a : b;
}

static size_t scratch_floats(const model_hparams *hp) {
    const size_t q_dim = (size_t)hp->n_head * hp->head_dim;
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t wide = (size_t)max_i32(max_i32(hp->n_embd, (int32_t)q_dim), hp->n_ff);
    return (size_t)hp->n_embd + wide + wide + 2 * kv_dim + 2 * (size_t)hp->n_ff +
           (size_t)hp->n_vocab + (size_t)hp->n_rot;
}

/* Largest activation row: F32 of the widest input is an upper bound for every vec_dot_type. */
static size_t activation_bytes(const model_hparams *hp) {
    const int32_t wide = max_i32(max_i32(hp->n_embd, hp->n_head * hp->head_dim), hp->n_ff);
    return (size_t)wide * sizeof(float) + 64;
}

uint64_t forward_state_bytes(const edgelm_model *model, uint32_t n_ctx) {
    const model_hparams *hp = &model->hp;
    return kv_cache_bytes(hp->n_layer, n_ctx, hp->n_head_kv * hp->head_dim) +
           scratch_floats(hp) * sizeof(float) + 3 * activation_bytes(hp) +
           2 * (uint64_t)hp->n_head * hp->head_dim * sizeof(fp16_t);
}

edgelm_status forward_init(forward_state *fs, const edgelm_model *model, uint32_t n_ctx,
                           int n_threads) {
    memset(fs, 0, sizeof *fs);
    fs->model = model;
    const model_hparams *hp = &model->hp;
    edgelm_status st = kv_cache_init(&fs->cache, hp->n_layer, n_ctx, hp->n_head_kv * hp->head_dim);
    if (st != EDGELM_OK) {
        goto fail;
    }
    st = EDGELM_ERR_OUT_OF_MEMORY;
    float *f = calloc(scratch_floats(hp), sizeof(float));
    if (f == NULL) {
        goto fail;
    }
    const size_t q_dim = (size_t)hp->n_head * hp->head_dim;
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t wide = (size_t)max_i32(max_i32(hp->n_embd, (int32_t)q_dim), hp->n_ff);
    fs->x = f;
    f += hp->n_embd;
    fs->xb = f;
    f += wide;
    fs->q = f;
    f += wide;
    fs->k = f;
    f += kv_dim;
    fs->v = f;
    f += kv_dim;
    fs->hb = f;
    f += hp->n_ff;
    fs->hb2 = f;
    f += hp->n_ff;
    fs->logits = f;
    f += hp->n_vocab;
    fs->rope_cos = f;
    f += hp->n_rot / 2;
    fs->rope_sin = f;
    fs->q16 = calloc(q_dim, sizeof(fp16_t));
    fs->o16 = calloc(q_dim, sizeof(fp16_t));
    fs->act_bytes = activation_bytes(hp);
    for (int i = 0; i < 3; i++) {
        fs->act[i] = malloc(fs->act_bytes);
        if (fs->act[i] == NULL) {
            goto fail;
        }
    }
    if (fs->q16 == NULL || fs->o16 == NULL) {
        goto fail;
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

void forward_free(forward_state *fs) {
    if (fs == NULL) {
        return;
    }
    thread_pool_free(fs->pool);
    kv_cache_free(&fs->cache);
    free(fs->x);
    free(fs->q16);
    free(fs->o16);
    for (int i = 0; i < 3; i++) {
        free(fs->act[i]);
    }
    memset(fs, 0, sizeof *fs);
}
