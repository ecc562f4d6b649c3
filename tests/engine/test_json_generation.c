/* test_json_generation.c - grammar-constrained generation end to end, through the public API:
 * hundreds of edgelm_generate calls with format JSON and JSON_SCHEMA (every walk schema of
 * tests/data/json/schemas.json) over random-weight models made by edgelm-gen (own 512 vocab in
 * two types, the 32k SPM and the 152k qwen2 vocabularies) and the shared stories260K files, with
 * seeds 1..N, temperatures 0..1.5, top-k/top-p/min-p/penalty variants, budgets from 8 tokens and
 * contexts too small for the budget. Every output must parse whole with cJSON and every schema
 * output must validate (json_walk.h); then the edgelm CLI's --json and --schema output likewise.
 * EDGELM_JSON_GEN_SCALE (percent, default 100) scales the counts.
 */
#include "json_walk.h"
#include "model_fixtures.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int skipped_parts = 0;
static int scale_percent = 100;

/* count scaled by EDGELM_JSON_GEN_SCALE and a per-model weight (percent), at least 1 */
static int scaled(int count, int weight_percent) {
    long n = (long)count * scale_percent / 100 * weight_percent / 100;
    return n < 1 ? 1 : (int)n;
}

/* ---- one schema of schemas.json -------------------------------------------------------------- */

typedef struct schema_case {
    const char *name;
    const cJSON *schema; /* owned by the loaded document */
    char *text;          /* the schema as compact JSON text (what edgelm_generate gets) */
    size_t minimal_len;  /* bytes of the shortest valid value: a budget below it cannot fit */
} schema_case;

/* ---- text collection ------------------------------------------------------------------------- */

typedef struct collector {
    char *text; /* NUL-terminated */
    size_t len, cap;
    int n_token_calls; /* calls with a token id */
    int n_flush_calls; /* calls with token -1 (an unfinished UTF-8 tail) */
    bool call_after_flush;
    bool oom;
} collector;

static bool collect(void *user_data, int32_t token, const char *text, size_t text_len) {
    collector *c = user_data;
    if (c->n_flush_calls > 0) {
        c->call_after_flush = true;
    }
    if (token >= 0) {
        c->n_token_calls++;
    } else {
        c->n_flush_calls++;
    }
    if (!test_reserve(&c->text, &c->cap, c->len + text_len + 1)) {
        c->oom = true;
        return false;
    }
    memcpy(c->text + c->len, text, text_len);
    c->len += text_len;
    c->text[c->len] = '\0';
    return true;
}

static void collector_clear(collector *c) {
    c->len = 0;
    if (c->text != NULL) {
        c->text[0] = '\0';
    }
    c->n_token_calls = c->n_flush_calls = 0;
    c->call_after_flush = c->oom = false;
}

/* ---- checks ---------------------------------------------------------------------------------- */

static const char *finish_name(edgelm_finish_reason r) {
    static const char *const names[] = {"LENGTH",       "EOG",         "CALLBACK", "CANCELLED",
                                        "CONTEXT_FULL", "STOP_STRING", "GRAMMAR"};
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "?";
}

/* Every check of one output; why says what failed. schema NULL = plain JSON. */
static bool output_ok(const char *text, size_t len, const cJSON *schema,
                      edgelm_finish_reason finish, char *why, size_t why_size) {
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (doc == NULL) {
        snprintf(why, why_size, "cJSON_ParseWithLength refuses it");
        return false;
    }
    bool ok = true;
    if (end != text + len) {
        snprintf(why, why_size, "%zu bytes after the value", (size_t)(text + len - end));
        ok = false;
    } else if (schema == NULL && !cJSON_IsObject(doc)) {
        snprintf(why, why_size, "top level is not an object");
        ok = false;
    } else if (!jw_check_output(text, len, schema, why, why_size)) {
        ok = false; /* UTF-8, whitespace rule, schema (property order included) */
    } else if (cJSON_IsNumber(doc)) {
        /* a top-level number may always grow: the value ends by the end token, the budget or
         * the context, or is complete when no digit can follow */
        ok = finish == EDGELM_FINISH_GRAMMAR || finish == EDGELM_FINISH_EOG ||
             finish == EDGELM_FINISH_LENGTH || finish == EDGELM_FINISH_CONTEXT_FULL;
        if (!ok) {
            snprintf(why, why_size, "finish %s after a number", finish_name(finish));
        }
    } else if (finish != EDGELM_FINISH_GRAMMAR) {
        /* anything else ends at a byte that completes it, and generation stops right there */
        snprintf(why, why_size, "finish %s, expected GRAMMAR", finish_name(finish));
        ok = false;
    }
    cJSON_Delete(doc);
    return ok;
}

