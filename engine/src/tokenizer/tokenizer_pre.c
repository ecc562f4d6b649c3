/* tokenizer_pre.c - BPE pre-tokenizers: split text (as codepoints) into the pieces BPE merges
 * within, exactly as llama.cpp's unicode_regex_split() does for the tokenizer.ggml.pre values we
 * support. Each pre-tokenizer is a list of regexes applied in turn, each one splitting every piece
 * the previous one produced. llama.cpp runs two of them (GPT-2, Llama 3) through hand-written
 * splitters, which are mirrored here; the others through std::regex (ECMAScript: leftmost match,
 * alternatives in order, greedy with backtracking; text between matches becomes a piece too),
 * whose results the matchers below reproduce pattern by pattern.
 *
 * Two details of llama.cpp's std::regex path matter: patterns with \p{..} run on a "collapsed"
 * text where each non-ASCII codepoint becomes one byte standing for its category (whitespace
 * first), and patterns without run on the codepoints with non-ASCII whitespace turned into
 * U+000B. Either way, \s is ASCII " \t\n\v\f\r" or non-ASCII White_Space, and a non-ASCII
 * codepoint matches \p{L} / \p{N} / \p{P} by its category unless it is whitespace.
 */
#include "tokenizer_pre.h"
#include "unicode.h"

#include "base/growable_array.h"

#include <stdlib.h>

/* ---- growable size arrays ------------------------------------------------------------------- */

static bool sizes_push(tok_sizes *s, size_t v) {
    if (!array_reserve(&s->v, &s->cap, s->n + 1, sizeof *s->v, 64)) {
        return false;
    }
    s->v[s->n++] = v;
    return true;
}

/* ---- character classes ---------------------------------------------------------------------- */

typedef bool (*cpt_pred)(uint32_t c);

/* \s of llama.cpp's std::regex paths (see the file comment). */
static bool re_space(uint32_t c) {
    if (c < 0x80u) {
        return c == ' ' || (c >= 0x09u && c <= 0x0Du);
    }
    return (unicode_flags(c) & UNICODE_WHITESPACE) != 0;
}

/* Category test of the collapsed path: ASCII by the ranges llama.cpp substitutes for \p{..},
 * non-ASCII by category unless whitespace. */
static bool collapsed_is(uint32_t c, uint32_t category) {
    uint32_t f = unicode_flags(c);
    return (f & UNICODE_WHITESPACE) == 0 && (f & category) != 0;
}

static bool re_letter(uint32_t c) {
    if (c < 0x80u) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    }
    return collapsed_is(c, UNICODE_LETTER);
}

static bool re_number(uint32_t c) {
    if (c < 0x80u) {
        return c >= '0' && c <= '9';
    }
    return collapsed_is(c, UNICODE_NUMBER);
}

/* \p{P}: for ASCII llama.cpp substitutes !-#%-*,-/:-;?-@[-]_{} */
static bool re_punct(uint32_t c) {
    if (c < 0x80u) {
        return (c >= 0x21u && c <= 0x23u) || (c >= 0x25u && c <= 0x2Au) ||
               (c >= 0x2Cu && c <= 0x2Fu) || (c >= 0x3Au && c <= 0x3Bu) ||
               (c >= 0x3Fu && c <= 0x40u) || (c >= 0x5Bu && c <= 0x5Du) || c == 0x5Fu ||
               c == 0x7Bu || c == 0x7Du;
    }
    return collapsed_is(c, UNICODE_PUNCTUATION);
}

/* [^\s\p{L}\p{N}] */
static bool re_other(uint32_t c) { return !re_space(c) && !re_letter(c) && !re_number(c); }

/* The std::wregex path sees non-ASCII whitespace as U+000B. */
static uint32_t wide_char(uint32_t c) {
    return (c > 0x7Fu && (unicode_flags(c) & UNICODE_WHITESPACE)) ? 0x0Bu : c;
}

typedef struct cpt_range {
    uint32_t first, last;
} cpt_range;

