/* test_forward.c - the forward pass against llama.cpp's reference outputs and against an
 * independent naive implementation.
 *
 * 1. Golden (needs ../shared/models), the engine's contract with llama.cpp, over the greedy
 *    64-token continuations of stories260K F32, Q8_0 and Q4_0 for both reference prompts (the
 *    engine fed the reference's tokens): the logits of steps 0 and 1 (the prompt's batch, then one
 *    token), which the reference records in full, within 1e-3 of llama.cpp's relative to the L2
 *    norm of its logit vector; the greedy token equal to llama.cpp's up to the first step whose
 *    reference top-1/top-2 margin is below 0.01 (where another float summation order may rightly
 *    pick the other one), except at a step whose margin is below twice its largest logit error
 *    (a swap the logit bound allows; it matters once logits are large, as phi3's). Later steps
 *    record only the top 5, whose errors compound through the KV cache (in a 64-wide model one
 *    Q8 activation code landing on the other side of a rounding boundary moves them by ~1e-3 of
 *    the norm): those within 1e-2. For every synthetic K-quant model the same over steps 0 and 1,
 *    and also each of their top-5 logits within 1e-3 relative.
 *    The arch/ fixtures (qwen2, qwen3, llama with Llama 3 rope factors, phi3 with fused QKV and
 *    gate/up; F16, Q8_0, Q4_K_M) the same way over their 32 steps, the quantized ones with a
 *    looser bound (see below).
 * 2. Fresh clone (always runs): a model made by edgelm-gen is evaluated both by the engine and by
 *    a plain double-precision forward pass written here from the GGUF tensors; logits must agree,
 *    and must be bit-identical across thread counts. Llama in f32, f16, q8_0 and q4_K; then every
 *    other architecture (edgelm-gen --arch: llama3's rope factors, qwen2's biases, qwen3's q/k
 *    norms, phi3's fused tensors and q scaling, gemma3's embedding scale, GeGLU, post-norms and
 *    local window layers with their own rope base) in shapes unlike the arch/ fixtures', in f32
 *    and q8_0, at every position after a prompt batch (gemma3: 40 tokens, window 8). Each of
 *    those features, left out of the naive pass, fails its check.
 * 3. Architectures refused (always runs): copies of an edgelm-gen model relabeled or with tensors
 *    added or dropped, each refused at load with a specific status and a message naming the cause;
 *    and (needs ../shared/models) edited copies of arch/phi3-F16.gguf: longrope, fused tensors
 *    missing rows, a sliding window shorter than the session's context.
 */
#include "format/gguf.h"
#include "gguf_writer.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "model_fixtures.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SYNTHETIC_REL_TOL 1e-3
/* The generated gemma3 q8_0 model against the naive pass: 17 positions checked rather than 1, in
 * a model whose post-norms rescale every branch, so the maximum of the Q8_0 activation rounding
 * noise is larger than the 2e-2 of one position (measured 2.1e-2, flat over the positions: no
 * growth once the window slides; every broken gemma3 feature measured >= 1.2e-1). */
#define GEN_GEMMA3_Q8_0_TOL 3e-2
/* the contract with llama.cpp (see above) */
#define GOLDEN_L2_TOL 1e-3
#define GOLDEN_LATER_L2_TOL 1e-2
#define GOLDEN_MIN_MARGIN 0.01
/* The quantized arch/ fixtures (Q8_0, Q4_K_M of 256-wide random-weight models) miss the 1e-3 of
 * steps 0-1 on the 51-token prompt: measured 1.3e-3 to 3.7e-3 over the kernel levels, while
 * their F16 copies stay within 1.2e-4. Measured against llama.cpp itself (a program on its API,
 * 2026-12-05): its answer depends on its own path, as much as ours differs from it.
 * - Q4_K_M: llama.cpp's one-token kernel (ubatches of 1-3 tokens) and its batched one (4 or
 *   more, which made the reference) differ by 1.6e-3 to 3.1e-3 on this prompt; this engine
 *   gives what its one-token path gives (qwen2, qwen3 to 1e-7).
 * - Q8_0: llama.cpp's x86 build quantizes activations with its SIMD rule (scale 127/amax, ties
 *   to even), not ggml's scalar reference that this engine follows (1/(amax/127), ties away):
 *   1-10 codes in 1e5 differ per run. Its Q8_0 matmul (llamafile's tinyBLAS) also sums in
 *   another order, which now and then moves an F16 K-cache entry by one step. Either jumps
 *   the logits by about 1e-3 at one position; the copy with the x86 rule matched qwen2 to 2e-7.
 * Float order or a tie rule, magnified about 20x by quantized activations: not a bug, but the
 * 1e-3 contract cannot hold for them, so they are held to this bound. It still fails without
 * Llama 3's rope factors (8e-3 at step 0 of the short prompt) or qwen3's q/k norms (2e-2). */
#define GOLDEN_ARCH_QUANT_L2_TOL 5e-3

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++) {
        if (x[i] > x[best]) {
            best = i;
        }
    }
    return best;
}

/* Compare the engine's logits with the reference's top5 list; returns worst relative error. */
static double top5_error(const float *logits, const cJSON *top5) {
    double worst = 0.0;
    const cJSON *pair;
    cJSON_ArrayForEach(pair, top5) {
        int id = cJSON_GetArrayItem(pair, 0)->valueint;
        double expected = cJSON_GetArrayItem(pair, 1)->valuedouble;
        double err = fabs((double)logits[id] - expected) / fmax(fabs(expected), 1.0);
        if (err > worst) {
            worst = err;
        }
    }
    return worst;
}

/* The largest |logit - reference| over every logit the step recorded (the full vector, else the
 * top 5), relative to the L2 norm of the reference's logit vector. */
static double l2_relative_error(const float *logits, const cJSON *step) {
    const double l2 = cJSON_GetObjectItem(step, "logit_l2")->valuedouble;
    const cJSON *full = cJSON_GetObjectItem(step, "logits");
    double worst = 0.0;
    if (full != NULL) {
        int i = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, full) {
            worst = fmax(worst, fabs((double)logits[i++] - v->valuedouble));
        }
    } else {
        const cJSON *pair;
        cJSON_ArrayForEach(pair, cJSON_GetObjectItem(step, "top5")) {
            const int id = cJSON_GetArrayItem(pair, 0)->valueint;
            worst =
                fmax(worst, fabs((double)logits[id] - cJSON_GetArrayItem(pair, 1)->valuedouble));
        }
    }
    return worst / fmax(l2, 1e-30);
}

/* Greedy reference run: prompt tokens, then per step the logits against the reference's and the
 * argmax against its token, fed the reference's token so that later steps stay comparable. */
