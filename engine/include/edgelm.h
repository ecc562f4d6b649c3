/* edgelm.h - the public API of the edgelm inference engine.
 *
 * Two handles: edgelm_model (immutable after load, shareable between threads and sessions) and
 * edgelm_session (KV cache, sampler and scratch; used by one thread at a time, except
 * edgelm_session_cancel(), which any thread may call). Every fallible call returns an
 * edgelm_status; edgelm_strerror() names it and the handle keeps a message saying exactly what
 * went wrong ("file: offset N: why" for load errors). Destructors accept NULL.
 * Depends on nothing but libc, libm and pthreads.
 */
#ifndef EDGELM_H
#define EDGELM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum edgelm_status {
    EDGELM_OK = 0,
    EDGELM_ERR_INVALID_ARGUMENT = 1, /* a parameter out of range or NULL where not allowed */
    EDGELM_ERR_IO = 2,               /* open/stat/mmap/read/write failed (errno in message) */
    EDGELM_ERR_OUT_OF_MEMORY = 3,
    EDGELM_ERR_BAD_MAGIC = 4,         /* not a GGUF file */
    EDGELM_ERR_UNSUPPORTED_VERSION = 5, /* GGUF v1 or a version from the future */
    EDGELM_ERR_TRUNCATED = 6,         /* a read ran past the end of the file */
    EDGELM_ERR_BAD_VALUE_TYPE = 7,    /* unknown metadata value type, or a key of the wrong type */
    EDGELM_ERR_BAD_TENSOR_TYPE = 8,   /* unknown or unsupported tensor element type */
    EDGELM_ERR_BAD_DIMENSIONS = 9,    /* n_dims > 4, a zero dimension, or an element count overflow */
    EDGELM_ERR_TENSOR_OUT_OF_BOUNDS = 10, /* tensor data outside the file or misaligned */
    EDGELM_ERR_TOO_LARGE = 11,        /* a count or length no valid file of this size can hold */
    EDGELM_ERR_BAD_ALIGNMENT = 12,    /* general.alignment not a power of two */
    EDGELM_ERR_DUPLICATE = 13,        /* duplicate metadata key or tensor name */
    EDGELM_ERR_MISSING = 14,          /* a required metadata key or tensor is absent */
    EDGELM_ERR_UNSUPPORTED_ARCH = 15, /* general.architecture not implemented */
    EDGELM_ERR_BAD_SHAPE = 16,        /* tensor shape disagrees with the architecture */
    EDGELM_ERR_TOKENIZER = 17,        /* tokenizer metadata missing or inconsistent */
    EDGELM_ERR_CONTEXT_FULL = 18,     /* no room left in the KV cache */
    EDGELM_ERR_CANCELLED = 19,        /* edgelm_session_cancel() was called */
    EDGELM_ERR_THREAD = 20,           /* a worker thread could not be created */
    EDGELM_ERR_BAD_TOKEN = 21,        /* a token id outside the vocabulary */
    EDGELM_ERR_BAD_STRING = 22,       /* a metadata string that is not valid for its use */
    EDGELM_ERR_BAD_SCHEMA = 23,       /* invalid JSON Schema, or a keyword edgelm does not support */
    EDGELM_ERR_STATE_MISMATCH = 24,   /* saved state from another model or cache layout */
    EDGELM_ERR_CORRUPT = 25,          /* saved state fails its checksum or structure checks */
} edgelm_status;

/* Static English name of a status ("truncated file", ...). Never NULL. */
const char *edgelm_strerror(edgelm_status status);

/* Library version string, e.g. "0.1.0". */
const char *edgelm_version(void);

/* Name of the kernel level the engine runs ("avx512", "avx2", "sse2", "neon" or "ref"): chosen
 * once per process from the CPU's features, or forced with the environment variable
 * EDGELM_KERNELS=ref|sse2|avx2|avx512|neon (a value this CPU cannot run makes model loads fail
 * with EDGELM_ERR_INVALID_ARGUMENT). Never NULL. */
const char *edgelm_kernels_name(void);

/* ---- model --------------------------------------------------------------------------------- */

typedef struct edgelm_model edgelm_model;

typedef struct edgelm_model_params {
    bool prefault; /* touch every weight page at load (MAP_POPULATE); default false */
    /* Load the tokenizer and metadata only: no architecture check, no weights bound, and no
     * session can be created (edgelm_session_create refuses). For tokenizing, and the only way
     * to load a vocabulary-only GGUF (no tensors, like llama.cpp's ggml-vocab-*.gguf); default
     * false. */
    bool vocab_only;
} edgelm_model_params;

edgelm_model_params edgelm_model_params_default(void);