/* ---- generation matrix ----------------------------------------------------------------------- */

typedef struct sampling_variant {
    int32_t top_k;
    float top_p, min_p, repeat_penalty;
} sampling_variant;

static const float temperatures[] = {0.0f, 0.7f, 1.0f, 1.5f};
static const sampling_variant variants[] = {
    {0, 1.0f, 0.0f, 1.0f},  {40, 0.95f, 0.0f, 1.0f}, {5, 1.0f, 0.0f, 1.1f},
    {0, 0.5f, 0.05f, 1.0f}, {1, 1.0f, 0.0f, 1.0f},   {0, 1.0f, 0.1f, 1.3f},
};
static const int32_t budgets[] = {8, 9, 12, 16, 24, 32, 48, 64, 96};
static const char *const prompts[] = {
    "Once upon a time", "Reply in JSON:", "{\"name\": \"",
    /* "Ünïcödé ☃ 🙂" */
    "\303\234n\303\257c\303\266d\303\251 \342\230\203 \360\237\231\202", "[1, 2, 3] and then"};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

typedef struct model_stats {
    long generations, failures, tokens, chars;
    long empty_objects;  /* outputs that are just "{}" */
    long context_shifts; /* shifts in the middle of a value */
    long context_filled; /* without a shift, values closed in the context's last slot */
    long finishes[8];
    size_t longest;
    double ms;
} model_stats;

/* Parameters of generation i (seed i+1); the lists have co-prime lengths so the combinations
 * vary. */
static edgelm_generate_params params_for(int i, int32_t n_predict_floor) {
    edgelm_generate_params gp = edgelm_generate_params_default();
    const sampling_variant *v = &variants[(size_t)(i / 4) % N_OF(variants)];
    gp.prompt = prompts[(size_t)i % N_OF(prompts)];
    gp.prompt_len = (size_t)-1;
    gp.sampling.seed = (uint64_t)i + 1;
    gp.sampling.temperature = temperatures[(size_t)i % N_OF(temperatures)];
    gp.sampling.top_k = v->top_k;
    gp.sampling.top_p = v->top_p;
    gp.sampling.min_p = v->min_p;
    gp.sampling.repeat_penalty = v->repeat_penalty;
    gp.sampling.repeat_last_n = 64;
    int32_t n = budgets[(size_t)(i * 5 + i / 9) % N_OF(budgets)];
    gp.n_predict = n < n_predict_floor ? n_predict_floor : n;
    return gp;
}

