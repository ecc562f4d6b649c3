/* edgelm_bench.c - edgelm-bench, prompt-processing and generation throughput in the manner of
 * llama-bench, through the public API (edgelm.h) only.
 *
 * A test is pp<N> (one eval of N random tokens, BOS first when the model has one) or tg<N> (N
 * evals of one random token each), on a fresh session per (model, threads, test); each repetition
 * starts from an empty KV cache, after one untimed warm-up. Rows are llama-bench's markdown
 * (t/s as mean ± sample stddev, plus the median) or JSON objects with every sample.
 */
#include "edgelm.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_LIST 16
#define MAX_MODELS 16
#define MAX_REPS 1000

typedef struct int_list {
    int n;
    int32_t v[MAX_LIST];
} int_list;

typedef struct bench_options {
    const char *models[MAX_MODELS];
    int n_models;
    int_list threads;
    int_list n_prompt;
    int_list n_gen;
    int reps;
    bool json;
    bool warmup;
} bench_options;

typedef struct model_info {
    char type[160]; /* "llama 1.1B Q4_K - Medium" */
    uint64_t size_bytes;
    uint64_t n_params;
} model_info;

typedef struct test_result {
    int32_t n_prompt, n_gen, n_threads;
    int reps;
    double samples_ns[MAX_REPS];
    double samples_ts[MAX_REPS];
    double first_ms[MAX_REPS]; /* time until the first logits of each repetition */
    double avg_ts, stddev_ts, median_ts, avg_ns, stddev_ns, ttft_ms;
    long long peak_rss_bytes; /* VmHWM after the test: the process's peak so far */
    long long rss_anon_bytes; /* RssAnon with the test's session still alive */
    char time_iso[32];
} test_result;

static void usage(FILE *f) {
    fprintf(f, "usage: edgelm-bench -m MODEL [options]\n"
               "Measures prompt processing (ppN) and generation (tgN) speed like llama-bench.\n"
               "\n"
               "  -m, --model FILE        GGUF model (repeat or comma-separate for several)\n"
               "  -t, --threads N[,N..]   threads (default: online CPUs)\n"
               "  -p, --n-prompt N[,N..]  prompt lengths for ppN tests (default 512; 0 = none)\n"
               "  -n, --n-gen N[,N..]     generated tokens for tgN tests (default 128; 0 = none)\n"
               "  -r, --repetitions N     timed repetitions of each test (default 5)\n"
               "  -o, --output md|json    markdown table (default) or a JSON array\n"
               "  --no-warmup             skip the untimed warm-up run\n"
               "  -h, --help              this text\n"
               "t/s is the mean over repetitions ± the sample standard deviation; the median is\n"
               "shown too. The kernels are the engine's choice (EDGELM_KERNELS=ref|sse2|avx2|\n"
               "avx512|neon forces one).\n"
               "exit status: 0 done, 1 a model or session failed, 2 bad usage\n");
}

/* ---- argument parsing ------------------------------------------------------------------------ */

static bool parse_int(const char *s, long lo, long hi, int32_t *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (s[0] == '\0' || errno != 0 || *end != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = (int32_t)v;
    return true;
}

static bool parse_list(const char *opt, const char *arg, long lo, long hi, int_list *list) {
    char buf[256];
    if (arg == NULL || strlen(arg) >= sizeof buf) {
        fprintf(stderr, "edgelm-bench: %s needs a comma-separated list of numbers\n", opt);
        return false;
    }
    strcpy(buf, arg);
    list->n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (list->n == MAX_LIST || !parse_int(tok, lo, hi, &list->v[list->n])) {
            fprintf(stderr, "edgelm-bench: %s '%s': need at most %d numbers in %ld..%ld\n", opt,
                    arg, MAX_LIST, lo, hi);
            return false;
        }
        list->n++;
    }
    if (list->n == 0) {
        fprintf(stderr, "edgelm-bench: %s needs at least one number\n", opt);
        return false;
    }
    return true;
}

/* Returns 0 ok, 1 help shown, 2 usage error. Model paths point into argv (split on commas in
 * place). */