/* Map and validate a GGUF file. On success *out owns the model; on failure *out is NULL and, if
 * err is not NULL, a NUL-terminated message ("path: offset N: why") is written to err. */
edgelm_status edgelm_model_load(const char *path, const edgelm_model_params *params,
                                edgelm_model **out, char *err, size_t err_size);
void edgelm_model_free(edgelm_model *model);

int32_t edgelm_model_n_vocab(const edgelm_model *model);
int32_t edgelm_model_n_ctx_train(const edgelm_model *model);
int32_t edgelm_model_n_layer(const edgelm_model *model);
int32_t edgelm_model_n_embd(const edgelm_model *model);
int32_t edgelm_model_token_bos(const edgelm_model *model); /* -1 when the model has none */
int32_t edgelm_model_token_eos(const edgelm_model *model); /* -1 when the model has none */
bool edgelm_model_add_bos(const edgelm_model *model);      /* metadata add_bos_token or default */
/* True for tokens that end generation (EOS, EOT and the like). */
bool edgelm_model_token_is_eog(const edgelm_model *model, int32_t token);
/* Bytes of weights mapped from the file, and the bytes a session of n_ctx tokens allocates. */
uint64_t edgelm_model_weight_bytes(const edgelm_model *model);
uint64_t edgelm_model_session_bytes(const edgelm_model *model, uint32_t n_ctx);
/* The context a session created with params.n_ctx = requested gets (0 = the model's training
 * context, capped at EDGELM_DEFAULT_MAX_CTX). */
uint32_t edgelm_model_effective_ctx(const edgelm_model *model, uint32_t requested);
/* Fingerprint of the weights and tokenizer (FNV-1a 64 over header and tensor table). */
uint64_t edgelm_model_fingerprint(const edgelm_model *model);
/* What the architecture's block looks like, one "name: value" per line (heads, rope style, base,
 * scaling and frequency factors, q/k norms, QKV biases, fused tensors, sliding window, tied
 * output), written NUL-terminated into buf (truncated to size); returns the length the whole
 * text needs, as snprintf does. A vocab_only model writes "vocab_only: yes". */
size_t edgelm_model_describe(const edgelm_model *model, char *buf, size_t size);

/* Metadata and tensor inspection (for --info). Index from 0; returns false past the end.
 * value is rendered as text (arrays abbreviated) into buf. */
int64_t edgelm_model_n_metadata(const edgelm_model *model);
bool edgelm_model_metadata(const edgelm_model *model, int64_t index, const char **key, char *buf,
                           size_t buf_size);
/* The string value of a metadata key, NUL-terminated copy in buf; false when absent / not a
 * string or when it does not fit. */
bool edgelm_model_metadata_string(const edgelm_model *model, const char *key, char *buf,
                                  size_t buf_size);
int64_t edgelm_model_n_tensors(const edgelm_model *model);
typedef struct edgelm_tensor_info {
    const char *name; /* NUL-terminated, owned by the model */
    const char *type_name;
    uint32_t n_dims;
    uint64_t ne[4];
    uint64_t n_bytes;
    uint64_t file_offset;
} edgelm_tensor_info;
bool edgelm_model_tensor(const edgelm_model *model, int64_t index, edgelm_tensor_info *info);

/* ---- tokenizer ----------------------------------------------------------------------------- */

/* Tokenize len bytes of UTF-8 text. add_bos prepends BOS (when the model has one);
 * parse_special recognizes the model's control/user-defined tokens written in the text.
 * Returns the number of tokens; if it exceeds max_tokens, nothing beyond max_tokens is written
 * and the full count is still returned, so a caller may retry with a larger buffer.
 * Returns a negative edgelm_status on error. */
int32_t edgelm_tokenize(const edgelm_model *model, const char *text, size_t len, bool add_bos,
                        bool parse_special, int32_t *tokens, int32_t max_tokens);

/* The bytes a token stands for in output text (byte-fallback tokens give their byte, SPM's
 * U+2581 becomes a space, byte-level BPE is mapped back to bytes). Control tokens give "".
 * Returns the byte count (may exceed buf_size, then nothing is written) or a negative status. */
int32_t edgelm_token_to_piece(const edgelm_model *model, int32_t token, char *buf, size_t buf_size);

/* The vocabulary string of a token as stored in the file (for debugging), NULL if out of range. */
const char *edgelm_token_text(const edgelm_model *model, int32_t token);

/* ---- sampling ------------------------------------------------------------------------------ */

typedef struct edgelm_sampler_params {
    float temperature;    /* 0 = greedy (argmax) */
    int32_t top_k;        /* 0 = disabled */
    float top_p;          /* 0..1; 1 = disabled, 0 = only the most probable token */
    float min_p;          /* 0 = disabled */
    float repeat_penalty; /* 1 = disabled */
    int32_t repeat_last_n; /* tokens looked back for the penalty */
    uint64_t seed;         /* used as given; 0 is an ordinary seed */
} edgelm_sampler_params;

