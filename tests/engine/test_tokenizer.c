/* test_tokenizer.c - the tokenizers against llama.cpp. Offline part: Unicode helpers, tiny SPM and
 * BPE vocabularies written with gguf_writer (encode, decode, special tokens, truncation, random
 * strings under the sanitizers) and corrupt tokenizer metadata, each asserted to fail with
 * EDGELM_ERR_TOKENIZER naming its key. Shared-model part: llama.cpp's tokenizer test strings for
 * the six vocab/ fixtures and stories260K compared id for id with the .out files llama.cpp wrote,
 * 16 harder strings with ids llama.cpp gave them, detokenization round trips and parse_special on
 * control tokens. Missing models are skipped loudly.
 */
#include "format/gguf.h"
#include "gguf_writer.h"
#include "spm_vocab.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int skipped_parts = 0;

/* ---- helpers -------------------------------------------------------------------------------- */

static edgelm_status tok_from_writer(gguf_writer *w, tokenizer **out, char *err, size_t err_size) {
    uint8_t *data = NULL;
    size_t size = 0;
    *out = NULL;
    edgelm_status st = gguf_writer_write_memory(w, &data, &size);
    if (st != EDGELM_OK) {
        snprintf(err, err_size, "write_memory: %s", gguf_writer_errmsg(w));
        return st;
    }
    gguf_file gf;
    st = gguf_parse(data, size, &gf, err, err_size);
    if (st == EDGELM_OK) {
        st = tokenizer_create(&gf, out, err, err_size);
        gguf_free(&gf);
    }
    free(data); /* the tokenizer keeps copies */
    return st;
}

/* The tokenizer of w's vocabulary: one CHECK that it loads; NULL if not. */
static tokenizer *load_tokenizer(gguf_writer *w) {
    char err[256] = "";
    tokenizer *tok = NULL;
    edgelm_status st = tok_from_writer(w, &tok, err, sizeof err);
    CHECK_MSG(st == EDGELM_OK, "%s", err);
    return tok;
}

/* Tokenize into a malloc'd array; *n receives the count (negative status on error). */
static int32_t *encode(const tokenizer *tok, const char *text, size_t len, bool add_bos,
                       bool parse_special, int32_t *n) {
    int32_t cap = (int32_t)len * 2 + 8;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (ids == NULL) {
        *n = -1;
        return NULL;
    }
    *n = tokenizer_encode(tok, text, len, add_bos, parse_special, ids, cap);
    if (*n > cap) {
        int32_t *grown = realloc(ids, (size_t)*n * sizeof *ids);
        if (grown == NULL) {
            free(ids);
            *n = -1;
            return NULL;
        }
        ids = grown;
        cap = *n;
        *n = tokenizer_encode(tok, text, len, add_bos, parse_special, ids, cap);
    }
    return ids;
}

static bool ids_equal(const int32_t *a, int32_t na, const int32_t *b, int32_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

static bool encodes_to(const tokenizer *tok, const char *text, bool add_bos, bool parse_special,
                       const int32_t *want, int32_t n_want) {
    int32_t n;
    int32_t *got = encode(tok, text, strlen(text), add_bos, parse_special, &n);
    bool ok = got != NULL && ids_equal(got, n, want, n_want);
    if (!ok) {
        fprintf(stderr, "  encode(\"%s\"):", text);
        for (int32_t i = 0; got != NULL && i < n; i++) {
            fprintf(stderr, " %d", (int)got[i]);
        }
        fprintf(stderr, "   want:");
        for (int32_t i = 0; i < n_want; i++) {
            fprintf(stderr, " %d", (int)want[i]);
        }
        fputc('\n', stderr);
    }
    free(got);
    return ok;
}

/* Concatenated pieces of ids into a malloc'd, NUL-terminated string; *len gets its length. */
static char *detokenize(const tokenizer *tok, const int32_t *ids, int32_t n, size_t *len) {
    size_t cap = 64, used = 0;
    char *s = malloc(cap);
    if (s == NULL) {
        return NULL;
    }
    for (int32_t i = 0; i < n; i++) {
        int32_t k = tokenizer_token_to_piece(tok, ids[i], NULL, 0);
        if (k < 0) {
            free(s);
            return NULL;
        }
        while (used + (size_t)k + 1 > cap) {
            cap *= 2;
            char *grown = realloc(s, cap);
            if (grown == NULL) {
                free(s);
                return NULL;
            }
            s = grown;
        }
        if (tokenizer_token_to_piece(tok, ids[i], s + used, cap - used) != k) {
            free(s);
            return NULL;
        }
        used += (size_t)k;
    }
    s[used] = '\0';
    *len = used;
    return s;
}

static bool piece_is(const tokenizer *tok, int32_t id, const char *want, size_t want_len) {
    char buf[64];
    int32_t n = tokenizer_token_to_piece(tok, id, buf, sizeof buf);
    return n == (int32_t)want_len && memcmp(buf, want, want_len) == 0;
}

static void print_escaped(const char *s, size_t len) {
    fputc('"', stderr);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') {
            fputs("\\n", stderr);
        } else if (c == '\t') {
            fputs("\\t", stderr);
        } else if (c == '\\' || c == '"') {
            fprintf(stderr, "\\%c", c);
        } else if (c < 0x20 || c == 0x7F) {
            fprintf(stderr, "\\x%02x", c);
        } else {
            fputc(c, stderr);
        }
    }
    fputc('"', stderr);
}

static void print_ids(const char *label, const int32_t *ids, int32_t n) {
    fprintf(stderr, "    %s (%d):", label, (int)n);
    for (int32_t i = 0; i < n; i++) {
        fprintf(stderr, " %d", (int)ids[i]);
    }
    fputc('\n', stderr);
}

/* ---- Unicode helpers ------------------------------------------------------------------------ */

static void test_unicode(void) {
    CHECK(unicode_flags('A') == UNICODE_LETTER);
    CHECK(unicode_flags('7') == UNICODE_NUMBER);
    CHECK(unicode_flags(' ') == (UNICODE_SEPARATOR | UNICODE_WHITESPACE));
    CHECK(unicode_flags('\n') == (UNICODE_CONTROL | UNICODE_WHITESPACE));
    CHECK(unicode_flags(0x1C) == UNICODE_CONTROL); /* not White_Space, unlike str.isspace() */
    CHECK(unicode_flags('!') == UNICODE_PUNCTUATION);
    CHECK(unicode_flags('$') == UNICODE_SYMBOL);
    CHECK(unicode_flags(0x00A0) == (UNICODE_SEPARATOR | UNICODE_WHITESPACE));
    CHECK(unicode_flags(0x0085) == (UNICODE_CONTROL | UNICODE_WHITESPACE));
    CHECK(unicode_flags(0x0301) == UNICODE_MARK);
    CHECK(unicode_flags(0x4E2D) == UNICODE_LETTER);    /* 中 */
    CHECK(unicode_flags(0x00BD) == UNICODE_NUMBER);    /* ½ */
    CHECK(unicode_flags(0x0378) == UNICODE_UNDEFINED); /* unassigned */
    CHECK(unicode_flags(0x1F600) == UNICODE_SYMBOL);   /* emoji */
    CHECK(unicode_flags(0x3000) == (UNICODE_SEPARATOR | UNICODE_WHITESPACE));
    CHECK(unicode_flags(0x110000) == UNICODE_UNDEFINED);
    CHECK(unicode_flags(0x10FFFF) == UNICODE_UNDEFINED);
    CHECK(unicode_flags(0x10FFFD) == UNICODE_CONTROL); /* private use */

    CHECK(unicode_tolower('A') == 'a');
    CHECK(unicode_tolower('a') == 'a');
    CHECK(unicode_tolower('5') == '5');
    CHECK(unicode_tolower(0x00C0) == 0x00E0);
    CHECK(unicode_tolower(0x0100) == 0x0101); /* stride-2 run */
    CHECK(unicode_tolower(0x0101) == 0x0101);
    CHECK(unicode_tolower(0x0130) == 'i');
    CHECK(unicode_tolower(0x212A) == 'k');
    CHECK(unicode_tolower(0x0410) == 0x0430); /* Cyrillic А */
    CHECK(unicode_tolower(0x10400) == 0x10428);

    /* GPT-2 byte alphabet: a bijection between bytes and 256 codepoints */
    int n_ok = 0;
    for (int b = 0; b < 256; b++) {
        uint32_t c = unicode_byte_to_cpt((uint8_t)b);
        n_ok += unicode_cpt_to_byte(c) == b;
    }
    CHECK(n_ok == 256);
    CHECK(unicode_byte_to_cpt(' ') == 0x120);  /* Ġ */
    CHECK(unicode_byte_to_cpt('\n') == 0x10A); /* Ċ */
    CHECK(unicode_byte_to_cpt(0xAD) == 0x143);
    CHECK(unicode_byte_to_cpt('a') == 'a');
    CHECK(unicode_cpt_to_byte(0x144) == -1);
    CHECK(unicode_cpt_to_byte(0xAD) == -1);

    size_t used;
    const uint8_t euro[] = {0xE2, 0x82, 0xAC};
    CHECK(unicode_utf8_decode(euro, 3, &used) == 0x20AC && used == 3);
    CHECK(unicode_utf8_decode(euro, 2, &used) == UNICODE_REPLACEMENT && used == 1);
    const uint8_t stray[] = {0x80, 0x41};
    CHECK(unicode_utf8_decode(stray, 2, &used) == UNICODE_REPLACEMENT && used == 1);
    const uint8_t overlong[] = {0xC0, 0x80}; /* accepted, as llama.cpp does */
    CHECK(unicode_utf8_decode(overlong, 2, &used) == 0 && used == 2);
    const uint8_t too_big[] = {0xF7, 0xBF, 0xBF, 0xBF};
    CHECK(unicode_utf8_decode(too_big, 4, &used) == UNICODE_REPLACEMENT && used == 1);
    uint8_t enc[4];
    CHECK(unicode_utf8_encode(0x1F600, enc) == 4 && enc[0] == 0xF0 && enc[3] == 0x80);
    CHECK(unicode_utf8_len(0xE2) == 3 && unicode_utf8_len(0x80) == 1);
}