static void check_greedy_run(const edgelm_model *model, const cJSON *run, const char *label,
                             bool full_sequence, double first_tol) {
    const char *prompt = cJSON_GetObjectItem(run, "prompt")->valuestring;
    const cJSON *expected_prompt = cJSON_GetObjectItem(run, "prompt_tokens");
    const cJSON *steps = cJSON_GetObjectItem(run, "steps");
    int32_t tokens[256];
    int32_t n = edgelm_tokenize(model, prompt, strlen(prompt), true, false, tokens, 256);
    CHECK_MSG(n == cJSON_GetArraySize(expected_prompt), "%s: prompt token count %d vs %d", label,
              (int)n, cJSON_GetArraySize(expected_prompt));
    for (int i = 0; i < n && i < cJSON_GetArraySize(expected_prompt); i++) {
        CHECK_MSG(tokens[i] == cJSON_GetArrayItem(expected_prompt, i)->valueint,
                  "%s: prompt token %d", label, i);
    }
    edgelm_session *s = test_new_session(model, 256, 2);
    if (s == NULL) {
        return;
    }
    edgelm_status st = edgelm_session_eval(s, tokens, n);
    CHECK_MSG(st == EDGELM_OK, "%s: eval: %s", label, edgelm_session_errmsg(s));
    const int n_steps = full_sequence ? cJSON_GetArraySize(steps) : 2;
    int first_close = -1, mismatches = 0;
    double worst_l2 = 0.0, worst_l2_first = 0.0;
    for (int i = 0; i < n_steps && st == EDGELM_OK; i++) {
        const cJSON *step = cJSON_GetArrayItem(steps, i);
        const cJSON *top5 = cJSON_GetObjectItem(step, "top5");
        const float *logits = edgelm_session_logits(s);
        const int32_t expected = cJSON_GetObjectItem(step, "argmax")->valueint;
        const int32_t got = argmax(logits, edgelm_model_n_vocab(model));
        if (!full_sequence) { /* the synthetic K-quant models: also each top-5 logit */
            const double e = top5_error(logits, top5);
            CHECK_MSG(e < SYNTHETIC_REL_TOL, "%s: step %d top-5 logits off by %.2e relative", label,
                      i, e);
        }
        const double e_l2 = l2_relative_error(logits, step);
        const double tol = i < 2 ? first_tol : GOLDEN_LATER_L2_TOL;
        CHECK_MSG(e_l2 <= tol,
                  "%s: step %d logits differ from llama.cpp's by %.2e of their L2 norm (> %.0e)",
                  label, i, e_l2, tol);
        worst_l2 = fmax(worst_l2, e_l2);
        if (i < 2) {
            worst_l2_first = fmax(worst_l2_first, e_l2);
        }
        const double margin = cJSON_GetArrayItem(cJSON_GetArrayItem(top5, 0), 1)->valuedouble -
                              cJSON_GetArrayItem(cJSON_GetArrayItem(top5, 1), 1)->valuedouble;
        if (margin < GOLDEN_MIN_MARGIN && first_close < 0) {
            first_close = i;
        }
        /* A swap of two logits each off by at most err_abs needs a margin below 2 * err_abs: with
         * large logits (phi3's untied output: L2 norm ~90) the bound above allows more than
         * GOLDEN_MIN_MARGIN, and such a swap is that bound's consequence, not another failure. */
        const double err_abs = e_l2 * cJSON_GetObjectItem(step, "logit_l2")->valuedouble;
        if (got != expected) {
            mismatches++;
            CHECK_MSG(first_close >= 0 || margin < 2.0 * err_abs,
                      "%s: greedy token %d differs from llama.cpp's %d at step %d (reference "
                      "top-1/top-2 margin %.4f, logits off by up to %.4f)",
                      label, (int)got, (int)expected, i, margin, err_abs);
        }
        /* follow the reference's token so later steps stay comparable even after a mismatch */
        st = edgelm_session_eval(s, &expected, 1);
    }
    char close[64] = "";
    if (first_close >= 0) {
        snprintf(close, sizeof close, " (reference margin < %.2f from step %d)", GOLDEN_MIN_MARGIN,
                 first_close);
    }
    fprintf(stderr, "  %s: %d/%d argmax match%s; logit error / L2 norm: steps 0-1 %.2e, all %.2e\n",
            label, n_steps - mismatches, n_steps, close, worst_l2_first, worst_l2);
    edgelm_session_free(s);
}

/* One shared model against its llama.cpp greedy reference: with full_sequence every run token
 * for token, else the first run's top-5 logits of steps 0 and 1; the logits of steps 0 and 1
 * within first_tol of the L2 norm. 1 when a file is absent. */
static int golden_model(const char *model_rel, const char *ref_rel, bool full_sequence,
                        double first_tol) {
    char path[1024], ref_path[1024];
    if (!test_model_path(model_rel, path, sizeof path) ||
        !test_model_path(ref_rel, ref_path, sizeof ref_path)) {
        return 1;
    }
    edgelm_model *model = test_load_model(path);
    cJSON *ref = test_load_json(ref_path);
    CHECK(ref != NULL);
    if (model != NULL && ref != NULL) {
        const cJSON *run;
        int r = 0;
        cJSON_ArrayForEach(run, cJSON_GetObjectItem(ref, "runs")) {
            char label[320];
            snprintf(label, sizeof label, "%s prompt %d", model_rel, r++);
            check_greedy_run(model, run, full_sequence ? label : model_rel, full_sequence,
                             first_tol);
            if (!full_sequence) {
                break;
            }
        }
    }
    cJSON_Delete(ref);
    edgelm_model_free(model);
    return 0;
}

static int golden_tests(void) {
    static const struct {
        const char *model, *reference;
    } stories[] = {
        {"stories260K.gguf", "reference/stories260K.greedy.json"},
        {"derived/stories260K-Q8_0.gguf", "reference/stories260K-Q8_0.greedy.json"},
        {"derived/stories260K-Q4_0.gguf", "reference/stories260K-Q4_0.greedy.json"},
    };
    static const char *const synthetic[] = {"F32",  "Q2_K", "Q3_K",  "Q4_K",
                                            "Q5_K", "Q6_K", "Q4_K_M"};
    /* arch/: random-weight models in the layouts of other architectures (README of the models) */
    static const char *const archs[] = {"qwen2", "qwen3", "llama3", "phi3", "gemma3"};
    static const char *const arch_types[] = {"F16", "Q8_0", "Q4_K_M"}; /* F16 first */
    int skipped = 0;
    for (size_t i = 0; i < sizeof stories / sizeof stories[0]; i++) {
        skipped += golden_model(stories[i].model, stories[i].reference, true, GOLDEN_L2_TOL);
    }
    for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++) {
        for (size_t t = 0; t < sizeof arch_types / sizeof arch_types[0]; t++) {
            char model_rel[256], ref_rel[256];
            snprintf(model_rel, sizeof model_rel, "arch/%s-%s.gguf", archs[a], arch_types[t]);
            snprintf(ref_rel, sizeof ref_rel, "reference/arch/%s-%s.greedy.json", archs[a],
                     arch_types[t]);
            skipped += golden_model(model_rel, ref_rel, true,
                                    t == 0 ? GOLDEN_L2_TOL : GOLDEN_ARCH_QUANT_L2_TOL);
        }
    }
    for (size_t i = 0; i < sizeof synthetic / sizeof synthetic[0]; i++) {
        char model_rel[256], ref_rel[256];
        snprintf(model_rel, sizeof model_rel, "synthetic/synthetic-k256-%s.gguf", synthetic[i]);
        snprintf(ref_rel, sizeof ref_rel, "reference/synthetic-k256-%s.greedy.json", synthetic[i]);
        skipped += golden_model(model_rel, ref_rel, false, GOLDEN_L2_TOL);
    }
    return skipped;
}

