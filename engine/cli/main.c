/* main.c - the edgelm command-line tool, a drop-in for PicoLM's CLI built on edgelm.h only.
 *
 * Every flag is parsed and validated before the model is touched; the prompt comes from -p or
 * all of stdin; generated text streams to stdout (flushed per token) and statistics go to
 * stderr. Exit codes: 0 success, 1 model/runtime error, 2 usage error, 128+N after signal N
 * (130 for SIGINT). The only global state is what the signal handler needs.
 */
#include "edgelm.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_USAGE 2

/* ---- options --------------------------------------------------------------------------------- */

typedef struct cli_options {
    const char *model_path;
    const char *prompt; /* -p; NULL = read stdin */
    int32_t n_predict;  /* -1 = until end of generation or the context is full */
    uint32_t n_ctx;     /* 0 = the model's context, capped by the engine */
    int32_t n_threads;  /* 0 = online CPUs */
    edgelm_sampler_params sampling;
    bool tokenize;
    bool info;
} cli_options;

typedef enum option_id {
    OPT_PROMPT,
    OPT_N_PREDICT,
    OPT_TEMP,
    OPT_TOP_P,
    OPT_SEED,
    OPT_CTX,
    OPT_THREADS,
    OPT_TOP_K,
    OPT_MIN_P,
    OPT_REPEAT_PENALTY,
    OPT_REPEAT_LAST_N,
    OPT_TOKENIZE,
    OPT_INFO,
    OPT_JSON,
    OPT_CACHE,
    OPT_HELP,
    OPT_VERSION,
} option_id;

typedef struct option_def {
    const char *short_name; /* NULL when there is none */
    const char *long_name;
    option_id id;
    bool has_value;
} option_def;

static const option_def options_table[] = {
    {"-p", "--prompt", OPT_PROMPT, true},
    {"-n", "--n-predict", OPT_N_PREDICT, true},
    {"-t", "--temp", OPT_TEMP, true},
    {"-k", "--top-p", OPT_TOP_P, true},
    {"-s", "--seed", OPT_SEED, true},
    {"-c", "--ctx-size", OPT_CTX, true},
    {"-j", "--threads", OPT_THREADS, true},
    {NULL, "--top-k", OPT_TOP_K, true},
    {NULL, "--min-p", OPT_MIN_P, true},
    {NULL, "--repeat-penalty", OPT_REPEAT_PENALTY, true},
    {NULL, "--repeat-last-n", OPT_REPEAT_LAST_N, true},
    {NULL, "--tokenize", OPT_TOKENIZE, false},
    {NULL, "--info", OPT_INFO, false},
    {NULL, "--json", OPT_JSON, false},
    {NULL, "--cache", OPT_CACHE, true},
    {"-h", "--help", OPT_HELP, false},
    {NULL, "--version", OPT_VERSION, false},
};

/* PicoLM's defaults (README "Usage"), so agents that relied on them see the same behaviour.
 * PicoLM has no top-k, min-p or repetition penalty: they default to off. */
#define DEFAULT_N_PREDICT 256
#define DEFAULT_TEMP 0.8f
#define DEFAULT_TOP_P 0.9f
#define DEFAULT_SEED 42u
#define MAX_THREADS 256
#define MIN_CTX 16