/* Strict UTF-8 check (no overlong forms, no surrogates), for choosing round-trip candidates. */
static bool valid_utf8(const char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        size_t used;
        uint32_t c = unicode_utf8_decode((const uint8_t *)s + i, len - i, &used);
        if ((c == UNICODE_REPLACEMENT && used == 1) || (c < 0x80 && used > 1) ||
            (c < 0x800 && used > 2) || (c < 0x10000 && used > 3) || (c >= 0xD800 && c <= 0xDFFF)) {
            return false;
        }
        i += used;
    }
    return true;
}

/* Random byte strings (xorshift, fixed seed): encoding never fails, and for valid UTF-8 with a
 * byte token for every byte the pieces give the input back (SPM: after the prefixed space).
 * Invalid UTF-8 need not: SPM cuts characters by their lead byte alone, so a stray lead byte can
 * swallow the U+2581 that stands for a following space (llama.cpp does the same), and BPE reads
 * bad bytes as U+FFFD. The bytes E2 96 81 (U+2581 itself) are avoided: they decode as a space. */
static void random_strings(const tokenizer *tok, bool spm, uint32_t seed) {
    static const char *const pieces[] = {"a",
                                         "b",
                                         " ",
                                         "<u>",
                                         "\n",
                                         "\t",
                                         "'s",
                                         "S",
                                         "9",
                                         "the",
                                         "\xc3\xa9",
                                         "\xe4\xb8\xad",
                                         "\xf0\x9f\x98\x80",
                                         "  ",
                                         "<s>"};
    const size_t n_pieces = sizeof pieces / sizeof pieces[0];
    uint32_t x = seed;
    int n_ok = 0, n_valid = 0, n_round = 0;
    for (int iter = 0; iter < 300; iter++) {
        char text[80];
        size_t len = 0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        size_t want = x % 64;
        bool raw_bytes = (x & 4) != 0; /* mix in random bytes (mostly invalid UTF-8) */
        while (len < want) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if (raw_bytes && (x & 0x100)) {
                text[len++] = (char)(x & 0xFF);
            } else {
                const char *p = pieces[x % n_pieces];
                size_t n = strlen(p);
                memcpy(text + len, p, n);
                len += n;
            }
            if (len >= 3 && (uint8_t)text[len - 3] == 0xE2 && (uint8_t)text[len - 2] == 0x96 &&
                (uint8_t)text[len - 1] == 0x81) {
                text[len - 1] = 'x';
            }
        }
        bool add_bos = (x & 1) != 0;
        int32_t n;
        int32_t *ids = encode(tok, text, len, add_bos, (x & 2) != 0, &n);
        if (ids == NULL || n < 0) {
            free(ids);
            continue;
        }
        n_ok++;
        /* SPM puts a space after every special token, and control tokens print as nothing */
        bool specials = memchr(text, '<', len) != NULL;
        if (valid_utf8(text, len) && !(spm && specials)) {
            n_valid++;
            int32_t skip = add_bos && n > 0 && ids[0] == tokenizer_bos(tok) ? 1 : 0;
            size_t back_len = 0;
            char *back = detokenize(tok, ids + skip, n - skip, &back_len);
            const char *got = back;
            if (spm && back != NULL && back_len > 0 && back[0] == ' ') {
                got++;
                back_len--;
            }
            n_round += back != NULL && back_len == len && memcmp(got, text, len) == 0;
            free(back);
        }
        free(ids);
    }
    CHECK(n_ok == 300);
    CHECK_MSG(n_valid >= 30 && n_round == n_valid, "%d of %d valid random strings round-trip",
              n_round, n_valid);
}

/* ---- a tiny SPM vocabulary -------------------------------------------------------------------- *
 * ids: 0 <unk>, 1 <s>, 2 </s>, 3 + b = <0xbb> (spm_vocab.h), then the normal pieces below and a
 * user-defined "<u>". */
enum {
    SPM_BYTE0 = TEST_SPM_BYTE0,
    SPM_SPACE = TEST_SPM_PIECE0, /* ▁ */
    SPM_A,
    SPM_B,
    SPM_AB,
    SPM_SPACE_AB,
    SPM_BA,
    SPM_USER, /* <u> */
    SPM_N_VOCAB
};

static gguf_writer *spm_writer(bool with_tokens) {
    const char *tokens[SPM_N_VOCAB];
    float scores[SPM_N_VOCAB];
    int32_t types[SPM_N_VOCAB];
    test_spm_fixed_tokens(tokens, scores, types);
    const char *normal[] = {"\xe2\x96\x81",
                            "a",
                            "b",
                            "ab",
                            "\xe2\x96\x81"
                            "ab",
                            "ba"};
    const float normal_scores[] = {-1.0f, -2.0f, -2.0f, -1.5f, -0.5f, -3.0f};
    for (int i = 0; i < 6; i++) {
        tokens[SPM_SPACE + i] = normal[i];
        scores[SPM_SPACE + i] = normal_scores[i];
        types[SPM_SPACE + i] = 1;
    }
    tokens[SPM_USER] = "<u>";
    scores[SPM_USER] = 0.0f;
    types[SPM_USER] = 4;

    gguf_writer *w = test_spm_writer(tokens, scores, types, SPM_N_VOCAB, with_tokens);
    if (w == NULL) {
        return NULL;
    }
    gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", UINT32_MAX); /* "none" */
    return w;
}