/* ---- independent naive forward pass (double precision, dequantized weights) ------------------ *
 * Written from the architectures' math (the papers and llama.cpp's graphs as described in the
 * header comments of model.h), not from forward.c: every weight dequantized to double once,
 * every position recomputed from scratch, no F16 rounding anywhere (the engine's F16 KV cache and
 * GELU lookup are what the tolerances absorb). What a model has is read from its tensors and
 * keys: biases, q/k norms, rope_freqs, fused attn_qkv / ffn_up, post-norms when present; the
 * architecture name decides only the rope pairing, GELU, the embedding scale and where
 * 1/sqrt(head_dim) goes. */

typedef struct naive_model {
    gguf_file g;
    int n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_rot;
    double eps, base;
    bool neox;         /* rotate (x[i], x[i + n_rot/2]) rather than (x[2i], x[2i+1]) */
    bool gelu;         /* act(gate) is tanh GELU rather than SiLU */
    bool q_scaled;     /* q times 1/sqrt(head_dim) after rope, scores unscaled (phi3, gemma3) */
    double embd_scale; /* token embeddings times this (gemma3: sqrt(n_embd)) */
    /* gemma3: layer l is local (window n_swa, rope base base_swa) unless l % period == period-1 */
    int n_swa, swa_period;
    double base_swa;
} naive_model;

static double *dequant(const naive_model *nm, const char *name, int64_t *n_out) {
    const gguf_tensor *t = gguf_find_tensor(&nm->g, name);
    if (t == NULL) {
        return NULL;
    }
    int64_t n = (int64_t)t->n_elements;
    float *f = malloc((size_t)n * sizeof *f);
    double *d = malloc((size_t)n * sizeof *d);
    tensor_type_get(t->type)->to_float(t->data, f, n);
    for (int64_t i = 0; i < n; i++) {
        d[i] = (double)f[i];
    }
    free(f);
    if (n_out) {
        *n_out = n;
    }
    return d;
}

static void naive_matvec(double *out, const double *w, const double *x, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int c = 0; c < cols; c++) {
            s += w[(size_t)r * cols + c] * x[c];
        }
        out[r] = s;
    }
}

static void naive_rmsnorm(double *out, const double *x, const double *w, int n, double eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) {
        ss += x[i] * x[i];
    }
    double scale = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) {
        out[i] = x[i] * scale * w[i];
    }
}

static void naive_add(double *x, const double *y, int n) {
    for (int i = 0; i < n; i++) {
        x[i] += y[i];
    }
}

/* One layer's weights, dequantized; NULL where the model has no such tensor. A fused attn_qkv
 * (phi3) is split here into its q, k and v rows, a fused ffn_up (2 * n_ff rows) into gate, up. */
typedef struct naive_layer {
    double *attn_norm, *wq, *wk, *wv, *bq, *bk, *bv, *q_norm, *k_norm, *wo, *post_attn_norm;
    double *ffn_norm, *wg, *wu, *wd, *post_ffn_norm;
    double *qkv, *gate_up; /* the fused tensors that wq/wk/wv and wg/wu point into */
} naive_layer;

static void naive_layer_load(const naive_model *nm, int l, naive_layer *L) {
    const size_t E = (size_t)nm->n_embd, KV = (size_t)nm->n_head_kv * nm->head_dim;
    const size_t Q = (size_t)nm->n_head * nm->head_dim, F = (size_t)nm->n_ff;
    char name[96];
#define LW(suffix) (snprintf(name, sizeof name, "blk.%d.%s", l, suffix), dequant(nm, name, NULL))
    memset(L, 0, sizeof *L);
    L->attn_norm = LW("attn_norm.weight");
    L->qkv = LW("attn_qkv.weight");
    if (L->qkv != NULL) { /* rows: Q of q, then KV of k, then KV of v */
        L->wq = L->qkv;
        L->wk = L->qkv + Q * E;
        L->wv = L->qkv + (Q + KV) * E;
    } else {
        L->wq = LW("attn_q.weight"), L->wk = LW("attn_k.weight"), L->wv = LW("attn_v.weight");
    }
    L->bq = LW("attn_q.bias"), L->bk = LW("attn_k.bias"), L->bv = LW("attn_v.bias");
    L->q_norm = LW("attn_q_norm.weight"), L->k_norm = LW("attn_k_norm.weight");
    L->wo = LW("attn_output.weight");
    L->post_attn_norm = LW("post_attention_norm.weight");
    L->ffn_norm = LW("ffn_norm.weight");
    L->wg = LW("ffn_gate.weight");
    if (L->wg == NULL) { /* rows: F of gate, then F of up */
        L->gate_up = LW("ffn_up.weight");
        L->wg = L->gate_up;
        L->wu = L->gate_up + F * E;
    } else {
        L->wu = LW("ffn_up.weight");
    }
    L->wd = LW("ffn_down.weight");
    L->post_ffn_norm = LW("post_ffw_norm.weight");
#undef LW
}

static void naive_layer_free(naive_layer *L) {
    if (L->qkv != NULL) {
        free(L->qkv);
    } else {
        free(L->wq), free(L->wk), free(L->wv);
    }
    if (L->gate_up != NULL) {
        free(L->gate_up);
    } else {
        free(L->wg), free(L->wu);
    }
    free(L->attn_norm), free(L->bq), free(L->bk), free(L->bv), free(L->q_norm), free(L->k_norm);
    free(L->wo), free(L->post_attn_norm), free(L->ffn_norm), free(L->wd), free(L->post_ffn_norm);
}

/* Rotate one head vector for position pos: pair i (of n_rot/2) turns by pos * base^(-2i/n_rot),
 * divided by factors[i] when given (Llama 3's rope_freqs). */
static void naive_rope(const naive_model *nm, double *vec, int pos, double base,
                       const double *factors) {
    const int half = nm->n_rot / 2;
    for (int i = 0; i < half; i++) {
        double theta = pos * pow(base, -2.0 * i / nm->n_rot);
        if (factors != NULL) {
            theta /= factors[i];
        }
        const int i0 = nm->neox ? i : 2 * i, i1 = nm->neox ? i + half : 2 * i + 1;
        const double a = vec[i0], b = vec[i1];
        vec[i0] = a * cos(theta) - b * sin(theta);
        vec[i1] = a * sin(theta) + b * cos(theta);
    }
}