/* One generation and all its checks. */
static void run_one(edgelm_session *s, const char *model_label, const edgelm_generate_params *gp,
                    const schema_case *sc, collector *c, model_stats *ms) {
    collector_clear(c);
    edgelm_finish_reason finish = EDGELM_FINISH_CANCELLED;
    const double t0 = test_now_ms();
    edgelm_status st = edgelm_generate(s, gp, collect, c, &finish);
    ms->ms += test_now_ms() - t0;
    edgelm_timings t;
    edgelm_session_timings(s, &t);
    ms->generations++;
    ms->tokens += t.n_generated_tokens;
    ms->chars += (long)c->len;
    ms->context_shifts += t.n_context_shifts;
    /* the last generated token needs no evaluation, so n_ctx + 1 - prompt tokens fit */
    ms->context_filled +=
        !gp->context_shift || gp->n_predict < 0
            ? t.n_prompt_tokens + t.n_generated_tokens == (int32_t)edgelm_session_n_ctx(s) + 1
            : 0;
    ms->empty_objects += c->len == 2 && c->text != NULL && memcmp(c->text, "{}", 2) == 0;
    ms->finishes[(unsigned)finish & 7u]++;
    if (c->len > ms->longest) {
        ms->longest = c->len;
    }
    char why[256] = "";
    bool ok = true;
    if (st != EDGELM_OK) {
        snprintf(why, sizeof why, "status %s: %s", edgelm_strerror(st), edgelm_session_errmsg(s));
        ok = false;
    } else if (c->oom || c->text == NULL) {
        snprintf(why, sizeof why, "%s", c->oom ? "out of memory collecting" : "no text at all");
        ok = false;
    } else if (c->call_after_flush || c->n_token_calls != t.n_generated_tokens) {
        snprintf(why, sizeof why, "%d token callbacks for %d tokens%s", c->n_token_calls,
                 (int)t.n_generated_tokens, c->call_after_flush ? ", one after the flush" : "");
        ok = false;
    } else if (gp->n_predict >= 0 && t.n_generated_tokens > gp->n_predict) {
        snprintf(why, sizeof why, "%d tokens over a budget of %d", (int)t.n_generated_tokens,
                 (int)gp->n_predict);
        ok = false;
    } else {
        ok = output_ok(c->text, c->len, sc ? sc->schema : NULL, finish, why, sizeof why);
    }
    CHECK_MSG(ok,
              "%s, %s, seed %llu, temp %.2f, top_k %d, top_p %.2f, min_p %.2f, penalty %.2f, "
              "n_predict %d, n_ctx %u, shift %d, prompt '%s': %s (finish %s, %d tokens): "
              "'%.400s'",
              model_label, sc ? sc->name : "--json", (unsigned long long)gp->sampling.seed,
              (double)gp->sampling.temperature, (int)gp->sampling.top_k, (double)gp->sampling.top_p,
              (double)gp->sampling.min_p, (double)gp->sampling.repeat_penalty, (int)gp->n_predict,
              edgelm_session_n_ctx(s), (int)gp->context_shift, gp->prompt, why, finish_name(finish),
              (int)t.n_generated_tokens, c->text ? c->text : "");
    ms->failures += !ok;
}

/* All generations of one model: plain JSON over the matrix, every schema a few times (a quarter
 * of them with a budget of exactly the shortest value's bytes), then sessions whose context is
 * smaller than the budget (n_predict -1, no shift; and a shift in the middle of the value). */
static void model_generations(const edgelm_model *m, const char *label, int32_t n_threads,
                              int weight, const schema_case *cases, size_t n_cases) {
    model_stats ms;
    memset(&ms, 0, sizeof ms);
    collector c;
    memset(&c, 0, sizeof c);
    edgelm_session *s = test_new_session(m, 256, n_threads);
    if (s == NULL) {
        return;
    }
    const int n_json = scaled(72, weight);
    for (int i = 0; i < n_json; i++) {
        edgelm_generate_params gp = params_for(i, 0);
        gp.format = EDGELM_FORMAT_JSON;
        run_one(s, label, &gp, NULL, &c, &ms);
    }
    const int per_schema = scaled(4, weight);
    int k = 0;
    for (size_t sc = 0; sc < n_cases; sc++) {
        for (int r = 0; r < per_schema; r++, k++) {
            edgelm_generate_params gp = params_for(k, (int32_t)cases[sc].minimal_len);
            if (k % 4 == 3) {
                gp.n_predict = (int32_t)cases[sc].minimal_len;
            }
            gp.format = EDGELM_FORMAT_JSON_SCHEMA;
            gp.json_schema = cases[sc].text;
            run_one(s, label, &gp, &cases[sc], &c, &ms);
        }
    }
    edgelm_session_free(s);

    /* contexts smaller than the budget ("Once upon a time" is 4 to 17 tokens here) */
    static const uint32_t small_ctx[] = {24, 32, 40};
    size_t next_short = 0;
    const int n_small = scaled(12, weight);
    for (size_t ci = 0; ci < N_OF(small_ctx); ci++) {
        s = test_new_session(m, small_ctx[ci], n_threads);
        if (s == NULL) {
            continue;
        }
        for (int i = 0; i < n_small; i++) {
            edgelm_generate_params gp = params_for(i + 1000 * (int)ci, 0);
            gp.prompt = prompts[0];
            gp.format = EDGELM_FORMAT_JSON;
            switch (i % 3) {
            case 0: /* until the context is full */
                gp.n_predict = -1;
                break;
            case 1: /* a budget the context cannot hold, no shift */
                gp.n_predict = 96;
                gp.context_shift = false;
                break;
            default: /* shift in the middle of the value */
                gp.n_predict = 64;
                gp.context_shift = true;
                gp.n_keep = i % 2 ? 2 : 0;
                break;
            }
            const schema_case *sc = NULL;
            if (i % 2 == 1) {
                /* every other one: the next schema whose shortest value fits easily */
                for (size_t tries = 0; tries < n_cases && sc == NULL; tries++) {
                    next_short = (next_short + 1) % n_cases;
                    sc = cases[next_short].minimal_len <= 8 ? &cases[next_short] : NULL;
                }
            }
            if (sc != NULL) {
                gp.format = EDGELM_FORMAT_JSON_SCHEMA;
                gp.json_schema = sc->text;
            }
            run_one(s, label, &gp, sc, &c, &ms);
        }
        edgelm_session_free(s);
    }
    free(c.text);
    printf("%s: %ld generations (%ld failed), %ld tokens, %ld bytes, longest %zu, %ld just {}, "
           "%ld context shifts, %ld filled the context; finish GRAMMAR %ld, EOG %ld, "
           "LENGTH %ld, CONTEXT_FULL %ld; %.1f ms/generation\n",
           label, ms.generations, ms.failures, ms.tokens, ms.chars, ms.longest, ms.empty_objects,
           ms.context_shifts, ms.context_filled, ms.finishes[EDGELM_FINISH_GRAMMAR],
           ms.finishes[EDGELM_FINISH_EOG], ms.finishes[EDGELM_FINISH_LENGTH],
           ms.finishes[EDGELM_FINISH_CONTEXT_FULL],
           ms.generations ? ms.ms / (double)ms.generations : 0.0);
    fflush(stdout);
}

