/* test_chat_template.c - chat template recognition and rendering: every fixture in
 * tests/data/chat/ (template text -> family and exact rendering, mostly llama.cpp's own test
 * expectations; qwen3's rendered by Jinja2 from Qwen3's real template, thinking on and off),
 * buffer sizing, bad input, the real ChatML template of the qwen2 vocab GGUF, and
 * edgelm_chat_apply(_ex) / edgelm_chat_template_name on generated models (without a template,
 * with the qwen2 vocabulary's and with Qwen3's).
 */
#include "format/gguf.h"
#include "model_fixtures.h"
#include "runtime/chat_template.h"

#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGES 16

/* Run one fixture case; returns false if the case itself is malformed. */
static bool run_case(const char *file, const cJSON *c) {
    const char *name = test_json_string(c, "name");
    const char *tmpl = test_json_string(c, "template");
    const char *eos = test_json_string(c, "eos");
    const char *family = test_json_string(c, "family");
    const char *want = test_json_string(c, "expected");
    const cJSON *recognized = cJSON_GetObjectItemCaseSensitive(c, "recognized");
    const cJSON *add = cJSON_GetObjectItemCaseSensitive(c, "add_assistant");
    /* optional: only qwen3 cases set it; absent = false, the default */
    const cJSON *thinking = cJSON_GetObjectItemCaseSensitive(c, "enable_thinking");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(c, "messages");
    if (name == NULL || tmpl == NULL || eos == NULL || family == NULL || want == NULL ||
        !cJSON_IsBool(recognized) || !cJSON_IsBool(add) ||
        (thinking != NULL && !cJSON_IsBool(thinking)) || !cJSON_IsArray(msgs) ||
        cJSON_GetArraySize(msgs) > MAX_MESSAGES) {
        return false;
    }
    edgelm_chat_message m[MAX_MESSAGES];
    size_t n = 0;
    const cJSON *it = NULL;
    cJSON_ArrayForEach(it, msgs) {
        m[n].role = test_json_string(it, "role");
        m[n].content = test_json_string(it, "content");
        if (m[n].role == NULL || m[n].content == NULL) {
            return false;
        }
        n++;
    }
    chat_template t;
    chat_template_detect(tmpl, strlen(tmpl), eos, &t);
    const char *got_name = chat_template_name(&t);
    CHECK_MSG(strcmp(got_name, family) == 0, "%s: '%s': detected %s, expected %s", file, name,
              got_name, family);
    CHECK_MSG(t.recognized == cJSON_IsTrue(recognized), "%s: '%s': recognized %d", file, name,
              (int)t.recognized);

    edgelm_chat_params params = edgelm_chat_params_default();
    params.add_assistant = cJSON_IsTrue(add);
    params.enable_thinking = cJSON_IsTrue(thinking);
    const size_t want_len = strlen(want);
    int32_t need = chat_template_render(&t, m, n, &params, NULL, 0);
    CHECK_MSG(need == (int32_t)want_len, "%s: '%s': counted %d bytes, expected %zu", file, name,
              (int)need, want_len);
    char buf[8192];
    int32_t got = chat_template_render(&t, m, n, &params, buf, sizeof buf);
    CHECK_MSG(got == need && got >= 0 && (size_t)got < sizeof buf && strcmp(buf, want) == 0,
              "%s: '%s':\n  got      '%s'\n  expected '%s'", file, name,
              got >= 0 && (size_t)got < sizeof buf ? buf : "(too long)", want);
    /* a buffer one byte short gets a prefix and no NUL past its end; exact fit gets the NUL */
    if (want_len > 0 && want_len < sizeof buf) {
        memset(buf, 'X', sizeof buf);
        got = chat_template_render(&t, m, n, &params, buf, want_len);
        CHECK(got == (int32_t)want_len && memcmp(buf, want, want_len) == 0 && buf[want_len] == 'X');
        got = chat_template_render(&t, m, n, &params, buf, want_len + 1);
        CHECK(got == (int32_t)want_len && buf[want_len] == '\0');
    }
    /* only qwen3 has a thinking switch: every other family renders the same either way */
    if (t.family != CHAT_FAMILY_QWEN3 && want_len < sizeof buf) {
        params.enable_thinking = !params.enable_thinking;
        got = chat_template_render(&t, m, n, &params, buf, sizeof buf);
        CHECK_MSG(got == (int32_t)want_len && strcmp(buf, want) == 0,
                  "%s: '%s': enable_thinking changed the rendering", file, name);
    }
    return true;
}