/* Logits (n_vocab each) after every position of tokens[0..n) into logits[pos * n_vocab ...]. */
static void naive_forward(const naive_model *nm, const int32_t *tokens, int n, double *logits) {
    const int E = nm->n_embd, H = nm->n_head, HKV = nm->n_head_kv, D = nm->head_dim;
    const int F = nm->n_ff, Q = H * D, KV = HKV * D;
    double *embd = dequant(nm, "token_embd.weight", NULL);
    double *rope_factors = dequant(nm, "rope_freqs.weight", NULL);
    naive_layer *layers = calloc((size_t)nm->n_layer, sizeof *layers);
    for (int l = 0; l < nm->n_layer; l++) {
        naive_layer_load(nm, l, &layers[l]);
    }
    double *kc = calloc((size_t)nm->n_layer * n * KV, sizeof(double));
    double *vc = calloc((size_t)nm->n_layer * n * KV, sizeof(double));
    double *x = malloc(E * sizeof(double)), *xb = malloc(E * sizeof(double));
    double *q = malloc(Q * sizeof(double)), *k = malloc(KV * sizeof(double));
    double *v = malloc(KV * sizeof(double)), *att = malloc(Q * sizeof(double));
    double *g = malloc(F * sizeof(double)), *u = malloc(F * sizeof(double));
    double *tmp = malloc(E * sizeof(double)), *scores = malloc((size_t)n * sizeof(double));
    double *on = dequant(nm, "output_norm.weight", NULL);
    double *out = dequant(nm, "output.weight", NULL);
    if (out == NULL) {
        out = dequant(nm, "token_embd.weight", NULL);
    }
    for (int pos = 0; pos < n; pos++) {
        for (int i = 0; i < E; i++) {
            x[i] = embd[(size_t)tokens[pos] * E + i] * nm->embd_scale;
        }
        for (int l = 0; l < nm->n_layer; l++) {
            const naive_layer *L = &layers[l];
            const bool local = nm->swa_period > 0 && l % nm->swa_period != nm->swa_period - 1;
            naive_rmsnorm(xb, x, L->attn_norm, E, nm->eps);
            naive_matvec(q, L->wq, xb, Q, E);
            naive_matvec(k, L->wk, xb, KV, E);
            naive_matvec(v, L->wv, xb, KV, E);
            if (L->bq != NULL) {
                naive_add(q, L->bq, Q), naive_add(k, L->bk, KV), naive_add(v, L->bv, KV);
            }
            for (int h = 0; h < H + HKV; h++) {
                double *vec = h < H ? q + h * D : k + (h - H) * D;
                const double *norm = h < H ? L->q_norm : L->k_norm;
                if (norm != NULL) {
                    naive_rmsnorm(vec, vec, norm, D, nm->eps);
                }
                naive_rope(nm, vec, pos, local ? nm->base_swa : nm->base,
                           local ? NULL : rope_factors);
                if (h < H && nm->q_scaled) {
                    for (int i = 0; i < D; i++) {
                        vec[i] /= sqrt((double)D);
                    }
                }
            }
            size_t base = ((size_t)l * n + pos) * KV;
            memcpy(kc + base, k, KV * sizeof(double));
            memcpy(vc + base, v, KV * sizeof(double));
            /* a local layer's query at pos sees the positions t with pos - t < n_swa */
            const int first = local && pos >= nm->n_swa ? pos - nm->n_swa + 1 : 0;
            for (int h = 0; h < H; h++) {
                int kvh = h / (H / HKV);
                double mx = (double)-INFINITY, sum = 0;
                for (int t = first; t <= pos; t++) {
                    const double *kt = kc + ((size_t)l * n + t) * KV + kvh * D;
                    double s = 0;
                    for (int i = 0; i < D; i++) {
                        s += q[h * D + i] * kt[i];
                    }
                    scores[t] = nm->q_scaled ? s : s / sqrt((double)D);
                    mx = fmax(mx, scores[t]);
                }
                for (int t = first; t <= pos; t++) {
                    scores[t] = exp(scores[t] - mx);
                    sum += scores[t];
                }
                for (int i = 0; i < D; i++) {
                    double acc = 0;
                    for (int t = first; t <= pos; t++) {
                        acc += scores[t] / sum * vc[((size_t)l * n + t) * KV + kvh * D + i];
                    }
                    att[h * D + i] = acc;
                }
            }
            naive_matvec(tmp, L->wo, att, E, Q);
            if (L->post_attn_norm != NULL) {
                naive_rmsnorm(tmp, tmp, L->post_attn_norm, E, nm->eps);
            }
            naive_add(x, tmp, E);
            naive_rmsnorm(xb, x, L->ffn_norm, E, nm->eps);
            naive_matvec(g, L->wg, xb, F, E);
            naive_matvec(u, L->wu, xb, F, E);
            for (int i = 0; i < F; i++) {
                const double a = g[i];
                /* GELU's tanh approximation: 0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3))) */
                const double sqrt_2_over_pi = 0.79788456080286535588;
                const double act =
                    nm->gelu ? 0.5 * a * (1.0 + tanh(sqrt_2_over_pi * (a + 0.044715 * a * a * a)))
                             : a / (1.0 + exp(-a));
                g[i] = act * u[i];
            }
            naive_matvec(tmp, L->wd, g, E, F);
            if (L->post_ffn_norm != NULL) {
                naive_rmsnorm(tmp, tmp, L->post_ffn_norm, E, nm->eps);
            }
            naive_add(x, tmp, E);
        }
        naive_rmsnorm(xb, x, on, E, nm->eps);
        naive_matvec(logits + (size_t)pos * nm->n_vocab, out, xb, nm->n_vocab, E);
    }
    for (int l = 0; l < nm->n_layer; l++) {
        naive_layer_free(&layers[l]);
    }
    free(layers), free(rope_factors), free(on), free(out), free(embd), free(kc), free(vc), free(x),
        free(xb), free(q), free(k), free(v), free(att), free(g), free(u), free(tmp), free(scores);
}

/* The hyperparameters of a parsed edgelm-gen file, read from its keys (defaults as llama.cpp's). */
static void naive_read_hparams(naive_model *nm) {
    char arch[32] = "llama", key[128];
    gguf_string s;
    if (gguf_get_string(&nm->g, "general.architecture", &s) == EDGELM_OK && s.len < sizeof arch) {
        memcpy(arch, s.data, (size_t)s.len);
        arch[s.len] = '\0';
    }
    uint32_t u;
    float f;
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", arch, suffix), key)
    gguf_get_u32(&nm->g, KEY("embedding_length"), &u), nm->n_embd = (int)u;
    gguf_get_u32(&nm->g, KEY("block_count"), &u), nm->n_layer = (int)u;
    gguf_get_u32(&nm->g, KEY("attention.head_count"), &u), nm->n_head = (int)u;
    gguf_get_u32(&nm->g, KEY("attention.head_count_kv"), &u), nm->n_head_kv = (int)u;
    gguf_get_u32(&nm->g, KEY("feed_forward_length"), &u), nm->n_ff = (int)u;
    nm->head_dim = nm->n_embd / nm->n_head;
    if (gguf_get_u32(&nm->g, KEY("attention.key_length"), &u) == EDGELM_OK) {
        nm->head_dim = (int)u;
    }
    nm->n_rot = nm->head_dim;
    if (gguf_get_u32(&nm->g, KEY("rope.dimension_count"), &u) == EDGELM_OK) {
        nm->n_rot = (int)u;
    }
    nm->eps = gguf_get_f32(&nm->g, KEY("attention.layer_norm_rms_epsilon"), &f) ? 1e-5 : (double)f;
    nm->base = gguf_get_f32(&nm->g, KEY("rope.freq_base"), &f) ? 10000.0 : (double)f;
    const bool gemma3 = strcmp(arch, "gemma3") == 0;
    nm->neox = strcmp(arch, "llama") != 0;
    nm->gelu = gemma3;
    nm->q_scaled = gemma3 || strcmp(arch, "phi3") == 0;
    nm->embd_scale = gemma3 ? sqrt((double)nm->n_embd) : 1.0;
    if (gemma3) {
        CHECK(gguf_get_u32(&nm->g, KEY("attention.sliding_window"), &u) == EDGELM_OK);
        nm->n_swa = (int)u;
        CHECK(gguf_get_u32(&nm->g, KEY("attention.sliding_window_pattern"), &u) == EDGELM_OK);
        nm->swa_period = (int)u;
        CHECK(gguf_get_f32(&nm->g, KEY("rope.freq_base_swa"), &f) == EDGELM_OK);
        nm->base_swa = (double)f;
    }
#undef KEY
}