static bool in_ranges(uint32_t c, const cpt_range *r, size_t n) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c < r[mid].first) {
            hi = mid;
        } else if (c > r[mid].last) {
            lo = mid + 1;
        } else {
            return true;
        }
    }
    return false;
}

/* The letter class of DeepSeek LLM's second regex (from its tokenizer.json, as in llama.cpp):
 * "[A-Za-zµÀ-ÖØ-öø-ƺ...𞤀-𞥃]", i.e. the cased letters, as codepoint ranges. Written as
 * numbers on purpose: several endpoints (U+1F7D, U+1FBE, U+1FD3, U+1FDB, U+2126, U+212A) have
 * singleton canonical decompositions and would silently change under Unicode normalization. */
static const cpt_range deepseek_llm_letters[] = {
    {0x00041, 0x0005A}, {0x00061, 0x0007A}, {0x000B5, 0x000B5}, {0x000C0, 0x000D6},
    {0x000D8, 0x000F6}, {0x000F8, 0x001BA}, {0x001BC, 0x001BF}, {0x001C4, 0x00293},
    {0x00295, 0x002AF}, {0x00370, 0x00373}, {0x00376, 0x00377}, {0x0037B, 0x0037D},
    {0x0037F, 0x0037F}, {0x00386, 0x00386}, {0x00388, 0x0038A}, {0x0038C, 0x0038C},
    {0x0038E, 0x003A1}, {0x003A3, 0x003F5}, {0x003F7, 0x00481}, {0x0048A, 0x0052F},
    {0x00531, 0x00556}, {0x010A0, 0x010C5}, {0x013A0, 0x013F5}, {0x013F8, 0x013FD},
    {0x01C90, 0x01CBA}, {0x01CBD, 0x01CBF}, {0x01D00, 0x01D2B}, {0x01D6B, 0x01D77},
    {0x01D79, 0x01D9A}, {0x01E00, 0x01F15}, {0x01F18, 0x01F1D}, {0x01F20, 0x01F45},
    {0x01F48, 0x01F4D}, {0x01F50, 0x01F57}, {0x01F59, 0x01F59}, {0x01F5B, 0x01F5B},
    {0x01F5D, 0x01F5D}, {0x01F5F, 0x01F7D}, {0x01F80, 0x01FB4}, {0x01FB6, 0x01FBC},
    {0x01FBE, 0x01FBE}, {0x01FC2, 0x01FC4}, {0x01FC6, 0x01FCC}, {0x01FD0, 0x01FD3},
    {0x01FD6, 0x01FDB}, {0x01FE0, 0x01FEC}, {0x01FF2, 0x01FF4}, {0x01FF6, 0x01FFC},
    {0x02102, 0x02102}, {0x02107, 0x02107}, {0x0210A, 0x02113}, {0x02115, 0x02115},
    {0x02119, 0x0211D}, {0x02124, 0x02124}, {0x02126, 0x02126}, {0x02128, 0x02128},
    {0x0212A, 0x0212D}, {0x0212F, 0x02134}, {0x02139, 0x02139}, {0x0213C, 0x0213F},
    {0x02145, 0x02149}, {0x0214E, 0x0214E}, {0x02183, 0x02184}, {0x02C00, 0x02C7B},
    {0x02C7E, 0x02CE4}, {0x02CEB, 0x02CEE}, {0x02CF2, 0x02CF3}, {0x0A640, 0x0A66D},
    {0x0A680, 0x0A69B}, {0x0A722, 0x0A76F}, {0x0A771, 0x0A787}, {0x0A78B, 0x0A78E},
    {0x0AB70, 0x0ABBF}, {0x0FB00, 0x0FB06}, {0x0FB13, 0x0FB17}, {0x0FF21, 0x0FF3A},
    {0x0FF41, 0x0FF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};

static bool ds_llm_letter(uint32_t c) {
    return in_ranges(wide_char(c), deepseek_llm_letters,
                     sizeof deepseek_llm_letters / sizeof deepseek_llm_letters[0]);
}

/* DeepSeek LLM's "[!-/:-~！-／：-～‘-‟　-。]" (sorted). */
static const cpt_range deepseek_llm_punct[] = {
    {0x0021, 0x002F}, {0x003A, 0x007E}, {0x2018, 0x201F},
    {0x3000, 0x3002}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E},
};