static int test_fixtures(void) {
    static const char *const families[] = {"chatml", "qwen3", "llama2", "llama3",
                                           "zephyr", "gemma", "phi3",   "unknown"};
    int n_cases = 0;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        char path[256];
        snprintf(path, sizeof path, "chat/%s.json", families[f]);
        cJSON *root = test_load_fixture(path);
        if (root == NULL) {
            continue;
        }
        const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
        CHECK_MSG(cJSON_IsArray(cases) && cJSON_GetArraySize(cases) > 0, "%s: no cases", path);
        const cJSON *c = NULL;
        cJSON_ArrayForEach(c, cases) {
            CHECK_MSG(run_case(families[f], c), "%s: malformed case", path);
            n_cases++;
        }
        cJSON_Delete(root);
    }
    return n_cases;
}

static void test_edges(void) {
    chat_template t;
    edgelm_chat_message m[2] = {{"user", "hi"}, {NULL, "x"}};
    const edgelm_chat_params add = edgelm_chat_params_default();
    CHECK(add.add_assistant && !add.enable_thinking);
    edgelm_chat_params no_add = add;
    no_add.add_assistant = false;
    chat_template_detect(NULL, 0, NULL, &t);
    CHECK(!t.recognized && strcmp(chat_template_name(&t), "default") == 0);
    CHECK(chat_template_render(&t, m, 2, &add, NULL, 0) == -(int32_t)EDGELM_ERR_INVALID_ARGUMENT);
    m[1].role = "assistant";
    m[1].content = NULL;
    CHECK(chat_template_render(&t, m, 2, &add, NULL, 0) == -(int32_t)EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(chat_template_render(&t, NULL, 1, &add, NULL, 0) ==
          -(int32_t)EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(chat_template_render(&t, m, 1, NULL, NULL, 0) == -(int32_t)EDGELM_ERR_INVALID_ARGUMENT);
    /* no messages: just the assistant's opening */
    char buf[64];
    CHECK(chat_template_render(&t, NULL, 0, &add, buf, sizeof buf) == 22 &&
          strcmp(buf, "<|im_start|>assistant\n") == 0);
    /* qwen3 with no messages (its template would fail on messages[0]): the opening alone, with
     * the empty think block unless thinking is on */
    chat_template_detect("qwen3", 5, NULL, &t);
    CHECK(t.recognized && t.family == CHAT_FAMILY_QWEN3);
    CHECK(chat_template_render(&t, NULL, 0, &add, buf, sizeof buf) == 41 &&
          strcmp(buf, "<|im_start|>assistant\n<think>\n\n</think>\n\n") == 0);
    edgelm_chat_params thinking = add;
    thinking.enable_thinking = true;
    CHECK(chat_template_render(&t, NULL, 0, &thinking, buf, sizeof buf) == 22 &&
          strcmp(buf, "<|im_start|>assistant\n") == 0);
    CHECK(chat_template_render(&t, NULL, 0, &no_add, buf, sizeof buf) == 0 && buf[0] == '\0');
    /* qwen3 needs all three of Qwen3's marks; ChatML templates with fewer stay chatml, and
     * phi4's <|im_sep|> still rules a template out */
    static const char *const not_qwen3[] = {
        "<|im_start|>{% if enable_thinking %}<think>\\n{% endif %}",
        "<|im_start|>{% if enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' }}",
        "<|im_start|>{% set i = last_query_index %}{{ '<think>\\n\\n</think>\\n\\n' }}",
    };
    for (size_t i = 0; i < sizeof not_qwen3 / sizeof not_qwen3[0]; i++) {
        chat_template_detect(not_qwen3[i], strlen(not_qwen3[i]), NULL, &t);
        CHECK_MSG(t.recognized && t.family == CHAT_FAMILY_CHATML, "'%s' detected as %s",
                  not_qwen3[i], chat_template_name(&t));
    }
    static const char qwen3_marks[] = "<|im_start|>{% if enable_thinking is false %}"
                                      "{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}"
                                      "{%- set ns = namespace(last_query_index=0) %}";
    chat_template_detect(qwen3_marks, strlen(qwen3_marks), NULL, &t);
    CHECK(t.recognized && t.family == CHAT_FAMILY_QWEN3);
    static const char phi4_marks[] = "<|im_start|><|im_sep|>enable_thinking last_query_index "
                                     "<think>\\n\\n</think>\\n\\n";
    chat_template_detect(phi4_marks, strlen(phi4_marks), NULL, &t);
    CHECK(!t.recognized);
    /* a template that is only a family's name selects it; a longer EOS than fits is ignored */
    chat_template_detect("gemma", 5, NULL, &t);
    CHECK(t.recognized && t.family == CHAT_FAMILY_GEMMA);
    static const char zephyr[] = "{{ '<|user|>\\n' + message['content'] + eos_token }}"
                                 "{{ '<|assistant|>\\n' }}";
    char long_eos[200];
    memset(long_eos, 'e', sizeof long_eos - 1);
    long_eos[sizeof long_eos - 1] = '\0';
    chat_template_detect(zephyr, strlen(zephyr), long_eos, &t);
    CHECK(t.recognized && t.family == CHAT_FAMILY_ZEPHYR &&
          strcmp(t.zephyr_eot, "<|endoftext|>") == 0);
    /* gemma: several system messages are joined; a system message after a model turn goes to
     * the next user turn; empty system text adds nothing */
    chat_template_detect("gemma", 5, NULL, &t);
    edgelm_chat_message g[] = {{"system", " A "},   {"system", "B"},  {"user", "u1"},
                               {"assistant", "a1"}, {"system", "C"},  {"assistant", "a2"},
                               {"user", "u2"},      {"system", "  "}, {"user", "u3"}};
    char out[512];
    int32_t n = chat_template_render(&t, g, sizeof g / sizeof g[0], &no_add, out, sizeof out);
    const char *want = "<start_of_turn>user\nAB\n\nu1<end_of_turn>\n"
                       "<start_of_turn>model\na1<end_of_turn>\n"
                       "<start_of_turn>model\na2<end_of_turn>\n"
                       "<start_of_turn>user\nC\n\nu2<end_of_turn>\n"
                       "<start_of_turn>user\nu3<end_of_turn>\n";
    CHECK_MSG(n == (int32_t)strlen(want) && strcmp(out, want) == 0, "gemma fold: '%s'", out);
}

/* The qwen2 vocab's real template, read through the GGUF reader. */
static int test_qwen2_vocab(void) {
    char path[1024];
    if (!test_model_path("vocab/ggml-vocab-qwen2.gguf", path, sizeof path)) {
        return 1;
    }
    size_t size = 0;
    unsigned char *data = test_read_file(path, &size);
    CHECK(data != NULL);
    if (data == NULL) {
        return 0;
    }
    gguf_file g;
    char err[256];
    CHECK(gguf_parse(data, size, &g, err, sizeof err) == EDGELM_OK);
    gguf_string s = {NULL, 0};
    CHECK(gguf_get_string(&g, "tokenizer.chat_template", &s) == EDGELM_OK);
    chat_template t;
    chat_template_detect(s.data, (size_t)s.len, "<|endoftext|>", &t);
    CHECK(t.recognized && t.family == CHAT_FAMILY_CHATML);
    gguf_free(&g);
    free(data);
    return 0;
}

/* A model whose tokenizer.chat_template is Qwen3's real one: edgelm_chat_apply keeps thinking
 * off, edgelm_chat_apply_ex turns it on. */
static void test_qwen3_model(const edgelm_chat_message m[2]) {
    char tmpl[1024], args[1200];
    snprintf(args, sizeof args, "--preset tiny --chat-template '%s'",
             test_data_path("chat/Qwen-Qwen3-0.6B.jinja", tmpl, sizeof tmpl));
    edgelm_model *model = test_gen_model("qwen3-template.gguf", args);
    if (model == NULL) {
        return;
    }
    bool recognized = false;
    CHECK(strcmp(edgelm_chat_template_name(model, &recognized), "qwen3") == 0 && recognized);
    static const char turns[] = "<|im_start|>system\nBe brief.<|im_end|>\n"
                                "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n";
    static const char off[] = "<think>\n\n</think>\n\n";
    char want[256], buf[256];
    snprintf(want, sizeof want, "%s%s", turns, off);
    int32_t n = edgelm_chat_apply(model, m, 2, true, buf, sizeof buf);
    CHECK_MSG(n == (int32_t)strlen(want) && strcmp(buf, want) == 0, "thinking off: '%s'", buf);
    n = edgelm_chat_apply_ex(model, m, 2, NULL, buf, sizeof buf);
    CHECK_MSG(n == (int32_t)strlen(want) && strcmp(buf, want) == 0, "NULL params: '%s'", buf);
    edgelm_chat_params params = edgelm_chat_params_default();
    params.enable_thinking = true;
    n = edgelm_chat_apply_ex(model, m, 2, &params, buf, sizeof buf);
    CHECK_MSG(n == (int32_t)strlen(turns) && strcmp(buf, turns) == 0, "thinking on: '%s'", buf);
    params.add_assistant = false;
    n = edgelm_chat_apply_ex(model, m, 2, &params, NULL, 0);
    CHECK(n == (int32_t)strlen(turns) - (int32_t)strlen("<|im_start|>assistant\n"));
    edgelm_model_free(model);
}

static void test_models(int *skipped) {
    edgelm_chat_message m[2] = {{"system", "Be brief."}, {"user", "Hi!"}};
    char buf[256];
    /* the generated vocabulary has no template: the default, not recognized */
    edgelm_model *model = test_gen_model("plain.gguf", "--preset tiny");
    if (model != NULL) {
        bool recognized = true;
        CHECK(strcmp(edgelm_chat_template_name(model, &recognized), "default") == 0);
        CHECK(!recognized);
        int32_t n = edgelm_chat_apply(model, m, 2, true, buf, sizeof buf);
        const char *want = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!"
                           "<|im_end|>\n<|im_start|>assistant\n";
        CHECK(n == (int32_t)strlen(want) && strcmp(buf, want) == 0);
        edgelm_model_free(model);
    }
    CHECK(edgelm_chat_apply(NULL, m, 2, true, buf, sizeof buf) ==
          -(int32_t)EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(edgelm_chat_apply_ex(NULL, m, 2, NULL, buf, sizeof buf) ==
          -(int32_t)EDGELM_ERR_INVALID_ARGUMENT);
    test_qwen3_model(m);

    /* a model carrying the qwen2 tokenizer and its real ChatML template */
    char vocab[1024];
    if (!test_model_path("vocab/ggml-vocab-qwen2.gguf", vocab, sizeof vocab)) {
        (*skipped)++;
        return;
    }
    char args[1200];
    snprintf(args, sizeof args, "--preset tiny --vocab-from '%s' --tied --type q8_0", vocab);
    model = test_gen_model("qwen2-vocab.gguf", args);
    if (model == NULL) {
        return;
    }
    bool recognized = false;
    CHECK(strcmp(edgelm_chat_template_name(model, &recognized), "chatml") == 0 && recognized);
    int32_t n = edgelm_chat_apply(model, m, 2, true, buf, sizeof buf);
    CHECK(n > 0 && (size_t)n < sizeof buf && strncmp(buf, "<|im_start|>system\n", 19) == 0);
    /* the rendered markers are the vocabulary's special tokens */
    int32_t toks[128];
    int32_t nt = edgelm_tokenize(model, buf, (size_t)n, false, true, toks, 128);
    CHECK(nt > 0 && nt <= 128);
    int32_t im_start = -1;
    for (int32_t t = 0; t < edgelm_model_n_vocab(model) && im_start < 0; t++) {
        const char *text = edgelm_token_text(model, t);
        if (text != NULL && strcmp(text, "<|im_start|>") == 0) {
            im_start = t;
        }
    }
    CHECK(im_start >= 0 && nt > 0 && toks[0] == im_start);
    edgelm_model_free(model);
}

int main(void) {
    int n_cases = test_fixtures();
    CHECK_MSG(n_cases >= 32, "only %d fixture cases", n_cases);
    test_edges();
    int skipped = test_qwen2_vocab();
    test_models(&skipped);
    fprintf(stderr, "test_chat_template: %d fixture cases\n", n_cases);
    return test_finish("test_chat_template", skipped);
}