static void print_help(FILE *out, const edgelm_sampler_params *engine_defaults) {
    fprintf(out,
            "edgelm %s - run a GGUF language model (llama architecture) on the CPU\n"
            "\n"
            "usage: edgelm MODEL.gguf [options]          generate from -p PROMPT or stdin\n"
            "       edgelm MODEL.gguf --tokenize [-p PROMPT]\n"
            "       edgelm MODEL.gguf --info [-c N]\n"
            "       edgelm --help | --version\n"
            "\n"
            "Without -p the prompt is all of stdin up to end of file, minus one trailing newline.\n"
            "Generated text (only the continuation, not the prompt) streams to stdout, followed\n"
            "by one newline; statistics go to stderr.\n"
            "\n"
            "generation (PicoLM-compatible):\n"
            "  -p, --prompt TEXT       prompt text (default: read stdin)\n"
            "  -n, --n-predict N       tokens to generate (default %d); stops early at the end of\n"
            "                          generation token; 0 = evaluate the prompt only;\n"
            "                          -1 = until end of generation or the context is full\n"
            "  -t, --temp F            temperature >= 0 (default %.1f); 0 = greedy (argmax)\n"
            "  -k, --top-p F           nucleus sampling, in (0, 1] (default %.1f); 1 = off\n"
            "  -s, --seed N            random seed, integer >= 0 (default %u)\n"
            "  -c, --ctx-size N        context length in tokens, >= %d (default: the model's\n"
            "                          training context, at most %u)\n"
            "  -j, --threads N         worker threads, 1..%d (default: number of online CPUs)\n"
            "\n"
            "more sampling:\n"
            "  --top-k N               keep the N most likely tokens, >= 0 (default 0 = off)\n"
            "  --min-p F               drop tokens below F x the top probability, in [0, 1]\n"
            "                          (default 0 = off)\n"
            "  --repeat-penalty F      penalty for recent tokens, > 0 (default 1 = off)\n"
            "  --repeat-last-n N       tokens looked back for the penalty, >= 0 (default %d)\n"
            "\n"
            "inspection:\n"
            "  --tokenize              print the prompt's token ids (no BOS) on one line, exit\n"
            "  --info                  print metadata, tensors, weight bytes and the memory a\n"
            "                          session of -c tokens needs, exit\n"
            "  -h, --help              this text\n"
            "  --version               print the version\n"
            "\n"
            "accepted for PicoLM compatibility, not supported yet (exit 2):\n"
            "  --json                  grammar-constrained JSON output\n"
            "  --cache FILE            save/load the prompt's KV cache\n"
            "\n"
            "Long options also take --name=VALUE. Special tokens written in the prompt (such as\n"
            "</s> or <|im_start|>) are recognized.\n"
            "\n"
            "environment:\n"
            "  EDGELM_KERNELS          force a kernel set (ref, avx2, ...), for tests and\n"
            "                          benchmarks; default: the best one this CPU supports\n"
            "\n"
            "exit status: 0 ok, 1 model or runtime error, 2 usage error, 130 interrupted\n"
            "(SIGINT; statistics are still printed), 143 terminated (SIGTERM).\n",
            edgelm_version(), DEFAULT_N_PREDICT, (double)DEFAULT_TEMP, (double)DEFAULT_TOP_P,
            DEFAULT_SEED, MIN_CTX, EDGELM_DEFAULT_MAX_CTX, MAX_THREADS,
            (int)engine_defaults->repeat_last_n);
}

#if defined(__GNUC__)
#define PRINTF_LIKE(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define PRINTF_LIKE(fmt_index, first_arg)
#endif

/* Print a usage error (one line plus the hint) and return the usage exit code. */
static int usage_error(const char *fmt, ...) PRINTF_LIKE(1, 2);
static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("edgelm: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\ntry 'edgelm --help'\n", stderr);
    return EXIT_USAGE;
}

static int bad_value(const char *flag, const char *expected, const char *text) {
    fprintf(stderr, "edgelm: %s: expected %s, got '%s'\ntry 'edgelm --help'\n", flag, expected,
            text);
    return EXIT_USAGE;
}