/* One generated model against the naive pass: tokens[0..n_batch) in one eval, then the rest one
 * at a time; the logits after the batch and after every later token within tol of the naive
 * ones, relative to the largest |logit| of that position; 1 to 3 threads bit-identical. */
static void check_generated(const char *label, const char *args, const int32_t *tokens, int n,
                            int n_batch, uint32_t n_ctx, double tol) {
    char name[96], path[1024];
    snprintf(name, sizeof name, "gen-%s.gguf", label);
    for (char *p = name; *p; p++) {
        *p = *p == ' ' ? '-' : *p;
    }
    if (!test_gen_model_file(name, args, path, sizeof path)) {
        return;
    }
    edgelm_model *model = test_load_model(path);
    size_t size;
    unsigned char *bytes = test_read_file(path, &size);
    naive_model nm;
    memset(&nm, 0, sizeof nm);
    char err[256];
    if (model == NULL || bytes == NULL ||
        gguf_parse(bytes, size, &nm.g, err, sizeof err) != EDGELM_OK) {
        CHECK_MSG(false, "%s: the generated file does not load", label);
        edgelm_model_free(model);
        free(bytes);
        unlink(path);
        return;
    }
    naive_read_hparams(&nm);
    nm.n_vocab = edgelm_model_n_vocab(model);
    CHECK(nm.n_embd == edgelm_model_n_embd(model) && nm.n_layer == edgelm_model_n_layer(model));
    double *expected = malloc((size_t)n * nm.n_vocab * sizeof(double));
    naive_forward(&nm, tokens, n, expected);
    const size_t n_checked = (size_t)(n - n_batch + 1);
    float *first = malloc(n_checked * nm.n_vocab * sizeof(float));
    for (int threads = 1; threads <= 3; threads++) {
        edgelm_session *s = test_new_session(model, n_ctx, threads);
        if (s == NULL) {
            break;
        }
        double worst = 0;
        int worst_pos = -1;
        edgelm_status st = edgelm_session_eval(s, tokens, n_batch);
        for (int pos = n_batch - 1; pos < n && st == EDGELM_OK; pos++) {
            if (pos >= n_batch) {
                st = edgelm_session_eval(s, &tokens[pos], 1);
                if (st != EDGELM_OK) {
                    break;
                }
            }
            const float *logits = edgelm_session_logits(s);
            const double *want = expected + (size_t)pos * nm.n_vocab;
            double max_abs = 0, e = 0;
            for (int i = 0; i < nm.n_vocab; i++) {
                max_abs = fmax(max_abs, fabs(want[i]));
            }
            for (int i = 0; i < nm.n_vocab; i++) {
                e = fmax(e, fabs((double)logits[i] - want[i]) / max_abs);
            }
            if (e > worst) {
                worst = e, worst_pos = pos;
            }
            float *keep = first + (size_t)(pos - n_batch + 1) * nm.n_vocab;
            if (threads == 1) {
                memcpy(keep, logits, (size_t)nm.n_vocab * sizeof(float));
            } else {
                CHECK_MSG(memcmp(keep, logits, (size_t)nm.n_vocab * sizeof(float)) == 0,
                          "%s: logits at position %d with %d threads differ from 1 thread", label,
                          pos, threads);
            }
        }
        CHECK_MSG(st == EDGELM_OK, "%s, %d threads: eval: %s", label, threads,
                  edgelm_session_errmsg(s));
        CHECK_MSG(worst < tol,
                  "%s, %d threads: logits differ from the naive pass by %.2e at position %d "
                  "(tolerance %.1e)",
                  label, threads, worst, worst_pos, tol);
        if (threads == 1) {
            fprintf(stderr, "  generated %s model: max relative logit error %.2e (%d position%s)\n",
                    label, worst, (int)n_checked, n_checked > 1 ? "s" : "");
        }
        edgelm_session_free(s);
    }
    free(first);
    free(expected);
    gguf_free(&nm.g);
    free(bytes);
    edgelm_model_free(model);
    unlink(path);
}

static void self_contained_tests(void) {
    static const struct {
        const char *type;
        double tol; /* relative to the largest |logit|: activation rounding of the type */
    } cases[] = {{"f32", 2e-3}, {"f16", 5e-3}, {"q8_0", 2e-2}, {"q4_K", 3e-2}};
    const int32_t tokens[] = {1, 100, 200, 300, 400, 50, 60, 70, 80, 90, 3, 5};
    const int n = (int)(sizeof tokens / sizeof tokens[0]);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char args[256];
        snprintf(args, sizeof args, "--preset tiny --type %s --seed 7", cases[c].type);
        check_generated(cases[c].type, args, tokens, n, n, 64, cases[c].tol);
    }
    /* Every architecture in a shape unlike its arch/ fixture's (256 wide, 4/2 heads of 64, n_ff
     * 512), in f32 and q8_0. gemma3: 3 layers with pattern 3 (0 and 1 local, 2 global), window 8,
     * heads of 64 while n_embd / n_head is 32 (as Gemma 3's 256-wide heads at width 640),
     * 40 tokens in a 128-token session: 24 as one batch (past the window already), then 16 one at
     * a time, every one checked, so the local layers' window moves through the cache. llama3: an
     * original context of 32 so that most of its rope factors are 32, not 1. */
    static const struct {
        const char *arch, *shape;
    } archs[] = {
        {"llama3", "--n-embd 128 --n-head 4 --n-head-kv 2 --n-ff 320 --rope-orig-ctx 32"},
        {"qwen2", "--n-embd 96 --n-head 6 --n-head-kv 2 --n-ff 160 --n-layer 3"},
        {"qwen3", "--n-embd 128 --n-head 2 --n-head-kv 1 --n-ff 256 --tied"},
        {"phi3", "--n-embd 160 --n-head 5 --n-head-kv 5 --n-ff 224"},
        {"gemma3", "--n-embd 128 --n-head 4 --n-head-kv 2 --head-dim 64 --n-ff 256 --n-layer 3 "
                   "--swa-pattern 3 --sliding-window 8"},
    };
    int32_t long_tokens[40];
    for (int i = 0; i < 40; i++) {
        long_tokens[i] = i == 0 ? 1 : (int32_t)(3 + (i * 37) % 509);
    }
    for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++) {
        const bool gemma3 = strcmp(archs[a].arch, "gemma3") == 0;
        for (size_t c = 0; c < 3; c += 2) { /* f32, q8_0 */
            char label[64], args[512];
            snprintf(label, sizeof label, "%s %s", archs[a].arch, cases[c].type);
            snprintf(args, sizeof args, "--arch %s --preset tiny %s --type %s --seed 11",
                     archs[a].arch, archs[a].shape, cases[c].type);
            if (gemma3) {
                check_generated(label, args, long_tokens, 40, 24, 128,
                                c == 0 ? cases[c].tol : GEN_GEMMA3_Q8_0_TOL);
            } else {
                check_generated(label, args, tokens, n, n - 4, 64, cases[c].tol);
            }
        }
    }
}

