/* chat_template.c - recognize a model's chat template family and render messages with it (see
 * chat_template.h), plus the public edgelm_chat_apply(_ex) / edgelm_chat_template_name.
 *
 * The detection order and the renderings follow llama.cpp's src/llama-chat.cpp
 * (llm_chat_detect_template, llm_chat_apply_template) for the families supported here; the
 * deliberate differences are zephyr (see chat_template.h) and qwen3, which llama.cpp's built-in
 * path renders as plain ChatML and which is rendered here as Qwen3's own template renders it.
 * Rendering makes one pass that counts every byte and copies what fits, so a caller can size its
 * buffer from the first call.
 */
#include "chat_template.h"

#include "model/model.h"

#include "base/byte_search.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static bool equals(const char *s, size_t len, const char *z) {
    return strlen(z) == len && memcmp(s, z, len) == 0;
}

static void set_eot(chat_template *t, const char *text) {
    snprintf(t->zephyr_eot, sizeof t->zephyr_eot, "%s", text);
}

void chat_template_detect(const char *tmpl, size_t len, const char *eos_text, chat_template *out) {
    memset(out, 0, sizeof *out);
    out->family = CHAT_FAMILY_CHATML;
    set_eot(out, "<|endoftext|>");
    if (tmpl == NULL || len == 0) {
        return;
    }
    static const struct {
        const char *name;
        chat_family family;
    } names[] = {
        {"chatml", CHAT_FAMILY_CHATML}, {"qwen3", CHAT_FAMILY_QWEN3},
        {"llama2", CHAT_FAMILY_LLAMA2}, {"llama3", CHAT_FAMILY_LLAMA3},
        {"zephyr", CHAT_FAMILY_ZEPHYR}, {"gemma", CHAT_FAMILY_GEMMA},
        {"phi3", CHAT_FAMILY_PHI3},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (equals(tmpl, len, names[i].name)) {
            out->family = names[i].family;
            out->recognized = true;
            return;
        }
    }
    bool found = false;
    if (bytes_contain(tmpl, len, "<|im_start|>")) {
        /* <|im_sep|> is phi4 and <end_of_utterance> SmolVLM: look like ChatML, are not */
        found = !bytes_contain(tmpl, len, "<|im_sep|>") &&
                !bytes_contain(tmpl, len, "<end_of_utterance>");
        /* Qwen3: its thinking switch, the empty think block it writes when the switch is off
         * (the Jinja source spells the newlines as \n escapes) and the bookkeeping that drops
         * old reasoning - all three, so what is called qwen3 is what render_qwen3 renders */
        const bool qwen3 = bytes_contain(tmpl, len, "enable_thinking") &&
                           bytes_contain(tmpl, len, "<think>\\n\\n</think>\\n\\n") &&
                           bytes_contain(tmpl, len, "last_query_index");
        out->family = qwen3 ? CHAT_FAMILY_QWEN3 : CHAT_FAMILY_CHATML;
    } else if ((len >= 7 && memcmp(tmpl, "mistral", 7) == 0) ||
               bytes_contain(tmpl, len, "[INST]")) {
        /* Mistral's official v1/v3/v7 templates are their own families (not supported) */
        found = !bytes_contain(tmpl, len, "[SYSTEM_PROMPT]") &&
                !bytes_contain(tmpl, len, "' [INST] ' + system_message") &&
                !bytes_contain(tmpl, len, "[AVAILABLE_TOOLS]");
        out->family = CHAT_FAMILY_LLAMA2;
        out->llama2_strip = bytes_contain(tmpl, len, "content.strip()");
        out->llama2_bos = !out->llama2_strip && bytes_contain(tmpl, len, "bos_token + '[INST]");
        out->llama2_sys =
            out->llama2_strip || out->llama2_bos || bytes_contain(tmpl, len, "<<SYS>>");
    } else if (bytes_contain(tmpl, len, "<|assistant|>") && bytes_contain(tmpl, len, "<|end|>")) {
        found = true;
        out->family = CHAT_FAMILY_PHI3;
    } else if (bytes_contain(tmpl, len, "<|user|>") &&
               (bytes_contain(tmpl, len, "<|assistant|>") ||
                bytes_contain(tmpl, len, "<|endoftext|>"))) {
        /* A literal </s> is Falcon 3 and a template that never ends a turn is GLM-Edge (both
         * unsupported); the rest end every turn with eos_token or <|endoftext|>: zephyr. */
        found =
            !bytes_contain(tmpl, len, "[gMASK]") && !bytes_contain(tmpl, len, "</s>") &&
            (bytes_contain(tmpl, len, "eos_token") || bytes_contain(tmpl, len, "<|endoftext|>"));
        out->family = CHAT_FAMILY_ZEPHYR;
        if (!bytes_contain(tmpl, len, "<|endoftext|>") && eos_text != NULL && eos_text[0] != '\0' &&
            strlen(eos_text) < sizeof out->zephyr_eot) {
            set_eot(out, eos_text);
        }
    } else if (bytes_contain(tmpl, len, "<start_of_turn>")) {
        found = true;
        out->family = CHAT_FAMILY_GEMMA;
    } else if (bytes_contain(tmpl, len, "<|start_header_id|>") &&
               bytes_contain(tmpl, len, "<|end_header_id|>")) {
        found = true;
        out->family = CHAT_FAMILY_LLAMA3;
    }
    if (!found) {
        chat_template fallback;
        chat_template_detect(NULL, 0, NULL, &fallback);
        *out = fallback;
        return;
    }
    out->recognized = true;
}