/* Whole-string decimal integer in [min, max]. Leading/trailing blanks and junk are rejected. */
static bool parse_int64(const char *text, int64_t min, int64_t max, int64_t *out) {
    if (text[0] == '\0' || text[0] == ' ' || text[0] == '\t' || text[0] == '+') {
        return false;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = (int64_t)v;
    return true;
}

/* Whole-string unsigned decimal (the full uint64_t range, for seeds). */
static bool parse_uint64(const char *text, uint64_t *out) {
    if (text[0] < '0' || text[0] > '9') {
        return false;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0') {
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

/* Whole-string finite number. */
static bool parse_float(const char *text, float *out) {
    if (text[0] == '\0' || text[0] == ' ' || text[0] == '\t') {
        return false;
    }
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(v) || fabs(v) > 1e30) {
        return false;
    }
    *out = (float)v;
    return true;
}

/* Apply one option with its value. Returns 0, or the exit code to end with (-1 = exit 0 after
 * --help/--version has been printed). */
static int apply_option(cli_options *opt, const option_def *def, const char *flag,
                        const char *value, const edgelm_sampler_params *engine_defaults) {
    int64_t i64 = 0;
    float f = 0.0f;
    switch (def->id) {
    case OPT_PROMPT:
        opt->prompt = value;
        return 0;
    case OPT_N_PREDICT:
        if (!parse_int64(value, -1, INT32_MAX, &i64)) {
            return bad_value(flag, "an integer >= -1", value);
        }
        opt->n_predict = (int32_t)i64;
        return 0;
    case OPT_TEMP:
        if (!parse_float(value, &f) || f < 0.0f) {
            return bad_value(flag, "a number >= 0", value);
        }
        opt->sampling.temperature = f;
        return 0;
    case OPT_TOP_P:
        if (!parse_float(value, &f) || !(f > 0.0f && f <= 1.0f)) {
            return bad_value(flag, "a number in (0, 1]", value);
        }
        opt->sampling.top_p = f;
        return 0;
    case OPT_SEED: {
        uint64_t seed = 0;
        if (!parse_uint64(value, &seed)) {
            return bad_value(flag, "an integer >= 0", value);
        }
        opt->sampling.seed = seed;
        return 0;
    }
    case OPT_CTX:
        /* The upper bound is the model's business: the engine reports it at session creation. */
        if (!parse_int64(value, MIN_CTX, INT32_MAX, &i64)) {
            return bad_value(flag, "an integer >= 16", value);
        }
        opt->n_ctx = (uint32_t)i64;
        return 0;
    case OPT_THREADS:
        if (!parse_int64(value, 1, MAX_THREADS, &i64)) {
            return bad_value(flag, "an integer in 1..256", value);
        }
        opt->n_threads = (int32_t)i64;
        return 0;
    case OPT_TOP_K:
        if (!parse_int64(value, 0, INT32_MAX, &i64)) {
            return bad_value(flag, "an integer >= 0", value);
        }
        opt->sampling.top_k = (int32_t)i64;
        return 0;
    case OPT_MIN_P:
        if (!parse_float(value, &f) || !(f >= 0.0f && f <= 1.0f)) {
            return bad_value(flag, "a number in [0, 1]", value);
        }
        opt->sampling.min_p = f;
        return 0;
    case OPT_REPEAT_PENALTY:
        if (!parse_float(value, &f) || !(f > 0.0f)) {
            return bad_value(flag, "a number > 0", value);
        }
        opt->sampling.repeat_penalty = f;
        return 0;
    case OPT_REPEAT_LAST_N:
        if (!parse_int64(value, 0, INT32_MAX, &i64)) {
            return bad_value(flag, "an integer >= 0", value);
        }
        opt->sampling.repeat_last_n = (int32_t)i64;
        return 0;
    case OPT_TOKENIZE:
        opt->tokenize = true;
        return 0;
    case OPT_INFO:
        opt->info = true;
        return 0;
    case OPT_JSON:
        return usage_error("%s: not supported yet (grammar-constrained JSON output is planned)",
                           flag);
    case OPT_CACHE:
        return usage_error("%s: not supported yet (KV cache files are planned; got '%s')", flag,
                           value);
    case OPT_HELP:
        print_help(stdout, engine_defaults);
        return -1;
    case OPT_VERSION:
        printf("edgelm %s\n", edgelm_version());
        return -1;
    }
    return 0;
}

/* Parse argv into opt. Returns 0 to go on, -1 to exit 0 (help/version), or an exit code. */
static int parse_args(int argc, char **argv, cli_options *opt) {
    const edgelm_sampler_params engine_defaults = edgelm_sampler_params_default();
    memset(opt, 0, sizeof(*opt));
    opt->n_predict = DEFAULT_N_PREDICT;
    opt->sampling = engine_defaults;
    opt->sampling.temperature = DEFAULT_TEMP;
    opt->sampling.top_p = DEFAULT_TOP_P;
    opt->sampling.seed = DEFAULT_SEED;
    opt->sampling.top_k = 0;
    opt->sampling.min_p = 0.0f;
    opt->sampling.repeat_penalty = 1.0f;

    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            if (opt->model_path != NULL) {
                return usage_error("unexpected argument '%s' (the model is '%s')", arg,
                                   opt->model_path);
            }
            opt->model_path = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        /* "--name=value" for long options. */
        const char *eq = (arg[1] == '-') ? strchr(arg, '=') : NULL;
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        const option_def *def = NULL;
        for (size_t k = 0; k < sizeof(options_table) / sizeof(options_table[0]); k++) {
            const option_def *d = &options_table[k];
            const char *name = (arg[1] == '-') ? d->long_name : d->short_name;
            if (name != NULL && strlen(name) == name_len && strncmp(arg, name, name_len) == 0) {
                def = d;
                break;
            }
        }
        if (def == NULL) {
            return usage_error("unknown option '%s'", arg);
        }
        /* The flag as typed (without "=value"), for messages. */
        char flag[32];
        snprintf(flag, sizeof(flag), "%.*s", (int)name_len, arg);
        const char *value = NULL;
        if (def->has_value) {
            if (eq != NULL) {
                value = eq + 1;
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                return usage_error("%s: missing value", flag);
            }
        } else if (eq != NULL) {
            return usage_error("%s: takes no value, got '%s'", flag, eq + 1);
        }
        int rc = apply_option(opt, def, flag, value, &engine_defaults);
        if (rc != 0) {
            return rc;
        }
    }
    if (opt->model_path == NULL) {
        return usage_error("missing MODEL argument (a .gguf file)");
    }
    if (opt->info && opt->tokenize) {
        return usage_error("--info and --tokenize cannot be combined");
    }
    return 0;
}

/* ---- prompt ---------------------------------------------------------------------------------- */

/* Read all of stdin into a NUL-terminated buffer, dropping one trailing '\n' so that
 * `echo "text" | edgelm ...` and `-p "text"` give the same prompt. NULL on failure (reported). */
static char *read_stdin_prompt(size_t *len_out) {
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        goto oom;
    }
    for (;;) {
        if (cap - len < 2) {
            if (cap > SIZE_MAX / 2) {
                goto oom;
            }
            char *grown = realloc(buf, cap * 2);
            if (grown == NULL) {
                goto oom;
            }
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, stdin);
        len += got;
        if (got == 0) {
            if (ferror(stdin)) {
                fprintf(stderr, "edgelm: reading the prompt from stdin: %s\n", strerror(errno));
                free(buf);
                return NULL;
            }
            break;
        }
    }
    if (len > 0 && buf[len - 1] == '\n') {
        len--;
    }
    buf[len] = '\0';
    *len_out = len;
    return buf;
oom:
    free(buf);
    fputs("edgelm: out of memory reading the prompt from stdin\n", stderr);
    return NULL;
}