/* ---- models ---------------------------------------------------------------------------------- */

typedef struct model_spec {
    const char *label;
    const char *shared;     /* a shared model file, or NULL to generate one */
    const char *gen_args;   /* edgelm-gen options */
    const char *vocab_from; /* shared vocabulary for --vocab-from, or NULL */
    int32_t n_threads;
    int weight; /* percent of the default counts */
} model_spec;

static const model_spec model_specs[] = {
    {"tiny f32 (512 vocab)", NULL, "--preset tiny --type f32 --seed 21", NULL, 1, 100},
    {"tiny q4_0 (512 vocab)", NULL, "--preset tiny --type q4_0 --seed 22", NULL, 2, 100},
    {"tiny q4_0 + llama-spm 32k", NULL, "--preset tiny --type q4_0 --seed 23",
     "vocab/ggml-vocab-llama-spm.gguf", 1, 100},
    {"tiny q8_0 + qwen2 152k", NULL, "--preset tiny --type q8_0 --seed 24",
     "vocab/ggml-vocab-qwen2.gguf", 2, 60},
    {"stories260K", "stories260K.gguf", NULL, NULL, 1, 100},
    {"stories260K Q4_0", "derived/stories260K-Q4_0.gguf", NULL, NULL, 2, 100},
};

/* The model file of a spec into path (generated into the temp dir); false when it cannot be had
 * (a loud SKIP for an absent shared file, a failed check otherwise). */
static bool model_file(const model_spec *spec, size_t index, char *path, size_t path_size) {
    if (spec->shared != NULL) {
        return test_model_path(spec->shared, path, path_size);
    }
    char vocab[1024] = "";
    if (spec->vocab_from != NULL && !test_model_path(spec->vocab_from, vocab, sizeof vocab)) {
        return false;
    }
    char name[64], args[1400];
    snprintf(name, sizeof name, "json-gen-%zu.gguf", index);
    snprintf(args, sizeof args, "%s%s%s%s", spec->gen_args, vocab[0] ? " --vocab-from '" : "",
             vocab, vocab[0] ? "'" : "");
    return test_gen_model_file(name, args, path, path_size);
}

/* ---- CLI ------------------------------------------------------------------------------------- */

/* Run the edgelm CLI on model with extra (--json or --schema FILE) and check its stdout. */
static void cli_run(const char *model_path, const char *label, const char *extra,
                    const cJSON *schema, int seed) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "'%s/edgelm' '%s' %s -n 12 -t 1.5 -s %d -j 1 -p 'Once upon a time' 2>/dev/null",
             test_build_dir(), model_path, extra, seed);
    FILE *p = popen(cmd, "r");
    CHECK_MSG(p != NULL, "popen %s", cmd);
    if (p == NULL) {
        return;
    }
    char out[4096];
    size_t n = fread(out, 1, sizeof out - 1, p);
    int status = pclose(p);
    out[n] = '\0';
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: exit status %d", cmd, status);
    /* the CLI ends its output with one newline of its own (like PicoLM) */
    bool newline = n > 0 && out[n - 1] == '\n';
    CHECK_MSG(newline, "%s: no final newline: '%s'", cmd, out);
    if (newline) {
        out[--n] = '\0';
    }
    char why[256] = "";
    /* the CLI does not say why it stopped on stdout; a top-level number is the only value that
     * may end without GRAMMAR, and output_ok accepts any finish for it */
    bool ok = output_ok(out, n, schema, EDGELM_FINISH_GRAMMAR, why, sizeof why);
    CHECK_MSG(ok, "%s (%s): %s: '%s'", label, cmd, why, out);
    printf("cli %s %s seed %d: %s\n", label, schema ? "--schema" : "--json", seed, out);
}