static bool ds_llm_punct(uint32_t c) {
    return in_ranges(wide_char(c), deepseek_llm_punct,
                     sizeof deepseek_llm_punct / sizeof deepseek_llm_punct[0]);
}

/* DeepSeek's "[一-龥ࠀ-一가-퟿]" (sorted, the first two merged). */
static const cpt_range deepseek_cjk[] = {{0x0800, 0x9FA5}, {0xAC00, 0xD7FF}};

static bool ds_cjk(uint32_t c) {
    return in_ranges(wide_char(c), deepseek_cjk, sizeof deepseek_cjk / sizeof deepseek_cjk[0]);
}

/* The default pre-tokenizer's "[\p{P}\$\+<=>\^~\|]" */
static bool default_punct(uint32_t c) {
    return re_punct(c) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' ||
           c == '~' || c == '|';
}

static bool is_cr_lf(uint32_t c) { return c == '\r' || c == '\n'; }

static size_t run_of(const uint32_t *c, size_t p, size_t end, cpt_pred pred) {
    size_t q = p;
    while (q < end && pred(c[q])) {
        q++;
    }
    return q - p;
}

/* ---- matchers for the std::regex path ------------------------------------------------------- *
 * Each returns the length of the match the regex finds starting exactly at p (0 = none). None of
 * the patterns can match the empty string. end is the end of the piece being split: lookaheads
 * and $ see it as the end of the text. */

typedef size_t (*re_matcher)(const uint32_t *c, size_t p, size_t end);

/* [\r\n] */
static size_t m_cr_lf(const uint32_t *c, size_t p, size_t end) {
    (void)end;
    return is_cr_lf(c[p]) ? 1 : 0;
}

/* \s?X+ */
static size_t m_opt_space_run(const uint32_t *c, size_t p, size_t end, cpt_pred x) {
    if (re_space(c[p]) && p + 1 < end && x(c[p + 1])) {
        return 1 + run_of(c, p + 1, end, x);
    }
    return run_of(c, p, end, x);
}

static size_t m_space_letters(const uint32_t *c, size_t p, size_t end) {
    return m_opt_space_run(c, p, end, re_letter); /* \s?\p{L}+ */
}
static size_t m_space_puncts(const uint32_t *c, size_t p, size_t end) {
    return m_opt_space_run(c, p, end, re_punct); /* \s?\p{P}+ */
}
static size_t m_space_ds_letters(const uint32_t *c, size_t p, size_t end) {
    return m_opt_space_run(c, p, end, ds_llm_letter);
}
static size_t m_space_ds_puncts(const uint32_t *c, size_t p, size_t end) {
    return m_opt_space_run(c, p, end, ds_llm_punct);
}
static size_t m_cjk_run(const uint32_t *c, size_t p, size_t end) {
    return run_of(c, p, end, ds_cjk); /* [一-龥ࠀ-一가-퟿]+ */
}
static size_t m_number(const uint32_t *c, size_t p, size_t end) {
    (void)end;
    return re_number(c[p]) ? 1 : 0; /* \p{N} */
}
static size_t m_numbers(const uint32_t *c, size_t p, size_t end) {
    return run_of(c, p, end, re_number); /* \p{N}+ */
}
static size_t m_default_puncts(const uint32_t *c, size_t p, size_t end) {
    return run_of(c, p, end, default_punct); /* [\p{P}\$\+<=>\^~\|]+ */
}
/* [0-9][0-9][0-9] (std::wregex: ASCII digits only) */
static size_t m_three_digits(const uint32_t *c, size_t p, size_t end) {
    if (p + 3 > end) {
        return 0;
    }
    for (size_t i = 0; i < 3; i++) {
        if (c[p + i] < '0' || c[p + i] > '9') {
            return 0;
        }
    }
    return 3;
}

