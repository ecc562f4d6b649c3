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
#include <sys/stat.h>
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
    const char *cache_path;  /* --cache: prompt state file, NULL = none */
    bool json;               /* --json: a JSON value with an object at the top level */
    const char *schema_path; /* --schema: JSON Schema file (implies --json) */
    const char **stops;      /* --stop, n_stops of them (argv strings; array owned) */
    int32_t n_stops;
    bool chat;          /* --chat: the prompt is the user's message */
    const char *system; /* --system: the system message (with --chat) */
    bool think;         /* --think: qwen3's thinking switch on (with --chat) */
    bool context_shift; /* off with --no-context-shift */
    int32_t n_keep;     /* --keep */
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
    OPT_SCHEMA,
    OPT_CACHE,
    OPT_STOP,
    OPT_CHAT,
    OPT_SYSTEM,
    OPT_THINK,
    OPT_NO_CONTEXT_SHIFT,
    OPT_KEEP,
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
    {NULL, "--schema", OPT_SCHEMA, true},
    {NULL, "--cache", OPT_CACHE, true},
    {NULL, "--stop", OPT_STOP, true},
    {NULL, "--chat", OPT_CHAT, false},
    {NULL, "--system", OPT_SYSTEM, true},
    {NULL, "--think", OPT_THINK, false},
    {NULL, "--no-context-shift", OPT_NO_CONTEXT_SHIFT, false},
    {NULL, "--keep", OPT_KEEP, true},
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
            "edgelm %s - run a GGUF language model (llama, qwen2, qwen3, phi3) on the CPU\n"
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
            "  -k, --top-p F           nucleus sampling, in [0, 1] (default %.1f); 1 = off\n"
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
            "output control:\n"
            "  --stop STR              stop when the text STR appears (it is not printed);\n"
            "                          repeatable\n"
            "  --json                  grammar-constrained output: one JSON value with an object\n"
            "                          at the top level; generation ends when it is complete\n"
            "  --schema FILE           like --json, and the value must match the JSON Schema in\n"
            "                          FILE\n"
            "  --no-context-shift      stop at a full context (stop: context full) instead of\n"
            "                          dropping the oldest half of the text after the kept start\n"
            "                          and going on (the default, with -n N >= 0)\n"
            "  --keep N                tokens of the prompt kept at the start when the context\n"
            "                          shifts, besides BOS; -1 = the whole prompt (default 0)\n"
            "\n"
            "chat:\n"
            "  --chat                  the prompt is the user's message: render it with the\n"
            "                          model's chat template (tokenizer.chat_template: chatml,\n"
            "                          qwen3, llama2, llama3, zephyr, gemma, phi3; anything else\n"
            "                          or none falls back to ChatML, with a warning)\n"
            "  --system TEXT           system message for --chat\n"
            "  --think                 with --chat on a qwen3 template: let the model reason in\n"
            "                          <think>...</think> before it answers (default: the\n"
            "                          template's empty think block, so it answers at once)\n"
            "\n"
            "prompt state:\n"
            "  --cache FILE            reuse and save the prompt's KV cache: a later run whose\n"
            "                          prompt starts with the same tokens skips prefilling them\n"
            "                          (stderr says how many); FILE is checked (model, layout,\n"
            "                          checksum) and ignored with a warning when it does not fit,\n"
            "                          and rewritten atomically after the prefill\n"
            "\n",
            edgelm_version(), DEFAULT_N_PREDICT, (double)DEFAULT_TEMP, (double)DEFAULT_TOP_P,
            DEFAULT_SEED, MIN_CTX, EDGELM_DEFAULT_MAX_CTX, MAX_THREADS,
            (int)engine_defaults->repeat_last_n);
    /* two calls: one string literal of it all would pass C's 4095-character minimum */
    fputs("inspection:\n"
            "  --tokenize              print the prompt's token ids (no BOS) on one line, exit\n"
            "                          (reads only the vocabulary: works on vocabulary-only\n"
            "                          GGUF files and on any architecture)\n"
            "  --info                  print metadata, tensors, weight bytes and the memory a\n"
            "                          session of -c tokens needs, exit\n"
            "  -h, --help              this text\n"
            "  --version               print the version\n"
            "\n"
            "Long options also take --name=VALUE. Special tokens written in the prompt (such as\n"
            "</s> or <|im_start|>) are recognized.\n"
            "\n"
            "environment:\n"
            "  EDGELM_KERNELS          force a kernel set (ref, avx2, ...), for tests and\n"
            "                          benchmarks; default: the best one this CPU supports\n"
            "\n"
            "exit status: 0 ok, 1 model or runtime error, 2 usage error (an unusable --schema\n"
            "included), 130 interrupted (SIGINT; statistics are still printed), 143 terminated\n"
            "(SIGTERM).\n",
          out);
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