/* ---- architectures the loader must refuse -----------------------------------------------------
 */

/* An F32 vector added to a copied model: "blk.N.<name>" for every layer N when name starts with
 * a '.', else one named name. */
typedef struct extra_tensor {
    const char *name;
    uint64_t n;
    float value;
} extra_tensor;

/* One edit of a copied model: relabel its architecture (the "llama." keys follow), drop the key
 * drop_key (after the relabeling) and every tensor whose name contains drop, add extras. */
typedef struct model_edit {
    const char *arch;
    const char *drop_key;
    const char *drop;
    extra_tensor extra[3];
} model_edit;

static edgelm_status copy_kv(gguf_writer *w, const char *key, const gguf_kv *kv) {
    switch (kv->type) {
    case GGUF_TYPE_STRING:
        return gguf_writer_set_string_n(w, key, kv->value.str.data, (size_t)kv->value.str.len);
    case GGUF_TYPE_FLOAT32:
        return gguf_writer_set_f32(w, key, (float)kv->value.f64);
    case GGUF_TYPE_FLOAT64:
        return gguf_writer_set_f64(w, key, kv->value.f64);
    case GGUF_TYPE_BOOL:
        return gguf_writer_set_bool(w, key, kv->value.b);
    case GGUF_TYPE_ARRAY: {
        const gguf_array *a = &kv->value.arr;
        if (a->elem_type != GGUF_TYPE_STRING) { /* raw little-endian elements, as the host */
            return gguf_writer_set_array(w, key, a->elem_type, a->data, a->n);
        }
        const char **strs = malloc((size_t)a->n * sizeof *strs);
        size_t *lens = malloc((size_t)a->n * sizeof *lens);
        edgelm_status st = EDGELM_ERR_OUT_OF_MEMORY;
        if (strs != NULL && lens != NULL) {
            for (uint64_t i = 0; i < a->n; i++) {
                strs[i] = a->strings[i].data;
                lens[i] = (size_t)a->strings[i].len;
            }
            st = gguf_writer_set_string_array_n(w, key, strs, lens, a->n);
        }
        free(strs);
        free(lens);
        return st;
    }
    default: /* integers: the signed ones' value is in i64, the same bits */
        return gguf_writer_set_integer(w, key, kv->type, kv->value.u64);
    }
}

/* More edits, for files already of their architecture: tensors whose name contains shrink keep
 * only their first n_rows - shrink_rows rows (a prefix of the same bytes); set_key is set (added,
 * or replacing the file's) as the string set_string, or when that is NULL as the f32 set_f32
 * when nonzero, else as the u32 set_u32. */
typedef struct model_edit_more {
    const char *shrink;
    uint64_t shrink_rows;
    const char *set_key;
    const char *set_string;
    uint32_t set_u32;
    float set_f32;
} model_edit_more;

/* Write src with edit (and more, unless NULL) applied to the temp dir as name (into path); one
 * CHECK. */
static bool write_edited(const char *src, const model_edit *edit, const model_edit_more *more,
                         const char *name, char *path, size_t path_size) {
    size_t size;
    unsigned char *bytes = test_read_file(src, &size);
    gguf_file g;
    char err[256];
    gguf_writer *w = gguf_writer_create();
    edgelm_status st =
        bytes != NULL && w != NULL ? gguf_parse(bytes, size, &g, err, sizeof err) : EDGELM_ERR_IO;
    const bool parsed = st == EDGELM_OK;
    uint32_t n_layer = 0, u;
    float *extra = NULL;
    for (uint64_t i = 0; parsed && i < g.n_kv && st == EDGELM_OK; i++) {
        char key[340];
        snprintf(key, sizeof key, "%.*s", (int)(g.kv[i].key.len > 255 ? 255 : g.kv[i].key.len),
                 g.kv[i].key.data);
        if (strcmp(key, "general.architecture") == 0) {
            st = gguf_writer_set_string(w, key, edit->arch);
            continue;
        }
        if (strncmp(key, "llama.", 6) == 0) {
            char renamed[340];
            snprintf(renamed, sizeof renamed, "%.32s.%.255s", edit->arch, key + 6);
            snprintf(key, sizeof key, "%s", renamed);
        }
        if ((edit->drop_key != NULL && strcmp(key, edit->drop_key) == 0) ||
            (more != NULL && more->set_key != NULL && strcmp(key, more->set_key) == 0)) {
            continue;
        }
        st = copy_kv(w, key, &g.kv[i]);
    }
    if (parsed && st == EDGELM_OK && more != NULL && more->set_key != NULL) {
        st = more->set_string != NULL ? gguf_writer_set_string(w, more->set_key, more->set_string)
             : more->set_f32 != 0.0f  ? gguf_writer_set_f32(w, more->set_key, more->set_f32)
                                      : gguf_writer_set_u32(w, more->set_key, more->set_u32);
    }
    if (parsed && gguf_get_u32(&g, "llama.block_count", &u) == EDGELM_OK) {
        n_layer = u;
    }
    for (uint64_t i = 0; parsed && i < g.n_tensors && st == EDGELM_OK; i++) {
        const gguf_tensor *t = &g.tensors[i];
        uint64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        if (more != NULL && more->shrink != NULL && strstr(t->name_z, more->shrink) != NULL) {
            ne[1] -= more->shrink_rows;
        }
        if (edit->drop == NULL || strstr(t->name_z, edit->drop) == NULL) {
            st = gguf_writer_add_tensor_ref(w, t->name_z, t->type, t->n_dims, ne, t->data);
        }
    }
    for (int e = 0; e < 3 && edit->extra[e].name != NULL && st == EDGELM_OK; e++) {
        const extra_tensor *x = &edit->extra[e];
        free(extra);
        extra = malloc((size_t)x->n * sizeof *extra);
        st = extra != NULL ? EDGELM_OK : EDGELM_ERR_OUT_OF_MEMORY;
        for (uint64_t i = 0; extra != NULL && i < x->n; i++) {
            extra[i] = x->value;
        }
        const bool per_layer = x->name[0] == '.';
        for (uint32_t il = 0; il < (per_layer ? n_layer : 1) && st == EDGELM_OK; il++) {
            char tname[128];
            if (per_layer) {
                snprintf(tname, sizeof tname, "blk.%d%s", (int)il, x->name);
            } else {
                snprintf(tname, sizeof tname, "%s", x->name);
            }
            st = gguf_writer_add_tensor(w, tname, TENSOR_TYPE_F32, 1, &x->n, extra);
        }
    }
    if (st == EDGELM_OK) {
        st = gguf_writer_write_file(w, test_temp_path(name, path, path_size));
    }
    CHECK_MSG(st == EDGELM_OK, "writing %s: %s", name, w ? gguf_writer_errmsg(w) : "no writer");
    if (parsed) {
        gguf_free(&g);
    }
    free(extra);
    gguf_writer_free(w);
    free(bytes);
    return st == EDGELM_OK;
}