/* The prompt from -p or stdin. *owned is what the caller frees. Returns 0 or an exit code. */
static int get_prompt(const cli_options *opt, const char **prompt, size_t *len, char **owned) {
    *owned = NULL;
    if (opt->prompt != NULL) {
        *prompt = opt->prompt;
        *len = strlen(opt->prompt);
        return 0;
    }
    if (isatty(STDIN_FILENO)) {
        return usage_error("no prompt: give -p PROMPT or pipe the prompt on stdin");
    }
    *owned = read_stdin_prompt(len);
    if (*owned == NULL) {
        return 1;
    }
    *prompt = *owned;
    return 0;
}

/* ---- --tokenize ------------------------------------------------------------------------------ */

/* Same tokenization as generation (parse_special on) but without BOS, as llama.cpp's
 * tokenizer tests print it. */
static int run_tokenize(const edgelm_model *model, const char *prompt, size_t len) {
    int32_t cap = (len < (size_t)INT32_MAX - 16) ? (int32_t)len + 16 : INT32_MAX;
    int32_t *tokens = NULL;
    int32_t n = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        free(tokens);
        tokens = malloc((size_t)cap * sizeof(*tokens));
        if (tokens == NULL) {
            fputs("edgelm: out of memory tokenizing the prompt\n", stderr);
            return 1;
        }
        n = edgelm_tokenize(model, prompt, len, false, true, tokens, cap);
        if (n < 0) {
            fprintf(stderr, "edgelm: tokenize: %s\n", edgelm_strerror((edgelm_status)-n));
            free(tokens);
            return 1;
        }
        if (n <= cap) {
            break;
        }
        cap = n; /* the full count came back: retry once with room for all of it */
    }
    if (n > cap) {
        fputs("edgelm: tokenize: token count changed between calls\n", stderr);
        free(tokens);
        return 1;
    }
    for (int32_t i = 0; i < n; i++) {
        printf(i == 0 ? "%d" : " %d", (int)tokens[i]);
    }
    putchar('\n');
    free(tokens);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "edgelm: writing to stdout: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