/* An int32 option's value in lo..hi (want names the range in the error). Returns 0 or the exit
 * code of the error, as apply_option does. */
static int set_int32(int32_t *out, const char *flag, const char *value, int64_t lo, int64_t hi,
                     const char *want) {
    int64_t v = 0;
    if (!parse_int64(value, lo, hi, &v)) {
        return bad_value(flag, want, value);
    }
    *out = (int32_t)v;
    return 0;
}

static int set_file_name(const char **out, const char *flag, const char *value) {
    if (value[0] == '\0') {
        return bad_value(flag, "a file name", value);
    }
    *out = value;
    return 0;
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
        return set_int32(&opt->n_predict, flag, value, -1, INT32_MAX, "an integer >= -1");
    case OPT_TEMP:
        if (!parse_float(value, &f) || f < 0.0f) {
            return bad_value(flag, "a number >= 0", value);
        }
        opt->sampling.temperature = f;
        return 0;
    case OPT_TOP_P:
        if (!parse_float(value, &f) || !(f >= 0.0f && f <= 1.0f)) {
            return bad_value(flag, "a number in [0, 1]", value);
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
        return set_int32(&opt->n_threads, flag, value, 1, MAX_THREADS, "an integer in 1..256");
    case OPT_TOP_K:
        return set_int32(&opt->sampling.top_k, flag, value, 0, INT32_MAX, "an integer >= 0");
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
        return set_int32(&opt->sampling.repeat_last_n, flag, value, 0, INT32_MAX,
                         "an integer >= 0");
    case OPT_TOKENIZE:
        opt->tokenize = true;
        return 0;
    case OPT_INFO:
        opt->info = true;
        return 0;
    case OPT_JSON:
        opt->json = true;
        return 0;
    case OPT_SCHEMA:
        return set_file_name(&opt->schema_path, flag, value);
    case OPT_CACHE:
        return set_file_name(&opt->cache_path, flag, value);
    case OPT_STOP:
        if (value[0] == '\0') {
            return bad_value(flag, "a non-empty string", value);
        }
        opt->stops[opt->n_stops++] = value;
        return 0;
    case OPT_CHAT:
        opt->chat = true;
        return 0;
    case OPT_SYSTEM:
        opt->system = value;
        return 0;
    case OPT_THINK:
        opt->think = true;
        return 0;
    case OPT_NO_CONTEXT_SHIFT:
        opt->context_shift = false;
        return 0;
    case OPT_KEEP:
        return set_int32(&opt->n_keep, flag, value, -1, INT32_MAX, "an integer >= -1");
    case OPT_HELP:
        print_help(stdout, engine_defaults);
        return -1;
    case OPT_VERSION:
        printf("edgelm %s\n", edgelm_version());
        return -1;
    }
    return 0;
}

/* Parse argv into opt. Returns 0 to go on, -1 to exit 0 (help/version), or an exit code.
 * opt->stops is allocated (even on failure): free it. */