static int parse_args(int argc, char **argv, bench_options *o) {
    memset(o, 0, sizeof *o);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads.n = 1;
    o->threads.v[0] = cpus > 0 ? (int32_t)(cpus > 256 ? 256 : cpus) : 1;
    o->n_prompt.n = 1;
    o->n_prompt.v[0] = 512;
    o->n_gen.n = 1;
    o->n_gen.v[0] = 128;
    o->reps = 5;
    o->warmup = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes_value = true;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(a, "--no-warmup") == 0) {
            o->warmup = false;
            takes_value = false;
        } else if (val == NULL) {
            fprintf(stderr, "edgelm-bench: %s needs a value (or is unknown; see --help)\n", a);
            return 2;
        } else if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) {
            char *save = NULL;
            for (char *p = strtok_r(val, ",", &save); p != NULL; p = strtok_r(NULL, ",", &save)) {
                if (o->n_models == MAX_MODELS) {
                    fprintf(stderr, "edgelm-bench: at most %d models\n", MAX_MODELS);
                    return 2;
                }
                o->models[o->n_models++] = p;
            }
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
            if (!parse_list(a, val, 1, 256, &o->threads)) {
                return 2;
            }
        } else if (strcmp(a, "-p") == 0 || strcmp(a, "--n-prompt") == 0) {
            if (!parse_list(a, val, 0, 1 << 20, &o->n_prompt)) {
                return 2;
            }
        } else if (strcmp(a, "-n") == 0 || strcmp(a, "--n-gen") == 0) {
            if (!parse_list(a, val, 0, 1 << 20, &o->n_gen)) {
                return 2;
            }
        } else if (strcmp(a, "-r") == 0 || strcmp(a, "--repetitions") == 0) {
            int32_t r;
            if (!parse_int(val, 1, MAX_REPS, &r)) {
                fprintf(stderr, "edgelm-bench: %s '%s': need a number in 1..%d\n", a, val,
                        MAX_REPS);
                return 2;
            }
            o->reps = r;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            if (strcmp(val, "md") == 0) {
                o->json = false;
            } else if (strcmp(val, "json") == 0) {
                o->json = true;
            } else {
                fprintf(stderr, "edgelm-bench: %s '%s': md or json\n", a, val);
                return 2;
            }
        } else {
            fprintf(stderr, "edgelm-bench: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (takes_value) {
            i++;
        }
    }
    if (o->n_models == 0) {
        fprintf(stderr, "edgelm-bench: -m MODEL is required (see --help)\n");
        return 2;
    }
    return 0;
}

/* ---- measurements ---------------------------------------------------------------------------- */

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* A "Key:   N kB" line of /proc/self/status in bytes; -1 where there is no such file. */
static long long proc_status_bytes(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) {
        return -1;
    }
    char line[256];
    long long value = -1;
    const size_t key_len = strlen(key);
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, key_len) == 0 && line[key_len] == ':') {
            value = strtoll(line + key_len + 1, NULL, 10) * 1024;
            break;
        }
    }
    fclose(f);
    return value;
}

static int compare_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n) {
    double sorted[MAX_REPS];
    memcpy(sorted, v, (size_t)n * sizeof *v);
    qsort(sorted, (size_t)n, sizeof *sorted, compare_double);
    return n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
}

static void mean_stddev(const double *v, int n, double *mean, double *stddev) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        sum += v[i];
    }
    *mean = sum / n;
    double sq = 0.0;
    for (int i = 0; i < n; i++) {
        sq += (v[i] - *mean) * (v[i] - *mean);
    }
    *stddev = n > 1 ? sqrt(sq / (n - 1)) : 0.0;
}

/* xorshift32: the random tokens of a test (their values do not change the work done). */
static int32_t next_token(uint32_t *state, int32_t n_vocab) {
    uint32_t s = *state;
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    *state = s;
    return (int32_t)(s % (uint32_t)n_vocab);
}

/* One timed pass: the prompt as one eval, or n_gen single-token evals. *first_ns is the time
 * until the first logits (the whole prompt, or the first generated token). */
static edgelm_status run_once(edgelm_session *s, const edgelm_model *model, int32_t *tokens,
                              int32_t n_prompt, int32_t n_gen, double *first_ns) {
    const int32_t n_vocab = edgelm_model_n_vocab(model);
    const int32_t bos = edgelm_model_token_bos(model);
    uint32_t rng = 0x2545F491u;
    edgelm_session_reset(s);
    const double t0 = now_ns();
    *first_ns = 0.0;
    if (n_prompt > 0) {
        for (int32_t i = 0; i < n_prompt; i++) {
            tokens[i] = next_token(&rng, n_vocab);
        }
        if (bos >= 0 && edgelm_model_add_bos(model)) {
            tokens[0] = bos;
        }
        edgelm_status st = edgelm_session_eval(s, tokens, n_prompt);
        if (st != EDGELM_OK) {
            return st;
        }
        *first_ns = now_ns() - t0;
    }
    int32_t token = bos >= 0 ? bos : next_token(&rng, n_vocab);
    for (int32_t i = 0; i < n_gen; i++) {
        edgelm_status st = edgelm_session_eval(s, &token, 1);
        if (st != EDGELM_OK) {
            return st;
        }
        if (i == 0) {
            *first_ns = now_ns() - t0;
        }
        token = next_token(&rng, n_vocab);
    }
    return EDGELM_OK;
}