/* ---- --info ---------------------------------------------------------------------------------- */

static double mib(uint64_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

/* Context a session would get for this -c: mirrors the rule documented for
 * edgelm_session_params.n_ctx (0 = training context capped at EDGELM_DEFAULT_MAX_CTX). */
static uint32_t effective_ctx(const edgelm_model *model, uint32_t n_ctx) {
    if (n_ctx != 0) {
        return n_ctx;
    }
    int32_t train = edgelm_model_n_ctx_train(model);
    if (train <= 0 || (uint32_t)train > EDGELM_DEFAULT_MAX_CTX) {
        return EDGELM_DEFAULT_MAX_CTX;
    }
    return (uint32_t)train;
}

static int run_info(const edgelm_model *model, const cli_options *opt) {
    char value[512];
    printf("file: %s\n", opt->model_path);
    if (!edgelm_model_metadata_string(model, "general.architecture", value, sizeof(value))) {
        snprintf(value, sizeof(value), "(unknown)");
    }
    printf("architecture: %s\n", value);
    if (edgelm_model_metadata_string(model, "general.name", value, sizeof(value))) {
        printf("name: %s\n", value);
    }
    printf("layers: %d, embedding: %d, training context: %d\n", (int)edgelm_model_n_layer(model),
           (int)edgelm_model_n_embd(model), (int)edgelm_model_n_ctx_train(model));
    printf("vocabulary: %d tokens, BOS %d, EOS %d, adds BOS: %s\n",
           (int)edgelm_model_n_vocab(model), (int)edgelm_model_token_bos(model),
           (int)edgelm_model_token_eos(model), edgelm_model_add_bos(model) ? "yes" : "no");
    printf("fingerprint: %016llx\n", (unsigned long long)edgelm_model_fingerprint(model));

    int64_t n_kv = edgelm_model_n_metadata(model);
    printf("\nmetadata (%lld keys):\n", (long long)n_kv);
    for (int64_t i = 0; i < n_kv; i++) {
        const char *key = NULL;
        if (!edgelm_model_metadata(model, i, &key, value, sizeof(value))) {
            break;
        }
        printf("  %s = %s\n", key ? key : "?", value);
    }

    int64_t n_tensors = edgelm_model_n_tensors(model);
    int name_width = 4;
    for (int64_t i = 0; i < n_tensors; i++) {
        edgelm_tensor_info t;
        if (edgelm_model_tensor(model, i, &t) && t.name && (int)strlen(t.name) > name_width) {
            name_width = (int)strlen(t.name) > 60 ? 60 : (int)strlen(t.name);
        }
    }
    printf("\ntensors (%lld):\n", (long long)n_tensors);
    printf("  %-*s  %-6s  %-26s  %12s  %12s\n", name_width, "name", "type", "shape", "bytes",
           "offset");
    for (int64_t i = 0; i < n_tensors; i++) {
        edgelm_tensor_info t;
        if (!edgelm_model_tensor(model, i, &t)) {
            break;
        }
        char shape[96];
        size_t used = 0;
        shape[0] = '\0';
        for (uint32_t d = 0; d < t.n_dims && d < 4; d++) {
            int w = snprintf(shape + used, sizeof(shape) - used, d == 0 ? "[%llu" : ", %llu",
                             (unsigned long long)t.ne[d]);
            if (w < 0 || (size_t)w >= sizeof(shape) - used) {
                break;
            }
            used += (size_t)w;
        }
        if (used + 2 <= sizeof(shape)) {
            snprintf(shape + used, sizeof(shape) - used, "]");
        }
        printf("  %-*s  %-6s  %-26s  %12llu  %12llu\n", name_width, t.name ? t.name : "?",
               t.type_name ? t.type_name : "?", shape, (unsigned long long)t.n_bytes,
               (unsigned long long)t.file_offset);
    }

    uint64_t weight_bytes = edgelm_model_weight_bytes(model);
    uint32_t n_ctx = effective_ctx(model, opt->n_ctx);
    uint64_t session_bytes = edgelm_model_session_bytes(model, n_ctx);
    printf("\nweights mapped: %llu bytes (%.2f MiB)\n", (unsigned long long)weight_bytes,
           mib(weight_bytes));
    printf("session for n_ctx %u (KV cache and scratch): %llu bytes (%.2f MiB)\n", n_ctx,
           (unsigned long long)session_bytes, mib(session_bytes));
    if (fflush(stdout) != 0) {
        fprintf(stderr, "edgelm: writing to stdout: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

/* ---- generation ------------------------------------------------------------------------------ */

/* The session a SIGINT/SIGTERM should cancel, and the signal that arrived. Set by main around
 * edgelm_generate; the handler only reads the pointer and calls edgelm_session_cancel(), which
 * the API documents as safe in a signal handler (it sets an atomic flag). */
static _Atomic(edgelm_session *) cancel_target;
static volatile sig_atomic_t caught_signal;

static void on_signal(int sig) {
    caught_signal = sig;
    edgelm_session *session = atomic_load(&cancel_target);
    if (session != NULL) {
        edgelm_session_cancel(session);
    }
}

typedef struct stream_state {
    int64_t n_calls; /* callbacks received, i.e. tokens generated */
    bool write_failed;
    int write_errno;
} stream_state;

static bool on_token(void *user_data, int32_t token, const char *text, size_t text_len) {
    stream_state *state = user_data;
    (void)token;
    state->n_calls++;
    if (text_len > 0 && fwrite(text, 1, text_len, stdout) != text_len) {
        goto fail;
    }
    if (fflush(stdout) != 0) {
        goto fail;
    }
    return true;
fail:
    state->write_failed = true;
    state->write_errno = errno;
    return false;
}

/* Peak resident set size in KiB from /proc/self/status (VmHWM); -1 when unavailable. */
static long long peak_rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) {
        return -1;
    }
    char line[256];
    long long kib = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            char *end = NULL;
            long long v = strtoll(line + 6, &end, 10);
            if (end != line + 6) {
                kib = v;
            }
            break;
        }
    }
    fclose(f);
    return kib;
}