const char *chat_template_name(const chat_template *t) {
    if (!t->recognized) {
        return "default";
    }
    switch (t->family) {
    case CHAT_FAMILY_CHATML:
        return "chatml";
    case CHAT_FAMILY_QWEN3:
        return "qwen3";
    case CHAT_FAMILY_LLAMA2:
        return "llama2";
    case CHAT_FAMILY_LLAMA3:
        return "llama3";
    case CHAT_FAMILY_ZEPHYR:
        return "zephyr";
    case CHAT_FAMILY_GEMMA:
        return "gemma";
    case CHAT_FAMILY_PHI3:
        return "phi3";
    }
    return "default";
}

/* ---- rendering ----------------------------------------------------------------------------- */

/* Output that counts every byte and stores what fits (keeping room for the NUL). */
typedef struct out_text {
    char *buf;
    size_t size;
    size_t len; /* bytes produced so far, stored or not */
} out_text;

static void put_n(out_text *o, const char *s, size_t n) {
    if (o->buf != NULL && o->len < o->size && n > 0) {
        size_t room = o->size - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len = n > SIZE_MAX - o->len ? SIZE_MAX : o->len + n;
}

static void put(out_text *o, const char *s) { put_n(o, s, strlen(s)); }

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Content with C-locale white space removed at both ends (llama.cpp's trim). */
static void put_trimmed(out_text *o, const char *s) {
    size_t begin = 0, end = strlen(s);
    while (begin < end && is_space(s[begin])) {
        begin++;
    }
    while (end > begin && is_space(s[end - 1])) {
        end--;
    }
    put_n(o, s + begin, end - begin);
}

static void put_content(out_text *o, const char *s, bool trim) {
    if (trim) {
        put_trimmed(o, s);
    } else {
        put(o, s);
    }
}

static void render_llama2(const chat_template *t, const edgelm_chat_message *m, size_t n,
                          out_text *o) {
    bool inside_turn = true; /* the first [INST] is written up front, without BOS */
    put(o, "[INST] ");
    for (size_t i = 0; i < n; i++) {
        if (!inside_turn) {
            inside_turn = true;
            put(o, t->llama2_bos ? "<s>[INST] " : "[INST] ");
        }
        if (strcmp(m[i].role, "system") == 0) {
            if (t->llama2_sys) {
                put(o, "<<SYS>>\n");
                put_content(o, m[i].content, t->llama2_strip);
                put(o, "\n<</SYS>>\n\n");
            } else {
                /* no system slot: it leads the first message, as plain text */
                put_content(o, m[i].content, t->llama2_strip);
                put(o, "\n");
            }
        } else if (strcmp(m[i].role, "user") == 0) {
            put_content(o, m[i].content, t->llama2_strip);
            put(o, " [/INST]");
        } else {
            put_content(o, m[i].content, t->llama2_strip);
            put(o, "</s>");
            inside_turn = false;
        }
    }
}

static size_t trimmed_len(const char *s) {
    size_t begin = 0, end = strlen(s);
    while (begin < end && is_space(s[begin])) {
        begin++;
    }
    while (end > begin && is_space(s[end - 1])) {
        end--;
    }
    return end - begin;
}

static void render_gemma(const edgelm_chat_message *m, size_t n, bool add_assistant, out_text *o) {
    /* Gemma has no system turn: system messages are trimmed, concatenated and put at the head
     * of the next non-model turn, followed by a blank line; "assistant" is called "model". */
    size_t system_from = 0;  /* first message whose system text is still pending */
    size_t system_bytes = 0; /* pending system text (trimmed) */
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m[i].role, "system") == 0) {
            system_bytes += trimmed_len(m[i].content);
            continue;
        }
        const char *role = strcmp(m[i].role, "assistant") == 0 ? "model" : m[i].role;
        const bool model = strcmp(role, "model") == 0;
        put(o, "<start_of_turn>");
        put(o, role);
        put(o, "\n");
        if (system_bytes > 0 && !model) {
            for (size_t k = system_from; k < i; k++) {
                if (strcmp(m[k].role, "system") == 0) {
                    put_trimmed(o, m[k].content);
                }
            }
            put(o, "\n\n");
            system_bytes = 0;
            system_from = i + 1;
        } else if (system_bytes == 0) {
            system_from = i + 1;
        }
        put_trimmed(o, m[i].content);
        put(o, "<end_of_turn>\n");
    }
    if (add_assistant) {
        put(o, "<start_of_turn>model\n");
    }
}