static int parse_args(int argc, char **argv, cli_options *opt) {
    const edgelm_sampler_params engine_defaults = edgelm_sampler_params_default();
    const edgelm_generate_params generate_defaults = edgelm_generate_params_default();
    memset(opt, 0, sizeof(*opt));
    opt->stops = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*opt->stops));
    if (opt->stops == NULL) {
        fputs("edgelm: out of memory\n", stderr);
        return 1;
    }
    opt->context_shift = generate_defaults.context_shift;
    opt->n_keep = generate_defaults.n_keep;
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
    if (opt->system != NULL && !opt->chat) {
        return usage_error("--system needs --chat");
    }
    if (opt->think && !opt->chat) {
        return usage_error("--think needs --chat");
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
    {
        char block[1024];
        edgelm_model_describe(model, block, sizeof block);
        fputs(block, stdout);
    }

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
    uint32_t n_ctx = edgelm_model_effective_ctx(model, opt->n_ctx);
    uint64_t session_bytes = edgelm_model_session_bytes(model, n_ctx);
    printf("\nweights mapped: %llu bytes (%.2f MiB)\n", (unsigned long long)weight_bytes,
           mib(weight_bytes));
    printf("session for n_ctx %u (KV cache and scratch): %llu bytes (%.2f MiB)\n", n_ctx,
           (unsigned long long)session_bytes, mib(session_bytes));
    printf("kernels: %s\n", edgelm_kernels_name());
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
    /* --cache: the state is saved at the first token, when the cache holds just the prompt */
    edgelm_session *session;
    const char *cache_path; /* NULL = no cache */
    int32_t n_restored;     /* tokens the file gave back */
    bool cache_done;        /* saved or failed */
} stream_state;

/* Save the prompt state for --cache (warnings only: the generation itself is not affected). */
static void save_cache(stream_state *state) {
    if (state->cache_path == NULL || state->cache_done) {
        return;
    }
    state->cache_done = true;
    edgelm_timings t;
    edgelm_session_timings(state->session, &t);
    if (state->n_restored == t.n_prompt_tokens && t.n_cached_tokens == t.n_prompt_tokens - 1) {
        return; /* the file holds exactly this prompt already */
    }
    edgelm_status st = edgelm_session_state_save_file(state->session, state->cache_path);
    if (st != EDGELM_OK) {
        const char *msg = edgelm_session_errmsg(state->session);
        fprintf(stderr, "edgelm: warning: --cache %s: not saved: %s\n", state->cache_path,
                (msg && msg[0]) ? msg : edgelm_strerror(st));
    }
}

static bool on_token(void *user_data, int32_t token, const char *text, size_t text_len) {
    stream_state *state = user_data;
    if (token >= 0 && state->n_calls == 0) {
        save_cache(state); /* nothing has been evaluated after the prompt yet */
    }
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
    /* the rate counts the tokens actually prefilled, not those taken from the cache */
    fprintf(stderr, "edgelm: prompt: %d tokens in %.2f ms (%.1f tok/s)", (int)t.n_prompt_tokens,
            t.prompt_ms, per_second(t.n_prompt_tokens - t.n_cached_tokens, t.prompt_ms));
    if (t.n_cached_tokens > 0) {
        fprintf(stderr, ", %d of them from the cache", (int)t.n_cached_tokens);
    }
    fputc('\n', stderr);
    /* decode_ms covers the tokens after the first (the first one's time is in ttft_ms). */
    int32_t n_decoded = t.n_generated_tokens > 1 ? t.n_generated_tokens - 1 : 0;
    fprintf(stderr,
            "edgelm: generated: %d tokens, first after %.2f ms, then %.2f ms (%.1f tok/s), "
            "stop: %s\n",
            (int)t.n_generated_tokens, t.ttft_ms, t.decode_ms, per_second(n_decoded, t.decode_ms),
            finished ? finish_name(finish) : "error");
    if (t.n_context_shifts > 0) {
        fprintf(stderr, "edgelm: context: shifted %d times\n", (int)t.n_context_shifts);
    }
    long long rss = peak_rss_kib();
    uint64_t weights = edgelm_model_weight_bytes(model);
    uint32_t n_ctx = edgelm_session_n_ctx(session);
    if (rss >= 0) {
        fprintf(stderr, "edgelm: memory: peak RSS %.2f MiB, ", (double)rss / 1024.0);
    } else {
        fputs("edgelm: memory: peak RSS unknown, ", stderr);
    }
    fprintf(stderr,
            "weights mapped %.2f MiB, session %.2f MiB (n_ctx %u, %d threads, %s kernels)\n",
            mib(weights), mib(edgelm_model_session_bytes(model, n_ctx)), n_ctx,
            (int)edgelm_session_n_threads(session), edgelm_kernels_name());
}