static const char *finish_name(edgelm_finish_reason finish) {
    switch (finish) {
    case EDGELM_FINISH_LENGTH:
        return "length";
    case EDGELM_FINISH_EOG:
        return "end of generation";
    case EDGELM_FINISH_CALLBACK:
        return "output error";
    case EDGELM_FINISH_CANCELLED:
        return "interrupted";
    case EDGELM_FINISH_CONTEXT_FULL:
        return "context full";
    case EDGELM_FINISH_STOP_STRING:
        return "stop string";
    case EDGELM_FINISH_GRAMMAR:
        return "value complete";
    }
    return "?";
}

static double per_second(double count, double ms) { return ms > 0.0 ? count * 1000.0 / ms : 0.0; }

static void print_stats(const edgelm_model *model, const edgelm_session *session,
                        edgelm_finish_reason finish, bool finished) {
    edgelm_timings t;
    memset(&t, 0, sizeof(t));
    edgelm_session_timings(session, &t);
    fprintf(stderr, "edgelm: prompt: %d tokens in %.2f ms (%.1f tok/s)\n", (int)t.n_prompt_tokens,
            t.prompt_ms, per_second(t.n_prompt_tokens, t.prompt_ms));
    /* decode_ms covers the tokens after the first (the first one's time is in ttft_ms). */
    int32_t n_decoded = t.n_generated_tokens > 1 ? t.n_generated_tokens - 1 : 0;
    fprintf(stderr,
            "edgelm: generated: %d tokens, first after %.2f ms, then %.2f ms (%.1f tok/s), "
            "stop: %s\n",
            (int)t.n_generated_tokens, t.ttft_ms, t.decode_ms, per_second(n_decoded, t.decode_ms),
            finished ? finish_name(finish) : "error");
    long long rss = peak_rss_kib();
    uint64_t weights = edgelm_model_weight_bytes(model);
    uint32_t n_ctx = edgelm_session_n_ctx(session);
    if (rss >= 0) {
        fprintf(stderr, "edgelm: memory: peak RSS %.2f MiB, ", (double)rss / 1024.0);
    } else {
        fputs("edgelm: memory: peak RSS unknown, ", stderr);
    }
    fprintf(stderr, "weights mapped %.2f MiB, session %.2f MiB (n_ctx %u, %d threads)\n",
            mib(weights), mib(edgelm_model_session_bytes(model, n_ctx)), n_ctx,
            (int)edgelm_session_n_threads(session));
}