/* Load path expecting status want and an error holding both messages (one CHECK each); the
 * model when it loaded. */
static edgelm_model *load_expecting(const char *path, const char *name, edgelm_status want,
                                    const char *const message[2]) {
    char err[512] = "";
    edgelm_model *model = NULL;
    const edgelm_status st = edgelm_model_load(path, NULL, &model, err, sizeof err);
    CHECK_MSG(st == want && (model == NULL) == (st != EDGELM_OK), "%s: status %d (%s), expected %d",
              name, (int)st, err, (int)want);
    for (int k = 0; k < 2; k++) {
        CHECK_MSG(strstr(err, message[k]) != NULL, "%s: message \"%s\" lacks \"%s\"", name, err,
                  message[k]);
    }
    return model;
}

static void refusal_tests(void) {
    char src[1024];
    if (!test_gen_model_file("refusal-src.gguf", "--preset tiny --type f32 --seed 11", src,
                             sizeof src)) {
        return;
    }
    /* tiny: n_embd 64, 4 heads: head_dim 16, n_rot 16 */
#define QNORM                                                                                      \
    { ".attn_q_norm.weight", 16, 1.0f }
#define KNORM                                                                                      \
    { ".attn_k_norm.weight", 16, 1.0f }
    static const struct {
        const char *name;
        model_edit edit;
        edgelm_status want;
        const char *message[2]; /* both must appear in the error */
    } cases[] = {
        {"unknown architecture",
         {"gemma2", NULL, NULL, {{0}}},
         EDGELM_ERR_UNSUPPORTED_ARCH,
         {"architecture 'gemma2' is not supported",
          "(supported: llama, qwen2, qwen3, phi3, gemma3)"}},
        {"qwen3 without attn_q_norm",
         {"qwen3", NULL, NULL, {KNORM}},
         EDGELM_ERR_MISSING,
         {"tensor 'blk.0.attn_q_norm.weight' is missing", "architecture 'qwen3' requires it"}},
        {"qwen3 without a required key",
         {"qwen3", "qwen3.block_count", NULL, {QNORM, KNORM}},
         EDGELM_ERR_MISSING,
         {"required metadata key 'qwen3.block_count' is missing", ""}},
        {"qwen3 without a layer's tensors",
         {"qwen3", NULL, "blk.1.", {QNORM, KNORM}},
         EDGELM_ERR_MISSING,
         {"tensor 'blk.1.attn_norm.weight' is missing", "architecture 'qwen3' requires it"}},
        {"qwen3 with qwen2's biases",
         {"qwen3", NULL, NULL, {QNORM, KNORM, {".attn_q.bias", 64, 0.0f}}},
         EDGELM_ERR_UNSUPPORTED_ARCH,
         {"tensor 'blk.0.attn_q.bias' is not part of architecture 'qwen3'", ""}},
        {"qwen3 with both norms (loads)",
         {"qwen3", NULL, NULL, {QNORM, KNORM}},
         EDGELM_OK,
         {"", ""}},
        {"qwen2 without biases",
         {"qwen2", NULL, NULL, {{0}}},
         EDGELM_ERR_MISSING,
         {"tensor 'blk.0.attn_q.bias' is missing", "architecture 'qwen2' requires it"}},
        {"llama with a qwen3 tensor",
         {"llama", NULL, NULL, {QNORM}},
         EDGELM_ERR_UNSUPPORTED_ARCH,
         {"tensor 'blk.0.attn_q_norm.weight' is not part of architecture 'llama'", "qwen3"}},
        {"rope_freqs of the wrong length",
         {"llama", NULL, NULL, {{"rope_freqs.weight", 16, 1.0f}}},
         EDGELM_ERR_BAD_SHAPE,
         {"tensor 'rope_freqs.weight' has shape [16, 1, 1, 1], expected [8, 1]", ""}},
        {"rope_freqs with a zero factor",
         {"llama", NULL, NULL, {{"rope_freqs.weight", 8, 0.0f}}},
         EDGELM_ERR_BAD_SHAPE,
         {"rope_freqs.weight[0] is 0", "must be positive"}},
    };
#undef QNORM
#undef KNORM
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[1024], name[64];
        snprintf(name, sizeof name, "refused-%zu.gguf", i);
        if (!write_edited(src, &cases[i].edit, NULL, name, path, sizeof path)) {
            continue;
        }
        edgelm_model *model = load_expecting(path, cases[i].name, cases[i].want, cases[i].message);
        edgelm_model_free(model);
        unlink(path);
    }
    unlink(src);
}

/* phi3 edits of arch/phi3-F16.gguf (n_embd 256, n_ff 512; fused rows: 256 q, 128 k, 128 v, and
 * 512 gate then 512 up): longrope is refused naming it, fused tensors must have all their rows,
 * and a sliding window shorter than a session's context is refused at session creation.
 * 1 when the fixture is absent. */