static void test_spm_vocab(void) {
    gguf_writer *w = spm_writer(true);
    CHECK(w != NULL);
    tokenizer *tok = w != NULL ? load_tokenizer(w) : NULL;
    if (tok == NULL) {
        gguf_writer_free(w);
        return;
    }
    CHECK(tokenizer_n_vocab(tok) == SPM_N_VOCAB);
    CHECK(tokenizer_bos(tok) == 1 && tokenizer_eos(tok) == 2 && tokenizer_add_bos(tok));
    CHECK(tokenizer_is_eog(tok, 2) && !tokenizer_is_eog(tok, 1) && !tokenizer_is_eog(tok, -1));
    CHECK(tokenizer_is_control(tok, 1) && !tokenizer_is_control(tok, SPM_A));
    CHECK(strcmp(tokenizer_token_text(tok, SPM_USER), "<u>") == 0);
    CHECK(tokenizer_token_text(tok, SPM_N_VOCAB) == NULL);

    /* merges by score: "▁ab" beats everything, via "ab" */
    CHECK(encodes_to(tok, "ab", true, false, (const int32_t[]){1, SPM_SPACE_AB}, 2));
    CHECK(encodes_to(tok, "ab", false, false, (const int32_t[]){SPM_SPACE_AB}, 1));
    CHECK(encodes_to(tok, "ba b", false, false,
                     (const int32_t[]){SPM_SPACE, SPM_BA, SPM_SPACE, SPM_B}, 4));
    /* byte fallback for pieces not in the vocabulary */
    CHECK(encodes_to(tok, "c", false, false, (const int32_t[]){SPM_SPACE, SPM_BYTE0 + 'c'}, 2));
    CHECK(encodes_to(tok, "\xc3\xa9", false, false,
                     (const int32_t[]){SPM_SPACE, SPM_BYTE0 + 0xC3, SPM_BYTE0 + 0xA9}, 3));
    /* control tokens only with parse_special; text after a special token gets the space */
    CHECK(encodes_to(tok, "<s>ab", false, true, (const int32_t[]){1, SPM_SPACE_AB}, 2));
    CHECK(encodes_to(
        tok, "<s>ab", false, false,
        (const int32_t[]){SPM_SPACE, SPM_BYTE0 + '<', SPM_BYTE0 + 's', SPM_BYTE0 + '>', SPM_AB},
        5));
    /* user-defined tokens are split out even without parse_special */
    CHECK(encodes_to(tok, "a<u>b", false, false,
                     (const int32_t[]){SPM_SPACE, SPM_A, SPM_USER, SPM_SPACE, SPM_B}, 5));
    CHECK(encodes_to(tok, "", true, false, (const int32_t[]){1}, 1));
    CHECK(encodes_to(tok, "", false, false, NULL, 0));

    /* a short buffer: the full count comes back, nothing is written past max_tokens */
    int32_t buf[3] = {-7, -7, -7};
    CHECK(tokenizer_encode(tok, "ba b", 4, false, false, buf, 2) == 4);
    CHECK(buf[0] == SPM_SPACE && buf[1] == SPM_BA && buf[2] == -7);
    CHECK(tokenizer_encode(tok, "ab", 2, true, false, NULL, 0) == 2);
    CHECK(tokenizer_encode(tok, NULL, 3, false, false, buf, 3) ==
          -(int32_t)EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(tokenizer_encode(tok, "a", 1, false, false, buf, -1) ==
          -(int32_t)EDGELM_ERR_INVALID_ARGUMENT);

    random_strings(tok, true, 12345u);

    /* pieces */
    CHECK(piece_is(tok, SPM_SPACE_AB, " ab", 3));
    CHECK(piece_is(tok, 1, "", 0));
    CHECK(piece_is(tok, 0, "", 0));
    CHECK(piece_is(tok, SPM_BYTE0 + 0xC3, "\xc3", 1));
    CHECK(piece_is(tok, SPM_USER, "<u>", 3));
    char small[2];
    CHECK(tokenizer_token_to_piece(tok, SPM_SPACE_AB, small, sizeof small) == 3);
    CHECK(tokenizer_token_to_piece(tok, -1, small, sizeof small) == -(int32_t)EDGELM_ERR_BAD_TOKEN);
    CHECK(tokenizer_token_to_piece(tok, SPM_N_VOCAB, small, sizeof small) ==
          -(int32_t)EDGELM_ERR_BAD_TOKEN);
    tokenizer_free(tok);

    /* add_space_prefix = false */
    gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", false);
    tok = load_tokenizer(w);
    if (tok != NULL) {
        CHECK(encodes_to(tok, "ab", false, false, (const int32_t[]){SPM_AB}, 1));
        CHECK(encodes_to(tok, "ab ab", false, false, (const int32_t[]){SPM_AB, SPM_SPACE_AB}, 2));
        tokenizer_free(tok);
    }
    /* bos "none" keeps the default (1) */
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", UINT32_MAX);
    tok = load_tokenizer(w);
    if (tok != NULL) {
        CHECK(tokenizer_bos(tok) == 1);
        tokenizer_free(tok);
    }
    gguf_writer_free(w);
}

/* ---- a tiny byte-level BPE vocabulary --------------------------------------------------------- *
 * ids 0..255: the bytes in GPT-2's alphabet, in byte order; then "Ġt", "he", "Ġthe" and a control
 * "<|endoftext|>". */
enum { BPE_GT = 256, BPE_HE, BPE_GTHE, BPE_EOT, BPE_N_VOCAB };

static char bpe_byte_names[256][4];

static gguf_writer *bpe_writer(const char *pre) {
    const char *tokens[BPE_N_VOCAB];
    int32_t types[BPE_N_VOCAB];
    for (int b = 0; b < 256; b++) {
        uint8_t enc[4];
        size_t n = unicode_utf8_encode(unicode_byte_to_cpt((uint8_t)b), enc);
        memcpy(bpe_byte_names[b], enc, n);
        bpe_byte_names[b][n] = '\0';
        tokens[b] = bpe_byte_names[b];
        types[b] = 1;
    }
    tokens[BPE_GT] = "\xc4\xa0t";
    tokens[BPE_HE] = "he";
    tokens[BPE_GTHE] = "\xc4\xa0the";
    tokens[BPE_EOT] = "<|endoftext|>";
    types[BPE_GT] = types[BPE_HE] = types[BPE_GTHE] = 1;
    types[BPE_EOT] = 3;
    const char *merges[] = {"\xc4\xa0 t", "h e", "\xc4\xa0t he"};
    gguf_writer *w = gguf_writer_create();
    if (w == NULL) {
        return NULL;
    }
    gguf_writer_set_string(w, "tokenizer.ggml.model", "gpt2");
    if (pre != NULL) {
        gguf_writer_set_string(w, "tokenizer.ggml.pre", pre);
    }
    gguf_writer_set_string_array(w, "tokenizer.ggml.tokens", tokens, BPE_N_VOCAB);
    gguf_writer_set_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, BPE_N_VOCAB);
    gguf_writer_set_string_array(w, "tokenizer.ggml.merges", merges, 3);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", BPE_EOT);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", BPE_EOT);
    return w;
}

static void test_bpe_vocab(void) {
    gguf_writer *w = bpe_writer("gpt-2");
    CHECK(w != NULL);
    tokenizer *tok = w != NULL ? load_tokenizer(w) : NULL;
    gguf_writer_free(w);
    if (tok == NULL) {
        return;
    }
    CHECK(!tokenizer_add_bos(tok));
    CHECK(tokenizer_is_eog(tok, BPE_EOT));
    CHECK(encodes_to(tok, " the", false, false, (const int32_t[]){BPE_GTHE}, 1));
    CHECK(encodes_to(tok, "the", false, false, (const int32_t[]){'t', BPE_HE}, 2));
    CHECK(encodes_to(tok, " the the", false, false, (const int32_t[]){BPE_GTHE, BPE_GTHE}, 2));
    CHECK(encodes_to(tok, "\n", false, false, (const int32_t[]){'\n'}, 1));
    /* a bad UTF-8 byte becomes U+FFFD (EF BF BD), as in llama.cpp */
    CHECK(encodes_to(tok, "\xff", false, false, (const int32_t[]){0xEF, 0xBF, 0xBD}, 3));
    CHECK(encodes_to(tok, " the<|endoftext|>", true, true,
                     (const int32_t[]){BPE_EOT, BPE_GTHE, BPE_EOT}, 3));
    int32_t n;
    const char *plain = " the<|endoftext|>";
    int32_t *ids = encode(tok, plain, strlen(plain), false, false, &n);
    bool has_eot = false;
    for (int32_t i = 0; ids != NULL && i < n; i++) {
        has_eot |= ids[i] == BPE_EOT;
    }
    CHECK(ids != NULL && n > 2 && !has_eot);
    size_t len = 0;
    char *back = ids ? detokenize(tok, ids, n, &len) : NULL;
    CHECK(back != NULL && len == strlen(plain) && memcmp(back, plain, len) == 0);
    free(back);
    free(ids);
    random_strings(tok, false, 777u);
    CHECK(piece_is(tok, BPE_GTHE, " the", 4));
    CHECK(piece_is(tok, '\n', "\n", 1));
    CHECK(piece_is(tok, 0xAD, "\xad", 1));
    CHECK(piece_is(tok, BPE_EOT, "", 0));
    tokenizer_free(tok);
}

/* ---- corrupt metadata --------------------------------------------------------------------- */

static void expect_tokenizer_error(gguf_writer *w, const char *key, const char *what) {
    char err[256] = "";
    tokenizer *tok = NULL;
    edgelm_status st = tok_from_writer(w, &tok, err, sizeof err);
    CHECK_MSG(st == EDGELM_ERR_TOKENIZER && tok == NULL, "%s: got %s (%s)", what,
              edgelm_strerror(st), err);
    CHECK_MSG(strstr(err, key) != NULL, "%s: message '%s' does not name %s", what, err, key);
    tokenizer_free(tok);
}