/* The families whose every turn is  turn_start role role_end content turn_end after_end  and
 * whose generation prompt is a fixed text. */
typedef struct turn_format {
    const char *turn_start, *role_end, *turn_end, *after_end, *assistant;
    bool trim_content; /* content with leading and trailing whitespace removed (llama3) */
} turn_format;

static const turn_format chatml_turns = {.turn_start = "<|im_start|>",
                                         .role_end = "\n",
                                         .turn_end = "<|im_end|>",
                                         .after_end = "\n",
                                         .assistant = "<|im_start|>assistant\n"};
static const turn_format llama3_turns = {.turn_start = "<|start_header_id|>",
                                         .role_end = "<|end_header_id|>\n\n",
                                         .turn_end = "<|eot_id|>",
                                         .after_end = "",
                                         .assistant =
                                             "<|start_header_id|>assistant<|end_header_id|>\n\n",
                                         .trim_content = true};
/* zephyr's turn end is the model's own end-of-turn text (chat_template.h), given at render time */
static const turn_format zephyr_turns = {
    .turn_start = "<|", .role_end = "|>\n", .after_end = "\n", .assistant = "<|assistant|>\n"};
static const turn_format phi3_turns = {.turn_start = "<|",
                                       .role_end = "|>\n",
                                       .turn_end = "<|end|>",
                                       .after_end = "\n",
                                       .assistant = "<|assistant|>\n"};

static void render_turns(const turn_format *f, const char *turn_end, const edgelm_chat_message *m,
                         size_t n, bool add_assistant, out_text *o) {
    for (size_t i = 0; i < n; i++) {
        put(o, f->turn_start);
        put(o, m[i].role);
        put(o, f->role_end);
        if (f->trim_content) {
            put_trimmed(o, m[i].content);
        } else {
            put(o, m[i].content);
        }
        put(o, turn_end);
        put(o, f->after_end);
    }
    if (add_assistant) {
        put(o, f->assistant);
    }
}

/* ---- qwen3 --------------------------------------------------------------------------------- */

/* A piece of a message's content (not NUL-terminated). */
typedef struct text_span {
    const char *s;
    size_t len;
} text_span;

/* Python's str.lstrip('\n') (left), rstrip('\n') (right) or strip('\n') (both): only newlines. */
static text_span strip_newlines(text_span t, bool left, bool right) {
    while (left && t.len > 0 && t.s[0] == '\n') {
        t.s++;
        t.len--;
    }
    while (right && t.len > 0 && t.s[t.len - 1] == '\n') {
        t.len--;
    }
    return t;
}

/* Start of the text after the last of the non-overlapping needles in hay[0..hay_len) that Python's
 * str.split finds, or SIZE_MAX when there is none. */
