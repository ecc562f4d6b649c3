/* chat_template.h - chat prompts for the template families small models ship with, recognized
 * by distinctive substrings of tokenizer.chat_template and rendered as llama.cpp's built-in
 * llm_chat_apply_template renders them. Not a Jinja interpreter.
 *
 * Families: chatml (Qwen2/2.5, SmolLM, OpenHermes), qwen3 (see below), llama2 (with its <<SYS>>,
 * BOS-in-history and strip variants), llama3, zephyr (TinyLlama, StableLM 2 Zephyr), gemma,
 * phi3. Anything else - or no template - falls back to chatml, reported as "default" and not
 * recognized.
 *
 * qwen3 is not one of llama.cpp's built-in families (its detector calls Qwen3 chatml): it is
 * rendered as Qwen3's own Jinja template renders string messages, thinking switch included.
 */
#ifndef EDGELM_CHAT_TEMPLATE_H
#define EDGELM_CHAT_TEMPLATE_H

#include "edgelm.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum chat_family {
    CHAT_FAMILY_CHATML = 0,
    CHAT_FAMILY_QWEN3, /* ChatML with Qwen3's <think> handling */
    CHAT_FAMILY_LLAMA2,
    CHAT_FAMILY_LLAMA3,
    CHAT_FAMILY_ZEPHYR,
    CHAT_FAMILY_GEMMA,
    CHAT_FAMILY_PHI3,
} chat_family;

typedef struct chat_template {
    chat_family family;
    bool recognized;     /* false: the template was absent or unknown; family is chatml */
    bool llama2_sys;     /* llama2: the system message goes in <<SYS>> ... <</SYS>> */
    bool llama2_bos;     /* llama2: later turns open with "<s>[INST] " */
    bool llama2_strip;   /* llama2: contents are trimmed */
    char zephyr_eot[64]; /* zephyr: what ends a turn (see chat_template_detect) */
} chat_template;

/* Recognize template text (len bytes; tmpl may be NULL for "no template"). A template that is
 * exactly a family name ("chatml", "qwen3", "llama2", "llama3", "zephyr", "gemma", "phi3")
 * selects it. qwen3 is a ChatML template with Qwen3's enable_thinking switch, its empty
 * "<think>\n\n</think>\n\n" and its last_query_index bookkeeping (Qwen3's hybrid thinking
 * models, Qwen3-0.6B for one); ChatML templates that mention <think> without all three (QwQ's,
 * for one) stay chatml.
 * eos_text is the model's EOS token text (may be NULL): zephyr templates that write eos_token
 * end turns with it (TinyLlama: "</s>"), those that spell out <|endoftext|> with that, which is
 * also the fallback. (llama.cpp's detector sends TinyLlama's template to glmedge and always ends
 * zephyr turns with <|endoftext|>; both are wrong for TinyLlama, whose EOS is </s>.) */
void chat_template_detect(const char *tmpl, size_t len, const char *eos_text, chat_template *out);

/* "chatml", "qwen3", "llama2", "llama3", "zephyr", "gemma", "phi3"; "default" when not
 * recognized. */
const char *chat_template_name(const chat_template *t);

/* Render messages (role and content NUL-terminated) with params (add_assistant; enable_thinking
 * for qwen3). Returns the byte count, writing the text and a NUL when count < buf_size; or a
 * negative edgelm_status (INVALID_ARGUMENT for NULL params, role or content, TOO_LARGE past
 * INT32_MAX).
 *
 * qwen3, as its template renders messages whose content is a string: a first system message
 * opens the prompt; user turns, and later system ones, are ChatML turns; consecutive "tool"
 * messages share one user turn of <tool_response> blocks; other roles render nothing. An
 * assistant turn's text after its last </think> is its answer, and the text before its first
 * </think> (after the last <think> there) its reasoning: turns before the last user query (a
 * user message that is not a <tool_response>) keep only the answer; later ones keep the
 * reasoning in a <think> block when they had some, and always get the block when they are the
 * last message. enable_thinking only changes the generation prompt. Not rendered: the
 * template's tools list, tool_calls and reasoning_content fields (edgelm_chat_message has
 * none). With no messages at all the template fails (it reads messages[0]); this renders the
 * generation prompt alone. */
int32_t chat_template_render(const chat_template *t, const edgelm_chat_message *messages,
                             size_t n_messages, const edgelm_chat_params *params, char *buf,
                             size_t buf_size);

#endif /* EDGELM_CHAT_TEMPLATE_H */