/* One metadata key set anew: a u32, i32 or string scalar, or (n > 0) an array of n elements. */
typedef struct key_edit {
    uint32_t type; /* GGUF_TYPE_UINT32, _INT32 or _STRING; the element type of an array; 0: none */
    uint64_t n;
    const void *value;
} key_edit;

static void apply_edit(gguf_writer *w, const char *key, const key_edit *e) {
    if (e->n > 0 && e->type == GGUF_TYPE_STRING) {
        gguf_writer_set_string_array(w, key, e->value, e->n);
    } else if (e->n > 0) {
        gguf_writer_set_array(w, key, e->type, e->value, e->n);
    } else if (e->type == GGUF_TYPE_UINT32) {
        gguf_writer_set_u32(w, key, *(const uint32_t *)e->value);
    } else if (e->type == GGUF_TYPE_INT32) {
        gguf_writer_set_i32(w, key, *(const int32_t *)e->value);
    } else if (e->type == GGUF_TYPE_STRING) {
        gguf_writer_set_string(w, key, e->value);
    }
}

static void test_corrupt_metadata(void) {
    static const float scores[10] = {0};
    static const int32_t types[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    static const uint32_t bos_past_end = SPM_N_VOCAB + 5, one = 1, seven = 7;
    static const int32_t minus_five = -5;
    static const char *const merge_without_space[] = {"\xc4\xa0 t", "he"};
    /* each refused with EDGELM_ERR_TOKENIZER naming key: the SPM vocabulary (without its tokens
     * when omit_tokens), or with bpe_pre the BPE one, and key set as edit says */
    static const struct {
        const char *what;
        const char *key;
        const char *bpe_pre;
        bool omit_tokens;
        key_edit edit;
    } cases[] = {
        {"bos out of range",
         "tokenizer.ggml.bos_token_id",
         NULL,
         false,
         {GGUF_TYPE_UINT32, 0, &bos_past_end}},
        {"negative eos",
         "tokenizer.ggml.eos_token_id",
         NULL,
         false,
         {GGUF_TYPE_INT32, 0, &minus_five}},
        {"unk as a string",
         "tokenizer.ggml.unknown_token_id",
         NULL,
         false,
         {GGUF_TYPE_STRING, 0, "zero"}},
        {"short scores", "tokenizer.ggml.scores", NULL, false, {GGUF_TYPE_FLOAT32, 10, scores}},
        {"short token_type",
         "tokenizer.ggml.token_type",
         NULL,
         false,
         {GGUF_TYPE_INT32, 10, types}},
        {"float token_type",
         "tokenizer.ggml.token_type",
         NULL,
         false,
         {GGUF_TYPE_FLOAT32, 10, scores}},
        {"add_bos as u32",
         "tokenizer.ggml.add_bos_token",
         NULL,
         false,
         {GGUF_TYPE_UINT32, 0, &one}},
        {"no tokens", "tokenizer.ggml.tokens", NULL, true, {0, 0, NULL}},
        {"tokens as int32", "tokenizer.ggml.tokens", NULL, false, {GGUF_TYPE_INT32, 10, types}},
        {"unsupported model", "tokenizer.ggml.model", NULL, false, {GGUF_TYPE_STRING, 0, "bert"}},
        {"model as u32", "tokenizer.ggml.model", NULL, false, {GGUF_TYPE_UINT32, 0, &seven}},
        {"unsupported pre", "tokenizer.ggml.pre", "no-such-pre", false, {0, 0, NULL}},
        {"merge without a space",
         "tokenizer.ggml.merges",
         "gpt-2",
         false,
         {GGUF_TYPE_STRING, 2, merge_without_space}},
        {"merges as int32", "tokenizer.ggml.merges", "gpt-2", false, {GGUF_TYPE_INT32, 10, types}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gguf_writer *w = cases[i].bpe_pre != NULL ? bpe_writer(cases[i].bpe_pre)
                                                  : spm_writer(!cases[i].omit_tokens);
        apply_edit(w, cases[i].key, &cases[i].edit);
        expect_tokenizer_error(w, cases[i].key, cases[i].what);
        gguf_writer_free(w);
    }

    /* tokens with a duplicate (and scores and types to match) */
    gguf_writer *w = spm_writer(true);
    const char *dup[] = {"a", "b", "a"};
    gguf_writer_set_string_array(w, "tokenizer.ggml.tokens", dup, 3);
    gguf_writer_set_array(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, 3);
    gguf_writer_set_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 3);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 0);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 0);
    expect_tokenizer_error(w, "tokenizer.ggml.tokens", "duplicate token");
    gguf_writer_free(w);

    /* llama-bpe sets add_bos; without a BOS id that is an error */
    w = bpe_writer("llama-bpe");
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", UINT32_MAX);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    {
        /* the BPE default bos (11) is in range here, so this one loads */
        char err[256];
        tokenizer *tok = NULL;
        edgelm_status st = tok_from_writer(w, &tok, err, sizeof err);
        CHECK_MSG(st == EDGELM_OK && tokenizer_bos(tok) == 11, "%s", err);
        tokenizer_free(tok);
    }
    gguf_writer_free(w);
}

/* ---- llama.cpp fixtures ------------------------------------------------------------------- */

typedef struct test_strings {
    char **s;
    size_t *len;
    size_t n;
} test_strings;

static void free_strings(test_strings *t) {
    for (size_t i = 0; i < t->n; i++) {
        free(t->s[i]);
    }
    free(t->s);
    free(t->len);
}

static bool push_string(test_strings *t, const char *s, size_t len) {
    char **gs = realloc(t->s, (t->n + 1) * sizeof *gs);
    if (gs == NULL) {
        return false;
    }
    t->s = gs;
    size_t *gl = realloc(t->len, (t->n + 1) * sizeof *gl);
    if (gl == NULL) {
        return false;
    }
    t->len = gl;
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        return false;
    }
    memcpy(copy, s, len);
    copy[len] = '\0';
    t->s[t->n] = copy;
    t->len[t->n] = len;
    t->n++;
    return true;
}

/* The parts of data each followed by sep (the last one may lack it): llama.cpp's
 * test-tokenizer-0 input (strings ended by "\n__ggml_vocab_test__\n") and its output (lines). */
static bool split(const char *data, size_t size, const char *sep, test_strings *out) {
    const size_t sep_len = strlen(sep);
    size_t pos = 0;
    while (pos < size) {
        size_t next = pos;
        while (next + sep_len <= size && memcmp(data + next, sep, sep_len) != 0) {
            next++;
        }
        if (next + sep_len > size) {
            return push_string(out, data + pos, size - pos);
        }
        if (!push_string(out, data + pos, next - pos)) {
            return false;
        }
        pos = next + sep_len;
    }
    return true;
}

/* The ids of one output line ("1 2 3"), malloc'd; *n gets their count. NULL when out of memory. */
static int32_t *parse_ids(const char *line, size_t len, int32_t *n) {
    int32_t *ids = malloc((len + 1) * sizeof *ids);
    *n = 0;
    size_t p = 0;
    while (ids != NULL && p < len) {
        while (p < len && line[p] == ' ') {
            p++;
        }
        if (p >= len) {
            break;
        }
        long v = 0;
        while (p < len && line[p] >= '0' && line[p] <= '9') {
            v = v * 10 + (line[p] - '0');
            p++;
        }
        ids[(*n)++] = (int32_t)v;
        while (p < len && line[p] != ' ') {
            p++;
        }
    }
    return ids;
}

static tokenizer *load_fixture(const char *gguf_rel, double *load_ms) {
    char path[1024];
    if (!test_model_path(gguf_rel, path, sizeof path)) {
        skipped_parts++;
        return NULL;
    }
    size_t size = 0;
    unsigned char *data = test_read_file(path, &size);
    CHECK_MSG(data != NULL, "cannot read %s", path);
    if (data == NULL) {
        return NULL;
    }
    gguf_file gf;
    char err[256];
    tokenizer *tok = NULL;
    edgelm_status st = gguf_parse(data, size, &gf, err, sizeof err);
    CHECK_MSG(st == EDGELM_OK, "%s: %s", path, err);
    if (st == EDGELM_OK) {
        double t0 = test_now_ms();
        st = tokenizer_create(&gf, &tok, err, sizeof err);
        *load_ms = test_now_ms() - t0;
        CHECK_MSG(st == EDGELM_OK, "%s: %s", path, err);
        gguf_free(&gf);
    }
    free(data);
    return tok;
}