static void cli_tests(const char *model_path, const char *label, const char *schema_path,
                      const cJSON *schema, int n_seeds) {
    char extra[1200];
    snprintf(extra, sizeof extra, "--schema '%s'", schema_path);
    for (int seed = 1; seed <= n_seeds; seed++) {
        cli_run(model_path, label, "--json", NULL, seed);
        if (schema != NULL) {
            cli_run(model_path, label, extra, schema, seed);
        }
    }
}

/* ---- main ------------------------------------------------------------------------------------ */

int main(void) {
    const char *env = getenv("EDGELM_JSON_GEN_SCALE");
    if (env != NULL && env[0] != '\0') {
        scale_percent = atoi(env);
        scale_percent = scale_percent < 1 ? 1 : scale_percent;
    }
    cJSON *doc = test_load_fixture("json/schemas.json");
    cJSON *cli_schema = test_load_fixture("json/generation/cli_schema.json");
    char cli_schema_path[1024];
    test_data_path("json/generation/cli_schema.json", cli_schema_path, sizeof cli_schema_path);
    if (doc == NULL || cli_schema == NULL) {
        cJSON_Delete(doc);
        cJSON_Delete(cli_schema);
        return test_finish("test_json_generation", 0);
    }

    /* the walk schemas of schemas.json */
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(doc, "cases");
    schema_case *cases = calloc((size_t)cJSON_GetArraySize(all) + 1, sizeof *cases);
    size_t n_cases = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, all) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "name");
        const cJSON *minimal = cJSON_GetObjectItemCaseSensitive(item, "minimal");
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(item, "schema");
        if (cases == NULL || !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(item, "walk"))) {
            continue;
        }
        CHECK(cJSON_IsString(name) && cJSON_IsString(minimal) && schema != NULL);
        if (!cJSON_IsString(name) || !cJSON_IsString(minimal) || schema == NULL) {
            continue;
        }
        schema_case *sc = &cases[n_cases];
        sc->name = name->valuestring;
        sc->schema = schema;
        sc->text = cJSON_PrintUnformatted(schema);
        sc->minimal_len = strlen(minimal->valuestring);
        CHECK(sc->text != NULL);
        n_cases += sc->text != NULL;
    }
    CHECK_MSG(n_cases >= 20, "only %zu walk schemas in schemas.json", n_cases);
    printf("%zu schemas, scale %d%%, kernels %s\n", n_cases, scale_percent, edgelm_kernels_name());

    for (size_t i = 0; i < N_OF(model_specs) && n_cases > 0; i++) {
        const model_spec *spec = &model_specs[i];
        char path[1024];
        if (!model_file(spec, i, path, sizeof path)) {
            skipped_parts += spec->shared != NULL || spec->vocab_from != NULL;
            continue;
        }
        edgelm_model *m = test_load_model(path);
        if (m == NULL) {
            continue;
        }
        printf("%s: vocab %d\n", spec->label, (int)edgelm_model_n_vocab(m));
        model_generations(m, spec->label, spec->n_threads, spec->weight, cases, n_cases);
        edgelm_model_free(m);
        /* the CLI once per mode on the first generated model and on the 152k vocabulary */
        if (i == 0 || spec->vocab_from != NULL) {
            cli_tests(path, spec->label, cli_schema_path, cli_schema, i == 0 ? 4 : 2);
        }
        if (spec->shared == NULL) {
            unlink(path); /* leave no large files behind */
        }
    }

    for (size_t i = 0; i < n_cases; i++) {
        free(cases[i].text);
    }
    free(cases);
    cJSON_Delete(cli_schema);
    cJSON_Delete(doc);
    return test_finish("test_json_generation", skipped_parts);
}