static bool ascii_eq_ci(uint32_t c, char lower) {
    return c == (uint32_t)lower || c == (uint32_t)(lower - 'a' + 'A');
}

/* Qwen2: (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|
 *        \p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t m_qwen2(const uint32_t *c, size_t p, size_t end) {
    uint32_t c0 = c[p];
    if (c0 == '\'' && p + 1 < end) {
        uint32_t c1 = c[p + 1];
        if (ascii_eq_ci(c1, 's') || ascii_eq_ci(c1, 't') || ascii_eq_ci(c1, 'm') ||
            ascii_eq_ci(c1, 'd')) {
            return 2;
        }
        if (p + 2 < end) {
            uint32_t c2 = c[p + 2];
            if ((ascii_eq_ci(c1, 'r') && ascii_eq_ci(c2, 'e')) ||
                (ascii_eq_ci(c1, 'v') && ascii_eq_ci(c2, 'e')) ||
                (ascii_eq_ci(c1, 'l') && ascii_eq_ci(c2, 'l'))) {
                return 3;
            }
        }
    }
    if (!is_cr_lf(c0) && !re_letter(c0) && !re_number(c0) && p + 1 < end && re_letter(c[p + 1])) {
        return 1 + run_of(c, p + 1, end, re_letter);
    }
    if (re_letter(c0)) {
        return run_of(c, p, end, re_letter);
    }
    if (re_number(c0)) {
        return 1;
    }
    {
        size_t q = p;
        if (c0 == ' ' && p + 1 < end && re_other(c[p + 1])) {
            q = p + 1;
        }
        size_t n = run_of(c, q, end, re_other);
        if (n > 0) {
            q += n;
            q += run_of(c, q, end, is_cr_lf);
            return q - p;
        }
    }
    size_t n_space = run_of(c, p, end, re_space);
    if (n_space == 0) {
        return 0;
    }
    /* \s*[\r\n]+ : the greedy \s* backs off to the last CR/LF of the whitespace run. */
    for (size_t i = n_space; i > 0; i--) {
        if (is_cr_lf(c[p + i - 1])) {
            return i;
        }
    }
    /* \s+(?!\S) : the whole run at the end of the piece, else all but its last character. */
    if (p + n_space == end) {
        return n_space;
    }
    if (n_space > 1) {
        return n_space - 1;
    }
    return n_space; /* \s+ */
}

/* Apply one regex to every piece: matches become pieces, and so do the stretches between them. */
static bool split_regex(const uint32_t *c, const tok_sizes *in, tok_sizes *out, re_matcher match) {
    size_t start = 0;
    for (size_t w = 0; w < in->n; w++) {
        size_t end = start + in->v[w];
        size_t gap = start;
        size_t p = start;
        while (p < end) {
            size_t n = match(c, p, end);
            if (n == 0) {
                p++;
                continue;
            }
            if (p > gap && !sizes_push(out, p - gap)) {
                return false;
            }
            if (!sizes_push(out, n)) {
                return false;
            }
            p += n;
            gap = p;
        }
        if (gap < end && !sizes_push(out, end - gap)) {
            return false;
        }
        start = end;
    }
    return true;
}

/* \s+$ : only the whitespace that ends a piece can match. */
static bool split_trailing_space(const uint32_t *c, const tok_sizes *in, tok_sizes *out) {
    size_t start = 0;
    for (size_t w = 0; w < in->n; w++) {
        size_t end = start + in->v[w];
        size_t t = end;
        while (t > start && re_space(c[t - 1])) {
            t--;
        }
        if (t > start && !sizes_push(out, t - start)) {
            return false;
        }
        if (t < end && !sizes_push(out, end - t)) {
            return false;
        }
        start = end;
    }
    return true;
}