/* Tokenize every test string and compare with llama.cpp's ids; check the round trip. */
static void run_fixture(const char *label, const tokenizer *tok, const char *inp_rel,
                        const char *out_rel, bool spm, double load_ms) {
    char inp_path[1024], out_path[1024];
    if (!test_model_path(inp_rel, inp_path, sizeof inp_path) ||
        !test_model_path(out_rel, out_path, sizeof out_path)) {
        skipped_parts++;
        return;
    }
    size_t inp_size = 0, out_size = 0;
    unsigned char *inp = test_read_file(inp_path, &inp_size);
    unsigned char *outf = test_read_file(out_path, &out_size);
    test_strings strings = {NULL, NULL, 0}, lines = {NULL, NULL, 0};
    CHECK(inp != NULL && outf != NULL);
    if (inp == NULL || outf == NULL ||
        !split((const char *)inp, inp_size, "\n__ggml_vocab_test__\n", &strings) ||
        !split((const char *)outf, out_size, "\n", &lines)) {
        CHECK_MSG(0, "%s: cannot read the fixture", label);
        goto done;
    }
    CHECK_MSG(strings.n == lines.n && strings.n > 0, "%s: %zu strings but %zu lines", label,
              strings.n, lines.n);
    size_t n_match = 0, n_round = 0;
    bool shown_mismatch = false, shown_round = false;
    for (size_t i = 0; i < strings.n && i < lines.n; i++) {
        int32_t n;
        int32_t *ids = encode(tok, strings.s[i], strings.len[i], false, false, &n);
        if (ids == NULL || n < 0) {
            CHECK_MSG(0, "%s: string %zu: encode failed (%d)", label, i, (int)n);
            free(ids);
            continue;
        }
        int32_t want_n = 0;
        int32_t *want_ids = parse_ids(lines.s[i], lines.len[i], &want_n);
        if (want_ids != NULL && ids_equal(ids, n, want_ids, want_n)) {
            n_match++;
        } else if (!shown_mismatch) {
            shown_mismatch = true;
            fprintf(stderr, "  %s: first mismatch, string %zu: ", label, i);
            print_escaped(strings.s[i], strings.len[i]);
            fputc('\n', stderr);
            print_ids("expected", want_ids, want_n);
            print_ids("got     ", ids, n);
        }
        free(want_ids);
        /* detokenize: BPE gives the text back; SPM with the space it prefixed */
        size_t len = 0;
        char *back = detokenize(tok, ids, n, &len);
        const char *want = strings.s[i];
        size_t want_len = strings.len[i];
        const char *got = back;
        size_t got_len = len;
        if (spm && got != NULL && got_len > 0 && got[0] == ' ') {
            got++;
            got_len--;
        }
        if (got != NULL && got_len == want_len && memcmp(got, want, want_len) == 0) {
            n_round++;
        } else if (!shown_round) {
            shown_round = true;
            fprintf(stderr, "  %s: first round-trip failure, string %zu: ", label, i);
            print_escaped(want, want_len);
            fprintf(stderr, " -> ");
            if (got != NULL) {
                print_escaped(got, got_len);
            }
            fputc('\n', stderr);
        }
        free(back);
        free(ids);
    }
    fprintf(stderr, "%-16s %zu/%zu strings match llama.cpp, %zu/%zu round-trip (load %.1f ms)\n",
            label, n_match, strings.n, n_round, strings.n, load_ms);
    CHECK_MSG(n_match == strings.n, "%s: %zu of %zu strings differ", label, strings.n - n_match,
              strings.n);
    CHECK_MSG(n_round == strings.n, "%s: %zu of %zu strings do not round-trip", label,
              strings.n - n_round, strings.n);
done:
    free_strings(&strings);
    free_strings(&lines);
    free(inp);
    free(outf);
}

/* ---- extra strings, with the ids llama.cpp gives them ----------------------------------------- *
 * Written by llama.cpp's llama_tokenize(add_special = false, parse_special as given) from the same
 * source the fixtures come from (ggml-org/llama.cpp as bundled in node-llama-cpp 3.22.1), for
 * what the standard strings do not reach: upper-case contractions, non-ASCII whitespace, full-width
 * punctuation, Unicode 15.1 letters, bad UTF-8, user-defined and control tokens, digits. */

typedef struct golden_string {
    const char *s;
    size_t len;
    bool parse_special;
} golden_string;