static int run_test(const edgelm_model *model, const bench_options *o, test_result *r) {
    const uint32_t n_ctx =
        (uint32_t)(r->n_prompt + r->n_gen) < 16 ? 16 : (uint32_t)(r->n_prompt + r->n_gen);
    edgelm_session_params sp = edgelm_session_params_default();
    sp.n_ctx = n_ctx;
    sp.n_threads = r->n_threads;
    edgelm_session *s = NULL;
    char err[256];
    int32_t *tokens = NULL;
    int rc = 1;
    edgelm_status st = edgelm_session_create(model, &sp, &s, err, sizeof err);
    if (st != EDGELM_OK) {
        fprintf(stderr, "edgelm-bench: session: %s\n", err);
        goto done;
    }
    tokens = malloc((size_t)(r->n_prompt > 0 ? r->n_prompt : 1) * sizeof *tokens);
    if (tokens == NULL) {
        fprintf(stderr, "edgelm-bench: out of memory\n");
        goto done;
    }
    double first_ns;
    if (o->warmup) {
        /* as llama-bench: a short prompt or a single token, untimed */
        const int32_t warm_prompt = r->n_prompt > 32 ? 32 : r->n_prompt;
        st = run_once(s, model, tokens, warm_prompt, r->n_prompt > 0 ? 0 : 1, &first_ns);
        if (st != EDGELM_OK) {
            fprintf(stderr, "edgelm-bench: warm-up: %s\n", edgelm_session_errmsg(s));
            goto done;
        }
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(r->time_iso, sizeof r->time_iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const int32_t n_tokens = r->n_prompt + r->n_gen;
    for (int i = 0; i < r->reps; i++) {
        const double t0 = now_ns();
        st = run_once(s, model, tokens, r->n_prompt, r->n_gen, &first_ns);
        const double t1 = now_ns();
        if (st != EDGELM_OK) {
            fprintf(stderr, "edgelm-bench: eval: %s\n", edgelm_session_errmsg(s));
            goto done;
        }
        r->samples_ns[i] = t1 - t0;
        r->samples_ts[i] = 1e9 * n_tokens / (t1 - t0);
        r->first_ms[i] = first_ns / 1e6;
    }
    mean_stddev(r->samples_ts, r->reps, &r->avg_ts, &r->stddev_ts);
    mean_stddev(r->samples_ns, r->reps, &r->avg_ns, &r->stddev_ns);
    r->median_ts = median(r->samples_ts, r->reps);
    r->ttft_ms = median(r->first_ms, r->reps);
    r->rss_anon_bytes = proc_status_bytes("RssAnon");
    r->peak_rss_bytes = proc_status_bytes("VmHWM");
    rc = 0;
done:
    free(tokens);
    edgelm_session_free(s);
    return rc;
}

/* ---- model description ------------------------------------------------------------------------
 */

/* llama_ftype names, as llama-bench prints them */
static const char *ftype_name(long ftype) {
    switch (ftype) {
    case 0:
        return "all F32";
    case 1:
        return "F16";
    case 2:
        return "Q4_0";
    case 3:
        return "Q4_1";
    case 7:
        return "Q8_0";
    case 8:
        return "Q5_0";
    case 9:
        return "Q5_1";
    case 10:
        return "Q2_K - Medium";
    case 11:
        return "Q3_K - Small";
    case 12:
        return "Q3_K - Medium";
    case 13:
        return "Q3_K - Large";
    case 14:
        return "Q4_K - Small";
    case 15:
        return "Q4_K - Medium";
    case 16:
        return "Q5_K - Small";
    case 17:
        return "Q5_K - Medium";
    case 18:
        return "Q6_K";
    case 32:
        return "BF16";
    default:
        return "?";
    }
}

static void describe_model(const edgelm_model *model, model_info *info) {
    char arch[64] = "?", label[32] = "", value[64];
    edgelm_model_metadata_string(model, "general.architecture", arch, sizeof arch);
    edgelm_model_metadata_string(model, "general.size_label", label, sizeof label);
    long ftype = -1;
    for (int64_t i = 0; i < edgelm_model_n_metadata(model); i++) {
        const char *key;
        if (edgelm_model_metadata(model, i, &key, value, sizeof value) &&
            strcmp(key, "general.file_type") == 0) {
            ftype = strtol(value, NULL, 10);
        }
    }
    info->n_params = 0;
    char matrix_type[16] = "?"; /* without general.file_type: the type of the first matrix */
    edgelm_tensor_info t;
    for (int64_t i = 0; edgelm_model_tensor(model, i, &t); i++) {
        uint64_t n = 1;
        for (uint32_t d = 0; d < t.n_dims; d++) {
            n *= t.ne[d];
        }
        info->n_params += n;
        if (matrix_type[0] == '?' && t.n_dims == 2 && strncmp(t.name, "blk.", 4) == 0) {
            size_t k = 0;
            for (; t.type_name[k] != '\0' && k + 1 < sizeof matrix_type; k++) {
                const char c = t.type_name[k];
                matrix_type[k] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
            }
            matrix_type[k] = '\0';
        }
    }
    info->size_bytes = edgelm_model_weight_bytes(model);
    if (label[0] == '\0') {
        const double p = (double)info->n_params;
        if (p >= 1e9) {
            snprintf(label, sizeof label, "%.1fB", p / 1e9);
        } else if (p >= 1e6) {
            snprintf(label, sizeof label, "%.0fM", p / 1e6);
        } else {
            snprintf(label, sizeof label, "%.0fK", p / 1e3);
        }
    }
    snprintf(info->type, sizeof info->type, "%s %s %s", arch, label,
             ftype >= 0 ? ftype_name(ftype) : matrix_type);
}

/* ---- output ---------------------------------------------------------------------------------- */

static void json_string(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            printf("\\%c", *p);
        } else if (*p < 0x20) {
            printf("\\u%04x", *p);
        } else {
            putchar(*p);
        }
    }
    putchar('"');
}