static size_t after_last(const char *hay, size_t hay_len, const char *needle) {
    const size_t needle_len = strlen(needle);
    size_t after = SIZE_MAX, from = 0;
    for (;;) {
        size_t at = bytes_find(hay + from, hay_len - from, needle, needle_len);
        if (at == SIZE_MAX) {
            return after;
        }
        after = from + at + needle_len;
        from = after;
    }
}

/* The template's reading of an assistant turn that carries its reasoning inline:
 *   content   = content.split('</think>')[-1].lstrip('\n')
 *   reasoning = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n')
 * and, without a </think>, the content as it is and no reasoning. */
static void split_reasoning(const char *content, text_span *answer, text_span *reasoning) {
    const size_t len = strlen(content);
    *answer = (text_span){content, len};
    *reasoning = (text_span){content, 0};
    const size_t first_close = bytes_find(content, len, "</think>", strlen("</think>"));
    if (first_close == SIZE_MAX) {
        return;
    }
    const size_t answer_at = after_last(content, len, "</think>");
    *answer = strip_newlines((text_span){content + answer_at, len - answer_at}, true, false);
    text_span before = strip_newlines((text_span){content, first_close}, false, true);
    const size_t open_end = after_last(before.s, before.len, "<think>");
    if (open_end != SIZE_MAX) {
        before.s += open_end;
        before.len -= open_end;
    }
    *reasoning = strip_newlines(before, true, false);
}