static const golden_string golden_strings[] = {
    {"I'M sure you'LL see 'S and 'Ve it'D, 're 'x", 43, true},
    {"tab\there\xc2\xa0nbsp\xe3\x80\x80ideo\xe2\x80\xa8ls\xc2\x85nel\xe2\x80\x89thin end", 42,
     true},
    {"  leading and trailing   \n\n  \r\n\t ", 33, true},
    {"\xe6\x95\xb0\xe5\xad\x97"
     "1234567890\xe5\x92\x8c\xe4\xb8\xad\xe6\x96\x87\xef\xbc\x8c\xe5\x85\xa8\xe8\xa7\x92\xef\xbc"
     "\x81\xef\xbc\x82\xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3\xef\xbd\x9e\xe3\x80\x81\xe3\x80\x82",
     58, true},
    {"\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4 \xed\x85\x8d\xec\x8a\xa4\xed\x8a\xb8\xec\x99\x80 "
     "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83"
     "\x88",
     47, true},
    {"Cafe\xcc\x81 na\xcc\x88ive \xc2\xb5 \xe2\x84\xaa\xe2\x84\xa6 \xc4\xb0stanbul "
     "\xe1\xbe\xbe\xe1\xbd\xbd \xc5\xbfs",
     45, true},
    {"emoji "
     "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd\xe2\x9d\xa4\xef\xb8\x8f\xf0\x9f\x87\xba\xf0\x9f\x87\xb8 "
     "\xf0\x9f\xa7\x91\xe2\x80\x8d\xf0\x9f\x92\xbb done",
     45, true},
    {"new in 15.1: \xf0\xae\xaf\xb0\xf0\xae\xb9\x9d and \xe2\xbf\xbc\xe3\x87\xaf, 15.0: "
     "\xf0\xb1\x8d\x90",
     44, true},
    {"bad \xff\xfe bytes \xc3 and \xe2\x82 end \xc0\x80", 28, true},
    {"x=1+2<=3>=4^5~6|7$8 `code` {a:[b]} @home #tag 100%", 50, true},
    {"<s>hi</s><|im_start|>sys<|im_end|><|endoftext|><|begin_of_text|><|EOT|>\xc3\xb5[PAD151646]",
     84, true},
    {"<s>hi</s><|im_start|>sys<|im_end|><|endoftext|><|begin_of_text|><|EOT|>\xc3\xb5[PAD151646]",
     84, false},
    {"999999999 1.5e10 0x1F 3,141,592", 31, true},
    {"\xce\x91\xce\x92\xce\x93 \xce\xb1\xce\xb2\xce\xb3 \xce\xa9\xce\xbc\xce\xad\xce\xb3\xce\xb1 "
     "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\x9c\xd0\x98\xd0\xa0",
     44, true},
    {"\xd9\xa1\xd9\xa2\xd9\xa3 \xe0\xa5\xa6\xe0\xa5\xa7 \xc2\xbd\xc2\xb2 \xe2\x91\xa0\xe2\x85\xa1",
     25, true},
    {"a       b\t\t\t\n\n\n c   ", 20, true},
};
static const char *const golden_llama_spm[] = {
    "306 29915 29924 1854 366 29915 2208 1074 525 29903 322 525 29963 29872 372 29915 29928 29892 "
    "525 276 525 29916",
    "4434 12 4150 30081 14239 30358 3007 31353 3137 197 136 9139 30080 386 262 1095",
    "259 8236 322 25053 1678 13 13 29871 6756 13 12 29871",
    "29871 30354 30578 29896 29906 29941 29946 29945 29953 29955 29947 29929 29900 30503 30275 "
    "30333 30214 30753 31432 30584 242 191 133 242 191 164 242 191 165 242 191 166 30739 30330 "
    "30267",
    "29871 30877 31293 31129 29871 240 136 144 30784 31177 239 156 131 29871 30325 30346 30968 "
    "30199 30572 30454 30255 30279",
    "9243 1725 30103 1055 31719 573 29871 30263 29871 229 135 173 229 135 169 29871 30243 14411 "
    "8645 29871 228 193 193 228 192 192 29871 30473 29879",
    "953 29877 2397 29871 243 162 148 144 243 162 146 192 229 160 167 30598 243 162 138 189 243 "
    "162 138 187 29871 243 162 170 148 30722 243 162 149 190 2309",
    "716 297 29871 29896 29945 29889 29896 29901 29871 243 177 178 179 243 177 188 160 322 29871 "
    "229 194 191 230 138 178 29892 29871 29896 29945 29889 29900 29901 29871 243 180 144 147",
    "4319 29871 258 257 229 153 132 13193 29871 198 229 153 132 392 29871 229 133 229 153 132 355 "
    "29871 195 131",
    "921 29922 29896 29974 29906 14065 29941 18572 29946 29985 29945 30022 29953 29989 29955 29938 "
    "29947 421 401 29952 426 29874 10834 29890 12258 732 5184 396 4039 29871 29896 29900 29900 "
    "29995",
    "1 7251 2 529 29989 326 29918 2962 29989 29958 9675 29966 29989 326 29918 355 29989 5299 29989 "
    "355 974 726 29989 5299 29989 463 29918 974 29918 726 29989 5299 29989 29923 2891 29989 29958 "
    "30084 29961 29925 3035 29896 29945 29896 29953 29946 29953 29962",
    "529 29879 29958 2918 829 29879 5299 29989 326 29918 2962 29989 29958 9675 29966 29989 326 "
    "29918 355 29989 5299 29989 355 974 726 29989 5299 29989 463 29918 974 29918 726 29989 5299 "
    "29989 29923 2891 29989 29958 30084 29961 29925 3035 29896 29945 29896 29953 29946 29953 29962",
    "29871 29929 29929 29929 29929 29929 29929 29929 29929 29929 29871 29896 29889 29945 29872 "
    "29896 29900 29871 29900 29916 29896 29943 29871 29941 29892 29896 29946 29896 29892 29945 "
    "29929 29906",
    "29871 30292 30506 30339 19883 30187 30197 29871 30357 30167 30273 30197 30110 1695 7616 1142 "
    "30054 30027",
    "29871 220 164 220 165 220 166 29871 227 168 169 227 168 170 29871 30226 30088 29871 229 148 "
    "163 229 136 164",
    "263 539 289 12 12 12 13 13 13 274 1678",
};
static const char *const golden_llama_bpe[] = {
    "40 28703 2771 499 6 4178 1518 364 50 323 364 43712 433 28805 11 364 265 364 87",
    "6323 197 6881 4194 5792 23249 1926 378 101 4835 116360 8301 105584 64771 842",
    "220 6522 323 28848 35033 10636 3762",
    "83687 4513 10961 16474 15 34208 108891 126370 64936 6447 1569 224 116531 124944 117812 21909 "
    "5486 1811",
    "112699 32179 10997 45204 54289 81673 105180 102158 16144 57933 62903 71634",
    "34 5763 54939 4415 127104 535 64012 29753 103 15284 99 104014 87189 122 122 101253 121 27006 "
    "123 82",
    "38623 62904 235 9468 237 121 121643 31643 9468 229 118 9468 229 116 11410 100 239 102470 "
    "93273 119 2884",
    "943 304 220 868 13 16 25 109697 106 107 108 172 106 117 251 323 2928 123 120 159 229 107 11 "
    "220 868 13 15 25 109697 109 235 238",
    "14176 220 10178 5943 30433 323 220 10178 842 220 188",
    "87 28 16 10 17 8367 18 10123 19 61 20 93 21 91 22 3 23 1595 1889 63 314 64 7407 65 14316 571 "
    "5227 674 4681 220 1041 4",
    "45147 29 6151 524 82 1822 91 318 5011 91 29 7947 27 91 318 6345 91 1822 91 8862 728 428 91 29 "
    "128000 27 91 36 1831 91 29 11399 43447 1846 9690 22642 60",
    "45147 29 6151 524 82 1822 91 318 5011 91 29 7947 27 91 318 6345 91 1822 91 8862 728 428 91 "
    "1822 91 7413 3659 4424 91 1822 91 36 1831 91 29 11399 43447 1846 9690 22642 60",
    "5500 5500 5500 220 16 13 20 68 605 220 15 87 16 37 220 18 11 9335 11 20128",
    "100341 104319 101812 19581 52355 60474 117336 100945 113993 108349 8341 45458 31274 34604",
    "109610 110546 117413 220 105659 105873 220 27154 30556 220 118075 71567 94",
    "64 996 293 573 1432 272 262",
};
static const char *const golden_qwen2[] = {
    "40 27603 2704 498 6 4086 1490 364 50 323 364 42612 432 27705 11 364 265 364 87",
    "6192 197 6739 4102 5674 22441 1888 378 101 4730 126 227 8138 378 231 63671 835",
    "220 6388 323 27748 33933 10419 3677",
    "82587 16 17 18 19 20 21 22 23 24 15 33108 104811 3837 35987 63836 6313 145179 133054 139173 "
    "134557 21216 5373 1773",
    "23573 124785 31079 10764 44104 53189 80573 75402 21894 102819 15767 56833 61803 70534",
    "34 5645 53839 4317 136 230 533 62912 28653 103 145470 129514 86089 122 122 146474 25917 123 "
    "82",
    "37523 61804 235 145375 141390 30543 145526 145383 11162 100 239 378 235 145851 2814",
    "931 304 220 16 20 13 16 25 220 172 106 107 108 172 106 117 251 323 2858 123 120 124595 107 11 "
    "220 16 20 13 15 25 220 172 109 235 238",
    "13855 220 9973 5820 29333 323 220 9973 835 220 188",
    "87 28 16 10 17 8203 18 9922 19 61 20 93 21 91 22 3 23 1565 1851 63 314 64 7259 65 13989 569 "
    "5117 671 4578 220 16 15 15 4",
    "44047 29 6023 128247 151644 7791 151645 151643 27 91 7265 3575 4326 91 1784 91 36 1793 91 29 "
    "11151 151646",
    "44047 29 6023 522 82 1784 91 318 4906 91 29 7791 27 91 318 6213 91 1784 91 8691 723 427 91 "
    "1784 91 7265 3575 4326 91 1784 91 36 1793 91 29 11151 151646",
    "24 24 24 24 24 24 24 24 24 220 16 13 20 68 16 15 220 15 87 16 37 220 18 11 16 19 16 11 20 24 "
    "17",
    "144842 144946 145281 19043 51255 59374 7851 102 43123 79431 59374 18945 12281 26991 8178 "
    "44358 30174 33504",
    "149 94 149 95 149 96 220 12619 99 12619 100 220 26062 29456 220 48312 254 70467 94",
    "64 981 293 571 1406 272 262",
};
static const char *const golden_gpt_2[] = {
    "40 6 44 1654 345 6 3069 766 705 50 290 705 26979 340 6 35 11 705 260 705 87",
    "8658 197 1456 1849 77 24145 5099 222 1651 447 101 7278 126 227 4954 447 231 40871 886",
    "220 3756 290 25462 220 220 220 628 220 220 201 198 197 220",
    "46763 108 27764 245 10163 2231 30924 3829 161 240 234 40792 23877 229 171 120 234 17739 101 "
    "164 100 240 171 120 223 171 120 224 171 120 94 171 120 95 171 120 96 171 121 252 23513 16764",
    "47991 250 166 113 255 168 244 112 220 169 227 235 168 232 97 169 232 116 168 247 222 10545 "
    "245 98 17312 105 45739 252 5641 24336 25084 43302",
    "34 8635 136 223 12385 136 230 425 31324 2343 226 103 158 226 99 34754 108 24179 28053 122 122 "
    "45495 121 25370 123 82",
    "368 31370 50169 235 8582 237 121 32391 97 37929 8582 229 118 8582 229 116 12520 100 239 447 "
    "235 8582 240 119 1760",
    "3605 287 1315 13 16 25 220 172 106 107 108 172 106 117 251 290 2343 123 120 159 229 107 11 "
    "1315 13 15 25 220 172 109 235 238",
    "14774 220 6353 9881 20543 290 220 6353 886 220 188",
    "87 28 16 10 17 27 28 18 29 28 19 61 20 93 21 91 22 3 23 4600 8189 63 1391 64 33250 65 48999 "
    "2488 11195 1303 12985 1802 4",
    "27 82 29 5303 3556 82 6927 91 320 62 9688 91 29 17597 27 91 320 62 437 91 29 50256 27 91 "
    "27471 62 1659 62 5239 91 6927 91 36 2394 91 29 127 113 58 47 2885 1314 1433 3510 60",
    "27 82 29 5303 3556 82 6927 91 320 62 9688 91 29 17597 27 91 320 62 437 91 6927 91 437 1659 "
    "5239 91 6927 91 27471 62 1659 62 5239 91 6927 91 36 2394 91 29 127 113 58 47 2885 1314 1433 "
    "3510 60",
    "24214 2079 17032 352 13 20 68 940 657 87 16 37 513 11 23756 11 45839",
    "138 239 138 240 138 241 26367 26638 42063 7377 102 34703 138 255 42063 17394 12466 123 21169 "
    "18849 38857 16843 20375 12466 250 140 246 140 254",
    "149 94 149 95 149 96 220 24231 99 24231 100 25208 31185 2343 239 254 158 227 94",
    "64 220 220 220 220 220 220 275 197 197 197 628 198 269 220 220 220",
};
static const char *const golden_deepseek_llm[] = {
    "40 6 44 2049 340 6 2369 1019 655 50 285 655 10699 359 6 35 11 655 248 655 87",
    "3607 184 1535 1202 3765 88946 2875 350 101 2735 124 214 14355 36004 30461 1225",
    "207 5881 285 38506 300 185 185 243 188 185 11969",
    "16065 16 17 18 19 20 21 22 23 24 15 885 43757 19304 1446 5607 2160 948 211 948 94 948 95 948 "
    "96 68940 239 537 398",
    "76152 91765 242 94627 112 207 167 214 222 80729 97 167 219 116 166 234 209 207 10162 13072 "
    "239 28213 8550 215 9156 242 50145 52462",
    "34 15835 47904 10010 134 217 489 48029 207 9435 103 9435 99 20877 108 44168 207 155 122 122 "
    "40751 121 18811 123 82",
    "39349 12833 59948 222 10044 224 121 75655 46713 10044 216 118 10044 216 116 12356 100 226 350 "
    "222 10044 227 119 2368",
    "1837 279 207 16 20 13 16 25 207 170 106 107 108 170 106 117 238 285 207 156 123 120 157 216 "
    "107 11 207 16 20 13 15 25 207 170 109 222 225",
    "13069 207 16211 7868 49509 285 207 16211 1225 207 175",
    "87 28 16 10 17 43451 18 20225 19 61 20 93 21 91 22 3 23 2030 2121 63 509 64 21871 65 17001 "
    "1173 5819 1501 8368 207 16 15 15 4",
    "27 82 29 4824 535 82 1611 91 309 62 4789 66325 10183 27 91 309 62 409 91 1611 91 409 994 822 "
    "91 1611 91 951 62 994 62 822 91 1611 91 36 2787 66325 100006 58 73646 16 20 16 21 19 21 60",
    "27 82 29 4824 535 82 1611 91 309 62 4789 66325 10183 27 91 309 62 409 91 1611 91 409 994 822 "
    "91 1611 91 951 62 994 62 822 91 1611 91 36 2787 66325 100006 58 73646 16 20 16 21 19 21 60",
    "24 24 24 24 24 24 24 24 24 207 16 13 20 68 16 15 207 15 87 16 37 207 18 11 16 19 16 11 20 24 "
    "17",
    "70172 136 227 136 228 36268 37838 28619 60820 22502 38194 28619 10812 3124 9207 2234 4304 "
    "4649",
    "147 94 147 95 147 96 207 23424 99 23424 100 207 19109 12094 207 40368 51620 94",
    "64 1418 270 1790 185 185 185 258 300",
};
static const char *const golden_deepseek_coder[] = {
    "40 6 44 2037 340 6 2360 1016 651 50 285 651 10709 359 6 35 11 651 248 651 87",
    "3594 184 1527 1200 3753 343 209 2865 350 101 2724 124 214 14423 350 218 30622 1223",
    "207 5877 285 1355 5964 315 185 185 243 188 185 12405",
    "16114 16 17 18 19 20 21 22 23 24 15 881 759 1919 19385 1440 5595 2149 942 211 942 94 942 95 "
    "942 96 169 121 239 534 397",
    "167 230 237 164 113 242 166 231 112 207 167 214 222 166 219 97 167 219 116 166 234 209 207 "
    "10169 13099 239 28367 8553 215 9158 242 9158 117 8553 217",
    "34 15884 134 210 10012 134 217 488 2688 113 207 9441 103 9441 99 20965 108 23477 9360 207 155 "
    "122 122 155 121 121 18886 123 82",
    "369 78 12896 12394 226 222 10047 224 121 156 238 97 169 116 224 10047 216 118 10047 216 116 "
    "12394 100 226 350 222 10047 227 119 2359",
    "1829 279 207 16 20 13 16 25 207 170 106 107 108 170 106 117 238 285 207 156 123 120 157 216 "
    "107 11 207 16 20 13 15 25 207 170 109 222 225",
    "13095 207 16258 7879 207 10006 285 207 16258 1223 207 175",
    "87 28 16 10 17 27 28 18 25057 19 61 20 93 21 91 22 3 23 2220 2108 63 507 64 21926 65 12593 "
    "1171 5816 1494 8372 207 16 15 15 4",
    "27 82 29 4821 27 14 82 784 91 308 62 4779 91 29 10194 27 91 308 62 408 91 784 91 408 990 818 "
    "91 784 91 946 62 990 62 818 91 29 32021 32000 58 47 3195 16 20 16 21 19 21 60",
    "27 82 29 4821 27 14 82 784 91 308 62 4779 91 29 10194 27 91 308 62 408 91 784 91 408 990 818 "
    "91 784 91 946 62 990 62 818 91 29 32021 32000 58 47 3195 16 20 16 21 19 21 60",
    "24 24 24 24 24 24 24 24 24 207 16 13 20 68 16 15 207 15 87 16 37 207 18 11 16 19 16 11 20 24 "
    "17",
    "136 226 136 227 136 228 7559 109 136 110 28775 7559 102 22584 136 242 28775 10829 3111 9210 "
    "2226 4292 4639",
    "147 94 147 95 147 96 207 23516 99 23516 100 207 19192 12124 207 16932 241 156 214 94",
    "64 1032 270 1749 185 185 185 258 315",
};
static const char *const golden_stories260k[] = {
    "359 439 446 262 425 276 364 439 438 438 262 411 411 410 439 437 269 410 439 470 411 312 439 "
    "455 432 410 439 276 410 439 444",
    "259 412 430 12 260 276 498 416 430 419 427 230 131 131 292 411 414 229 131 171 421 419 197 "
    "136 416 411 421 229 131 140 413 415 271 344 264",
    "410 410 278 411 380 299 269 259 420 412 290 299 410 410 410 13 13 410 410 16 13 12 410",
    "410 233 152 179 232 176 154 475 479 472 484 480 490 491 487 483 477 232 149 143 231 187 176 "
    "233 153 138 242 191 143 232 136 171 235 170 149 242 191 132 242 191 133 242 191 164 242 191 "
    "165 242 191 166 242 192 161 230 131 132 230 131 133",
    "410 240 152 159 237 184 176 239 153 183 410 240 136 144 239 141 167 240 141 187 239 156 131 "
    "410 233 154 168 233 159 175 235 173 161 230 132 177 230 134 137 230 133 176 230 133 188 230 "
    "134 139",
    "410 457 412 431 411 207 132 297 412 207 139 417 360 410 197 184 410 229 135 173 229 135 169 "
    "410 199 179 356 303 430 425 421 410 228 193 193 228 192 192 410 200 194 419",
    "344 423 414 449 417 410 243 162 148 144 243 162 146 192 229 160 167 242 187 146 243 162 138 "
    "189 243 162 138 187 410 243 162 170 148 229 131 144 243 162 149 190 279 289 411",
    "404 424 322 410 475 480 426 475 467 410 243 177 178 179 243 177 188 160 269 410 229 194 191 "
    "230 138 178 432 410 475 480 426 477 467 410 243 180 144 147",
    "268 380 410 258 257 229 153 132 430 422 413 406 410 198 229 153 132 412 264 410 229 133 229 "
    "153 132 367 410 195 131",
    "410 444 64 475 496 479 504 64 472 505 64 484 97 480 510 490 506 491 494 487 410 495 429 414 "
    "418 411 495 410 126 412 467 508 430 509 128 410 67 415 287 411 410 38 413 412 428 410 475 477 "
    "477 501",
    "1 270 417 2 410 504 506 288 98 356 295 413 506 505 419 422 419 504 506 288 98 367 506 505 504 "
    "506 367 414 431 413 411 444 413 506 505 504 506 430 411 428 271 98 414 431 98 413 411 444 413 "
    "506 505 504 506 459 441 434 506 505 198 184 508 460 447 455 475 480 475 490 484 490 509",
    "410 504 419 505 415 417 504 492 419 505 504 506 288 98 356 295 413 506 505 419 422 419 504 "
    "506 288 98 367 506 505 504 506 367 414 431 413 411 444 413 506 505 504 506 430 411 428 271 98 "
    "414 431 98 413 411 444 413 506 505 504 506 459 441 434 506 505 198 184 508 460 447 455 475 "
    "480 475 490 484 490 509",
    "410 483 483 483 483 483 483 483 483 483 410 475 426 480 411 475 477 410 477 444 475 453 410 "
    "472 432 475 484 475 432 480 483 479",
    "410 209 148 209 149 209 150 410 209 180 209 181 209 182 410 209 172 209 191 209 176 209 182 "
    "209 180 410 211 194 212 131 211 187 211 181 211 184 212 133 410 211 159 211 155 211 163",
    "410 220 164 220 165 220 166 410 227 168 169 227 168 170 410 197 192 197 181 410 229 148 163 "
    "229 136 164",
    "261 410 410 410 410 410 410 268 12 12 12 13 13 13 280 410 410 410",
};