static void json_array(const double *v, int n, bool integral) {
    putchar('[');
    for (int i = 0; i < n; i++) {
        if (i > 0) {
            fputs(", ", stdout);
        }
        if (integral) {
            printf("%.0f", v[i]);
        } else {
            printf("%.6f", v[i]);
        }
    }
    putchar(']');
}

static void print_json_row(const char *path, const model_info *mi, const char *kernels,
                           const test_result *r, bool first) {
    printf("%s  {\n", first ? "" : ",\n");
    printf("    \"build_version\": ");
    json_string(edgelm_version());
    printf(",\n    \"model_filename\": ");
    json_string(path);
    printf(",\n    \"model_type\": ");
    json_string(mi->type);
    printf(",\n    \"model_size\": %llu,\n", (unsigned long long)mi->size_bytes);
    printf("    \"model_n_params\": %llu,\n", (unsigned long long)mi->n_params);
    printf("    \"backends\": \"CPU\",\n    \"kernels\": ");
    json_string(kernels);
    printf(",\n    \"n_threads\": %d,\n", (int)r->n_threads);
    printf("    \"n_prompt\": %d,\n    \"n_gen\": %d,\n", (int)r->n_prompt, (int)r->n_gen);
    printf("    \"test_time\": \"%s\",\n", r->time_iso);
    printf("    \"avg_ns\": %.0f,\n    \"stddev_ns\": %.0f,\n", r->avg_ns, r->stddev_ns);
    printf("    \"avg_ts\": %.6f,\n    \"stddev_ts\": %.6f,\n", r->avg_ts, r->stddev_ts);
    printf("    \"median_ts\": %.6f,\n    \"ttft_ms\": %.3f,\n", r->median_ts, r->ttft_ms);
    printf("    \"peak_rss_bytes\": %lld,\n    \"rss_anon_bytes\": %lld,\n", r->peak_rss_bytes,
           r->rss_anon_bytes);
    printf("    \"samples_ns\": ");
    json_array(r->samples_ns, r->reps, true);
    printf(",\n    \"samples_ts\": ");
    json_array(r->samples_ts, r->reps, false);
    printf("\n  }");
    fflush(stdout);
}