static int run_generate(const edgelm_model *model, const cli_options *opt, const char *prompt,
                        size_t prompt_len) {
    int rc = 1;
    edgelm_session *session = NULL;
    char err[512] = "";
    edgelm_session_params sp = edgelm_session_params_default();
    sp.n_ctx = opt->n_ctx;
    sp.n_threads = opt->n_threads;
    edgelm_status st = edgelm_session_create(model, &sp, &session, err, sizeof(err));
    if (st != EDGELM_OK) {
        fprintf(stderr, "edgelm: %s\n", err[0] ? err : edgelm_strerror(st));
        /* An out-of-range -c/-j is still the caller's mistake. */
        return st == EDGELM_ERR_INVALID_ARGUMENT ? EXIT_USAGE : 1;
    }
    int32_t n_ctx_train = edgelm_model_n_ctx_train(model);
    if (n_ctx_train > 0 && edgelm_session_n_ctx(session) > (uint32_t)n_ctx_train) {
        fprintf(stderr,
                "edgelm: warning: context %u is longer than the model was trained for (%d); "
                "expect poor text past that\n",
                edgelm_session_n_ctx(session), (int)n_ctx_train);
    }

    edgelm_generate_params gp = edgelm_generate_params_default();
    gp.prompt = prompt;
    gp.prompt_len = prompt_len;
    gp.n_predict = opt->n_predict;
    gp.parse_special = true;
    gp.sampling = opt->sampling;

    /* SA_RESETHAND: a second Ctrl-C kills the process the default way if cancelling hangs. */
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = (int)(SA_RESTART | SA_RESETHAND);
    atomic_store(&cancel_target, session);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    stream_state stream = {0, false, 0};
    edgelm_finish_reason finish = EDGELM_FINISH_LENGTH;
    st = edgelm_generate(session, &gp, on_token, &stream, &finish);

    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    atomic_store(&cancel_target, NULL);

    bool cancelled =
        st == EDGELM_ERR_CANCELLED || (st == EDGELM_OK && finish == EDGELM_FINISH_CANCELLED);
    /* A failure before any token (say, a prompt longer than the context) gets only its error
     * message: no newline on stdout and no statistics. */
    bool produced = st == EDGELM_OK || cancelled || stream.n_calls > 0;

    /* PicoLM ends its output with printf("\n") whatever stdout is (checked against
     * RightNow-AI/picolm picolm.c), and agents that spawn it trim the text anyway; we do the
     * same so a terminal prompt starts on a fresh line and pipelines see identical bytes. */
    if (produced && !stream.write_failed && (fputc('\n', stdout) == EOF || fflush(stdout) != 0)) {
        stream.write_failed = true;
        stream.write_errno = errno;
    }
    if (produced) {
        print_stats(model, session, cancelled ? EDGELM_FINISH_CANCELLED : finish,
                    st == EDGELM_OK || cancelled);
    }

    if (stream.write_failed) {
        fprintf(stderr, "edgelm: writing to stdout: %s\n", strerror(stream.write_errno));
        rc = 1;
    } else if (caught_signal != 0) {
        rc = 128 + (int)caught_signal;
    } else if (st != EDGELM_OK) {
        const char *msg = edgelm_session_errmsg(session);
        fprintf(stderr, "edgelm: %s\n", (msg && msg[0]) ? msg : edgelm_strerror(st));
        rc = 1;
    } else {
        rc = 0;
    }
    edgelm_session_free(session);
    return rc;
}