static int phi3_refusal_tests(void) {
    char src[1024];
    if (!test_model_path("arch/phi3-F16.gguf", src, sizeof src)) {
        return 1;
    }
    static const struct {
        const char *name;
        model_edit_more more;
        extra_tensor extra;
        edgelm_status want;
        const char *message[2]; /* both must appear in the error */
    } cases[] = {
        {"phi3 longrope by key",
         {.set_key = "phi3.rope.scaling.type", .set_string = "longrope"},
         {0},
         EDGELM_ERR_UNSUPPORTED_ARCH,
         {"rope scaling type 'longrope' is not supported", ""}},
        {"phi3 longrope by its factor tensors",
         {0},
         {"rope_factors_long.weight", 32, 1.0f},
         EDGELM_ERR_UNSUPPORTED_ARCH,
         {"tensor 'rope_factors_long.weight'", "longrope rope scaling"}},
        {"phi3 fused qkv without its v rows",
         {.shrink = ".attn_qkv.weight", .shrink_rows = 128},
         {0},
         EDGELM_ERR_BAD_SHAPE,
         {"tensor 'blk.0.attn_qkv.weight' has shape [256, 384, 1, 1]", "expected [256, 512]"}},
        {"phi3 ffn_up with n_ff rows (no gate half)",
         {.shrink = ".ffn_up.weight", .shrink_rows = 512},
         {0},
         EDGELM_ERR_BAD_SHAPE,
         {"tensor 'blk.0.ffn_up.weight' has shape [256, 512, 1, 1]", "expected [256, 1024]"}},
        {"phi3 with a sliding window of 64 (loads)",
         {.set_key = "phi3.attention.sliding_window", .set_u32 = 64},
         {0},
         EDGELM_OK,
         {"", ""}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[1024], name[64], err[512] = "";
        snprintf(name, sizeof name, "refused-phi3-%zu.gguf", i);
        const model_edit edit = {"phi3", NULL, NULL, {cases[i].extra}};
        if (!write_edited(src, &edit, &cases[i].more, name, path, sizeof path)) {
            continue;
        }
        edgelm_model *model = load_expecting(path, cases[i].name, cases[i].want, cases[i].message);
        if (model != NULL && cases[i].more.set_u32 > 0) {
            /* the window bounds the context: the default fits in it, a larger one is refused */
            edgelm_session *s = NULL;
            edgelm_session_params p = edgelm_session_params_default();
            CHECK(edgelm_model_effective_ctx(model, 0) == 64);
            p.n_ctx = 128;
            CHECK(edgelm_session_create(model, &p, &s, err, sizeof err) ==
                  EDGELM_ERR_INVALID_ARGUMENT);
            CHECK_MSG(strstr(err, "exceeds the model's sliding attention window of 64") != NULL &&
                          strstr(err, "phi3.attention.sliding_window") != NULL,
                      "message \"%s\"", err);
            CHECK(s == NULL);
            p.n_ctx = 0;
            CHECK(edgelm_session_create(model, &p, &s, err, sizeof err) == EDGELM_OK);
            CHECK(s != NULL && edgelm_session_n_ctx(s) == 64);
            edgelm_session_free(s);
        }
        edgelm_model_free(model);
        unlink(path);
    }
    return 0;
}

/* The last logits after evaluating 20 fixed tokens (more than gemma3's 8-token window) in a
 * fresh session; out has n_vocab floats. */
static void eval_fixed_prompt(edgelm_model *model, float *out) {
    int32_t tokens[20];
    for (int32_t i = 0; i < 20; i++) {
        tokens[i] = 1 + (i * 53) % (edgelm_model_n_vocab(model) - 1);
    }
    edgelm_session_params p = edgelm_session_params_default();
    p.n_ctx = 64;
    p.n_threads = 1;
    edgelm_session *s = NULL;
    CHECK(edgelm_session_create(model, &p, &s, NULL, 0) == EDGELM_OK);
    CHECK(s != NULL && edgelm_session_eval(s, tokens, 20) == EDGELM_OK);
    if (s != NULL) {
        memcpy(out, edgelm_session_logits(s), (size_t)edgelm_model_n_vocab(model) * sizeof(float));
    }
    edgelm_session_free(s);
}

/* gemma3 edits of arch/gemma3-F16.gguf (6 layers, window 8, pattern 6, local base 10000, vocab
 * 512): tensors the architecture requires, a malformed pattern; and the keys real converted files
 * omit (sliding_window_pattern, rope.freq_base_swa), whose defaults equal the fixture's values,
 * so dropping them must give the same logits; a model without a window attends to everything,
 * another pattern changes which layers are local, and final_logit_softcapping c gives
 * c * tanh(logit / c). 1 when the fixture is absent. */
static int gemma3_edit_tests(void) {
    char src[1024];
    if (!test_model_path("arch/gemma3-F16.gguf", src, sizeof src)) {
        return 1;
    }
    enum { SAME, DIFFERENT, SOFTCAP_2 }; /* the logits against the unedited file's */
    static const struct {
        const char *name;
        const char *drop_key, *drop_tensor;
        model_edit_more more;
        edgelm_status want;
        const char *message[2]; /* both in the error; for a model that loads, in its describe */
        int logits;
    } cases[] = {
        {"gemma3 without post_ffw_norm",
         NULL,
         ".post_ffw_norm.",
         {0},
         EDGELM_ERR_MISSING,
         {"tensor 'blk.0.post_ffw_norm.weight' is missing", "architecture 'gemma3' requires it"},
         0},
        {"gemma3 without q/k norms",
         NULL,
         ".attn_k_norm.",
         {0},
         EDGELM_ERR_MISSING,
         {"tensor 'blk.0.attn_k_norm.weight' is missing", "architecture 'gemma3' requires it"},
         0},
        {"gemma3 with a text sliding_window_pattern",
         NULL,
         NULL,
         {.set_key = "gemma3.attention.sliding_window_pattern", .set_string = "six"},
         EDGELM_ERR_BAD_VALUE_TYPE,
         {"'gemma3.attention.sliding_window_pattern' must be a period or 6 bools", ""},
         0},
        {"gemma3 without sliding_window_pattern (default 6)",
         "gemma3.attention.sliding_window_pattern",
         NULL,
         {0},
         EDGELM_OK,
         {"sliding window: 8 tokens on 5 of 6 layers (local rope base 10000)", ""},
         SAME},
        {"gemma3 without rope.freq_base_swa (default 10000)",
         "gemma3.rope.freq_base_swa",
         NULL,
         {0},
         EDGELM_OK,
         {"sliding window: 8 tokens on 5 of 6 layers (local rope base 10000)", ""},
         SAME},
        {"gemma3 with pattern 3",
         NULL,
         NULL,
         {.set_key = "gemma3.attention.sliding_window_pattern", .set_u32 = 3},
         EDGELM_OK,
         {"sliding window: 8 tokens on 4 of 6 layers", ""},
         DIFFERENT},
        {"gemma3 without a window",
         "gemma3.attention.sliding_window",
         NULL,
         {0},
         EDGELM_OK,
         {"sliding window: none", ""},
         DIFFERENT},
        {"gemma3 with final_logit_softcapping 2",
         NULL,
         NULL,
         {.set_key = "gemma3.final_logit_softcapping", .set_f32 = 2.0f},
         EDGELM_OK,
         {"final logit softcapping: 2", ""},
         SOFTCAP_2},
    };
    edgelm_model *original = test_load_model(src);
    if (original == NULL) {
        return 0;
    }
    const int32_t n_vocab = edgelm_model_n_vocab(original);
    float *want = malloc((size_t)n_vocab * sizeof *want);
    float *got = malloc((size_t)n_vocab * sizeof *got);
    eval_fixed_prompt(original, want);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[1024], name[64];
        snprintf(name, sizeof name, "edited-gemma3-%zu.gguf", i);
        const model_edit edit = {"gemma3", cases[i].drop_key, cases[i].drop_tensor, {{0}}};
        if (!write_edited(src, &edit, &cases[i].more, name, path, sizeof path)) {
            continue;
        }
        const char *const no_message[2] = {"", ""};
        edgelm_model *model =
            load_expecting(path, cases[i].name, cases[i].want,
                           cases[i].want == EDGELM_OK ? no_message : cases[i].message);
        if (model != NULL) {
            char info[2048];
            edgelm_model_describe(model, info, sizeof info);
            CHECK_MSG(strstr(info, cases[i].message[0]) != NULL, "%s: no '%s' in:\n%s",
                      cases[i].name, cases[i].message[0], info);
            eval_fixed_prompt(model, got);
            double worst = 0.0;
            for (int32_t v = 0; v < n_vocab; v++) {
                const double expect = cases[i].logits == SOFTCAP_2
                                          ? 2.0 * tanh((double)want[v] / 2.0)
                                          : (double)want[v];
                const double e = fabs((double)got[v] - expect);
                worst = e > worst ? e : worst;
            }
            if (cases[i].logits == DIFFERENT) {
                CHECK_MSG(worst > 1e-3, "%s: logits unchanged (%.3g)", cases[i].name, worst);
            } else {
                CHECK_MSG(worst <= (cases[i].logits == SAME ? 0.0 : 1e-5),
                          "%s: logits differ by %.3g", cases[i].name, worst);
            }
        }
        edgelm_model_free(model);
        unlink(path);
    }
    free(want);
    free(got);
    edgelm_model_free(original);
    return 0;
}

int main(void) {
    self_contained_tests();
    refusal_tests();
    int skipped = phi3_refusal_tests();
    skipped += gemma3_edit_tests();
    skipped += golden_tests();
    return test_finish("test_forward", skipped);
}