edgelm_sampler_params edgelm_sampler_params_default(void);

/* ---- session ------------------------------------------------------------------------------- */

typedef struct edgelm_session edgelm_session;

typedef struct edgelm_session_params {
    uint32_t n_ctx;   /* 0 = the model's training context, capped at EDGELM_DEFAULT_MAX_CTX */
    int32_t n_threads; /* 0 = number of online CPUs */
} edgelm_session_params;

#define EDGELM_DEFAULT_MAX_CTX 2048u

edgelm_session_params edgelm_session_params_default(void);

/* The session keeps a pointer to model; the model must outlive it. */
edgelm_status edgelm_session_create(const edgelm_model *model, const edgelm_session_params *params,
                                    edgelm_session **out, char *err, size_t err_size);
void edgelm_session_free(edgelm_session *session);

/* Message for the last failed call on this session ("" if none). */
const char *edgelm_session_errmsg(const edgelm_session *session);
uint32_t edgelm_session_n_ctx(const edgelm_session *session);
int32_t edgelm_session_n_threads(const edgelm_session *session);
/* Tokens currently held in the KV cache. */
int32_t edgelm_session_n_past(const edgelm_session *session);
/* Forget everything in the KV cache (keeps allocations). */
void edgelm_session_reset(edgelm_session *session);

/* Run n tokens through the model at positions n_past..n_past+n-1, append them to the KV cache and
 * leave the logits of the last one in edgelm_session_logits(). */
edgelm_status edgelm_session_eval(edgelm_session *session, const int32_t *tokens, int32_t n);
/* Logits (n_vocab floats) of the last evaluated token; valid until the next eval. */
const float *edgelm_session_logits(const edgelm_session *session);

/* Configure the sampler (resets its RNG to params->seed and clears the penalty history). */
edgelm_status edgelm_session_set_sampler(edgelm_session *session,
                                         const edgelm_sampler_params *params);
/* Sample the next token from the current logits. Records it in the penalty history. */
int32_t edgelm_session_sample(edgelm_session *session);

/* Ask a running eval/generate to stop at the next token boundary. Safe from any thread and from
 * signal handlers (sets an atomic flag). The flag clears when the next generate/eval starts. */
void edgelm_session_cancel(edgelm_session *session);

/* Called for every generated token with its text. Multi-byte UTF-8 characters that are split
 * across tokens are delivered whole: text may be empty for a token that ends inside a character
 * and carry several tokens' bytes later. At the end, bytes of a character the model never
 * finished are flushed in one last call with token -1. Return false to stop generation. */
typedef bool (*edgelm_token_callback)(void *user_data, int32_t token, const char *text,
                                      size_t text_len);

typedef enum edgelm_finish_reason {
    EDGELM_FINISH_LENGTH = 0, /* n_predict tokens generated */
    EDGELM_FINISH_EOG = 1,    /* the model produced an end-of-generation token */
    EDGELM_FINISH_CALLBACK = 2, /* the callback returned false */
    EDGELM_FINISH_CANCELLED = 3,
    EDGELM_FINISH_CONTEXT_FULL = 4, /* n_ctx reached and context shift disabled */
    EDGELM_FINISH_STOP_STRING = 5,  /* one of params->stop appeared (it is not delivered) */
    EDGELM_FINISH_GRAMMAR = 6,      /* format JSON: the top-level value is complete */
} edgelm_finish_reason;

typedef enum edgelm_output_format {
    EDGELM_FORMAT_TEXT = 0,
    EDGELM_FORMAT_JSON = 1,        /* any RFC 8259 value with an object at the top level */
    EDGELM_FORMAT_JSON_SCHEMA = 2, /* a value valid against json_schema */
} edgelm_output_format;

typedef struct edgelm_generate_params {
    const char *prompt;    /* UTF-8 text; tokenized with the model's BOS rule */
    size_t prompt_len;     /* bytes; (size_t)-1 = strlen(prompt) */
    int32_t n_predict;     /* tokens to generate; -1 = until EOG or the context is full */
    bool parse_special;    /* recognize special tokens written in the prompt (default true) */
    edgelm_sampler_params sampling;
    /* Prefix reuse: keep the longest common token prefix between what the KV cache holds and
     * this prompt, prefill only the rest (timings.n_cached_tokens says how many were reused).
     * false = start from an empty cache. Default false. */
    bool reuse_prefix;
    const char *const *stop; /* n_stop stop strings; generation ends before any of them */
    int32_t n_stop;
    edgelm_output_format format; /* default TEXT */
    const char *json_schema;     /* schema text when format == EDGELM_FORMAT_JSON_SCHEMA */
    bool context_shift;  /* at n_ctx drop the oldest half after n_keep and go on (default true;
                          * never with n_predict -1, which means "until EOG or the context is
                          * full") */
    int32_t n_keep;      /* tokens kept at the start when shifting, besides BOS (always kept);
                          * -1 = the whole prompt. Default 0 */
} edgelm_generate_params;