static void print_md_header(void) {
    printf("| %-30s | %10s | %10s | %-7s | %7s | %10s | %20s | %10s |\n", "model", "size", "params",
           "backend", "threads", "test", "t/s", "median t/s");
    printf("| ------------------------------ | ---------: | ---------: | ------- | ------: | "
           "---------: | -------------------: | ---------: |\n");
    fflush(stdout);
}

static void print_md_row(const model_info *mi, const test_result *r) {
    char size[32], params[32], test[32], ts[48], med[32];
    snprintf(size, sizeof size, "%.2f MiB", (double)mi->size_bytes / (1024.0 * 1024.0));
    if (mi->n_params >= 1000000000ull) {
        snprintf(params, sizeof params, "%.2f B", (double)mi->n_params / 1e9);
    } else if (mi->n_params >= 1000000ull) {
        snprintf(params, sizeof params, "%.2f M", (double)mi->n_params / 1e6);
    } else {
        snprintf(params, sizeof params, "%.2f K", (double)mi->n_params / 1e3);
    }
    if (r->n_prompt > 0 && r->n_gen > 0) {
        snprintf(test, sizeof test, "pp%d+tg%d", (int)r->n_prompt, (int)r->n_gen);
    } else if (r->n_prompt > 0) {
        snprintf(test, sizeof test, "pp%d", (int)r->n_prompt);
    } else {
        snprintf(test, sizeof test, "tg%d", (int)r->n_gen);
    }
    snprintf(ts, sizeof ts, "%.2f ± %.2f", r->avg_ts, r->stddev_ts);
    snprintf(med, sizeof med, "%.2f", r->median_ts);
    /* "±" is two bytes but one column: pad by hand */
    printf("| %-30s | %10s | %10s | %-7s | %7d | %10s | %*s | %10s |\n", mi->type, size, params,
           "CPU", (int)r->n_threads, test, 20 + 1, ts, med);
    fflush(stdout);
}

int main(int argc, char **argv) {
    bench_options o;
    int prc = parse_args(argc, argv, &o);
    if (prc != 0) {
        return prc == 1 ? 0 : 2;
    }
    const char *kernels = edgelm_kernels_name();
    test_result *r = malloc(sizeof *r);
    if (r == NULL) {
        fprintf(stderr, "edgelm-bench: out of memory\n");
        return 1;
    }
    int rc = 0;
    bool first_row = true;
    if (o.json) {
        printf("[\n");
    } else {
        print_md_header();
    }
    long long peak = 0;
    for (int m = 0; m < o.n_models && rc == 0; m++) {
        edgelm_model *model = NULL;
        char err[512];
        edgelm_status st = edgelm_model_load(o.models[m], NULL, &model, err, sizeof err);
        if (st != EDGELM_OK) {
            fprintf(stderr, "edgelm-bench: %s\n", err);
            rc = 1;
            break;
        }
        model_info mi;
        describe_model(model, &mi);
        for (int t = 0; t < o.threads.n && rc == 0; t++) {
            /* llama-bench's order: every pp test, then every tg test */
            for (int kind = 0; kind < 2 && rc == 0; kind++) {
                const int_list *list = kind == 0 ? &o.n_prompt : &o.n_gen;
                for (int i = 0; i < list->n && rc == 0; i++) {
                    if (list->v[i] == 0) {
                        continue;
                    }
                    memset(r, 0, sizeof *r);
                    r->n_threads = o.threads.v[t];
                    r->n_prompt = kind == 0 ? list->v[i] : 0;
                    r->n_gen = kind == 1 ? list->v[i] : 0;
                    r->reps = o.reps;
                    if (run_test(model, &o, r) != 0) {
                        rc = 1;
                        break;
                    }
                    peak = r->peak_rss_bytes > peak ? r->peak_rss_bytes : peak;
                    if (o.json) {
                        print_json_row(o.models[m], &mi, kernels, r, first_row);
                    } else {
                        print_md_row(&mi, r);
                    }
                    first_row = false;
                }
            }
        }
        edgelm_model_free(model);
    }
    if (o.json) {
        printf("%s]\n", first_row ? "" : "\n");
    } else if (rc == 0) {
        printf("\nbuild: edgelm %s, kernels: %s, %d repetitions%s, peak RSS %.1f MiB\n",
               edgelm_version(), kernels, o.reps, o.warmup ? " after a warm-up" : "",
               (double)peak / (1024.0 * 1024.0));
    }
    free(r);
    return rc;
}