static bool has_prefix(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool has_suffix(const char *s, const char *suffix) {
    const size_t len = strlen(s), suffix_len = strlen(suffix);
    return len >= suffix_len && memcmp(s + len - suffix_len, suffix, suffix_len) == 0;
}

/* Qwen3's template (Qwen/Qwen3-0.6B tokenizer_config.json) for string contents; what it does
 * and leaves out is listed at chat_template_render. */
static void render_qwen3(const edgelm_chat_message *m, size_t n, const edgelm_chat_params *params,
                         out_text *o) {
    /* ns.last_query_index: the last user message that is not a tool's result passed back as a
     * user turn; when there is none it stays n - 1, which no turn comes after */
    size_t last_query = n > 0 ? n - 1 : 0;
    for (size_t k = n; k-- > 0;) {
        if (strcmp(m[k].role, "user") == 0 && !(has_prefix(m[k].content, "<tool_response>") &&
                                                has_suffix(m[k].content, "</tool_response>"))) {
            last_query = k;
            break;
        }
    }
    if (n > 0 && strcmp(m[0].role, "system") == 0) {
        put(o, "<|im_start|>system\n");
        put(o, m[0].content);
        put(o, "<|im_end|>\n");
    }
    for (size_t i = 0; i < n; i++) {
        const char *role = m[i].role;
        if (strcmp(role, "user") == 0 || (strcmp(role, "system") == 0 && i > 0)) {
            put(o, "<|im_start|>");
            put(o, role);
            put(o, "\n");
            put(o, m[i].content);
            put(o, "<|im_end|>\n");
        } else if (strcmp(role, "assistant") == 0) {
            text_span answer, reasoning;
            split_reasoning(m[i].content, &answer, &reasoning);
            put(o, "<|im_start|>assistant\n");
            /* reasoning survives only after the last query: older turns show their answers */
            if (i > last_query && (i == n - 1 || reasoning.len > 0)) {
                const text_span r = strip_newlines(reasoning, true, true);
                put(o, "<think>\n");
                put_n(o, r.s, r.len);
                put(o, "\n</think>\n\n");
                answer = strip_newlines(answer, true, false);
            }
            put_n(o, answer.s, answer.len);
            put(o, "<|im_end|>\n");
        } else if (strcmp(role, "tool") == 0) {
            /* a run of tool results is one user turn */
            if (i == 0 || strcmp(m[i - 1].role, "tool") != 0) {
                put(o, "<|im_start|>user");
            }
            put(o, "\n<tool_response>\n");
            put(o, m[i].content);
            put(o, "\n</tool_response>");
            if (i == n - 1 || strcmp(m[i + 1].role, "tool") != 0) {
                put(o, "<|im_end|>\n");
            }
        }
        /* any other role renders nothing, as in the template */
    }
    if (params->add_assistant) {
        put(o, "<|im_start|>assistant\n");
        if (!params->enable_thinking) {
            put(o, "<think>\n\n</think>\n\n"); /* reasoning already over: answer at once */
        }
    }
}

int32_t chat_template_render(const chat_template *t, const edgelm_chat_message *messages,
                             size_t n_messages, const edgelm_chat_params *params, char *buf,
                             size_t buf_size) {
    if (t == NULL || params == NULL || (messages == NULL && n_messages > 0) ||
        (buf == NULL && buf_size > 0)) {
        return -(int32_t)EDGELM_ERR_INVALID_ARGUMENT;
    }
    const bool add_assistant = params->add_assistant;
    for (size_t i = 0; i < n_messages; i++) {
        if (messages[i].role == NULL || messages[i].content == NULL) {
            return -(int32_t)EDGELM_ERR_INVALID_ARGUMENT;
        }
    }
    out_text o = {buf, buf_size, 0};
    const edgelm_chat_message *m = messages;
    switch (t->family) {
    case CHAT_FAMILY_LLAMA2:
        render_llama2(t, m, n_messages, &o); /* the assistant's turn is already open */
        break;
    case CHAT_FAMILY_GEMMA:
        render_gemma(m, n_messages, add_assistant, &o);
        break;
    case CHAT_FAMILY_ZEPHYR:
        render_turns(&zephyr_turns, t->zephyr_eot, m, n_messages, add_assistant, &o);
        break;
    case CHAT_FAMILY_CHATML:
        render_turns(&chatml_turns, chatml_turns.turn_end, m, n_messages, add_assistant, &o);
        break;
    case CHAT_FAMILY_QWEN3:
        render_qwen3(m, n_messages, params, &o);
        break;
    case CHAT_FAMILY_LLAMA3:
        render_turns(&llama3_turns, llama3_turns.turn_end, m, n_messages, add_assistant, &o);
        break;
    case CHAT_FAMILY_PHI3:
        render_turns(&phi3_turns, phi3_turns.turn_end, m, n_messages, add_assistant, &o);
        break;
    }
    if (o.len > (size_t)INT32_MAX) {
        return -(int32_t)EDGELM_ERR_TOO_LARGE;
    }
    if (buf != NULL && o.len < buf_size) {
        buf[o.len] = '\0';
    }
    return (int32_t)o.len;
}

/* ---- public API ---------------------------------------------------------------------------- */

static void model_template(const edgelm_model *model, chat_template *out) {
    gguf_string s = {NULL, 0};
    if (gguf_get_string(&model->gguf, "tokenizer.chat_template", &s) != EDGELM_OK ||
        s.len > SIZE_MAX) {
        s.data = NULL;
        s.len = 0;
    }
    const char *eos = tokenizer_token_text(model->tok, tokenizer_eos(model->tok));
    chat_template_detect(s.data, (size_t)s.len, eos, out);
}

edgelm_chat_params edgelm_chat_params_default(void) {
    edgelm_chat_params p = {.add_assistant = true, .enable_thinking = false};
    return p;
}

int32_t edgelm_chat_apply_ex(const edgelm_model *model, const edgelm_chat_message *messages,
                             size_t n_messages, const edgelm_chat_params *params, char *buf,
                             size_t buf_size) {
    if (model == NULL) {
        return -(int32_t)EDGELM_ERR_INVALID_ARGUMENT;
    }
    const edgelm_chat_params defaults = edgelm_chat_params_default();
    chat_template t;
    model_template(model, &t);
    return chat_template_render(&t, messages, n_messages, params != NULL ? params : &defaults, buf,
                                buf_size);
}

int32_t edgelm_chat_apply(const edgelm_model *model, const edgelm_chat_message *messages,
                          size_t n_messages, bool add_assistant, char *buf, size_t buf_size) {
    edgelm_chat_params params = edgelm_chat_params_default();
    params.add_assistant = add_assistant;
    return edgelm_chat_apply_ex(model, messages, n_messages, &params, buf, buf_size);
}

const char *edgelm_chat_template_name(const edgelm_model *model, bool *recognized) {
    chat_template t;
    if (model == NULL) {
        chat_template_detect(NULL, 0, NULL, &t);
    } else {
        model_template(model, &t);
    }
    if (recognized != NULL) {
        *recognized = t.recognized;
    }
    return chat_template_name(&t);
}