edgelm_generate_params edgelm_generate_params_default(void);

typedef struct edgelm_timings {
    int32_t n_prompt_tokens;
    int32_t n_cached_tokens; /* prompt tokens reused from the KV cache (not prefilled) */
    int32_t n_context_shifts;
    int32_t n_generated_tokens;
    double prompt_ms;    /* prefill wall time */
    double decode_ms;    /* wall time of the tokens generated after the first */
    double ttft_ms;      /* from the generate call to the first generated token's text */
    double sample_ms;
    int32_t n_forward_passes; /* model evaluations: one per prefill chunk and per generated token
                               * fed back (llama.cpp's n_decode) */
} edgelm_timings;

/* Start fresh (reset the KV cache), prefill the prompt, then sample and evaluate up to n_predict
 * tokens, calling callback for each. finish (may be NULL) says why it ended. */
edgelm_status edgelm_generate(edgelm_session *session, const edgelm_generate_params *params,
                              edgelm_token_callback callback, void *user_data,
                              edgelm_finish_reason *finish);

/* Timings of the last edgelm_generate() call. */
void edgelm_session_timings(const edgelm_session *session, edgelm_timings *out);

/* ---- prompt state (KV cache persistence) --------------------------------------------------- */

/* A snapshot of a session: model fingerprint, cache layout, the tokens held and their K/V rows,
 * with a checksum. Restoring it into a session of the same model and layout lets the next
 * generate with reuse_prefix skip prefilling the common prefix. */
/* Bytes edgelm_session_state_save needs for the current contents. */
size_t edgelm_session_state_size(const edgelm_session *session);
edgelm_status edgelm_session_state_save(const edgelm_session *session, void *buf, size_t size,
                                        size_t *written);
/* On any error the session is left empty (reset), never half-restored. */
edgelm_status edgelm_session_state_load(edgelm_session *session, const void *buf, size_t size);
/* Files are written atomically (temporary file + rename). */
edgelm_status edgelm_session_state_save_file(const edgelm_session *session, const char *path);
edgelm_status edgelm_session_state_load_file(edgelm_session *session, const char *path);
/* Tokens currently held in the KV cache (n_past of them); valid until the next call. */
const int32_t *edgelm_session_tokens(const edgelm_session *session);

/* ---- chat templates ------------------------------------------------------------------------ */

typedef struct edgelm_chat_message {
    const char *role;    /* "system", "user" or "assistant" (qwen3 also reads "tool") */
    const char *content;
} edgelm_chat_message;

/* Render messages with the template family recognized in tokenizer.chat_template (zephyr,
 * chatml, qwen3, llama2, llama3, gemma, phi3; "default" = chatml when the model has none or it
 * is not recognized). add_assistant appends the opening of the assistant's turn. Returns the
 * byte count (excluding the NUL, which is written when it fits) or a negative status; call with
 * buf NULL and buf_size 0 to size the buffer. Thinking is off (edgelm_chat_params). */
int32_t edgelm_chat_apply(const edgelm_model *model, const edgelm_chat_message *messages,
                          size_t n_messages, bool add_assistant, char *buf, size_t buf_size);

typedef struct edgelm_chat_params {
    bool add_assistant; /* append the opening of the assistant's turn (default true) */
    /* Qwen3's switch (its template's enable_thinking; only the "qwen3" family reads it). false,
     * the default, opens the assistant's turn with an empty "<think>\n\n</think>\n\n", so the
     * model answers at once instead of writing a long hidden reasoning first; true leaves the
     * turn open for the model's own <think>...</think> block. */
    bool enable_thinking;
} edgelm_chat_params;

edgelm_chat_params edgelm_chat_params_default(void);

/* edgelm_chat_apply with params (NULL = edgelm_chat_params_default()). */
int32_t edgelm_chat_apply_ex(const edgelm_model *model, const edgelm_chat_message *messages,
                             size_t n_messages, const edgelm_chat_params *params, char *buf,
                             size_t buf_size);
/* The family edgelm_chat_apply uses for this model ("chatml", "qwen3", ...; see above), and
 * whether it was recognized. A static string. */
const char *edgelm_chat_template_name(const edgelm_model *model, bool *recognized);

#ifdef __cplusplus
}
#endif
#endif /* EDGELM_H */