/* --cache, before generating: restore the file into the session when it exists and fits.
 * Returns the tokens restored (0 when there was nothing usable). */
static int32_t load_cache(edgelm_session *session, const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT) {
        return 0; /* the first run: the file is written after the prefill */
    }
    edgelm_status st = edgelm_session_state_load_file(session, path);
    if (st != EDGELM_OK) {
        const char *msg = edgelm_session_errmsg(session);
        fprintf(stderr, "edgelm: warning: --cache %s: ignored (%s): %s\n", path,
                edgelm_strerror(st), (msg && msg[0]) ? msg : "?");
        return 0;
    }
    return edgelm_session_n_past(session);
}

static int run_generate(const edgelm_model *model, const cli_options *opt, const char *prompt,
                        size_t prompt_len, const char *schema) {
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
    gp.stop = opt->stops;
    gp.n_stop = opt->n_stops;
    gp.context_shift = opt->context_shift;
    gp.n_keep = opt->n_keep;
    if (schema != NULL) {
        gp.format = EDGELM_FORMAT_JSON_SCHEMA;
        gp.json_schema = schema;
    } else if (opt->json) {
        gp.format = EDGELM_FORMAT_JSON;
    }
    int32_t n_restored = 0;
    if (opt->cache_path != NULL) {
        n_restored = load_cache(session, opt->cache_path);
        gp.reuse_prefix = true;
    }

    /* SA_RESETHAND: a second Ctrl-C kills the process the default way if cancelling hangs. */
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = (int)(SA_RESTART | SA_RESETHAND);
    atomic_store(&cancel_target, session);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    stream_state stream = {0, false, 0, session, opt->cache_path, n_restored, false};
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

    edgelm_timings t;
    edgelm_session_timings(session, &t);
    if (opt->cache_path != NULL && st == EDGELM_OK && stream.n_calls == 0 &&
        edgelm_session_n_past(session) == t.n_prompt_tokens) {
        /* No token was delivered (-n 0, or end of generation at once): the cache still holds
         * just the prompt. */
        save_cache(&stream);
    }

    /* PicoLM ends its output with printf("\n") whatever stdout is (checked against
     * RightNow-AI/picolm picolm.c), and agents that spawn it trim the text anyway; we do the
     * same so a terminal prompt starts on a fresh line and pipelines see identical bytes. */
    if (produced && !stream.write_failed && (fputc('\n', stdout) == EOF || fflush(stdout) != 0)) {
        stream.write_failed = true;
        stream.write_errno = errno;
    }
    if (produced && opt->cache_path != NULL) {
        if (t.n_cached_tokens > 0) {
            /* PicoLM says "Skipping N cached prompt tokens" */
            fprintf(stderr, "edgelm: cache: skipping %d cached prompt tokens of %d (%s)\n",
                    (int)t.n_cached_tokens, (int)t.n_prompt_tokens, opt->cache_path);
        } else if (n_restored > 0) {
            fprintf(stderr,
                    "edgelm: cache: %s shares no prefix with this prompt; prefilled all %d "
                    "tokens\n",
                    opt->cache_path, (int)t.n_prompt_tokens);
        }
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
        /* an unusable schema is the caller's input, like a bad flag */
        rc = st == EDGELM_ERR_BAD_SCHEMA ? EXIT_USAGE : 1;
    } else {
        rc = 0;
    }
    edgelm_session_free(session);
    return rc;
}

/* ---- --chat ---------------------------------------------------------------------------------- */