/* ---- main ------------------------------------------------------------------------------------ */

int main(int argc, char **argv) {
    cli_options opt;
    int rc = parse_args(argc, argv, &opt);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }

    const char *prompt = NULL;
    size_t prompt_len = 0;
    char *owned_prompt = NULL;
    edgelm_model *model = NULL;
    char err[1024] = "";

    /* The prompt first: a usage error should not cost a model load. */
    if (!opt.info) {
        rc = get_prompt(&opt, &prompt, &prompt_len, &owned_prompt);
        if (rc != 0) {
            goto done;
        }
        if (!opt.tokenize && prompt_len == 0) {
            /* Same as PicoLM ("No prompt provided"): an empty stdin is almost always a mistake
             * in the caller, and generating from BOS alone would hide it. */
            rc = usage_error("empty prompt");
            goto done;
        }
    }

    edgelm_model_params mp = edgelm_model_params_default();
    edgelm_status st = edgelm_model_load(opt.model_path, &mp, &model, err, sizeof(err));
    if (st != EDGELM_OK) {
        /* The engine's message names the file; add it if it somehow does not. */
        if (err[0] == '\0') {
            fprintf(stderr, "edgelm: %s: %s\n", opt.model_path, edgelm_strerror(st));
        } else if (strstr(err, opt.model_path) == NULL) {
            fprintf(stderr, "edgelm: %s: %s\n", opt.model_path, err);
        } else {
            fprintf(stderr, "edgelm: %s\n", err);
        }
        rc = 1;
        goto done;
    }

    if (opt.info) {
        rc = run_info(model, &opt);
    } else if (opt.tokenize) {
        rc = run_tokenize(model, prompt, prompt_len);
    } else {
        rc = run_generate(model, &opt, prompt, prompt_len);
    }

done:
    edgelm_model_free(model);
    free(owned_prompt);
    return rc;
}