#define N_GOLDEN (sizeof golden_strings / sizeof golden_strings[0])

static void run_golden(const char *label, const tokenizer *tok, const char *const *expected) {
    size_t n_match = 0;
    for (size_t i = 0; i < N_GOLDEN; i++) {
        int32_t want_n = 0;
        int32_t *want_ids = parse_ids(expected[i], strlen(expected[i]), &want_n);
        if (want_ids == NULL) {
            CHECK(0);
            continue;
        }
        int32_t n;
        int32_t *ids = encode(tok, golden_strings[i].s, golden_strings[i].len, false,
                              golden_strings[i].parse_special, &n);
        if (ids != NULL && ids_equal(ids, n, want_ids, want_n)) {
            n_match++;
        } else {
            fprintf(stderr, "  %s: extra string %zu: ", label, i);
            print_escaped(golden_strings[i].s, golden_strings[i].len);
            fputc('\n', stderr);
            print_ids("expected", want_ids, want_n);
            if (ids != NULL) {
                print_ids("got     ", ids, n);
            }
        }
        free(ids);
        free(want_ids);
    }
    fprintf(stderr, "%-16s %zu/%zu extra strings match llama.cpp\n", label, n_match,
            (size_t)N_GOLDEN);
    CHECK_MSG(n_match == N_GOLDEN, "%s: %zu extra strings differ", label, N_GOLDEN - n_match);
}