/* ---- llama.cpp's hand-written splitters ----------------------------------------------------- *
 * These use the codepoint flags directly (also for ASCII) and turn a character no alternative
 * matches into a piece of its own. Outside the piece, flags read as 0 and codepoints as
 * OUT_OF_RANGE. */

#define OUT_OF_RANGE 0xFFFFFFFFu

typedef struct piece_cursor {
    const uint32_t *c;
    size_t begin, end;
    size_t prev_end;
    tok_sizes *out;
    bool ok;
} piece_cursor;

static uint32_t pc_cpt(const piece_cursor *pc, size_t pos) {
    return (pos >= pc->begin && pos < pc->end) ? pc->c[pos] : OUT_OF_RANGE;
}

static uint32_t pc_flags(const piece_cursor *pc, size_t pos) {
    return (pos >= pc->begin && pos < pc->end) ? unicode_flags(pc->c[pos]) : 0u;
}

/* Close the piece [prev_end, end); returns its length. */
static size_t pc_add(piece_cursor *pc, size_t end) {
    size_t len = end - pc->prev_end;
    if (len > 0 && !sizes_push(pc->out, len)) {
        pc->ok = false;
    }
    pc->prev_end = end;
    return len;
}

#define F_LNW (UNICODE_LETTER | UNICODE_NUMBER | UNICODE_WHITESPACE)

/* The end of both hand-written splitters' patterns, \s+(?!\S)|\s+ and then one codepoint:
 * n_space whitespace codepoints at pos leave the last of them to the next piece when text
 * follows; with none, the codepoint at pos is a piece of its own. Adds the piece and returns
 * where the next one starts. */
static size_t split_space_or_char(piece_cursor *pc, size_t pos, size_t n_space) {
    if (n_space > 1 && pc_cpt(pc, pos + n_space) != OUT_OF_RANGE) {
        pos += n_space - 1;
    } else if (n_space > 0) {
        pos += n_space;
    } else {
        pos++;
    }
    pc_add(pc, pos);
    return pos;
}

/* Which ` ?X+` alternative of GPT-2's pattern a codepoint with these flags continues: \p{L}
 * (UNICODE_LETTER), \p{N} (UNICODE_NUMBER) or [^\s\p{L}\p{N}] (UNICODE_PUNCTUATION standing
 * for all of it); 0 for whitespace and past the end of the piece. */