/* Render the prompt as the user's message (after --system) with the model's chat template,
 * thinking off unless --think. Returns the malloc'd text, or NULL (reported). */
static char *chat_prompt(const edgelm_model *model, const cli_options *opt, const char *prompt,
                         size_t *len_out) {
    bool recognized = false;
    const char *family = edgelm_chat_template_name(model, &recognized);
    if (opt->think && strcmp(family, "qwen3") != 0) {
        fprintf(stderr, "edgelm: warning: --think: the %s chat template has no thinking switch\n",
                family);
    }
    if (!recognized) {
        /* edgelm_model_metadata_string fails for a template longer than the buffer: probe
         * with a generous one, a template is a few KB */
        char *probe = malloc(1 << 16);
        bool has = probe != NULL &&
                   edgelm_model_metadata_string(model, "tokenizer.chat_template", probe, 1 << 16);
        free(probe);
        fprintf(stderr, "edgelm: warning: --chat: %s; using the default (ChatML)\n",
                has ? "the model's chat template is not one edgelm knows"
                    : "the model has no chat template");
    }
    edgelm_chat_message messages[2];
    size_t n = 0;
    if (opt->system != NULL) {
        messages[n++] = (edgelm_chat_message){"system", opt->system};
    }
    messages[n++] = (edgelm_chat_message){"user", prompt};
    edgelm_chat_params params = edgelm_chat_params_default();
    params.enable_thinking = opt->think;
    int32_t need = edgelm_chat_apply_ex(model, messages, n, &params, NULL, 0);
    char *text = need >= 0 ? malloc((size_t)need + 1) : NULL;
    if (text == NULL ||
        edgelm_chat_apply_ex(model, messages, n, &params, text, (size_t)need + 1) != need) {
        fprintf(stderr, "edgelm: --chat: %s\n",
                need < 0 ? edgelm_strerror((edgelm_status)-need) : "out of memory");
        free(text);
        return NULL;
    }
    *len_out = (size_t)need;
    return text;
}

/* The whole of a (small) text file, NUL-terminated; NULL on error (reported). */
static char *read_text_file(const char *flag, const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "edgelm: %s %s: %s\n", flag, path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (cap - len < 2) {
            char *grown = cap < ((size_t)64 << 20) ? realloc(buf, cap * 2) : NULL;
            if (grown == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) {
            break;
        }
    }
    if (buf == NULL || ferror(f)) {
        fprintf(stderr, "edgelm: %s %s: %s\n", flag, path,
                buf == NULL ? "too large or out of memory" : strerror(errno));
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* ---- main ------------------------------------------------------------------------------------ */

int main(int argc, char **argv) {
    cli_options opt;
    int rc = parse_args(argc, argv, &opt);
    if (rc != 0) {
        free(opt.stops);
        return rc < 0 ? 0 : rc;
    }

    const char *prompt = NULL;
    size_t prompt_len = 0;
    char *owned_prompt = NULL;
    char *chat_text = NULL;
    char *schema = NULL;
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
    if (opt.schema_path != NULL && !opt.info && !opt.tokenize) {
        schema = read_text_file("--schema", opt.schema_path);
        if (schema == NULL) {
            rc = 1;
            goto done;
        }
    }

    edgelm_model_params mp = edgelm_model_params_default();
    /* tokenizing needs no weights: vocabulary-only files and any architecture's vocabulary */
    mp.vocab_only = opt.tokenize;
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

    if (opt.chat && !opt.info) {
        chat_text = chat_prompt(model, &opt, prompt, &prompt_len);
        if (chat_text == NULL) {
            rc = 1;
            goto done;
        }
        prompt = chat_text;
    }

    if (opt.info) {
        rc = run_info(model, &opt);
    } else if (opt.tokenize) {
        rc = run_tokenize(model, prompt, prompt_len);
    } else {
        rc = run_generate(model, &opt, prompt, prompt_len, schema);
    }

done:
    edgelm_model_free(model);
    free(owned_prompt);
    free(chat_text);
    free(schema);
    free(opt.stops);
    return rc;
}