/* text with special tokens: with parse_special it is want_first ... want_last, around the
 * encoding of middle; without, neither special id appears. */
static void check_special(const char *label, const tokenizer *tok, const char *text,
                          int32_t want_first, const char *middle, int32_t want_last) {
    int32_t n, n_mid;
    int32_t *ids = encode(tok, text, strlen(text), false, true, &n);
    int32_t *mid = encode(tok, middle, strlen(middle), false, false, &n_mid);
    bool ok = ids != NULL && mid != NULL && n == n_mid + (want_first >= 0) + (want_last >= 0);
    if (ok && want_first >= 0) {
        ok = ids[0] == want_first;
    }
    if (ok && want_last >= 0) {
        ok = ids[n - 1] == want_last;
    }
    if (ok) {
        ok = n_mid == 0 || memcmp(ids + (want_first >= 0), mid, (size_t)n_mid * sizeof *mid) == 0;
    }
    CHECK_MSG(ok, "%s: parse_special of '%s'", label, text);
    free(ids);
    ids = encode(tok, text, strlen(text), false, false, &n);
    bool found = false;
    for (int32_t i = 0; ids != NULL && i < n; i++) {
        found |=
            (want_first >= 0 && ids[i] == want_first) || (want_last >= 0 && ids[i] == want_last);
    }
    CHECK_MSG(ids != NULL && !found, "%s: '%s' without parse_special produced a control token",
              label, text);
    free(ids);
    free(mid);
}

static void test_fixtures(void) {
    static const struct {
        const char *name;
        bool spm;
        const char *const *golden;
    } vocabs[] = {
        {"llama-spm", true, golden_llama_spm},
        {"llama-bpe", false, golden_llama_bpe},
        {"qwen2", false, golden_qwen2},
        {"gpt-2", false, golden_gpt_2},
        {"deepseek-llm", false, golden_deepseek_llm},
        {"deepseek-coder", false, golden_deepseek_coder},
    };
    for (size_t v = 0; v < sizeof vocabs / sizeof vocabs[0]; v++) {
        char gguf_rel[256], inp_rel[300], out_rel[300];
        snprintf(gguf_rel, sizeof gguf_rel, "vocab/ggml-vocab-%s.gguf", vocabs[v].name);
        snprintf(inp_rel, sizeof inp_rel, "%s.inp", gguf_rel);
        snprintf(out_rel, sizeof out_rel, "%s.out", gguf_rel);
        double load_ms = 0;
        tokenizer *tok = load_fixture(gguf_rel, &load_ms);
        if (tok == NULL) {
            continue;
        }
        run_fixture(vocabs[v].name, tok, inp_rel, out_rel, vocabs[v].spm, load_ms);
        run_golden(vocabs[v].name, tok, vocabs[v].golden);
        const char *name = vocabs[v].name;
        if (strcmp(name, "qwen2") == 0) {
            check_special(name, tok, "<|im_start|>user\nhi there<|im_end|>", 151644,
                          "user\nhi there", 151645);
            CHECK(tokenizer_is_eog(tok, 151645) && tokenizer_is_eog(tok, 151643));
            CHECK(!tokenizer_add_bos(tok));
        } else if (strcmp(name, "llama-bpe") == 0) {
            check_special(name, tok, "<|begin_of_text|>Hello world<|eot_id|>", 128000,
                          "Hello world", 128009);
            CHECK(tokenizer_is_eog(tok, 128009) && tokenizer_is_eog(tok, 128001));
            CHECK(tokenizer_add_bos(tok) && tokenizer_bos(tok) == 128000);
        } else if (strcmp(name, "gpt-2") == 0) {
            check_special(name, tok, "Hello<|endoftext|>", -1, "Hello", 50256);
            CHECK(tokenizer_is_eog(tok, 50256));
        } else if (strcmp(name, "llama-spm") == 0) {
            check_special(name, tok, "<s>", 1, "", -1);
            CHECK(tokenizer_add_bos(tok) && tokenizer_is_eog(tok, 2));
        } else if (strcmp(name, "deepseek-coder") == 0) {
            /* "<|EOT|>" is USER_DEFINED: split out even without parse_special */
            int32_t n;
            int32_t *ids = encode(tok, "a<|EOT|>", 8, false, false, &n);
            CHECK(ids != NULL && n >= 2 && ids[n - 1] == 32021);
            free(ids);
            CHECK(tokenizer_add_bos(tok) && tokenizer_bos(tok) == 32013);
        }
        tokenizer_free(tok);
    }

    double load_ms = 0;
    tokenizer *tok = load_fixture("stories260K.gguf", &load_ms);
    if (tok != NULL) {
        run_fixture("stories260K", tok, "reference/stories260K.gguf.inp",
                    "reference/stories260K.gguf.out", true, load_ms);
        run_golden("stories260K", tok, golden_stories260k);
        check_special("stories260K", tok, "<s>", 1, "", -1);
        check_special("stories260K", tok, "Once upon a time</s>", -1, "Once upon a time", 2);
        CHECK(tokenizer_add_bos(tok) && tokenizer_bos(tok) == 1 && tokenizer_eos(tok) == 2);
        CHECK(tokenizer_is_eog(tok, 2) && !tokenizer_is_eog(tok, 1));
        /* "Once upon a time" with BOS, as in reference/stories260K.greedy.json */
        int32_t n;
        int32_t *ids = encode(tok, "Once upon a time", 16, true, false, &n);
        CHECK(ids != NULL && n >= 2 && ids[0] == 1);
        free(ids);
        tokenizer_free(tok);
    }
}

int main(void) {
    test_unicode();
    test_spm_vocab();
    test_bpe_vocab();
    test_corrupt_metadata();
    test_fixtures();
    return test_finish("test_tokenizer", skipped_parts);
}