static uint32_t gpt2_run_class(uint32_t flags) {
    if (flags & UNICODE_LETTER) {
        return UNICODE_LETTER;
    }
    if (flags & UNICODE_NUMBER) {
        return UNICODE_NUMBER;
    }
    return !(flags & F_LNW) && flags ? UNICODE_PUNCTUATION : 0;
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void split_gpt2_piece(piece_cursor *pc) {
    for (size_t pos = pc->begin; pos < pc->end && pc->ok;) {
        uint32_t cpt = pc_cpt(pc, pos);
        uint32_t flags = pc_flags(pc, pos);
        if (cpt == '\'' && pos + 1 < pc->end) {
            uint32_t next = pc_cpt(pc, pos + 1);
            if (next == 's' || next == 't' || next == 'm' || next == 'd') {
                pos += pc_add(pc, pos + 2);
                continue;
            }
            if (pos + 2 < pc->end) {
                uint32_t next2 = pc_cpt(pc, pos + 2);
                if ((next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') ||
                    (next == 'l' && next2 == 'l')) {
                    pos += pc_add(pc, pos + 3);
                    continue;
                }
            }
        }
        const uint32_t run = gpt2_run_class(cpt == ' ' ? pc_flags(pc, pos + 1) : flags);
        if (run != 0) {
            pos += cpt == ' ';
            while (gpt2_run_class(pc_flags(pc, pos)) == run) {
                pos++;
            }
            pc_add(pc, pos);
            continue;
        }
        size_t n_space = 0;
        while (pc_flags(pc, pos + n_space) & UNICODE_WHITESPACE) {
            n_space++;
        }
        pos = split_space_or_char(pc, pos, n_space);
    }
}

/* Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *          ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static void split_llama3_piece(piece_cursor *pc) {
    for (size_t pos = pc->begin; pos < pc->end && pc->ok;) {
        uint32_t cpt = pc_cpt(pc, pos);
        uint32_t flags = pc_flags(pc, pos);
        if (cpt == '\'' && pos + 1 < pc->end) {
            uint32_t next = unicode_tolower(pc_cpt(pc, pos + 1));
            if (next == 's' || next == 't' || next == 'm' || next == 'd') {
                pos += pc_add(pc, pos + 2);
                continue;
            }
            if (pos + 2 < pc->end) {
                uint32_t next2 = unicode_tolower(pc_cpt(pc, pos + 2));
                if ((next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') ||
                    (next == 'l' && next2 == 'l')) {
                    pos += pc_add(pc, pos + 3);
                    continue;
                }
            }
        }
        if (!(cpt == '\r' || cpt == '\n' || (flags & UNICODE_NUMBER))) {
            if ((flags & UNICODE_LETTER) || (pc_flags(pc, pos + 1) & UNICODE_LETTER)) {
                pos++;
                while (pc_flags(pc, pos) & UNICODE_LETTER) {
                    pos++;
                }
                pc_add(pc, pos);
                continue;
            }
        }
        if (flags & UNICODE_NUMBER) {
            size_t ini = pos;
            while (pc_flags(pc, pos) & UNICODE_NUMBER) {
                if (++pos - ini >= 3) {
                    pc_add(pc, pos);
                    ini = pos;
                }
            }
            pc_add(pc, pos);
            continue;
        }
        uint32_t flags2 = cpt == ' ' ? pc_flags(pc, pos + 1) : flags;
        if (!(flags2 & F_LNW) && flags) {
            pos += cpt == ' ';
            while (!(flags2 & F_LNW) && flags2) {
                flags2 = pc_flags(pc, ++pos);
            }
            uint32_t cpt2 = pc_cpt(pc, pos);
            while (cpt2 == '\r' || cpt2 == '\n') {
                cpt2 = pc_cpt(pc, ++pos);
            }
            pc_add(pc, pos);
            continue;
        }
        size_t n_space = 0;
        size_t last_end_r_or_n = 0;
        while (pc_flags(pc, pos + n_space) & UNICODE_WHITESPACE) {
            uint32_t cpt2 = pc_cpt(pc, pos + n_space);
            if (cpt2 == '\r' || cpt2 == '\n') {
                last_end_r_or_n = pos + n_space + 1;
            }
            n_space++;
        }
        if (last_end_r_or_n > 0) {
            pos = last_end_r_or_n;
            pc_add(pc, pos);
            continue;
        }
        pos = split_space_or_char(pc, pos, n_space);
    }
}

static bool split_custom(const uint32_t *c, const tok_sizes *in, tok_sizes *out, bool llama3) {
    size_t start = 0;
    for (size_t w = 0; w < in->n; w++) {
        piece_cursor pc = {c, start, start + in->v[w], start, out, true};
        if (llama3) {
            split_llama3_piece(&pc);
        } else {
            split_gpt2_piece(&pc);
        }
        if (!pc.ok) {
            return false;
        }
        start += in->v[w];
    }
    return true;
}

/* ---- pre-tokenizers ------------------------------------------------------------------------- */

typedef enum step_kind { STEP_REGEX, STEP_GPT2, STEP_LLAMA3, STEP_TRAILING_SPACE } step_kind;

typedef struct pre_step {
    step_kind kind;
    re_matcher match; /* STEP_REGEX */
} pre_step;

#define MAX_STEPS 6

typedef struct pre_step_list {
    size_t n;
    pre_step step[MAX_STEPS];
} pre_step_list;

/* The regex lists of llama.cpp's llm_tokenizer_bpe, one entry per regex. */
static const pre_step_list pre_step_lists[] = {
    /* "[\p{P}\$\+<=>\^~\|]+", GPT-2's regex, "\p{N}+", "[0-9][0-9][0-9]" */
    [TOK_PRE_DEFAULT] = {4,
                         {{STEP_REGEX, m_default_puncts},
                          {STEP_GPT2, NULL},
                          {STEP_REGEX, m_numbers},
                          {STEP_REGEX, m_three_digits}}},
    [TOK_PRE_LLAMA3] = {1, {{STEP_LLAMA3, NULL}}},
    [TOK_PRE_GPT2] = {1, {{STEP_GPT2, NULL}}},
    [TOK_PRE_QWEN2] = {1, {{STEP_REGEX, m_qwen2}}},
    /* "[\r\n]", "\s?[A-Za-zµÀ-ÖØ-öø-ƺ...]+", "\s?[!-/:-~！-／：-～‘-‟　-。]+", "\s+$",
     * "[一-龥ࠀ-一가-퟿]+", "\p{N}+" */
    [TOK_PRE_DEEPSEEK_LLM] = {6,
                              {{STEP_REGEX, m_cr_lf},
                               {STEP_REGEX, m_space_ds_letters},
                               {STEP_REGEX, m_space_ds_puncts},
                               {STEP_TRAILING_SPACE, NULL},
                               {STEP_REGEX, m_cjk_run},
                               {STEP_REGEX, m_numbers}}},
    /* "[\r\n]", "\s?\p{L}+", "\s?\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\p{N}" */
    [TOK_PRE_DEEPSEEK_CODER] = {5,
                                {{STEP_REGEX, m_cr_lf},
                                 {STEP_REGEX, m_space_letters},
                                 {STEP_REGEX, m_space_puncts},
                                 {STEP_REGEX, m_cjk_run},
                                 {STEP_REGEX, m_number}}},
    [TOK_PRE_STARCODER] = {2, {{STEP_REGEX, m_number}, {STEP_GPT2, NULL}}},
};

static const pre_step_list *pre_steps(tok_pre pre) {
    if ((size_t)pre >= sizeof pre_step_lists / sizeof pre_step_lists[0]) {
        pre = TOK_PRE_DEFAULT;
    }
    return &pre_step_lists[pre];
}

edgelm_status tok_pretokenize(tok_pre pre, const uint32_t *cpts, size_t n_cpts, tok_sizes *words) {
    const pre_step_list *list = pre_steps(pre);
    const size_t n_steps = list->n;
    const pre_step *steps = list->step;
    tok_sizes tmp = {NULL, 0, 0};
    tok_sizes *in = words, *out = &tmp;
    edgelm_status st = EDGELM_OK;

    words->n = 0;
    if (n_cpts == 0) {
        return EDGELM_OK;
    }
    if (!sizes_push(words, n_cpts)) {
        return EDGELM_ERR_OUT_OF_MEMORY;
    }
    for (size_t s = 0; s < n_steps; s++) {
        bool ok;
        out->n = 0;
        switch (steps[s].kind) {
        case STEP_GPT2:
            ok = split_custom(cpts, in, out, false);
            break;
        case STEP_LLAMA3:
            ok = split_custom(cpts, in, out, true);
            break;
        case STEP_TRAILING_SPACE:
            ok = split_trailing_space(cpts, in, out);
            break;
        case STEP_REGEX:
        default:
            ok = split_regex(cpts, in, out, steps[s].match);
            break;
        }
        if (!ok) {
            st = EDGELM_ERR_OUT_OF_MEMORY;
            goto done;
        }
        tok_sizes *t = in;
        in = out;
        out = t;
    }
    if (in != words) {
        /* the result sits in tmp: hand its buffer to words */
        tok_sizes t = *words;
        *words = *in;
        tmp = t;
    }
done:
    free(tmp.v);
    return st;
}
